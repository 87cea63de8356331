//! OwnID's request signatures. `ownid-signature` is the standard (padded) base64 of
//! HMAC-SHA256(base64-decoded shared secret, raw body ‖ "." ‖ `ownid-timestamp`), and
//! the timestamp is milliseconds since the Unix epoch. Several secrets may be live at
//! once, so one can be rotated without refusing OwnID's requests in between.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The length of an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;

/// Sixteen digits reach past the year 2286 in milliseconds and stay far below
/// `i64::MAX`, so a longer header is refused before it could overflow.
const MAX_TIMESTAMP_DIGITS: usize = 16;

/// Why a request's signature was refused. Every reason gets the same answer; the
/// reason is for the log and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the signature is not standard base64 of 32 bytes")]
    MalformedSignature,
    #[error("the timestamp is not a number of milliseconds")]
    MalformedTimestamp,
    #[error("the timestamp is older than the tolerance")]
    Stale,
    #[error("the timestamp is further in the future than the tolerance")]
    Future,
    #[error("no configured shared secret gives this signature")]
    Mismatch,
}

/// A configured shared secret that is not base64 (or decodes to nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("secret #{position} is not valid base64")]
pub struct BadSecret {
    /// Counted from 1, as an operator reads the list.
    pub position: usize,
}

/// Decodes the configured base64 shared secrets into HMAC keys.
pub fn decode_secrets(secrets: &[Secret<String>]) -> Result<Vec<Secret<Vec<u8>>>, BadSecret> {
    secrets
        .iter()
        .enumerate()
        .map(
            |(i, secret)| match STANDARD.decode(secret.expose().trim()) {
                Ok(key) if !key.is_empty() => Ok(Secret::new(key)),
                _ => Err(BadSecret { position: i + 1 }),
            },
        )
        .collect()
}

/// Checks signed requests against every configured shared secret.
pub struct OwnIdVerifier {
    keys: Vec<Secret<Vec<u8>>>,
    tolerance_ms: i64,
}

/// A request whose signature holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The decoded signature: what identifies an exact replay.
    pub tag: [u8; TAG_LEN],
    timestamp_ms: i64,
    tolerance_ms: i64,
}

impl Accepted {
    /// The first Unix second at which the same request no longer passes the timestamp
    /// check, so a replay guard need not remember it any longer.
    pub fn window_end_secs(&self) -> i64 {
        self.timestamp_ms
            .saturating_add(self.tolerance_ms)
            .div_euclid(1000)
            .saturating_add(1)
    }
}

impl OwnIdVerifier {
    /// `secrets` as configured (base64); with none, every request is refused.
    pub fn new(secrets: &[Secret<String>], tolerance_secs: i64) -> Result<Self, BadSecret> {
        Ok(OwnIdVerifier {
            keys: decode_secrets(secrets)?,
            tolerance_ms: tolerance_secs.saturating_mul(1000),
        })
    }

    /// How many shared secrets are configured; none means OwnID is off.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Checks the headers of a request with raw body `body` at time `now_ms`: the
    /// timestamp within the tolerance either way, and the signature made by one of
    /// the shared secrets over exactly these bytes (compared in constant time).
    pub fn verify(
        &self,
        body: &[u8],
        signature: &str,
        timestamp: &str,
        now_ms: i64,
    ) -> Result<Accepted, Refused> {
        let tag = parse_signature(signature).ok_or(Refused::MalformedSignature)?;
        let timestamp_ms = parse_timestamp(timestamp).ok_or(Refused::MalformedTimestamp)?;
        if timestamp_ms < now_ms.saturating_sub(self.tolerance_ms) {
            return Err(Refused::Stale);
        }
        if timestamp_ms > now_ms.saturating_add(self.tolerance_ms) {
            return Err(Refused::Future);
        }
        let signed_by_one = self.keys.iter().any(|key| {
            mac(key.expose(), body, timestamp)
                .verify_slice(&tag)
                .is_ok()
        });
        if !signed_by_one {
            return Err(Refused::Mismatch);
        }
        Ok(Accepted {
            tag,
            timestamp_ms,
            tolerance_ms: self.tolerance_ms,
        })
    }
}

