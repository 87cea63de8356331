//! Tags that prove the server made a value: an HMAC-SHA256 under a key derived from the
//! signing secret for one use alone (the browser session cookie, the pages' form
//! tokens), compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

use crate::domain::Secret;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct TagKey {
    keyed: HmacSha256,
}

impl TagKey {
    /// The key for `purpose`, derived from `secret` (a tag made for one purpose never
    /// verifies for another).
    pub fn derive(secret: &[u8], purpose: &str) -> TagKey {
        let mut derive = Hmac::<Sha512>::new_from_slice(secret).expect("any key length");
        derive.update(purpose.as_bytes());
        let key = Secret::new(derive.finalize().into_bytes());
        TagKey {
            keyed: HmacSha256::new_from_slice(key.expose()).expect("any key length"),
        }
    }

    /// The tag of `body`, base64url without padding (43 characters).
    pub fn tag(&self, body: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(body.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// Whether `tag` is the tag of `body`, compared in constant time.
    pub fn verifies(&self, body: &str, tag: &str) -> bool {
        let Ok(tag) = B64.decode(tag) else {
            return false;
        };
        let mut mac = self.keyed.clone();
        mac.update(body.as_bytes());
        mac.verify_slice(&tag).is_ok()
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
}
