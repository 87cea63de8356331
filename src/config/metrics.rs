//! `GET /metrics` (`metrics`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` (Prometheus text format).
    pub enabled: bool,
    /// A separate address for `/metrics` (e.g. a private interface); then the main
    /// listener does not serve it. Default: unset, `/metrics` on the main listener,
    /// which listens on loopback unless told otherwise. The metrics hold no account
    /// data, but they tell how the service is used: give them their own address
    /// before the main listener faces the internet.
    #[schema(value_type = Option<String>)]
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            enabled: true,
            listen: None,
        }
    }
}
