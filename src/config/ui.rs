//! The hosted pages under `/ui/` (`ui`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UiSettings {
    /// Serve the hosted pages under `/ui/` (sign-in, sign-up, forgotten password, the
    /// account page) and send the emailed links there.
    pub enabled: bool,
    /// The name the pages show in their title and heading.
    pub site_name: String,
    /// An image shown above each page's heading (a path on this site or an https URL).
    /// Unset: none.
    pub logo_url: Option<String>,
    /// The colour of buttons and links, `#rgb` or `#rrggbb`.
    pub primary_color: String,
    /// A CSS file served after the built-in stylesheet (`/ui/assets/theme.css`).
    #[schema(value_type = Option<String>)]
    pub custom_css: Option<PathBuf>,
    /// A directory whose `<page>.html` files replace the built-in templates of the
    /// pages (minijinja syntax; see the built-in ones under src/ui/templates).
    #[schema(value_type = Option<String>)]
    pub templates_dir: Option<PathBuf>,
    /// Origins (`https://app.example.com`) a sign-in may send the browser back to with
    /// `return_to`, besides `http.public_url`'s. Matched exactly.
    pub return_origins: Vec<String>,
    /// The language served when `Accept-Language` names none the pages have, and of
    /// mails no request caused: `en` or `de` (checked at start).
    pub default_language: String,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings {
            enabled: true,
            site_name: "Gatehouse".into(),
            logo_url: None,
            primary_color: "#2f5bd3".into(),
            custom_css: None,
            templates_dir: None,
            return_origins: Vec::new(),
            default_language: "en".into(),
        }
    }
}

impl UiSettings {
    /// Checks what can be checked without reading files.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let bad = |key: &str, why: &str| Err(anyhow::anyhow!("configuration: ui.{key}: {why}"));
        let hex = self.primary_color.strip_prefix('#').unwrap_or_default();
        if !(matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())) {
            return bad("primary_color", "must be #rgb or #rrggbb");
        }
        for origin in &self.return_origins {
            let parsed = url::Url::parse(origin).ok();
            let is_origin = parsed.as_ref().is_some_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.path() == "/"
                    && u.query().is_none()
                    && u.fragment().is_none()
            });
            if !is_origin {
                return bad(
                    "return_origins",
                    &format!("{origin:?} is not an origin such as https://app.example.com"),
                );
            }
        }
        if let Some(logo) = &self.logo_url
            && !(logo.starts_with('/') && !logo.starts_with("//") || logo.starts_with("https://"))
        {
            return bad("logo_url", "must be a path on this site or an https URL");
        }
        for (key, path) in [
            ("templates_dir", &self.templates_dir),
            ("custom_css", &self.custom_css),
        ] {
            if let Some(path) = path
                && !path.exists()
            {
                return bad(
                    key,
                    &format!("no such file or directory: {}", path.display()),
                );
            }
        }
        Ok(())
    }
}
