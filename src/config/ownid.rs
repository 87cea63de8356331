//! OwnID (`ownid`).

use serde::{Deserialize, Serialize};

use super::serde_helpers::secret_list;
use crate::domain::Secret;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OwnIdSettings {
    /// Where the OwnID routes are mounted; the base URL to enter in OwnID's console.
    pub base: String,
    /// Base64 shared secrets from OwnID's console; several while rotating. Empty: the
    /// OwnID routes are off.
    #[serde(deserialize_with = "secret_list")]
    #[schema(value_type = Vec<String>)]
    pub shared_secrets: Vec<Secret<String>>,
    /// Accepted distance of `ownid-timestamp` from now, seconds.
    pub timestamp_tolerance_secs: i64,
    /// Answer as OwnID's older samples did (200 with an error object).
    pub legacy_responses: bool,
    /// Largest `ownIdData`, bytes.
    pub max_data_bytes: usize,
}

impl Default for OwnIdSettings {
    fn default() -> Self {
        OwnIdSettings {
            base: "/ownid".into(),
            shared_secrets: Vec::new(),
            timestamp_tolerance_secs: 60,
            legacy_responses: false,
            max_data_bytes: 64 * 1024,
        }
    }
}
