//! Redirect URIs of OpenID Connect clients: what may be registered, and when a
//! requested URI is the registered one.
//!
//! A requested URI matches a registered one byte for byte: no case folding, no
//! normalisation, no prefix or path matching, no wildcards. The one exception is the
//! port of an `http` loopback URI, which native apps pick at run time (RFC 8252 §7.3):
//! any port matches, everything else still byte for byte.
//!
//! What may be registered: an absolute `https` URI, or `http` on a loopback IP literal
//! (`127.0.0.0/8`, `[::1]`; not the name `localhost`, which DNS or a hosts file may
//! send elsewhere, RFC 8252 §8.3). No fragment (RFC 6749 §3.1.2), no user-info, no
//! `*`, and written as the URL standard writes it, so that what is compared is what a
//! browser will follow (a registered `https://App.example` would never match the
//! `https://app.example/` a client library sends).

use std::net::IpAddr;

use url::{Host, Url};

/// Why a URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("not an absolute URI")]
    NotAbsolute,
    #[error("only https, or http on a loopback address (127.0.0.1, [::1])")]
    Scheme,
    #[error("a fragment (#…) is not allowed")]
    Fragment,
    #[error("user-info (user@) is not allowed")]
    UserInfo,
    #[error("wildcards are not allowed")]
    Wildcard,
    #[error("not in canonical form: write it as {0}")]
    NotCanonical(String),
}

/// A redirect URI that may be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(text: &str) -> Result<RedirectUri, RedirectUriError> {
        if text.contains('*') {
            return Err(RedirectUriError::Wildcard);
        }
        if text.contains('#') {
            return Err(RedirectUriError::Fragment);
        }
        let url = Url::parse(text).map_err(|_| RedirectUriError::NotAbsolute)?;
        if url.cannot_be_a_base() || url.host().is_none() {
            return Err(RedirectUriError::NotAbsolute);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectUriError::UserInfo);
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            _ => return Err(RedirectUriError::Scheme),
        }
        if url.as_str() != text {
            return Err(RedirectUriError::NotCanonical(url.as_str().to_owned()));
        }
        Ok(RedirectUri(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `requested` is this URI: byte for byte, or for an `http` loopback URI
    /// byte for byte but the port.
    pub fn matches(&self, requested: &str) -> bool {
        if self.0 == requested {
            return true;
        }
        let Ok(registered) = Url::parse(&self.0) else {
            return false;
        };
        if registered.scheme() != "http" || !is_loopback(&registered) {
            return false;
        }
        let Ok(mut asked) = Url::parse(requested) else {
            return false;
        };
        // Only a URI already written canonically can match byte for byte once its
        // port is gone: `HTTP://127.0.0.1:9/cb` or `http://127.0.0.1:9/a/../cb` never do.
        if asked.as_str() != requested || asked.scheme() != "http" || !is_loopback(&asked) {
            return false;
        }
        let mut registered = registered;
        if asked.set_port(None).is_err() || registered.set_port(None).is_err() {
            return false;
        }
        asked.as_str() == registered.as_str()
    }
}

/// Whether the URL's host is a loopback IP literal.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        _ => false,
    }
}