fn mac(key: &[u8], body: &[u8], timestamp: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac
}

/// `ownid-signature`: standard base64, padded, of exactly one HMAC-SHA256 tag.
pub fn parse_signature(raw: &str) -> Option<[u8; TAG_LEN]> {
    // The only valid length; checked first so no large header is decoded.
    if raw.len() != 44 {
        return None;
    }
    STANDARD.decode(raw).ok()?.try_into().ok()
}

/// `ownid-timestamp`: 1 to 16 ASCII digits, milliseconds since the Unix epoch.
pub fn parse_timestamp(raw: &str) -> Option<i64> {
    if raw.is_empty()
        || raw.len() > MAX_TIMESTAMP_DIGITS
        || !raw.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    raw.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The protocol file's vectors: its shared secret, timestamp, and (body, signature).
    const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const TIMESTAMP: &str = "1700000000000";
    const NOW: i64 = 1_700_000_000_000;
    const VECTORS: [(&str, &str); 3] = [
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
    ];

    fn verifier(secrets: &[&str]) -> OwnIdVerifier {
        let secrets: Vec<_> = secrets.iter().map(|s| Secret::new(s.to_string())).collect();
        OwnIdVerifier::new(&secrets, 60).unwrap()
    }

    fn sign(secret: &str, body: &[u8], timestamp: &str) -> String {
        let key = STANDARD.decode(secret).unwrap();
        STANDARD.encode(mac(&key, body, timestamp).finalize().into_bytes())
    }

    #[test]
    fn the_protocol_vectors_verify() {
        let v = verifier(&[SECRET]);
        for (body, signature) in VECTORS {
            let accepted = v
                .verify(body.as_bytes(), signature, TIMESTAMP, NOW)
                .unwrap();
            assert_eq!(STANDARD.encode(accepted.tag), signature);
            // The request passes the window until NOW + 60 s, inclusive.
            assert_eq!(accepted.window_end_secs(), 1_700_000_061);
            assert_eq!(sign(SECRET, body.as_bytes(), TIMESTAMP), signature);
        }
    }

    #[test]
    fn any_other_body_timestamp_or_secret_is_refused() {
        let v = verifier(&[SECRET]);
        let (body, signature) = VECTORS[0];
        let refused = |body: &str, signature: &str, timestamp: &str| {
            v.verify(body.as_bytes(), signature, timestamp, NOW)
                .unwrap_err()
        };
        // Same JSON, other bytes: the signature is over the raw body.
        assert_eq!(
            refused(r#"{ "loginId": "sol@testmail.com" }"#, signature, TIMESTAMP),
            Refused::Mismatch
        );
        assert_eq!(
            refused(r#"{"loginId":"sol@testmail.co"}"#, signature, TIMESTAMP),
            Refused::Mismatch
        );
        // Another timestamp inside the window: the timestamp is signed too.
        assert_eq!(refused(body, signature, "1700000000001"), Refused::Mismatch);
        // Another vector's signature.
        assert_eq!(refused(body, VECTORS[1].1, TIMESTAMP), Refused::Mismatch);
        let other = STANDARD.encode(b"another shared secret, 32 bytes!");
        let forged = sign(&other, body.as_bytes(), TIMESTAMP);
        assert_eq!(refused(body, &forged, TIMESTAMP), Refused::Mismatch);
        // Unpadded, URL-safe, or hex: not the protocol's encoding.
        for malformed in [
            signature.trim_end_matches('='),
            &signature.replace('+', "-"),
            "",
            &hex::encode([0u8; 32]),
            &STANDARD.encode([0u8; 31]),
            &STANDARD.encode([0u8; 33]),
        ] {
            assert_eq!(
                refused(body, malformed, TIMESTAMP),
                Refused::MalformedSignature,
                "{malformed:?}"
            );
        }
        for malformed in [
            "",
            "abc",
            "1700000000000.0",
            "-1",
            "+1700000000000",
            " 1700000000000",
            "1e12",
            "12345678901234567",
        ] {
            assert_eq!(
                refused(body, signature, malformed),
                Refused::MalformedTimestamp,
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn the_timestamp_must_be_within_the_tolerance_either_way() {
        let v = verifier(&[SECRET]);
        let (body, signature) = VECTORS[2];
        let at = |now: i64| v.verify(body.as_bytes(), signature, TIMESTAMP, now);
        assert!(at(NOW + 60_000).is_ok());
        assert!(at(NOW - 60_000).is_ok());
        assert_eq!(at(NOW + 60_001).unwrap_err(), Refused::Stale);
        assert_eq!(at(NOW - 60_001).unwrap_err(), Refused::Future);
        assert_eq!(at(0).unwrap_err(), Refused::Future);
        assert_eq!(at(i64::MAX).unwrap_err(), Refused::Stale);
    }

    #[test]
    fn every_configured_secret_is_accepted_and_none_without_secrets() {
        let newer = STANDARD.encode(b"the rotated-in shared secret....");
        let (body, signature) = VECTORS[1];
        let with_new = sign(&newer, body.as_bytes(), TIMESTAMP);
        let both = verifier(&[&newer, SECRET]);
        assert!(
            both.verify(body.as_bytes(), signature, TIMESTAMP, NOW)
                .is_ok()
        );
        assert!(
            both.verify(body.as_bytes(), &with_new, TIMESTAMP, NOW)
                .is_ok()
        );
        let rotated = verifier(&[&newer]);
        assert_eq!(
            rotated
                .verify(body.as_bytes(), signature, TIMESTAMP, NOW)
                .unwrap_err(),
            Refused::Mismatch
        );
        let off = verifier(&[]);
        assert_eq!(off.key_count(), 0);
        assert_eq!(
            off.verify(body.as_bytes(), signature, TIMESTAMP, NOW)
                .unwrap_err(),
            Refused::Mismatch
        );
    }

    #[test]
    fn secrets_must_be_base64() {
        let secrets = |list: &[&str]| -> Vec<Secret<String>> {
            list.iter().map(|s| Secret::new(s.to_string())).collect()
        };
        assert_eq!(
            decode_secrets(&secrets(&[SECRET, &format!(" {SECRET}\n")]))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            decode_secrets(&secrets(&[SECRET, "not base64!"])).unwrap_err(),
            BadSecret { position: 2 }
        );
        assert_eq!(
            decode_secrets(&secrets(&[""])).unwrap_err(),
            BadSecret { position: 1 }
        );
        assert_eq!(
            BadSecret { position: 2 }.to_string(),
            "secret #2 is not valid base64"
        );
    }

    proptest! {
        #[test]
        fn the_timestamp_parser_never_panics(s in "\\PC{0,40}") {
            if let Some(ms) = parse_timestamp(&s) {
                prop_assert!(ms >= 0);
                prop_assert!(s.bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(s.trim_start_matches('0').to_string(), if ms == 0 { String::new() } else { ms.to_string() });
            }
        }

        #[test]
        fn digit_strings_parse_to_their_value(ms in 0i64..10_000_000_000_000_000) {
            prop_assert_eq!(parse_timestamp(&ms.to_string()), Some(ms));
        }

        #[test]
        fn the_signature_parser_never_panics(s in "\\PC{0,80}", b in "[A-Za-z0-9+/]{43}=") {
            if let Some(tag) = parse_signature(&s) {
                prop_assert_eq!(STANDARD.encode(tag), s);
            }
            if let Some(tag) = parse_signature(&b) {
                prop_assert_eq!(STANDARD.encode(tag), b);
            }
        }

        #[test]
        fn arbitrary_headers_never_verify(signature in "\\PC{0,60}", timestamp in "\\PC{0,20}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(verifier(&[SECRET]).verify(&body, &signature, &timestamp, NOW).is_err());
        }
    }
}
