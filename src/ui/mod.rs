//! The hosted pages' rendering: minijinja templates compiled once at start (built in,
//! each replaceable from `ui.templates_dir`), the message catalogue, the theme, and
//! the tokens that bind a form to the browser that loaded it. Knows nothing of HTTP;
//! the routes are in `crate::http::ui`.

pub mod i18n;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use minijinja::{Environment, Value};

use crate::config::Settings;
use crate::crypto::tag::TagKey;
use crate::domain::return_to::ReturnOrigins;
pub use i18n::{Catalogue, LANGUAGES, Lang, Messages};

/// Every template, by name, and its built-in source.
const TEMPLATES: [(&str, &str); 14] = [
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("sign_up.html", include_str!("templates/sign_up.html")),
    (
        "forgot_password.html",
        include_str!("templates/forgot_password.html"),
    ),
    (
        "reset_password.html",
        include_str!("templates/reset_password.html"),
    ),
    ("link.html", include_str!("templates/link.html")),
    ("message.html", include_str!("templates/message.html")),
    ("account.html", include_str!("templates/account.html")),
    (
        "second_factor.html",
        include_str!("templates/second_factor.html"),
    ),
    (
        "totp_enroll.html",
        include_str!("templates/totp_enroll.html"),
    ),
    (
        "recovery_codes.html",
        include_str!("templates/recovery_codes.html"),
    ),
    ("consent.html", include_str!("templates/consent.html")),
    ("form_post.html", include_str!("templates/form_post.html")),
    ("logout.html", include_str!("templates/logout.html")),
];

/// The built-in stylesheet.
pub const STYLE: &str = include_str!("assets/style.css");
/// The script of the passkey buttons and conditional UI.
pub const PASSKEY_JS: &str = include_str!("assets/passkeys.js");
pub const SIWE_JS: &str = include_str!("assets/siwe.js");
/// The script of the form_post page: posts the authorization response on.
pub const FORM_POST_JS: &str = include_str!("assets/form_post.js");
/// The script of the emailed links' pages: takes the token out of the address bar.
pub const LINK_JS: &str = include_str!("assets/link.js");

pub struct Pages {
    env: Environment<'static>,
    catalogue: Arc<Catalogue>,
    forms: Arc<TagKey>,
    return_origins: ReturnOrigins,
    theme_css: String,
    site_name: String,
    logo_url: Option<String>,
}

impl Pages {
    /// The templates compiled (a broken one stops the start), the catalogue parsed,
    /// the theme read. The form tokens are keyed by [`Pages::keyed`].
    pub fn load(settings: &Settings) -> anyhow::Result<Pages> {
        let ui = &settings.ui;
        let mut env = Environment::new();
        for (name, builtin) in TEMPLATES {
            let source = match ui
                .templates_dir
                .as_deref()
                .map(|d| d.join(name))
                .filter(|p| p.is_file())
            {
                Some(path) => read(&path, "ui.templates_dir")?,
                None => builtin.to_owned(),
            };
            env.add_template_owned(name, source)
                .with_context(|| format!("page template {name}"))?;
        }
        let mut theme_css = format!(":root{{--primary:{}}}\n", ui.primary_color);
        if let Some(path) = &ui.custom_css {
            theme_css.push_str(&read(path, "ui.custom_css")?);
        }
        let public = settings.http.public_url.as_deref();
        let origins = public
            .into_iter()
            .chain(ui.return_origins.iter().map(String::as_str));
        Ok(Pages {
            env,
            catalogue: Arc::new(Catalogue::load(&ui.default_language)?),
            forms: Arc::new(TagKey::derive(
                &crate::crypto::random_bytes::<32>(),
                "unkeyed",
            )),
            return_origins: ReturnOrigins::new(origins),
            theme_css,
            site_name: ui.site_name.clone(),
            logo_url: ui.logo_url.clone(),
        })
    }

    /// Keys the form tokens with the signing secret, so that every node accepts the
    /// forms of every other.
    pub fn keyed(mut self, secret: &[u8]) -> Pages {
        self.forms = Arc::new(TagKey::derive(secret, "gatehouse ui form"));
        self
    }

    pub fn return_origins(&self) -> &ReturnOrigins {
        &self.return_origins
    }

    /// `/ui/assets/theme.css`: the primary colour, then `ui.custom_css`.
    pub fn theme_css(&self) -> &str {
        &self.theme_css
    }

    /// The language for an `Accept-Language` header.
    pub fn language(&self, accept_language: Option<&str>) -> Lang {
        self.catalogue.negotiate(accept_language)
    }

    /// The language an OpenID Connect `ui_locales` asks for, if the pages speak one.
    pub fn language_of_locales(&self, ui_locales: &str) -> Option<Lang> {
        self.catalogue.pick(ui_locales)
    }

    /// Message `id` in `lang`.
    pub fn message(&self, lang: Lang, id: &str) -> String {
        self.catalogue.message(lang, id, None)
    }

