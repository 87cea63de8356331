//! Mail: what Gatehouse sends, how it is written, where it goes, and the sender that
//! delivers the durable outbox ([`outbox`]).
//!
//! A mail is queued as a typed message (its kind and the template's values) in the
//! database, in the transaction that made what it carries; the sender renders it and
//! hands it to the transport, so a crash or an SMTP outage delays a mail but never
//! loses it, and a request never waits for SMTP.

pub mod outbox;
pub mod templates;
pub mod transport;

use std::sync::Arc;

use anyhow::Context;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::Settings;
use crate::store::mail::QueuedMail;
use crate::ui::i18n::Catalogue;
use templates::{Rendered, Templates};
use transport::Transport;

/// Every kind of mail; each has its own templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    PasswordReset,
    PasswordChanged,
    VerifyEmail,
    /// To the new address of an email change: the link that confirms it.
    EmailChange,
    /// To the old address once an email change is confirmed: the link that reverts it.
    EmailChanged,
    /// To a registered address someone tried to register again.
    RegisterAttempt,
    /// To the account's address after a reset or a revert: the ways in it removed.
    WaysInRemoved,
    /// To the account's address when its second factor was used or changed in a way
    /// its owner should hear of (`event`: `recovery_code_used`, `factors_reset`).
    SecondFactor,
}

impl MailKind {
    pub const ALL: [MailKind; 8] = [
        MailKind::PasswordReset,
        MailKind::PasswordChanged,
        MailKind::VerifyEmail,
        MailKind::EmailChange,
        MailKind::EmailChanged,
        MailKind::RegisterAttempt,
        MailKind::WaysInRemoved,
        MailKind::SecondFactor,
    ];

    /// Its name in the outbox and its templates' file names.
    pub fn name(self) -> &'static str {
        match self {
            MailKind::PasswordReset => "password_reset",
            MailKind::PasswordChanged => "password_changed",
            MailKind::VerifyEmail => "verify_email",
            MailKind::EmailChange => "email_change",
            MailKind::EmailChanged => "email_changed",
            MailKind::RegisterAttempt => "register_attempt",
            MailKind::WaysInRemoved => "ways_in_removed",
            MailKind::SecondFactor => "second_factor",
        }
    }

    pub fn from_name(name: &str) -> Option<MailKind> {
        MailKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Values of the kind its templates are rendered with, to try them at start.
    fn sample(self) -> serde_json::Value {
        serde_json::json!({
            "site_name": "Example",
            "email": "someone@example.com",
            "link": "https://example.com/link?token=sample",
            "expires_in_minutes": 30,
            "expires_in_hours": 24,
            "expires_in_days": 7,
            "new_email": "someone.else@example.com",
            "event": "recovery_code_used",
            "recovery_codes_left": 9,
            "removed": [
                {"kind": "wallet", "name": "0x0000000000000000000000000000000000000001"},
                {"kind": "passkey", "name": "Phone"},
                {"kind": "ownid", "name": ""},
            ],
        })
    }
}

/// The values a mail's templates see: its own (stored in the outbox), the site's name
/// and the address it goes to.
#[derive(Serialize)]
struct TemplateValues<'a> {
    site_name: &'a str,
    email: &'a str,
    #[serde(flatten)]
    values: serde_json::Value,
}

tokio::task_local! {
    /// The language the request being served asked for (`Accept-Language`), if one
    /// of the catalogue's: set around every request by the HTTP layer.
    static REQUEST_LANGUAGE: Option<&'static str>;
}

/// Runs `f` (a request) with `lang` as the language of the mails it queues.
pub async fn in_language<F: std::future::Future>(lang: Option<&'static str>, f: F) -> F::Output {
    REQUEST_LANGUAGE.scope(lang, f).await
}

/// A mail's values for the outbox, with the language of the request that queues it
/// (`lang`; none outside a request: the sender then uses `ui.default_language`).
/// Rendered when sent, the mail keeps its language in its stored values.
pub fn values_in_language(mut values: serde_json::Value) -> String {
    let lang = REQUEST_LANGUAGE.try_with(|l| *l).ok().flatten();
    if let (Some(lang), Some(map)) = (lang, values.as_object_mut()) {
        map.insert("lang".into(), lang.into());
    }
    values.to_string()
}

/// The pages an emailed link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPage {
    ResetPassword,
    VerifyEmail,
    ConfirmEmail,
    RevertEmail,
}

