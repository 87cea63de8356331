//! Tags that prove the server made a value: an HMAC-SHA256 under a key derived from the
//! signing secret for one use alone (the browser session cookie, the pages' form
//! tokens), compared in constant time. A key may also accept the tags of previous
//! secrets (`jwt.previous_secrets`), so a rotation does not end what they tagged.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

use crate::domain::Secret;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct TagKey {
    keyed: HmacSha256,
    purpose: String,
    /// The keys of the previous secrets for the same purpose: they verify, never tag.
    previous: Vec<HmacSha256>,
}

/// The HMAC key for `purpose` derived from `secret`.
fn keyed(secret: &[u8], purpose: &str) -> HmacSha256 {
    let mut derive = Hmac::<Sha512>::new_from_slice(secret).expect("any key length");
    derive.update(purpose.as_bytes());
    let key = Secret::new(derive.finalize().into_bytes());
    HmacSha256::new_from_slice(key.expose()).expect("any key length")
}

impl TagKey {
    /// The key for `purpose`, derived from `secret` (a tag made for one purpose never
    /// verifies for another).
    pub fn derive(secret: &[u8], purpose: &str) -> TagKey {
        TagKey {
            keyed: keyed(secret, purpose),
            purpose: purpose.to_owned(),
            previous: Vec::new(),
        }
    }

    /// Also verifies the tags made under each of `previous` (`jwt.previous_secrets`),
    /// for the same purpose; new tags are still made under the current secret.
    pub fn accepting_previous<'a>(mut self, previous: impl IntoIterator<Item = &'a [u8]>) -> Self {
        self.previous = previous
            .into_iter()
            .map(|s| keyed(s, &self.purpose))
            .collect();
        self
    }

    /// The tag of `body`, base64url without padding (43 characters).
    pub fn tag(&self, body: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(body.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// Whether `tag` is the tag of `body` under the secret or a previous one, each
    /// compared in constant time.
    pub fn verifies(&self, body: &str, tag: &str) -> bool {
        let Ok(tag) = B64.decode(tag) else {
            return false;
        };
        std::iter::once(&self.keyed)
            .chain(&self.previous)
            .any(|keyed| {
                let mut mac = keyed.clone();
                mac.update(body.as_bytes());
                mac.verify_slice(&tag).is_ok()
            })
    }
}

impl std::fmt::Debug for TagKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TagKey(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs512";

    #[test]
    fn a_tag_verifies_its_body_only_under_its_purpose() {
        let key = TagKey::derive(SECRET, "one");
        let tag = key.tag("body");
        assert_eq!(tag.len(), 43);
        assert!(key.verifies("body", &tag));
        assert!(!key.verifies("bodx", &tag));
        assert!(!TagKey::derive(SECRET, "two").verifies("body", &tag));
        assert!(!TagKey::derive(b"another-secret-another-secret-xx", "one").verifies("body", &tag));
        assert!(!key.verifies("body", "not base64 !"));
        assert!(!key.verifies("body", ""));
    }

    #[test]
    fn a_previous_secrets_tag_verifies_for_the_same_purpose_and_new_tags_are_the_current_ones() {
        let old = TagKey::derive(SECRET, "one").tag("body");
        let rotated =
            TagKey::derive(b"the-new-secret-the-new-secret-xx", "one").accepting_previous([SECRET]);
        assert!(rotated.verifies("body", &old));
        assert!(!rotated.verifies("bodx", &old));
        let other_purpose =
            TagKey::derive(b"the-new-secret-the-new-secret-xx", "two").accepting_previous([SECRET]);
        assert!(!other_purpose.verifies("body", &old));
        let new = rotated.tag("body");
        assert_ne!(new, old);
        assert!(!TagKey::derive(SECRET, "one").verifies("body", &new));
    }
}
