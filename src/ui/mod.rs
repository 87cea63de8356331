//! The hosted pages' rendering: minijinja templates compiled once at start (built in,
//! each replaceable from `ui.templates_dir`), the message catalogue, the theme, and
//! the tokens that bind a form to the browser that loaded it. Knows nothing of HTTP;
//! the routes are in `crate::http::ui`.

pub mod i18n;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use minijinja::{Environment, HtmlEscape, Value};

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
/// The script of the Sign-In with Ethereum button.
pub const SIWE_JS: &str = include_str!("assets/siwe.js");
/// The script of the Login with SelfKey button.
pub const SELFKEY_JS: &str = include_str!("assets/selfkey.js");
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
    /// The pages' Content-Security-Policy, built once from the configuration.
    csp: String,
    /// The sign-in page as most requests ask for it, prepared once per language (see
    /// [`Pages::prepared`]).
    sign_in: OnceLock<Vec<Option<Prepared>>>,
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
        let return_origins = ReturnOrigins::new(origins);
        let csp = content_security_policy(&return_origins, ui.logo_url.as_deref());
        Ok(Pages {
            env,
            catalogue: Arc::new(Catalogue::load(&ui.default_language)?),
            forms: Arc::new(TagKey::derive(
                &crate::crypto::random_bytes::<32>(),
                "unkeyed",
            )),
            return_origins,
            theme_css,
            site_name: ui.site_name.clone(),
            logo_url: ui.logo_url.clone(),
            csp,
            sign_in: OnceLock::new(),
        })
    }

    /// Keys the form tokens with the signing secret, so that every node accepts the
    /// forms of every other.
    pub fn keyed(mut self, secret: &[u8]) -> Pages {
        self.forms = Arc::new(TagKey::derive(secret, "gatehouse ui form"));
        self
    }

    /// The Content-Security-Policy of every page: nothing inline, nothing from
    /// elsewhere but the logo's origin, forms only to this site and the return origins,
    /// framed by nobody.
    pub fn csp(&self) -> &str {
        &self.csp
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
        let tokens = FormTokens {
            key: Arc::clone(&self.forms),
            nonce: Some(nonce.to_owned()),
        };
        self.render_with(template, lang, tokens, context)
    }

    fn render_with(
        &self,
        template: &str,
        lang: Lang,
        tokens: FormTokens,
        context: Value,
    ) -> anyhow::Result<String> {
        let common = minijinja::context! {
            lang => lang.tag(),
            t => Value::from_object(Messages { catalogue: Arc::clone(&self.catalogue), lang }),
            csrf => Value::from_object(tokens),
            site_name => self.site_name,
            logo_url => self.logo_url,
        };
        let context = minijinja::context! { ..context, ..common };
        Ok(self.env.get_template(template)?.render(context)?)
    }

    /// The sign-in page in `lang` prepared with its slots (see [`Prepared`]); `context`
    /// gives a language's context (everything but the slots and the form tokens),
    /// asked once per language, the first time. `None` when the template does not
    /// splice as rendering does (a replaced template that filters a slot): render it.
    pub fn prepared_sign_in(
        &self,
        lang: Lang,
        slots: &'static [&'static str],
        context: impl Fn(Lang) -> Value,
    ) -> Option<&Prepared> {
        self.sign_in
            .get_or_init(|| {
                Lang::all()
                    .map(|l| self.prepare("sign_in.html", l, context(l), slots))
                    .collect()
            })
            .get(lang.index())?
            .as_ref()
    }

    /// `template` in `lang` rendered once with markers for the form tokens and the
    /// `slots`, cut into text and holes. Kept only if filling it gives exactly what
    /// rendering gives, with empty slots and with slots that need escaping.
    fn prepare(
        &self,
        template: &str,
        lang: Lang,
        context: Value,
        slots: &'static [&'static str],
    ) -> Option<Prepared> {
        let markers: Vec<(&str, Value)> = slots
            .iter()
            .enumerate()
            .map(|(i, name)| (*name, Value::from(format!("{OPEN}s{i}{CLOSE}"))))
            .collect();
        let marked = self
            .render_with(
                template,
                lang,
                FormTokens::markers(Arc::clone(&self.forms)),
                merge(&context, &markers),
            )
            .ok()?;
        let prepared = Prepared::parse(&marked, slots.len())?;
        let samples: [&[&str]; 2] = [&[], &["https://a.example/?q=1&r=\"'<>", "?x=%2F&y"]];
        for (n, sample) in samples.iter().enumerate() {
            let nonce = if n == 0 {
                "0".repeat(32)
            } else {
                "f".repeat(32)
            };
            let values: Vec<&str> = (0..slots.len())
                .map(|i| sample.get(i).copied().unwrap_or_default())
                .collect();
            let named: Vec<(&str, Value)> = slots
                .iter()
                .zip(&values)
                .map(|(name, v)| (*name, Value::from(*v)))
                .collect();
            let rendered = self.render(template, lang, &nonce, merge(&context, &named));
            if rendered.ok()? != prepared.fill(self, &nonce, &values) {
                tracing::info!(
                    template,
                    "a page template does not splice as it renders: rendered per request"
                );
                return None;
            }
        }
        Some(prepared)
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

/// The form tokens of one browser, for a template: `{{ csrf.sign_in }}`; with no
/// nonce, a marker for each form (see [`Pages::prepare`]).
#[derive(Debug)]
struct FormTokens {
    key: Arc<TagKey>,
    nonce: Option<String>,
}

impl FormTokens {
    fn markers(key: Arc<TagKey>) -> FormTokens {
        FormTokens { key, nonce: None }
    }
}

impl minijinja::value::Object for FormTokens {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let form = key.as_str()?;
        Some(match &self.nonce {
            Some(nonce) => self.key.tag(&format!("{form}|{nonce}")).into(),
            None => format!("{OPEN}c{form}{CLOSE}").into(),
        })
    }
}

