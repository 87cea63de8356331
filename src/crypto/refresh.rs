//! Refresh tokens, built rather than stored: `<session id>.<generation>.<tag>`, the tag
//! an HMAC-SHA256 of the first two parts under a key derived from the signing secret
//! for this use alone. The database keeps the session id and its generation and no
//! token: a copy of it yields nothing that refreshes, while the server can rebuild a
//! session's current token for a client that lost the answer to its refresh.
//!
//! Entropy: the session id is 128 random bits and the tag 256 bits under a secret key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

use crate::domain::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Longer strings are refused before any work: 32 + 1 + 20 + 1 + 43 characters at most.
const MAX_LEN: usize = 128;

/// A refresh token, opened: the session it names and that session's generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaim {
    pub session: String,
    pub generation: i64,
}

pub struct RefreshKey {
    keyed: HmacSha256,
    /// The keys of `jwt.previous_secrets`: their tokens still open (and refresh to a
    /// token of the current key), none is built with them.
    previous: Vec<HmacSha256>,
}

impl RefreshKey {
    pub fn new(secret: &[u8]) -> Self {
        RefreshKey {
            keyed: key_of(secret),
            previous: Vec::new(),
        }
    }

    /// Also opens tokens built under these secrets (`jwt.previous_secrets`).
    pub fn accepting_previous<'a>(mut self, secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        self.previous = secrets.into_iter().map(key_of).collect();
        self
    }

    fn tag(&self, body: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(body.as_bytes());
        mac
    }

    /// The token of generation `generation` of session `session`.
    pub fn token(&self, session: &str, generation: i64) -> String {
        let body = format!("{session}.{generation}");
        let tag = self.tag(&body).finalize().into_bytes();
        format!("{body}.{}", B64.encode(tag))
    }

    /// The session and generation of a token this key built; `None` for anything else
    /// (the tag is compared in constant time).
    pub fn open(&self, token: &str) -> Option<RefreshClaim> {
        if token.len() > MAX_LEN {
            return None;
        }
        let (body, tag) = token.rsplit_once('.')?;
        let (session, generation) = body.split_once('.')?;
        let well_formed = session.len() == 32
            && session
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && !generation.is_empty()
            && generation.len() <= 18
            && generation.bytes().all(|b| b.is_ascii_digit());
        if !well_formed {
            return None;
        }
        let tag = B64.decode(tag).ok()?;
        let verifies = |keyed: &HmacSha256| {
            let mut mac = keyed.clone();
            mac.update(body.as_bytes());
            mac.verify_slice(&tag).is_ok()
        };
        if !verifies(&self.keyed) && !self.previous.iter().any(verifies) {
            return None;
        }
        Some(RefreshClaim {
            session: session.to_owned(),
            generation: generation.parse().ok()?,
        })
    }
}

/// The refresh tokens' key, derived from a signing secret for this use alone.
fn key_of(secret: &[u8]) -> HmacSha256 {
    let mut derive = Hmac::<Sha512>::new_from_slice(secret).expect("any key length");
    derive.update(b"gatehouse refresh token");
    let key = Secret::new(derive.finalize().into_bytes());
    HmacSha256::new_from_slice(key.expose()).expect("any key length")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SID: &str = "0123456789abcdef0123456789abcdef";

    fn key() -> RefreshKey {
        RefreshKey::new(b"a-test-secret-that-is-long-enough-for-hs512")
    }

    #[test]
    fn a_token_opens_to_its_session_and_generation() {
        let t = key().token(SID, 7);
        assert!(t.starts_with(&format!("{SID}.7.")), "{t}");
        assert_eq!(
            key().open(&t),
            Some(RefreshClaim {
                session: SID.into(),
                generation: 7
            })
        );
    }

    #[test]
    fn the_tag_is_hmac_sha256_under_the_derived_key() {
        let mut derive =
            Hmac::<Sha512>::new_from_slice(b"a-test-secret-that-is-long-enough-for-hs512").unwrap();
        derive.update(b"gatehouse refresh token");
        let mut mac = HmacSha256::new_from_slice(&derive.finalize().into_bytes()).unwrap();
        mac.update(format!("{SID}.3").as_bytes());
        let expected = B64.encode(mac.finalize().into_bytes());
        assert_eq!(key().token(SID, 3), format!("{SID}.3.{expected}"));
    }

    #[test]
    fn altered_foreign_and_malformed_tokens_do_not_open() {
        let t = key().token(SID, 1);
        let other = RefreshKey::new(b"another-secret-that-is-long-enough-for-hs512");
        assert_eq!(other.open(&t), None);
        let (body, tag) = t.rsplit_once('.').unwrap();
        let next = format!("{SID}.2.{tag}");
        assert_eq!(key().open(&next), None, "the tag binds the generation");
        let upper = format!("{}.{tag}", body.to_uppercase());
        assert_eq!(key().open(&upper), None);
        for bad in [
            "",
            SID,
            &format!("{SID}.1"),
            &format!("{SID}.1."),
            &format!("{SID}.-1.{tag}"),
            &format!("{SID}.+1.{tag}"),
            &format!("{SID}..{tag}"),
            &format!("{t}="),
            &format!("{t}.x"),
            &format!("{}.1.{tag}", &SID[1..]),
        ] {
            assert_eq!(key().open(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_previous_secrets_tokens_open_and_new_ones_are_the_current_secrets() {
        let old = key();
        let rotated = RefreshKey::new(b"another-secret-that-is-long-enough-for-hs512")
            .accepting_previous([b"a-test-secret-that-is-long-enough-for-hs512".as_slice()]);
        let t = old.token(SID, 4);
        let claim = rotated.open(&t).expect("opens with the previous secret");
        assert_eq!(claim.generation, 4);
        let next = rotated.token(SID, 5);
        assert_eq!(old.open(&next), None, "built with the current secret");
        let without = RefreshKey::new(b"another-secret-that-is-long-enough-for-hs512");
        assert_eq!(without.open(&t), None);
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_open_or_panic(s in "\\PC{0,200}") {
            prop_assert!(key().open(&s).is_none());
        }
    }
}