/// Whether `requested` is one of `registered`.
pub fn is_registered(registered: &[RedirectUri], requested: &str) -> bool {
    registered.iter().any(|r| r.matches(requested))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> RedirectUri {
        RedirectUri::parse(s).unwrap()
    }

    #[test]
    fn https_and_loopback_http_register() {
        for ok in [
            "https://app.example/callback",
            "https://app.example:8443/cb?tenant=a",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8080/cb",
            "http://127.1.2.3:1/cb",
            "http://[::1]:9000/cb",
        ] {
            assert_eq!(RedirectUri::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn what_cannot_be_registered_says_why() {
        use RedirectUriError as E;
        for (bad, why) in [
            ("/callback", E::NotAbsolute),
            ("app.example/cb", E::NotAbsolute),
            ("mailto:a@app.example", E::NotAbsolute),
            ("http://app.example/cb", E::Scheme),
            ("http://localhost:8080/cb", E::Scheme),
            ("http://localhost.evil.example/cb", E::Scheme),
            ("http://127.0.0.1.evil.example/cb", E::Scheme),
            ("javascript://app.example/%0aalert(1)", E::Scheme),
            ("ftp://app.example/cb", E::Scheme),
            ("https://app.example/cb#frag", E::Fragment),
            ("https://app.example/cb#", E::Fragment),
            ("https://user@app.example/cb", E::UserInfo),
            ("https://app.example:443@evil.example/cb", E::UserInfo),
            ("https://*.app.example/cb", E::Wildcard),
            ("https://app.example/*", E::Wildcard),
        ] {
            assert_eq!(RedirectUri::parse(bad), Err(why), "{bad}");
        }
        for (bad, canonical) in [
            ("https://App.Example/cb", "https://app.example/cb"),
            ("HTTPS://app.example/cb", "https://app.example/cb"),
            ("https://app.example", "https://app.example/"),
            ("https://app.example:443/cb", "https://app.example/cb"),
            ("https://app.example/a/../cb", "https://app.example/cb"),
            ("https://app.example\\cb", "https://app.example/cb"),
            ("https://app.example/c b", "https://app.example/c%20b"),
            ("http://0x7f.1/cb", "http://127.0.0.1/cb"),
        ] {
            assert_eq!(
                RedirectUri::parse(bad),
                Err(RedirectUriError::NotCanonical(canonical.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_request_matches_byte_for_byte() {
        let registered = [uri("https://app.example/callback?x=1")];
        assert!(is_registered(
            &registered,
            "https://app.example/callback?x=1"
        ));
        for trick in [
            // Case folding, trailing and doubled slashes, prefixes (fosite CVE-2020-15233:
            // case-insensitive matching; Keycloak #47718, #49109).
            "HTTPS://app.example/callback?x=1",
            "https://APP.example/callback?x=1",
            "https://app.example/Callback?x=1",
            "https://app.example/callback/?x=1",
            "https://app.example//callback?x=1",
            "https://app.example/callback?x=1&y=2",
            "https://app.example/callback?x=1#",
            "https://app.example/callback?x=1#evil",
            "https://app.example/callback",
            "https://app.example/callback/../callback?x=1",
            "https://app.example/callback%3Fx=1",
            "https://app.example/%63allback?x=1",
            "https://app.example:443/callback?x=1",
            "https://app.example./callback?x=1",
            // Another host hiding behind user-info or a suffix (Keycloak CVE-2024-8883).
            "https://app.example@evil.example/callback?x=1",
            "https://app.example:443@evil.example/callback?x=1",
            "https://app.example.evil.example/callback?x=1",
            "https://evil.example/https://app.example/callback?x=1",
            "https://evil.example/?https://app.example/callback?x=1",
            "http://app.example/callback?x=1",
            " https://app.example/callback?x=1",
            "https://app.example/callback?x=1 ",
            "",
        ] {
            assert!(!is_registered(&registered, trick), "{trick:?}");
        }
    }

    #[test]
    fn loopback_matches_on_any_port_and_nothing_else() {
        let registered = [uri("http://127.0.0.1/cb"), uri("http://[::1]:8080/cb")];
        for ok in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:53211/cb",
            "http://[::1]:8080/cb",
            "http://[::1]:1/cb",
        ] {
            assert!(is_registered(&registered, ok), "{ok}");
        }
        for trick in [
            // Keycloak CVE-2024-8883: a loopback registration must not let another host in.
            "http://127.0.0.1:8080@evil.example/cb",
            "http://127.0.0.1@evil.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://127.0.0.1:8080.evil.example/cb",
            "http://localhost:8080/cb",
            "http://127.0.0.2:8080/cb",
            "http://[::1]@evil.example/cb",
            // fosite CVE-2020-15233: the loopback exception is the port, never the path,
            // the query, the case or the scheme.
            "http://127.0.0.1:8080/cb/",
            "http://127.0.0.1:8080/cb/evil",
            "http://127.0.0.1:8080/CB",
            "http://127.0.0.1:8080/cb?x=1",
            "http://127.0.0.1:8080/cb#x",
            "http://127.0.0.1:8080/a/../cb",
            "http://127.0.0.1:8080//cb",
            "HTTP://127.0.0.1:8080/cb",
            "https://127.0.0.1:8080/cb",
            "http://2130706433:8080/cb",
            "http://0x7f000001:8080/cb",
            "http://127.0.0.1:8080\\cb",
        ] {
            assert!(!is_registered(&registered, trick), "{trick:?}");
        }
        let https = [uri("https://app.example/cb")];
        assert!(
            !is_registered(&https, "https://app.example:8443/cb"),
            "only loopback http ignores the port"
        );
    }
}
