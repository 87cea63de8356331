//! Mail (`mail`): the SMTP server, the templates, the emailed links and the outbox.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::serde_helpers::opt_secret;
use crate::domain::Secret;

/// Mail: password reset and the other account mails, their links and their outbox.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// Send mail: the password-reset routes answer, and mails are queued. Needs
    /// `http.public_url`, which every link is built from.
    pub enabled: bool,
    /// The SMTP server: `smtp://host[:port]` (STARTTLS, required; port 587 by default),
    /// `smtps://host[:port]` (TLS from the start; port 465), or `smtp://…?tls=none` (no
    /// TLS: a relay on this machine only). Credentials in the URL (`user:pass@`) or in
    /// `smtp_username`/`smtp_password`. Unset: every mail is written as an `.eml` file
    /// in `DATA_DIR/outbox/`.
    #[serde(deserialize_with = "opt_secret")]
    #[schema(value_type = Option<String>)]
    pub smtp_url: Option<Secret<String>>,
    /// The SMTP user, when the URL names none.
    pub smtp_username: Option<String>,
    /// The SMTP password, when the URL has none.
    #[serde(deserialize_with = "opt_secret")]
    #[schema(value_type = Option<String>)]
    pub smtp_password: Option<Secret<String>>,
    /// Connections kept open to the SMTP server.
    pub smtp_pool_size: u32,
    /// How long one SMTP command may take, seconds.
    pub smtp_timeout_secs: u64,
    /// The `From:` of every mail, e.g. `Example <no-reply@example.com>`.
    pub from: String,
    /// The name mails sign with.
    pub site_name: String,
    /// A directory whose `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html` files
    /// replace the built-in templates of that kind of mail (minijinja syntax; `t("id")`
    /// gives the catalogue's message `id` in the mail's language).
    #[schema(value_type = Option<String>)]
    pub templates_dir: Option<PathBuf>,
    /// How long a password-reset link works, seconds.
    pub reset_ttl_secs: i64,
    /// How long an email-verification link works, seconds; also the link that
    /// confirms a new address in an email change.
    pub verify_ttl_secs: i64,
    /// How long the link mailed to the old address after an email change can revert
    /// it (and end every session), seconds.
    pub revert_ttl_secs: i64,
    /// Mails sent to one address (or for one account) per minute.
    pub per_minute: i64,
    /// Mails sent to one address (or for one account) per hour.
    pub per_hour: i64,
    /// `POST /auth/password/forgot` answers no sooner than this, milliseconds, whatever
    /// it found: the time says nothing of whether the address has an account.
    pub forgot_floor_ms: u64,
    /// First retry after a failed send, seconds; doubled after each further failure.
    pub retry_base_secs: i64,
    /// The longest wait between two attempts, seconds.
    pub retry_max_secs: i64,
    /// Mails sent at once.
    pub send_concurrency: usize,
    /// Links to the site's own pages instead of Gatehouse's.
    pub links: MailLinks,
}

/// URL templates of the emailed links, for sites that host their own pages; `{token}`
/// stands for the token. Unset: Gatehouse's own pages under `http.public_url`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MailLinks {
    /// The password-reset link, e.g. `https://example.com/reset?token={token}`. Unset:
    /// `http.public_url`/ui/reset-password?token=… (/auth/pages/reset-password with `ui.enabled` off).
    pub reset_password: Option<String>,
    /// The email-verification link, e.g. `https://example.com/verify?token={token}`.
    /// Unset: `http.public_url`/ui/verify-email?token=… (/auth/pages/verify-email with `ui.enabled` off).
    pub verify_email: Option<String>,
    /// The link mailed to a new address to confirm an email change. Unset:
    /// `http.public_url`/ui/confirm-email?token=… (/auth/pages/confirm-email with `ui.enabled` off).
    pub confirm_email: Option<String>,
    /// The link mailed to the old address to revert an email change. Unset:
    /// `http.public_url`/ui/revert-email?token=… (/auth/pages/revert-email with `ui.enabled` off).
    pub revert_email: Option<String>,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            enabled: false,
            smtp_url: None,
            smtp_username: None,
            smtp_password: None,
            smtp_pool_size: 4,
            smtp_timeout_secs: 30,
            from: "Gatehouse <no-reply@localhost>".into(),
            site_name: "Gatehouse".into(),
            templates_dir: None,
            reset_ttl_secs: 30 * 60,
            verify_ttl_secs: 24 * 3600,
            revert_ttl_secs: 7 * 24 * 3600,
            per_minute: 1,
            per_hour: 5,
            forgot_floor_ms: 250,
            retry_base_secs: 2,
            retry_max_secs: 600,
            send_concurrency: 8,
            links: MailLinks::default(),
        }
    }
}
