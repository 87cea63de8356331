//! OwnID's request signature, as the OwnID platform computes it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// `ownid-signature`: base64(HMAC-SHA256(key, body ‖ "." ‖ timestamp)), where `key` is
/// the console's base64 shared secret, decoded.
pub fn signature(key: &[u8], body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_protocol_vectors() {
        let key = STANDARD
            .decode("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
            .unwrap();
        assert_eq!(key, b"0123456789abcdef0123456789abcdef");
        for (body, expected) in [
            (
                r#"{"loginId":"sol@testmail.com"}"#,
                "lhISjl87tBbmRm+vtlMlZ8Qda6WyqnJkWwpC2poMcd8=",
            ),
            (
                r#"{"loginId":"sol@testmail.com","ownIdData":"abc"}"#,
                "Y8FaGL1GqDaQ6eD/MSqsBtpJ7UgbKxaZCXxE5bftK0Q=",
            ),
            (
                r#"{"loginId":"sol@testmail.com","sessionType":"browser"}"#,
                "VEnKtle+9vEBIo9k7dSPOqNw6dtu5hv5dw6imcAPjiM=",
            ),
        ] {
            assert_eq!(signature(&key, body.as_bytes(), "1700000000000"), expected);
        }
    }
}
