//! The mails' text: one template set per kind of mail (subject, plain text, HTML),
//! rendered by minijinja. Built in; an operator's directory replaces any of them.
//! Every template is compiled and tried at start, so a broken one stops the start
//! rather than a mail.

use std::path::Path;

use anyhow::Context;
use minijinja::Environment;
use serde::Serialize;

use super::MailKind;

/// The parts of a template set, by file suffix.
const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];

/// A mail's text, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, each replaced by `<dir>/<kind>.<part>` where that exists.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Templates> {
        let mut env = Environment::new();
        // Names end in .html or .txt: HTML parts are escaped, text parts are not.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for kind in MailKind::ALL {
            for part in PARTS {
                let name = format!("{}.{part}", kind.name());
                let source = match dir.map(|d| d.join(&name)).filter(|p| p.is_file()) {
                    Some(path) => std::fs::read_to_string(&path).with_context(|| {
                        format!("mail.templates_dir: cannot read {}", path.display())
                    })?,
                    None => builtin(kind, part).to_owned(),
                };
                env.add_template_owned(name.clone(), source)
                    .with_context(|| format!("mail template {name}"))?;
            }
        }
        let templates = Templates { env };
        for kind in MailKind::ALL {
            templates
                .render(kind, &kind.sample())
                .with_context(|| format!("mail templates of {}", kind.name()))?;
        }
        Ok(templates)
    }

    pub fn render(&self, kind: MailKind, context: &impl Serialize) -> anyhow::Result<Rendered> {
        let part = |part: &str| -> anyhow::Result<String> {
            let name = format!("{}.{part}", kind.name());
            Ok(self.env.get_template(&name)?.render(context)?)
        };
        Ok(Rendered {
            // One line: a template's trailing newline or a stray break must not end up
            // as a header fold.
            subject: part("subject.txt")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

fn builtin(kind: MailKind, part: &str) -> &'static str {
    match (kind, part) {
        (MailKind::PasswordReset, "subject.txt") => {
            include_str!("templates/password_reset.subject.txt")
        }
        (MailKind::PasswordReset, "txt") => include_str!("templates/password_reset.txt"),
        (MailKind::PasswordReset, _) => include_str!("templates/password_reset.html"),
        (MailKind::PasswordChanged, "subject.txt") => {
            include_str!("templates/password_changed.subject.txt")
        }
        (MailKind::PasswordChanged, "txt") => include_str!("templates/password_changed.txt"),
        (MailKind::PasswordChanged, _) => include_str!("templates/password_changed.html"),
        (MailKind::VerifyEmail, "subject.txt") => {
            include_str!("templates/verify_email.subject.txt")
        }
        (MailKind::VerifyEmail, "txt") => include_str!("templates/verify_email.txt"),
        (MailKind::VerifyEmail, _) => include_str!("templates/verify_email.html"),
        (MailKind::EmailChange, "subject.txt") => {
            include_str!("templates/email_change.subject.txt")
        }
        (MailKind::EmailChange, "txt") => include_str!("templates/email_change.txt"),
        (MailKind::EmailChange, _) => include_str!("templates/email_change.html"),
        (MailKind::EmailChanged, "subject.txt") => {
            include_str!("templates/email_changed.subject.txt")
        }
        (MailKind::EmailChanged, "txt") => include_str!("templates/email_changed.txt"),
        (MailKind::EmailChanged, _) => include_str!("templates/email_changed.html"),
        (MailKind::RegisterAttempt, "subject.txt") => {
            include_str!("templates/register_attempt.subject.txt")
        }
        (MailKind::RegisterAttempt, "txt") => include_str!("templates/register_attempt.txt"),
        (MailKind::RegisterAttempt, _) => include_str!("templates/register_attempt.html"),
        (MailKind::WaysInRemoved, "subject.txt") => {
            include_str!("templates/ways_in_removed.subject.txt")
        }
        (MailKind::WaysInRemoved, "txt") => include_str!("templates/ways_in_removed.txt"),
        (MailKind::SecondFactor, "subject.txt") => {
            include_str!("templates/second_factor.subject.txt")
        }
        (MailKind::SecondFactor, "txt") => include_str!("templates/second_factor.txt"),
        (MailKind::SecondFactor, _) => include_str!("templates/second_factor.html"),
        (MailKind::WaysInRemoved, _) => include_str!("templates/ways_in_removed.html"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let t = Templates::load(None).unwrap();
        let context = serde_json::json!({
            "site_name": "A & B", "email": "<x@example.com>",
            "link": "https://example.com/r?token=abc", "expires_in_minutes": 30,
        });
        let r = t.render(MailKind::PasswordReset, &context).unwrap();
        assert_eq!(r.subject, "Reset your A & B password");
        assert!(
            r.text.contains("A & B account for <x@example.com>"),
            "{}",
            r.text
        );
        assert!(r.text.contains("https://example.com/r?token=abc"));
        assert!(
            r.html
                .contains("A &amp; B account for &lt;x@example.com&gt;"),
            "{}",
            r.html
        );
    }

    #[test]
    fn a_directory_replaces_the_parts_it_has() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("password_reset.subject.txt"),
            "Reset at {{ site_name }}\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t
            .render(MailKind::PasswordReset, &MailKind::PasswordReset.sample())
            .unwrap();
        assert_eq!(r.subject, "Reset at Example");
        assert!(r.text.contains("choose a new password"), "{}", r.text);
    }

    #[test]
    fn a_broken_or_unknown_variable_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password_reset.txt"), "{{ link ").unwrap();
        assert!(Templates::load(Some(dir.path())).is_err());
        std::fs::write(dir.path().join("password_reset.txt"), "{{ nope }}").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap();
        assert!(format!("{err:#}").contains("password_reset"), "{err:#}");
    }
}
