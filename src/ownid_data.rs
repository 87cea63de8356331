//! OwnID's per-account data: an opaque string, stored as received, never logged.

use crate::domain::Invalid;

/// Accepts `data` if it is non-empty and at most `max_bytes` long.
pub fn parse(data: String, max_bytes: usize) -> Result<String, Invalid> {
    if data.is_empty() {
        return Err(Invalid("The 'ownIdData' field must not be empty.".into()));
    }
    if data.len() > max_bytes {
        return Err(Invalid(format!(
            "The 'ownIdData' field must be at most {max_bytes} bytes long."
        )));
    }
    Ok(data)
}
