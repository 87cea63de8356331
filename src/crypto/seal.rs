//! Sealing secrets for the database: AES-256-GCM under a key derived (HKDF-SHA256) from
//! the JWT secret for one use alone (the HKDF salt names it), with associated data that
//! names the row, so a sealed value cannot be moved to another row or another use.
//! Used for the signing keys' private halves and the TOTP secrets.

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hkdf::Hkdf;
use sha2::Sha256;

use crate::domain::Secret;

pub struct Sealer {
    cipher: Aes256Gcm,
}

const SEALED_VERSION: &str = "v1";

impl Sealer {
    /// The sealer of one use (`purpose`, the HKDF salt) under `secret`.
    pub fn new(secret: &[u8], purpose: &[u8]) -> Sealer {
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(purpose), secret)
            .expand(b"aes-256-gcm v1", &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let key = Secret::new(okm);
        Sealer {
            cipher: Aes256Gcm::new(key.expose().into()),
        }
    }

    /// `v1.<nonce>.<ciphertext and tag>`, base64url.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> String {
        let nonce_bytes = super::random_bytes::<12>();
        let nonce = Nonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(&nonce, aes_gcm::aead::Payload { msg: plain, aad })
            .expect("a 32-byte key encrypts");
        format!(
            "{SEALED_VERSION}.{}.{}",
            B64.encode(nonce_bytes),
            B64.encode(sealed)
        )
    }

    /// What was sealed with `aad`; `None` if it was sealed under another secret or
    /// use, with other associated data, or altered.
    pub fn open(&self, aad: &[u8], sealed: &str) -> Option<Secret<Vec<u8>>> {
        let mut parts = sealed.split('.');
        let (Some(SEALED_VERSION), Some(nonce), Some(body), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let nonce: [u8; 12] = B64.decode(nonce).ok()?.try_into().ok()?;
        let body = B64.decode(body).ok()?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                aes_gcm::aead::Payload { msg: &body, aad },
            )
            .ok()
            .map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_for_its_use_and_row() {
        let secret = b"a-test-secret-that-is-long-enough-for-hs512";
        let sealer = Sealer::new(secret, b"use one");
        let sealed = sealer.seal(b"row 1", b"plain");
        assert_eq!(sealer.open(b"row 1", &sealed).unwrap().expose(), b"plain");
        assert!(sealer.open(b"row 2", &sealed).is_none());
        assert!(
            Sealer::new(secret, b"use two")
                .open(b"row 1", &sealed)
                .is_none()
        );
    }
}
