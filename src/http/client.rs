//! Who is calling, and through which host: the socket's peer, unless the request came
//! through a configured trusted proxy, whose `X-Forwarded-*` headers are then used.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::AppState;
use crate::config::IpNet;

/// The client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

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

/// The client address: walks `X-Forwarded-For` from the right while the hops are
/// trusted proxies, so a client cannot forge its address by adding entries.
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, proxies: &[IpNet]) -> IpAddr {
    if !trusted(proxies, peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted(proxies, ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// True when the request came straight from a trusted proxy, so its
/// `X-Forwarded-Host` and `X-Forwarded-Proto` may be believed.
pub fn from_trusted_proxy(parts: &Parts, app: &AppState) -> bool {
    peer(parts).is_some_and(|ip| trusted(&app.proxies, ip))
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = peer(parts).unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(client_ip(&parts.headers, peer, &app.proxies)))
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

    #[test]
    fn forwarded_for_is_only_believed_from_trusted_proxies() {
        let proxies = vec![IpNet::parse("10.0.0.0/8").unwrap()];
        let direct: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(&headers("1.2.3.4"), direct, &proxies), direct);
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            client_ip(&headers("1.2.3.4"), proxy, &proxies),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        // A client that prepends a fake hop is still seen at its real address.
        assert_eq!(
            client_ip(&headers("6.6.6.6, 1.2.3.4, 10.0.0.7"), proxy, &proxies),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(&headers("garbage"), proxy, &proxies), proxy);
        assert_eq!(client_ip(&HeaderMap::new(), proxy, &proxies), proxy);
    }

    proptest::proptest! {
        #[test]
        fn forwarded_for_never_panics_and_names_a_listed_hop_or_the_peer(
            value in "[0-9a-f:., ]{0,80}",
            trusted_peer in proptest::bool::ANY,
        ) {
            let proxies = vec![IpNet::parse("10.0.0.0/8").unwrap()];
            let peer: IpAddr = if trusted_peer { "10.0.0.2" } else { "203.0.113.9" }.parse().unwrap();
            let Ok(header) = value.parse() else { return Ok(()) };
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", header);
            let ip = client_ip(&h, peer, &proxies);
            if trusted_peer {
                let listed = value.split(',').any(|hop| hop.trim().parse() == Ok(ip));
                proptest::prop_assert!(ip == peer || listed);
            } else {
                proptest::prop_assert_eq!(ip, peer);
            }
        }
    }
}
