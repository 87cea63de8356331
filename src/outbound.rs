//! Requests the server makes to others: a form POSTed to a URL (back-channel logout,
//! [`crate::oidc::logout`]). hyper's HTTP/1 client on one connection per request, TLS
//! by rustls (ring, the provider lettre brings) with the Mozilla roots of webpki-roots;
//! `http` only reaches what a registration allows it to (a loopback address).
//!
//! Nothing is logged here, and no error carries what was sent.

use std::sync::Arc;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::oidc::logout::{FormPoster, SEND_TIMEOUT};

pub struct HttpPoster {
    tls: tokio_rustls::TlsConnector,
}

impl Default for HttpPoster {
    fn default() -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        HttpPoster {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }
}

#[async_trait::async_trait]
impl FormPoster for HttpPoster {
    async fn post_form(&self, uri: &str, form: &[(&str, &str)]) -> anyhow::Result<()> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        tokio::time::timeout(SEND_TIMEOUT, self.post(uri, body))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {} s", SEND_TIMEOUT.as_secs()))?
    }
}

impl HttpPoster {
    async fn post(&self, uri: &str, body: String) -> anyhow::Result<()> {
        let url = url::Url::parse(uri).context("the URL does not parse")?;
        let host = url.host_str().context("the URL has no host")?.to_owned();
        let port = url.port_or_known_default().context("the URL has no port")?;
        let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?;
        let _ = tcp.set_nodelay(true);
        let mut target = url.path().to_owned();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let request = Request::post(target)
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(hyper::header::USER_AGENT, "gatehouse")
            .body(Full::new(Bytes::from(body)))?;
        let status = match url.scheme() {
            "https" => {
                let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']))
                    .context("the host is no TLS server name")?
                    .to_owned();
                let tls = self.tls.connect(name, tcp).await.context("TLS")?;
                send(TokioIo::new(tls), request).await?
            }
            "http" => send(TokioIo::new(tcp), request).await?,
            other => bail!("scheme {other} is not http(s)"),
        };
        if !status.is_success() {
            bail!("the client answered {status}");
        }
        Ok(())
    }
}

async fn send<T>(io: T, request: Request<Full<Bytes>>) -> anyhow::Result<hyper::StatusCode>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP handshake")?;
    let driving = tokio::spawn(connection);
    let response = sender.send_request(request).await.context("sending")?;
    let status = response.status();
    // Read the (small) answer to its end, so the connection closes cleanly.
    let _ = response.into_body().collect().await;
    driving.abort();
    Ok(status)
}
