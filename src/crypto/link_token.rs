//! The tokens of emailed links: 256 random bits, sent once in the link and stored only
//! as a keyed hash (HMAC-SHA256 under a key derived from the signing secret, over the
//! token's purpose and the token), so a copy of the database opens no link and a
//! token of one purpose is worth nothing for another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The length of a token as sent: 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

pub struct LinkTokenKey {
    key: HmacSha256,
}

impl LinkTokenKey {
    /// Derives the key from the server's signing secret.
    pub fn derive(secret: &[u8]) -> LinkTokenKey {
        let mut mac = HmacSha256::new_from_slice(secret).expect("any key length");
        mac.update(b"gatehouse link tokens v1");
        let key = mac.finalize().into_bytes();
        LinkTokenKey {
            key: HmacSha256::new_from_slice(&key).expect("any key length"),
        }
    }

    /// A new token and its stored hash for `purpose`.
    pub fn generate(&self, purpose: &str) -> (String, String) {
        let token = URL_SAFE_NO_PAD.encode(super::random_bytes::<32>());
        let hash = self.hash(purpose, &token);
        (token, hash)
    }

    /// The stored form of a token; `None` for anything that cannot be a token, which
    /// is refused without a database lookup.
    pub fn hash_of(&self, purpose: &str, token: &str) -> Option<String> {
        is_well_formed(token).then(|| self.hash(purpose, token))
    }

    /// A keyed, irreversible name for a value (an email address) used as a counter key,
    /// so the database holds no address for an unknown one.
    pub fn name_of(&self, what: &str, value: &str) -> String {
        let mut mac = self.key.clone();
        mac.update(what.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    fn hash(&self, purpose: &str, token: &str) -> String {
        let mut mac = self.key.clone();
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// 43 characters of the base64url alphabet.
pub fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_hashes_depend_on_key_and_purpose() {
        let key = LinkTokenKey::derive(b"secret-one");
        let (token, hash) = key.generate("password-reset");
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert_eq!(key.hash_of("password-reset", &token), Some(hash.clone()));
        assert_ne!(key.hash_of("verify-email", &token), Some(hash.clone()));
        let other = LinkTokenKey::derive(b"secret-two");
        assert_ne!(other.hash_of("password-reset", &token), Some(hash));
        assert_ne!(key.generate("password-reset").0, token);
    }

    #[test]
    fn malformed_tokens_have_no_hash() {
        let key = LinkTokenKey::derive(b"k");
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            &"é".repeat(21),
        ] {
            assert_eq!(key.hash_of("p", bad), None, "{bad}");
        }
        assert!(key.hash_of("p", &"A-_z".repeat(11)[..43]).is_some());
    }
}
