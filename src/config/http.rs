//! The HTTP server (`http`), the limits on the auth routes (`rate_limit`), and the
//! trusted-proxy ranges they are parsed into.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::serde_helpers::list;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest request body, bytes (the wallet's multipart upload has its own limit).
    pub body_limit_bytes: usize,
    /// Longest a request may take before it is answered 408.
    pub request_timeout_secs: u64,
    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection stays open.
    pub header_read_timeout_secs: u64,
    /// Largest request line and headers, bytes; more gets 431 and a closed connection.
    pub max_header_bytes: usize,
    /// How long in-flight requests may run on after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// After SIGTERM/SIGINT, how long to go on accepting requests while `/ready`
    /// answers 503, so a load balancer health-checking `/ready` stops sending before
    /// the node stops listening (a few of its check intervals); then in-flight
    /// requests get `shutdown_grace_secs`. 0: stop accepting at once.
    pub drain_secs: u64,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-*` headers are trusted.
    #[serde(deserialize_with = "list")]
    pub trusted_proxies: Vec<String>,
    /// The public base URL (`https://example.com`), for absolute URLs and cookies;
    /// unset: taken from the request's host.
    pub public_url: Option<String>,
    /// Browser origins allowed to call every route (CORS, preflights included), with
    /// credentials; others get no CORS headers.
    #[serde(deserialize_with = "list")]
    pub cors_origins: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_header_bytes: 32 * 1024,
            shutdown_grace_secs: 10,
            drain_secs: 0,
            trusted_proxies: Vec::new(),
            public_url: None,
            cors_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Both limits below; off only for benchmarks.
    pub enabled: bool,
    /// Failed password logins for one account from one client (its device token, or
    /// else its address) before that client is refused for the window.
    pub login_failures: i64,
    /// The lockout window, seconds.
    pub login_window_secs: i64,
    /// The account's ceiling for clients without a device token, whatever their
    /// address: this many failures at once, then one per `account_interval_secs`.
    pub account_burst: i64,
    /// Seconds per failure of the account's ceiling once its burst is spent
    /// (45: 80 guesses an hour).
    pub account_interval_secs: i64,
    /// How long the device token a password login returns is valid, seconds.
    pub device_token_ttl_secs: i64,
    /// Requests one client address may make to the auth routes per window.
    pub per_address: i64,
    /// The per-address window, seconds.
    pub per_address_window_secs: i64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            login_failures: 5,
            login_window_secs: 15 * 60,
            account_burst: 20,
            account_interval_secs: 45,
            device_token_ttl_secs: 90 * 24 * 3600,
            per_address: 300,
            per_address_window_secs: 60,
        }
    }
}

/// An IP address or CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(
            IpNet::parse("127.0.0.1")
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(
            IpNet::parse("::1/128")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["", "10.0.0.0/33", "nope", "10.0.0/8"] {
            assert!(IpNet::parse(bad).is_none(), "{bad}");
        }
    }
}
