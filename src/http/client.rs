//! Who is calling, and through which host: the socket's peer, unless the request came
//! through a configured trusted proxy, whose `X-Forwarded-*` headers are then used.
//!
//! Every forwarded header is read from the right: a proxy appends what it saw to what
//! it received, so the values on the left are whatever the client chose to send.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::AppState;
use crate::config::IpNet;

/// The peer's address, from the connection.
fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

fn trusted(proxies: &[IpNet], ip: IpAddr) -> bool {
    proxies.iter().any(|net| net.contains(ip))
}

/// A trusted proxy's `X-Forwarded-For` named a hop that is not an address: the client
/// is unknown, and counting it under the proxy's address would put every client of
/// that proxy in one rate-limit bucket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a trusted proxy's X-Forwarded-For names a hop that is not an address")]
pub struct UnreadableHop;

/// One `X-Forwarded-For` hop as proxies write them: `203.0.113.5`, `2001:db8::7`, and
/// with a port, `203.0.113.5:1234` or `[2001:db8::7]:443` (or `[2001:db8::7]`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .or_else(|| {
            let inner = hop.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        })
}

/// The client address: walks `X-Forwarded-For` from the right while the hops are
/// trusted proxies, so a client cannot forge its address by adding entries. A hop
/// that cannot be read, where the walk reaches it, is refused rather than skipped.
pub fn client_ip(
    headers: &HeaderMap,
    peer: IpAddr,
    proxies: &[IpNet],
) -> Result<IpAddr, UnreadableHop> {
    if !trusted(proxies, peer) {
        return Ok(peer);
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().map_err(|_| UnreadableHop))
        .collect::<Result<Vec<_>, _>>()?;
    for hop in hops.iter().rev().flat_map(|v| v.rsplit(',')).map(str::trim) {
        if hop.is_empty() {
            continue;
        }
        client = parse_hop(hop).ok_or(UnreadableHop)?;
        if !trusted(proxies, client) {
            break;
        }
    }
    Ok(client)
}

/// The client address of a request (see [`client_ip`]).
pub fn client_of(parts: &Parts, app: &AppState) -> Result<IpAddr, UnreadableHop> {
    let peer = peer(parts).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    client_ip(&parts.headers, peer, &app.proxies)
}

/// The last (rightmost) value of a forwarded header: the one the proxy that connected
/// to us wrote. Values further left came from before it, and may be the client's own.
fn last_forwarded<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `http` or `https`: the scheme visitors use to reach the site. `http.public_url`'s
/// when set; else `X-Forwarded-Proto` when the request came straight from a trusted
/// proxy; else `http`. The one source of truth for absolute URLs and `Secure` cookies.
pub fn public_scheme(parts: &Parts, app: &AppState) -> &'static str {
    if let Some(url) = &app.settings.http.public_url {
        return scheme_of(url);
    }
    let https = from_trusted_proxy(parts, app)
        && last_forwarded(&parts.headers, "x-forwarded-proto")
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    if https { "https" } else { "http" }
}

fn scheme_of(url: &str) -> &'static str {
    if url.starts_with("https://") {
        "https"
    } else {
        "http"
    }
}

/// Whether cookies set for this request must be `Secure` (see [`public_scheme`]).
pub fn secure_cookies(parts: &Parts, app: &AppState) -> bool {
    public_scheme(parts, app) == "https"
}

/// `scheme://host` of the site as its visitors see it: `http.public_url` when set;
/// else the request's `Host`, or the last `X-Forwarded-Host`/`-Proto` when the request
/// came straight from a trusted proxy. `None` when the host is missing or could break
/// out of a URL.
pub fn public_base(parts: &Parts, app: &AppState) -> Option<String> {
    if let Some(url) = &app.settings.http.public_url {
        return Some(url.trim_end_matches('/').to_string());
    }
    let forwarded = from_trusted_proxy(parts, app)
        .then(|| last_forwarded(&parts.headers, "x-forwarded-host"))
        .flatten();
    let host = forwarded
        .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .map(str::trim)
        .filter(|host| is_host(host))?;
    Some(format!("{}://{host}", public_scheme(parts, app)))
}

/// A host name or address and an optional port: nothing that could break out of a URL.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// True when the request came straight from a trusted proxy, so its
/// `X-Forwarded-Host` and `X-Forwarded-Proto` may be believed.
pub fn from_trusted_proxy(parts: &Parts, app: &AppState) -> bool {
    peer_is_trusted(&parts.extensions, &app.proxies)
}

/// True when the connection's peer is one of `proxies`.
pub fn peer_is_trusted(extensions: &axum::http::Extensions, proxies: &[IpNet]) -> bool {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| trusted(proxies, c.0.ip()))
}