impl LinkPage {
    /// The path of Gatehouse's own page, under `http.public_url`: under `/ui/` with
    /// the hosted pages (`ui`, `ui.enabled`), else the older `/auth/pages/`, which
    /// with the hosted pages on sends a browser on to `/ui/`.
    pub fn path(self, ui: bool) -> &'static str {
        match (self, ui) {
            (LinkPage::ResetPassword, true) => "/ui/reset-password",
            (LinkPage::VerifyEmail, true) => "/ui/verify-email",
            (LinkPage::ConfirmEmail, true) => "/ui/confirm-email",
            (LinkPage::RevertEmail, true) => "/ui/revert-email",
            (LinkPage::ResetPassword, false) => "/auth/pages/reset-password",
            (LinkPage::VerifyEmail, false) => "/auth/pages/verify-email",
            (LinkPage::ConfirmEmail, false) => "/auth/pages/confirm-email",
            (LinkPage::RevertEmail, false) => "/auth/pages/revert-email",
        }
    }
}

pub struct Mailer {
    templates: Templates,
    transport: Transport,
    from: Mailbox,
    site_name: String,
    /// `http.public_url` without a trailing slash.
    public_url: String,
    links: crate::config::MailLinks,
    /// `ui.enabled`: links go to the hosted pages under `/ui/`.
    ui: bool,
    /// Wakes this node's sender when a mail was queued here.
    queued: Notify,
}

impl Mailer {
    /// The mailer, or `None` when `mail.enabled` is off.
    pub fn build(settings: &Settings) -> anyhow::Result<Option<Arc<Mailer>>> {
        let m = &settings.mail;
        if !m.enabled {
            tracing::info!(
                "mail: off (mail.enabled is false); the password-reset routes answer 404"
            );
            return Ok(None);
        }
        let public_url = settings
            .http
            .public_url
            .as_deref()
            .context("http.public_url must be set when mail.enabled is true")?
            .trim_end_matches('/')
            .to_owned();
        let catalogue = Catalogue::load(&settings.ui.default_language)?;
        let templates = Templates::load(m.templates_dir.as_deref(), Arc::new(catalogue))?;
        let from = m.from.parse().context("mail.from")?;
        // Last: it may create the outbox directory.
        let transport = Transport::build(m, settings.data_dir.join("outbox"))?;
        tracing::info!(links = %public_url, "mail: on, {}", transport.describe(m));
        Ok(Some(Arc::new(Mailer {
            templates,
            transport,
            from,
            site_name: m.site_name.clone(),
            public_url,
            links: m.links.clone(),
            ui: settings.ui.enabled,
            queued: Notify::new(),
        })))
    }

    /// The link that carries `token` to `page`: the operator's URL template, or
    /// Gatehouse's own page. Never from anything in a request.
    pub fn link(&self, page: LinkPage, token: &str) -> String {
        let template = match page {
            LinkPage::ResetPassword => &self.links.reset_password,
            LinkPage::VerifyEmail => &self.links.verify_email,
            LinkPage::ConfirmEmail => &self.links.confirm_email,
            LinkPage::RevertEmail => &self.links.revert_email,
        };
        match template {
            Some(t) => t.replace("{token}", token),
            None => format!("{}{}?token={token}", self.public_url, page.path(self.ui)),
        }
    }

    /// Tells this node's sender that a mail is waiting.
    pub fn queued(&self) {
        self.queued.notify_one();
    }

    pub fn render(&self, mail: &QueuedMail) -> anyhow::Result<Rendered> {
        let kind = MailKind::from_name(&mail.kind)
            .with_context(|| format!("unknown kind of mail {:?}", mail.kind))?;
        let values: serde_json::Value =
            serde_json::from_str(&mail.context).context("the mail's values are not JSON")?;
        let lang = self
            .templates
            .lang(values.get("lang").and_then(|l| l.as_str()));
        let context = TemplateValues {
            site_name: &self.site_name,
            email: &mail.recipient,
            values,
        };
        let context = serde_json::to_value(&context).context("the mail's values")?;
        self.templates.render(kind, lang, &context)
    }

    /// Renders a queued mail and hands it to the transport.
    pub async fn deliver(&self, mail: &QueuedMail) -> anyhow::Result<()> {
        let rendered = self.render(mail)?;
        let to: Mailbox = mail.recipient.parse().context("the recipient")?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .context("building the message")?;
        self.transport.send(message).await
    }
}
