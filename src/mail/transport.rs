//! Where mails go: an SMTP server through lettre (rustls, pooled connections), or,
//! with no server configured, `.eml` files in a directory.
//!
//! The `.eml` files carry live links (a password reset is an account), so the outbox
//! directory is `0700` and each file `0600`, whatever the data directory's mode and
//! the umask: lettre's own file transport leaves both to the umask (`0644`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::MailSettings;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `smtp://`: STARTTLS, refused if the server does not offer it.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Wrapper,
    /// `smtp://…?tls=none`: plain text.
    None,
}

/// `mail.smtp_url`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl SmtpTarget {
    pub fn parse(raw: &str) -> anyhow::Result<SmtpTarget> {
        let url = url::Url::parse(raw).map_err(|e| anyhow::anyhow!("not a URL: {e}"))?;
        let tls_param = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let tls = match (url.scheme(), tls_param.as_deref()) {
            ("smtp", None | Some("required")) => TlsMode::StartTls,
            ("smtp", Some("none")) => TlsMode::None,
            ("smtps", None) => TlsMode::Wrapper,
            (scheme @ ("smtp" | "smtps"), Some(other)) => {
                anyhow::bail!(
                    "{scheme}:// takes no tls={other}; use smtp://, smtps:// or smtp://…?tls=none"
                )
            }
            (scheme, _) => anyhow::bail!("scheme {scheme}:// is not smtp:// or smtps://"),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow::anyhow!("names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(match tls {
            TlsMode::Wrapper => 465,
            _ => 587,
        });
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| anyhow::anyhow!("its credentials are not UTF-8"))
        };
        let username = match url.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = url.password().map(decode).transpose()?;
        Ok(SmtpTarget {
            host,
            port,
            tls,
            username,
            password,
        })
    }
}

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// The outbox directory, private.
    Files(PathBuf),
}

impl Transport {
    /// The transport the settings name; `outbox_dir` when there is no SMTP server.
    pub fn build(m: &MailSettings, outbox_dir: PathBuf) -> anyhow::Result<Transport> {
        let Some(url) = &m.smtp_url else {
            crate::files::private_dir(&outbox_dir).with_context(|| {
                format!(
                    "mail: cannot create the outbox directory {}",
                    outbox_dir.display()
                )
            })?;
            return Ok(Transport::Files(outbox_dir));
        };
        let target = SmtpTarget::parse(url.expose()).context("mail.smtp_url")?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host)
            .port(target.port)
            .timeout(Some(Duration::from_secs(m.smtp_timeout_secs)))
            .pool_config(PoolConfig::new().max_size(m.smtp_pool_size));
        builder = match target.tls {
            TlsMode::StartTls => {
                builder.tls(Tls::Required(TlsParameters::new(target.host.clone())?))
            }
            TlsMode::Wrapper => builder.tls(Tls::Wrapper(TlsParameters::new(target.host.clone())?)),
            TlsMode::None => builder.tls(Tls::None),
        };
        let username = target.username.or_else(|| m.smtp_username.clone());
        let password = target
            .password
            .or_else(|| m.smtp_password.as_ref().map(|p| p.expose().clone()));
        if let (Some(user), Some(password)) = (username, password) {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Transport::Smtp(builder.build()))
    }

    /// For the start log: where mail goes, without credentials.
    pub fn describe(&self, m: &MailSettings) -> String {
        match self {
            Transport::Files(dir) => format!(
                "no mail.smtp_url: every mail is written as an .eml file in {}",
                dir.display()
            ),
            Transport::Smtp(_) => {
                let target = m
                    .smtp_url
                    .as_ref()
                    .and_then(|u| SmtpTarget::parse(u.expose()).ok());
                match target {
                    Some(t) => format!("SMTP to {}:{} ({:?})", t.host, t.port, t.tls),
                    None => "SMTP".into(),
                }
            }
        }
    }

    pub async fn send(&self, message: Message) -> anyhow::Result<()> {
        match self {
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Transport::Files(dir) => {
                let path = dir.join(format!("{}.eml", uuid::Uuid::new_v4()));
                let content = message.formatted();
                tokio::task::spawn_blocking(move || crate::files::write_private(&path, &content))
                    .await??;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = SmtpTarget::parse("smtp://mail.example.com").unwrap();
        assert_eq!((t.port, t.tls), (587, TlsMode::StartTls));
        let t = SmtpTarget::parse("smtps://u%40x:p%2Fw@mail.example.com:2465").unwrap();
        assert_eq!((t.port, t.tls), (2465, TlsMode::Wrapper));
        assert_eq!(t.username.as_deref(), Some("u@x"));
        assert_eq!(t.password.as_deref(), Some("p/w"));
        let t = SmtpTarget::parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("127.0.0.1", 2525, TlsMode::None)
        );
        for bad in [
            "http://x",
            "smtp://",
            "smtps://x?tls=none",
            "smtp://x?tls=maybe",
            "nope",
        ] {
            assert!(SmtpTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