/// Whether the cookies of this answer get `Secure`: from the same scheme as the absolute
/// URLs of `/config` ([`secure_cookies`]).
pub struct SecureCookies(pub bool);

impl FromRequestParts<AppState> for SecureCookies {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(SecureCookies(secure_cookies(parts, app)))
    }
}

/// The counter key of an address. An IPv6 client usually holds a whole /64, so its
/// addresses share one count; an IPv4-mapped address counts as the IPv4 one.
pub fn bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("address:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("address:{v4}"),
            None => {
                let s = v6.segments();
                format!("address:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_only_believed_from_trusted_proxies() {
        let proxies = vec![IpNet::parse("10.0.0.0/8").unwrap()];
        let direct = ip("203.0.113.9");
        assert_eq!(client_ip(&headers("1.2.3.4"), direct, &proxies), Ok(direct));
        assert_eq!(client_ip(&headers("garbage"), direct, &proxies), Ok(direct));
        let proxy = ip("10.0.0.2");
        assert_eq!(
            client_ip(&headers("1.2.3.4"), proxy, &proxies),
            Ok(ip("1.2.3.4"))
        );
        // A client that prepends a fake hop is still seen at its real address.
        assert_eq!(
            client_ip(&headers("6.6.6.6, 1.2.3.4, 10.0.0.7"), proxy, &proxies),
            Ok(ip("1.2.3.4"))
        );
        // A hop the walk never reaches may be anything.
        assert_eq!(
            client_ip(&headers("garbage, 1.2.3.4"), proxy, &proxies),
            Ok(ip("1.2.3.4"))
        );
        assert_eq!(client_ip(&HeaderMap::new(), proxy, &proxies), Ok(proxy));
    }

    #[test]
    fn hops_with_ports_are_their_addresses() {
        let proxies = vec![IpNet::parse("10.0.0.0/8").unwrap()];
        let proxy = ip("10.0.0.2");
        for (hop, client) in [
            ("203.0.113.5:1234", "203.0.113.5"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
            ("203.0.113.5, 10.0.0.3:80", "203.0.113.5"),
        ] {
            assert_eq!(
                client_ip(&headers(hop), proxy, &proxies),
                Ok(ip(client)),
                "{hop}"
            );
        }
    }

    #[test]
    fn an_unreadable_hop_is_never_the_proxy() {
        let proxies = vec![IpNet::parse("10.0.0.0/8").unwrap()];
        let proxy = ip("10.0.0.2");
        for hop in [
            "garbage",
            "unknown",
            "203.0.113.5:x",
            "[2001:db8::7",
            "1.2.3.4, _hidden",
        ] {
            assert_eq!(
                client_ip(&headers(hop), proxy, &proxies),
                Err(UnreadableHop),
                "{hop}"
            );
        }
    }

    #[test]
    fn the_last_forwarded_value_is_the_nearest_proxys() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-host",
            "evil.example, shop.example".parse().unwrap(),
        );
        assert_eq!(last_forwarded(&h, "x-forwarded-host"), Some("shop.example"));
        h.append("x-forwarded-host", "auth.example".parse().unwrap());
        assert_eq!(last_forwarded(&h, "x-forwarded-host"), Some("auth.example"));
        h.insert("x-forwarded-proto", "https, ".parse().unwrap());
        assert_eq!(last_forwarded(&h, "x-forwarded-proto"), None);
        assert_eq!(last_forwarded(&h, "x-missing"), None);
    }

    #[test]
    fn hosts() {
        for good in [
            "example.com",
            "example.com:8443",
            "127.0.0.1:80",
            "[::1]:8080",
        ] {
            assert!(is_host(good), "{good}");
        }
        for bad in [
            "",
            "evil.com/path",
            "a b",
            "evil.com?x",
            "user@evil.com",
            "é.com",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn forwarded_for_never_panics_and_names_a_listed_hop_or_the_peer(
            value in "[0-9a-f:., \\[\\]]{0,80}",
            trusted_peer in proptest::bool::ANY,
        ) {
            let proxies = vec![IpNet::parse("10.0.0.0/8").unwrap()];
            let peer: IpAddr = if trusted_peer { "10.0.0.2" } else { "203.0.113.9" }.parse().unwrap();
            let Ok(header) = value.parse() else { return Ok(()) };
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", header);
            match client_ip(&h, peer, &proxies) {
                Ok(ip) if trusted_peer => {
                    let listed = value.split(',').any(|hop| parse_hop(hop.trim()) == Some(ip));
                    proptest::prop_assert!(ip == peer || listed);
                }
                Ok(ip) => proptest::prop_assert_eq!(ip, peer),
                Err(UnreadableHop) => proptest::prop_assert!(trusted_peer),
            }
        }
    }
}