/// The marks around a hole in a prepared page: characters of Unicode's private use
/// area, which HTML escaping leaves alone and no template or message holds.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// A page rendered once for a language and a configuration, as text and holes: the
/// per-request values (the browser's form tokens, and slots such as `return_to`) are
/// spliced in, HTML-escaped as the template's `{{ }}` escapes them. What a request
/// then costs is a copy of the text and one MAC per form.
#[derive(Debug)]
pub struct Prepared {
    parts: Vec<Part>,
    len: usize,
}

#[derive(Debug)]
enum Part {
    Text(String),
    /// The form token of this form.
    Token(String),
    /// The slot of this index.
    Slot(usize),
}

impl Prepared {
    /// Cuts a page rendered with markers; `None` if a marker is broken or unknown.
    fn parse(marked: &str, slots: usize) -> Option<Prepared> {
        let mut parts = Vec::new();
        let mut rest = marked;
        while let Some(at) = rest.find(OPEN) {
            parts.push(Part::Text(rest[..at].to_owned()));
            let hole = &rest[at + OPEN.len_utf8()..];
            let end = hole.find(CLOSE)?;
            let name = &hole[..end];
            parts.push(if let Some(form) = name.strip_prefix('c') {
                Part::Token(form.to_owned())
            } else {
                let i: usize = name.strip_prefix('s')?.parse().ok()?;
                (i < slots).then_some(Part::Slot(i))?
            });
            rest = &hole[end + CLOSE.len_utf8()..];
        }
        if rest.contains(CLOSE) {
            return None;
        }
        parts.push(Part::Text(rest.to_owned()));
        let len = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len(),
                Part::Token(_) | Part::Slot(_) => 48,
            })
            .sum();
        Some(Prepared { parts, len })
    }

    /// The page for browser `nonce` with `slots` (by index) filled in.
    pub fn fill(&self, pages: &Pages, nonce: &str, slots: &[&str]) -> String {
        let mut out = String::with_capacity(self.len + 64);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Token(form) => {
                    let _ = write!(out, "{}", HtmlEscape(&pages.form_token(form, nonce)));
                }
                Part::Slot(i) => {
                    let _ = write!(out, "{}", HtmlEscape(slots.get(*i).copied().unwrap_or("")));
                }
            }
        }
        out
    }
}

/// `context` with `values` set (over any of the same name).
fn merge(context: &Value, values: &[(&str, Value)]) -> Value {
    let extra: Value = values
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into();
    minijinja::context! { ..extra, ..context.clone() }
}

/// The Content-Security-Policy of the pages (see [`Pages::csp`]).
fn content_security_policy(return_origins: &ReturnOrigins, logo_url: Option<&str>) -> String {
    let form_targets: String = return_origins
        .origins()
        .iter()
        .map(|o| format!(" {o}"))
        .collect();
    let img = logo_url
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'{img}; \
         connect-src 'self'; form-action 'self'{form_targets}; base-uri 'none'; frame-ancestors 'none'"
    )
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

    /// The prepared sign-in page, filled, is byte for byte the page rendered for the
    /// same browser and `return_to` (escaped alike); a replaced template that filters
    /// a slot cannot be spliced, and is rendered per request instead.
    #[test]
    fn a_prepared_page_is_the_rendered_page() {
        let pages = Pages::load(&Settings::default())
            .unwrap()
            .keyed(b"a-test-secret-that-is-long-enough-for-hs512");
        let context =
            |_: Lang| minijinja::context! { title => "sign-in", passkeys => true, siwe => true };
        let slots = &["return_to", "return_query"];
        for lang in Lang::all() {
            let prepared = pages
                .prepared_sign_in(lang, slots, context)
                .expect("the built-in sign-in page splices");
            let nonce = "0123456789abcdef0123456789abcdef";
            for (return_to, query) in [("", ""), ("/ui/account?a=1&b=\"<x>'", "?return_to=%2Fui")] {
                let filled = prepared.fill(&pages, nonce, &[return_to, query]);
                let rendered = pages
                    .render(
                        "sign_in.html",
                        lang,
                        nonce,
                        minijinja::context! { return_to, return_query => query, ..context(lang) },
                    )
                    .unwrap();
                assert_eq!(filled, rendered);
                assert!(
                    filled.contains(&pages.form_token("siwe", nonce)),
                    "{filled}"
                );
            }
        }

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sign_in.html"),
            "<a href=\"/x?r={{ return_to|urlencode }}\">{{ csrf.sign_in }}</a>",
        )
        .unwrap();
        let replaced = Pages::load(&settings(|s| {
            s.ui.templates_dir = Some(dir.path().to_path_buf())
        }))
        .unwrap();
        assert!(
            replaced
                .prepared_sign_in(replaced.language(None), slots, context)
                .is_none()
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
