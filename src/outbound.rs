//! Requests the server makes to others, on one HTTP client configuration: social
//! sign-in's calls to its providers ([`crate::signin::social`]) and the forms of
//! back-channel logout ([`crate::oidc::logout`]). reqwest, TLS by rustls on ring (the
//! provider lettre links already); no redirect is followed, every request has a
//! deadline. `http` only reaches what a registration allows it to (a loopback address).
//!
//! Nothing is logged here, and no error carries what was sent.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::oidc::logout::{FormPoster, SEND_TIMEOUT};

/// Makes ring the process's TLS provider, which reqwest (`rustls-no-provider`) builds on.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client every outbound request uses: no redirects followed (a provider's or a
/// client's answer is read as it is), `timeout` for the whole request.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("the outbound HTTP client")
}

/// POSTs back-channel logout forms.
pub struct HttpPoster {
    http: reqwest::Client,
}

impl HttpPoster {
    pub fn new() -> anyhow::Result<HttpPoster> {
        Ok(HttpPoster {
            http: client(SEND_TIMEOUT)?,
        })
    }
}

#[async_trait::async_trait]
impl FormPoster for HttpPoster {
    async fn post_form(&self, uri: &str, form: &[(&str, &str)]) -> anyhow::Result<()> {
        let url = reqwest::Url::parse(uri).context("the URL does not parse")?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("scheme {} is not http(s)", url.scheme());
        }
        let response = self
            .http
            .post(url)
            .form(form)
            .send()
            .await
            // Without the URL: reqwest's errors name it, and it is the client's own,
            // but the form is never in them either way.
            .map_err(|e| anyhow::anyhow!("{}", e.without_url()))?;
        let status = response.status();
        // Read the (small) answer to its end, so the connection can be used again.
        let _ = response.bytes().await;
        if !status.is_success() {
            bail!("the client answered {status}");
        }
        Ok(())
    }
}