    /// Message `id` in `lang` with its one variable `arg` set to `value`.
    pub fn message_with(&self, lang: Lang, id: &str, arg: &str, value: &str) -> String {
        let mut args = fluent_bundle::FluentArgs::new();
        args.set(arg.to_owned(), value.to_owned());
        self.catalogue.message(lang, id, Some(&args))
    }

    /// Renders `template` with `context` and what every page has: `lang`, the messages
    /// `t`, the form tokens `csrf` of browser `nonce`, the site's name and logo.
    pub fn render(
        &self,
        template: &str,
        lang: Lang,
        nonce: &str,
        context: Value,
    ) -> anyhow::Result<String> {
        let common = minijinja::context! {
            lang => lang.tag(),
            t => Value::from_object(Messages { catalogue: Arc::clone(&self.catalogue), lang }),
            csrf => Value::from_object(FormTokens { key: Arc::clone(&self.forms), nonce: nonce.to_owned() }),
            site_name => self.site_name,
            logo_url => self.logo_url,
        };
        let context = minijinja::context! { ..context, ..common };
        Ok(self.env.get_template(template)?.render(context)?)
    }

    /// The token of form `form` for the browser whose nonce is `nonce`.
    pub fn form_token(&self, form: &str, nonce: &str) -> String {
        self.forms.tag(&format!("{form}|{nonce}"))
    }

    /// Whether `token` is form `form`'s for browser `nonce` (constant time).
    pub fn form_token_ok(&self, form: &str, nonce: &str, token: &str) -> bool {
        !nonce.is_empty() && self.forms.verifies(&format!("{form}|{nonce}"), token)
    }
}

/// The form tokens of one browser, for a template: `{{ csrf.sign_in }}`.
#[derive(Debug)]
struct FormTokens {
    key: Arc<TagKey>,
    nonce: String,
}

impl minijinja::value::Object for FormTokens {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let form = key.as_str()?;
        Some(self.key.tag(&format!("{form}|{}", self.nonce)).into())
    }
}

fn read(path: &Path, key: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{key}: cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(configure: impl FnOnce(&mut Settings)) -> Settings {
        let mut s = Settings::default();
        configure(&mut s);
        s
    }

    #[test]
    fn a_template_of_templates_dir_replaces_the_built_in_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("message.html"),
            "<p lang=\"{{ lang }}\">{{ t[\"sign-in\"] }} at {{ site_name }}</p>",
        )
        .unwrap();
        let pages = Pages::load(&settings(|s| {
            s.ui.templates_dir = Some(dir.path().to_path_buf());
            s.ui.site_name = "Example".into();
        }))
        .unwrap();
        let lang = pages.language(Some("de"));
        let html = pages
            .render("message.html", lang, "00", Value::UNDEFINED)
            .unwrap();
        assert_eq!(html, "<p lang=\"de\">Anmelden at Example</p>");
        let built_in = pages
            .render("sign_in.html", lang, "00", Value::UNDEFINED)
            .unwrap();
        assert!(built_in.contains("<html lang=\"de\">"), "{built_in}");

        std::fs::write(dir.path().join("account.html"), "{% if %}").unwrap();
        let broken = Pages::load(&settings(|s| {
            s.ui.templates_dir = Some(dir.path().to_path_buf())
        }));
        let error = format!(
            "{:#}",
            broken.err().expect("a broken template stops the start")
        );
        assert!(error.contains("page template account.html"), "{error}");
    }

    #[test]
    fn the_theme_is_the_primary_colour_then_the_custom_css() {
        let dir = tempfile::tempdir().unwrap();
        let css = dir.path().join("site.css");
        std::fs::write(&css, "main{border:0}").unwrap();
        let pages = Pages::load(&settings(|s| {
            s.ui.primary_color = "#0b7a4b".into();
            s.ui.custom_css = Some(css);
        }))
        .unwrap();
        assert_eq!(
            pages.theme_css(),
            ":root{--primary:#0b7a4b}\nmain{border:0}"
        );
    }

    #[test]
    fn a_form_token_is_bound_to_its_form_and_browser() {
        let pages = Pages::load(&Settings::default())
            .unwrap()
            .keyed(b"a-test-secret-that-is-long-enough-for-hs512");
        let token = pages.form_token("sign_in", "aa");
        assert!(pages.form_token_ok("sign_in", "aa", &token));
        assert!(!pages.form_token_ok("sign_up", "aa", &token));
        assert!(!pages.form_token_ok("sign_in", "ab", &token));
        assert!(!pages.form_token_ok("sign_in", "", &pages.form_token("sign_in", "")));
        let html = pages
            .render("sign_in.html", pages.language(None), "aa", Value::UNDEFINED)
            .unwrap();
        assert!(
            html.contains(&format!("name=\"csrf\" value=\"{token}\"")),
            "{html}"
        );
    }
}
