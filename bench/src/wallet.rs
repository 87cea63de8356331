//! A SelfKey wallet as the benchmark needs it: a secp256k1 key that answers challenges
//! with EIP-191 `personal_sign`, as the Identity Wallet does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secp256k1::ecdsa::RecoverableSignature;
use secp256k1::{Message, PublicKey, SecretKey};
use sha3::{Digest, Keccak256};

pub struct Wallet {
    secret: SecretKey,
    /// The uncompressed public key without its `04` byte, 128 lower-case hex digits:
    /// how the wallet names itself in `GET /auth/challenge/{publicKey}`.
    pub public_key: String,
}

impl Wallet {
    pub fn from_secret(bytes: [u8; 32]) -> Option<Wallet> {
        let secret = SecretKey::from_secret_bytes(bytes).ok()?;
        let public = PublicKey::from_secret_key(&secret).serialize_uncompressed();
        Some(Wallet {
            secret,
            public_key: hex::encode(&public[1..]),
        })
    }

    /// A fresh key from the operating system's random source.
    pub fn random() -> Wallet {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).expect("the operating system's random source failed");
            // Out of range with probability about 2^-128; draw again rather than fail.
            if let Some(wallet) = Wallet::from_secret(bytes) {
                return wallet;
            }
        }
    }

    /// The address in its EIP-55 checksum form, as a SIWE message names it.
    pub fn eip55_address(&self) -> String {
        let key = hex::decode(&self.public_key).expect("hex from new");
        let lower = hex::encode(&Keccak256::digest(&key)[12..]);
        let hash = Keccak256::digest(lower.as_bytes());
        let digits: String = lower
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f;
                if nibble >= 8 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        format!("0x{digits}")
    }

    /// `personal_sign(message)`: `0x` + r + s + v (27 or 28), 130 hex digits.
    pub fn personal_sign(&self, message: &str) -> String {
        let digest = eip191_hash(message.as_bytes());
        let signature = RecoverableSignature::sign_ecdsa_recoverable(
            Message::from_digest(digest),
            &self.secret,
        );
        let (recovery, rs) = signature.serialize_compact();
        format!("0x{}{:02x}", hex::encode(rs), 27 + recovery.to_u8())
    }
}

/// keccak256("\x19Ethereum Signed Message:\n" + decimal byte length + message).
pub fn eip191_hash(message: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    hasher.update(message.len().to_string().as_bytes());
    hasher.update(message);
    hasher.finalize().into()
}

/// The `challenge` claim of a challenge JWT, read without verifying it, as the wallet
/// does: only the server can verify its own token.
pub fn challenge_claim(jwt: &str) -> Option<String> {
    let payload = URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1)?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    claims.get("challenge")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// selfkey.js's own test key and the protocol notes' vector.
    const KEY: &str = "8a35142ef030e2f89185c738b11b5a4fc13fe3663dffea64f00059fdf0b038d4";
    const CHALLENGE: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f";

    fn vector_wallet() -> Wallet {
        let bytes: [u8; 32] = hex::decode(KEY).unwrap().try_into().unwrap();
        Wallet::from_secret(bytes).unwrap()
    }

    #[test]
    fn personal_sign_matches_the_test_vector() {
        assert_eq!(CHALLENGE.len(), 96);
        assert_eq!(
            hex::encode(eip191_hash(CHALLENGE.as_bytes())),
            "be690b74673f50a312e5ed9c43b73306d14ef367e6f30fef026d7a43da145335"
        );
        let wallet = vector_wallet();
        assert_eq!(
            wallet.public_key,
            "269b4f66ff8f6c8e6478995b2decab8c0bdb3cf0627ca3f8b7b2b134307b0d32\
             48540c0715c6b1ed00d1c259d631af9ef101a484093c11c8f52acfa960349970"
        );
        assert_eq!(
            wallet.personal_sign(CHALLENGE),
            "0xb434587639534dd60a25d990f3e515e10961880bcb3a807e35746afe4f4e78fa\
             3059eb330b74f5eee3ff76a445a7c2d63aed07974a16653353d3cbf628c1347d1c"
        );
    }

    #[test]
    fn the_address_is_in_its_eip55_form() {
        assert_eq!(
            vector_wallet().eip55_address().to_lowercase(),
            "0x2b6a21dc440cebd4bb9b91b27014ace8aa91a0b9"
        );
        assert_ne!(
            vector_wallet().eip55_address(),
            "0x2b6a21dc440cebd4bb9b91b27014ace8aa91a0b9"
        );
    }

    #[test]
    fn the_challenge_claim_is_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"ab","challenge":"c0ffee"}"#);
        let jwt = format!("eyJhbGciOiJIUzUxMiJ9.{payload}.c2ln");
        assert_eq!(challenge_claim(&jwt).as_deref(), Some("c0ffee"));
        assert_eq!(challenge_claim("no-dots"), None);
        let no_claim = URL_SAFE_NO_PAD.encode(br#"{"sub":"ab"}"#);
        assert_eq!(challenge_claim(&format!("h.{no_claim}.s")), None);
    }
}
