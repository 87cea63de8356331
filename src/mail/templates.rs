//! The mails' text: one template set per kind of mail (subject, plain text, HTML),
//! rendered by minijinja, whose every sentence is a message of the pages' Fluent
//! catalogue (`mail-*` in `src/ui/locales/<tag>.ftl`), in the mail's language. Built
//! in; an operator's directory replaces any of them. Every template is compiled and
//! tried at start in every language, so a broken one stops the start rather than a
//! mail.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use fluent_bundle::{FluentArgs, FluentValue};
use minijinja::value::{Kwargs, Object, from_args};
use minijinja::{Environment, Value};

use super::MailKind;
use crate::ui::i18n::{Catalogue, LANGUAGES, Lang};

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
    catalogue: Arc<Catalogue>,
}

/// The messages of one mail, for its templates: `{{ t("mail-hello") }}`, formatted in
/// the mail's language with the mail's values as Fluent arguments (`{ $site_name }`),
/// and any given in the call (`t("mail-ways-in-removed-wallet", name=way.name)`).
#[derive(Debug)]
struct MailMessages {
    catalogue: Arc<Catalogue>,
    lang: Lang,
    /// The mail's string and number values.
    values: serde_json::Map<String, serde_json::Value>,
}

fn fluent_value(value: &serde_json::Value) -> Option<FluentValue<'static>> {
    match value {
        serde_json::Value::String(s) => Some(s.clone().into()),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(FluentValue::from)
            .or_else(|| n.as_f64().map(FluentValue::from)),
        _ => None,
    }
}

impl Object for MailMessages {
    fn call(
        self: &Arc<Self>,
        _state: &minijinja::State<'_, '_>,
        args: &[Value],
    ) -> Result<Value, minijinja::Error> {
        let (id, kwargs): (&str, Kwargs) = from_args(args)?;
        let mut fluent = FluentArgs::new();
        for (name, value) in &self.values {
            if let Some(v) = fluent_value(value) {
                fluent.set(name.clone(), v);
            }
        }
        for name in kwargs.args() {
            let value: Value = kwargs.get(name)?;
            let value = serde_json::to_value(&value).unwrap_or(serde_json::Value::Null);
            if let Some(v) = fluent_value(&value) {
                fluent.set(name.to_owned(), v);
            }
        }
        Ok(self.catalogue.message(self.lang, id, Some(&fluent)).into())
    }
}

impl Templates {
    /// The built-in templates, each replaced by `<dir>/<kind>.<part>` where that exists.
    pub fn load(dir: Option<&Path>, catalogue: Arc<Catalogue>) -> anyhow::Result<Templates> {
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
        let templates = Templates { env, catalogue };
        for kind in MailKind::ALL {
            for tag in LANGUAGES {
                let lang = templates.catalogue.lang(Some(tag));
                templates
                    .render(kind, lang, &kind.sample())
                    .with_context(|| format!("mail templates of {} ({tag})", kind.name()))?;
            }
        }
        Ok(templates)
    }

    /// The language named `tag` (a mail's stored `lang`), else the default.
    pub fn lang(&self, tag: Option<&str>) -> Lang {
        self.catalogue.lang(tag)
    }

    /// The mail of `kind` in `lang`; `values` (an object) are the template's variables
    /// and the messages' arguments. The templates also get `lang` (its tag) and `t`.
    pub fn render(
        &self,
        kind: MailKind,
        lang: Lang,
        values: &serde_json::Value,
    ) -> anyhow::Result<Rendered> {
        let messages = MailMessages {
            catalogue: Arc::clone(&self.catalogue),
            lang,
            values: values.as_object().cloned().unwrap_or_default(),
        };
        let context = minijinja::context! {
            lang => lang.tag(),
            t => Value::from_object(messages),
            ..Value::from_serialize(values)
        };
        let part = |part: &str| -> anyhow::Result<String> {
            let name = format!("{}.{part}", kind.name());
            Ok(self.env.get_template(&name)?.render(&context)?)
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

    fn catalogue() -> Arc<Catalogue> {
        Arc::new(Catalogue::load("en").unwrap())
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let c = catalogue();
        let t = Templates::load(None, Arc::clone(&c)).unwrap();
        let context = serde_json::json!({
            "site_name": "A & B", "email": "<x@example.com>",
            "link": "https://example.com/r?token=abc", "expires_in_minutes": 30,
        });
        let r = t
            .render(MailKind::PasswordReset, c.lang(None), &context)
            .unwrap();
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
        let c = catalogue();
        let t = Templates::load(Some(dir.path()), Arc::clone(&c)).unwrap();
        let sample = MailKind::PasswordReset.sample();
        let r = t
            .render(MailKind::PasswordReset, c.lang(None), &sample)
            .unwrap();
        assert_eq!(r.subject, "Reset at Example");
        assert!(r.text.contains("choose a new password"), "{}", r.text);
        // The parts it does not have speak the mail's language.
        let r = t
            .render(MailKind::PasswordReset, c.lang(Some("de")), &sample)
            .unwrap();
        assert_eq!(r.subject, "Reset at Example");
        assert!(r.text.contains("neues Passwort zu wählen"), "{}", r.text);
        assert!(r.html.contains("<html lang=\"de\">"), "{}", r.html);
    }

    #[test]
    fn every_mail_speaks_every_language() {
        let c = catalogue();
        let t = Templates::load(None, Arc::clone(&c)).unwrap();
        for kind in MailKind::ALL {
            let sample = kind.sample();
            let en = t.render(kind, c.lang(Some("en")), &sample).unwrap();
            let de = t.render(kind, c.lang(Some("de")), &sample).unwrap();
            for r in [&en, &de] {
                // Every message found and every argument given.
                assert!(!r.text.contains("mail-"), "{}: {}", kind.name(), r.text);
                assert!(!r.text.contains('{'), "{}: {}", kind.name(), r.text);
                assert!(!r.subject.contains("mail-"), "{}", r.subject);
            }
            assert_ne!(en.subject, de.subject, "{}", kind.name());
            assert_ne!(en.text, de.text, "{}", kind.name());
        }
        let removed = t
            .render(
                MailKind::WaysInRemoved,
                c.lang(Some("de")),
                &MailKind::WaysInRemoved.sample(),
            )
            .unwrap();
        assert!(
            removed.text.contains("der Passkey „Phone“"),
            "{}",
            removed.text
        );
    }

    #[test]
    fn a_broken_or_unknown_variable_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password_reset.txt"), "{{ link ").unwrap();
        assert!(Templates::load(Some(dir.path()), catalogue()).is_err());
        std::fs::write(dir.path().join("password_reset.txt"), "{{ nope }}").unwrap();
        let err = Templates::load(Some(dir.path()), catalogue())
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("password_reset"), "{err:#}");
    }
}
