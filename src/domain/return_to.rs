//! Where a browser may be sent after signing in (`return_to`): a path on the site
//! itself, or an absolute URL on one of the allowed origins (`http.public_url`'s and
//! `ui.return_origins`), matched exactly. Anything else — another host, a
//! scheme-relative `//evil`, a backslash that a browser reads as a slash, `javascript:`,
//! user-info (`https://good@evil`), control characters, or any of these percent-encoded
//! — is refused, and the caller falls back to the account page.

/// The longest `return_to` taken, in bytes.
const MAX_LEN: usize = 2048;

/// The page a refused or missing `return_to` falls back to.
pub const FALLBACK: &str = "/ui/account";

/// The allowed origins, each `scheme://host[:port]` as the `url` crate serialises it.
#[derive(Debug, Clone, Default)]
pub struct ReturnOrigins {
    origins: Vec<String>,
}

impl ReturnOrigins {
    /// From absolute URLs (the public URL and `ui.return_origins`); unparsable ones and
    /// anything but http(s) are left out (the configuration refuses them at start).
    pub fn new<'a>(urls: impl IntoIterator<Item = &'a str>) -> ReturnOrigins {
        let origins = urls
            .into_iter()
            .filter_map(|u| url::Url::parse(u).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(|u| u.origin().ascii_serialization())
            .collect();
        ReturnOrigins { origins }
    }

    /// The origins, for a Content-Security-Policy's `form-action`.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// `raw` if the browser may go there, normalised; `None` for anything else.
    pub fn check(&self, raw: &str) -> Option<String> {
        if raw.is_empty() || raw.len() > MAX_LEN || has_tricks(raw) {
            return None;
        }
        let decoded: String = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        if has_tricks(&decoded) {
            return None;
        }
        if raw.starts_with('/') {
            // A path: not `//host`, and still a path on this site once resolved.
            if raw.starts_with("//") || decoded.starts_with("//") {
                return None;
            }
            let base = url::Url::parse("http://gatehouse.invalid/").ok()?;
            let joined = base.join(raw).ok()?;
            if joined.origin() != base.origin() {
                return None;
            }
            let mut out = joined.path().to_owned();
            if let Some(q) = joined.query() {
                out.push('?');
                out.push_str(q);
            }
            if let Some(f) = joined.fragment() {
                out.push('#');
                out.push_str(f);
            }
            return Some(out);
        }
        let url = url::Url::parse(raw).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let origin = url.origin().ascii_serialization();
        self.origins.contains(&origin).then(|| url.to_string())
    }

    /// [`ReturnOrigins::check`], or the account page.
    pub fn or_fallback(&self, raw: Option<&str>) -> String {
        raw.and_then(|r| self.check(r))
            .unwrap_or_else(|| FALLBACK.to_owned())
    }
}

/// A backslash (read as a slash by browsers), a control character or whitespace
/// (stripped or read differently by browsers and parsers), or user-info.
fn has_tricks(s: &str) -> bool {
    s.chars()
        .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
        || s.split(['/', '?', '#'])
            .nth(2)
            .is_some_and(|authority| authority.contains('@') && s.contains("://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins() -> ReturnOrigins {
        ReturnOrigins::new(["https://auth.example.com", "https://app.example.com:8443/"])
    }

    #[test]
    fn paths_and_listed_origins_are_taken() {
        let o = origins();
        assert_eq!(o.check("/ui/account").as_deref(), Some("/ui/account"));
        assert_eq!(o.check("/a/b?c=d#e").as_deref(), Some("/a/b?c=d#e"));
        assert_eq!(
            o.check("https://app.example.com:8443/home?x=1").as_deref(),
            Some("https://app.example.com:8443/home?x=1")
        );
        assert_eq!(
            o.check("https://AUTH.example.com/x").as_deref(),
            Some("https://auth.example.com/x")
        );
        assert_eq!(o.check("/a/../b").as_deref(), Some("/b"));
    }

    #[test]
    fn the_keycloak_tricks_fall_back() {
        let o = origins();
        for raw in [
            "",
            "https://evil.example",
            "https://app.example.com/", // listed with another port
            "http://auth.example.com/", // another scheme
            "https://auth.example.com.evil.example/",
            "//evil.example",
            "//evil.example/ui/account",
            "/\\evil.example",
            "\\\\evil.example",
            "/\\/evil.example",
            "https:\\\\evil.example",
            "https://auth.example.com\\@evil.example",
            "https://auth.example.com@evil.example/",
            "https://user:pass@auth.example.com/",
            "https://auth.example.com%40evil.example/",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "/%2f%2fevil.example",
            "/%2F/evil.example",
            "/%5cevil.example",
            "%2f%2fevil.example",
            "/\tevil",
            "/ui/account\r\nSet-Cookie: x=y",
            " https://auth.example.com/",
            "/%09/evil.example",
            "ui/account",
            "https:evil.example",
            "https:/evil.example",
        ] {
            assert_eq!(o.check(raw), None, "{raw:?} was taken");
            assert_eq!(o.or_fallback(Some(raw)), FALLBACK, "{raw:?}");
        }
        assert_eq!(o.or_fallback(None), FALLBACK);
        assert_eq!(o.check(&format!("/{}", "a".repeat(MAX_LEN))), None);
    }
}
