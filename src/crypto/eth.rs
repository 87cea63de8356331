//! Ethereum keys, addresses and `personal_sign` signatures, as Login with SelfKey uses
//! them. Every value is parsed once from the wire into a type that can only hold a
//! valid one: a [`PublicKey`] is a point on secp256k1, a [`Signature`] has an `r` and
//! `s` in range and a recovery id.
//!
//! Recovery runs on every wallet sign-in, so it goes through libsecp256k1 (the
//! `secp256k1` crate), the fastest implementation available to Rust.

use std::fmt;

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use sha3::{Digest, Keccak256};

/// Why a value was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EthError {
    #[error("not an uncompressed secp256k1 public key (128 hex digits, optionally 0x-prefixed)")]
    PublicKey,
    #[error("not an Ethereum address (0x and 40 hex digits)")]
    Address,
    #[error("not a did:eth DID")]
    Did,
    #[error("not a signature (0x and 130 hex digits, with v of 0, 1, 27 or 28)")]
    Signature,
    #[error("no public key can be recovered from this signature")]
    Recovery,
}

pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// The EIP-191 `personal_sign` digest of `message`: what a wallet signs when asked to
/// sign a text, so that no signed text can pass for a transaction.
pub fn personal_sign_hash(message: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    hasher.update(message.len().to_string().as_bytes());
    hasher.update(message);
    hasher.finalize().into()
}

/// The public key that made `signature` over `hash`.
pub fn recover(hash: &[u8; 32], signature: &Signature) -> Result<PublicKey, EthError> {
    let key = signature
        .0
        .recover_ecdsa(secp256k1::Message::from_digest(*hash))
        .map_err(|_| EthError::Recovery)?;
    Ok(PublicKey::from_secp(&key))
}

/// An uncompressed secp256k1 public key without its `04` prefix byte: the 64 bytes
/// of `x` and `y`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 64]);

impl PublicKey {
    /// 128 hex digits, with or without `0x`, in either case; must be a point on the
    /// curve.
    pub fn parse(s: &str) -> Result<Self, EthError> {
        let digits = strip_0x(s);
        if digits.len() != 128 {
            return Err(EthError::PublicKey);
        }
        let mut uncompressed = [0u8; 65];
        uncompressed[0] = 0x04;
        hex::decode_to_slice(digits, &mut uncompressed[1..]).map_err(|_| EthError::PublicKey)?;
        let key = secp256k1::PublicKey::from_byte_array_uncompressed(uncompressed)
            .map_err(|_| EthError::PublicKey)?;
        Ok(Self::from_secp(&key))
    }

    pub fn from_secp(key: &secp256k1::PublicKey) -> Self {
        let mut bytes = [0u8; 64];
        bytes.copy_from_slice(&key.serialize_uncompressed()[1..]);
        PublicKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// The Ethereum address: the last 20 bytes of the key's Keccak-256.
    pub fn address(&self) -> Address {
        let hash = keccak256(&self.0);
        let mut address = [0u8; 20];
        address.copy_from_slice(&hash[12..]);
        Address(address)
    }
}

/// 128 lower-case hex digits, no `0x`: the form challenges name and wallets are stored in.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// An Ethereum address.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address([u8; 20]);

impl Address {
    /// `0x` and 40 hex digits in either case. The mixed-case EIP-55 checksum is not
    /// checked: every address here is derived from a key or compared with one.
    pub fn parse(s: &str) -> Result<Self, EthError> {
        let digits = s.strip_prefix("0x").ok_or(EthError::Address)?;
        if digits.len() != 40 {
            return Err(EthError::Address);
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| EthError::Address)?;
        Ok(Address(bytes))
    }

    /// The EIP-55 form: `0x` and the hex digits, each letter upper-case where the
    /// matching nibble of the Keccak-256 of the lower-case digits is 8 or more.
    pub fn to_eip55(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = if i % 2 == 0 {
                hash[i / 2] >> 4
            } else {
                hash[i / 2] & 0x0f
            };
            out.push(if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        out
    }
}

/// `0x` and 40 lower-case hex digits.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

/// A `did:eth` DID: an address, named the way wallets since mid-2019 name themselves.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Did(Address);

const DID_PREFIX: &str = "did:eth:";
const MAX_FRAGMENT_LEN: usize = 64;

impl Did {
    /// `did:eth:0x<40 hex digits>`.
    pub fn parse(s: &str) -> Result<Self, EthError> {
        let address = s.strip_prefix(DID_PREFIX).ok_or(EthError::Did)?;
        Address::parse(address).map(Did).map_err(|_| EthError::Did)
    }

    /// A key id: the DID and a fragment naming one of its keys, as in
    /// `did:eth:0x…#keys-1`.
    pub fn parse_key_id(s: &str) -> Result<Self, EthError> {
        let (did, fragment) = s.split_once('#').ok_or(EthError::Did)?;
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if fragment.is_empty() || fragment.len() > MAX_FRAGMENT_LEN || !fragment.bytes().all(plain)
        {
            return Err(EthError::Did);
        }
        Did::parse(did)
    }

    pub fn address(&self) -> Address {
        self.0
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{DID_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({self})")
    }
}

/// A recoverable ECDSA signature: `r`, `s` and the recovery id `v`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(RecoverableSignature);

impl Signature {
    /// `0x` and 130 hex digits: `r` (32 bytes), `s` (32 bytes), `v` (1 byte). Wallets
    /// write `v` as 27/28 (Ethereum's convention) or 0/1 (the raw recovery id).
    pub fn parse(s: &str) -> Result<Self, EthError> {
        let digits = s.strip_prefix("0x").ok_or(EthError::Signature)?;
        if digits.len() != 130 {
            return Err(EthError::Signature);
        }
        let mut bytes = [0u8; 65];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| EthError::Signature)?;
        // libsecp256k1 parses a zero r or s (only recovery fails): no valid signature has one.
        if bytes[..32] == [0; 32] || bytes[32..64] == [0; 32] {
            return Err(EthError::Signature);
        }
        let recovery_id = match bytes[64] {
            0 | 27 => RecoveryId::Zero,
            1 | 28 => RecoveryId::One,
            _ => return Err(EthError::Signature),
        };
        RecoverableSignature::from_compact(&bytes[..64], recovery_id)
            .map(Signature)
            .map_err(|_| EthError::Signature)
    }

    pub fn from_secp(signature: RecoverableSignature) -> Self {
        Signature(signature)
    }
}

/// `0x`, `r`, `s` and `v` as 27 or 28, the way Ethereum tools print signatures.
impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (recovery_id, rs) = self.0.serialize_compact();
        write!(f, "0x{}{:02x}", hex::encode(rs), 27 + u8::from(recovery_id))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

fn strip_0x(s: &str) -> &str {
    s.strip_prefix("0x").unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secp256k1::SecretKey;

    // The test vector of the LWS protocol notes (selfkey.js's own test key).
    const PRIVATE_KEY: &str = "8a35142ef030e2f89185c738b11b5a4fc13fe3663dffea64f00059fdf0b038d4";
    const PUBLIC_KEY: &str = "269b4f66ff8f6c8e6478995b2decab8c0bdb3cf0627ca3f8b7b2b134307b0d3248540c0715c6b1ed00d1c259d631af9ef101a484093c11c8f52acfa960349970";
    const ADDRESS: &str = "0x2b6a21dc440cebd4bb9b91b27014ace8aa91a0b9";
    const CHALLENGE: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f";
    const HASH: &str = "be690b74673f50a312e5ed9c43b73306d14ef367e6f30fef026d7a43da145335";
    const SIGNATURE: &str = "0xb434587639534dd60a25d990f3e515e10961880bcb3a807e35746afe4f4e78fa3059eb330b74f5eee3ff76a445a7c2d63aed07974a16653353d3cbf628c1347d1c";

    fn secret(hex_key: &str) -> SecretKey {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut bytes).unwrap();
        SecretKey::from_secret_bytes(bytes).unwrap()
    }

    fn sign(key: &SecretKey, message: &[u8]) -> Signature {
        let digest = secp256k1::Message::from_digest(personal_sign_hash(message));
        Signature::from_secp(RecoverableSignature::sign_ecdsa_recoverable(digest, key))
    }

    #[test]
    fn the_protocol_test_vector() {
        let key = secret(PRIVATE_KEY);
        let public = PublicKey::from_secp(&secp256k1::PublicKey::from_secret_key(&key));
        assert_eq!(public.to_string(), PUBLIC_KEY);
        assert_eq!(PublicKey::parse(PUBLIC_KEY).unwrap(), public);
        assert_eq!(public.address().to_string(), ADDRESS);
        assert_eq!(hex::encode(personal_sign_hash(CHALLENGE.as_bytes())), HASH);

        // libsecp256k1 signs deterministically (RFC 6979), as ethereumjs-util did.
        assert_eq!(sign(&key, CHALLENGE.as_bytes()).to_string(), SIGNATURE);

        let hash = personal_sign_hash(CHALLENGE.as_bytes());
        let with_27 = Signature::parse(SIGNATURE).unwrap();
        let with_0 = Signature::parse(&format!("{}01", &SIGNATURE[..130])).unwrap();
        assert_eq!(with_0, with_27);
        assert_eq!(with_0.to_string(), SIGNATURE);
        for sig in [with_27, with_0] {
            assert_eq!(recover(&hash, &sig).unwrap(), public);
        }
        // The other recovery id yields another key: v is not ignored.
        let flipped = Signature::parse(&format!("{}1b", &SIGNATURE[..130])).unwrap();
        assert_ne!(recover(&hash, &flipped).ok(), Some(public));
        // Another message yields another key.
        let other = personal_sign_hash(b"another challenge");
        assert_ne!(recover(&other, &with_27).ok(), Some(public));
    }

    #[test]
    fn public_keys_accept_0x_and_either_case_and_must_be_on_the_curve() {
        let public = PublicKey::parse(PUBLIC_KEY).unwrap();
        assert_eq!(
            PublicKey::parse(&format!("0x{PUBLIC_KEY}")).unwrap(),
            public
        );
        assert_eq!(
            PublicKey::parse(&PUBLIC_KEY.to_uppercase()).unwrap(),
            public
        );
        // y + 1 is not on the curve.
        let mut off_curve = PUBLIC_KEY.to_string();
        off_curve.replace_range(127.., "1");
        for bad in [
            "",
            "0x",
            &PUBLIC_KEY[..126],
            &format!("{PUBLIC_KEY}00"),
            &format!("04{PUBLIC_KEY}"),
            &format!("0X{PUBLIC_KEY}"),
            &off_curve,
            &"0".repeat(128),
            &"g".repeat(128),
        ] {
            assert_eq!(PublicKey::parse(bad), Err(EthError::PublicKey), "{bad}");
        }
    }

    #[test]
    fn addresses_dids_and_key_ids() {
        let address = Address::parse(ADDRESS).unwrap();
        assert_eq!(
            Address::parse(&ADDRESS.to_uppercase().replacen("0X", "0x", 1)).unwrap(),
            address
        );
        let did = Did::parse(&format!("did:eth:{ADDRESS}")).unwrap();
        assert_eq!(did.address(), address);
        assert_eq!(did.to_string(), format!("did:eth:{ADDRESS}"));
        assert_eq!(
            Did::parse_key_id(&format!("did:eth:{ADDRESS}#keys-1")).unwrap(),
            did
        );
        for bad in [
            ADDRESS.trim_start_matches("0x"),
            &ADDRESS[..41],
            &format!("{ADDRESS}00"),
        ] {
            assert_eq!(Address::parse(bad), Err(EthError::Address), "{bad}");
        }
        for bad in [
            ADDRESS.to_string(),
            format!("did:eth:{}", ADDRESS.trim_start_matches("0x")),
            format!("did:selfkey:{ADDRESS}"),
            format!("did:eth:{ADDRESS}#keys-1"),
        ] {
            assert_eq!(Did::parse(&bad), Err(EthError::Did), "{bad}");
        }
        for bad in [
            format!("did:eth:{ADDRESS}"),
            format!("did:eth:{ADDRESS}#"),
            format!("did:eth:{ADDRESS}#keys 1"),
            format!("did:eth:{ADDRESS}#{}", "k".repeat(65)),
        ] {
            assert_eq!(Did::parse_key_id(&bad), Err(EthError::Did), "{bad}");
        }
    }

    #[test]
    fn eip55_checksums() {
        // The examples of EIP-55 itself.
        for checksummed in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let address = Address::parse(checksummed).unwrap();
            assert_eq!(address.to_eip55(), checksummed);
            assert_eq!(address.to_string(), checksummed.to_lowercase());
        }
    }

    #[test]
    fn signatures_need_0x_130_digits_and_a_known_v() {
        for v in ["02", "1d", "25", "ff"] {
            let bad = format!("{}{v}", &SIGNATURE[..130]);
            assert_eq!(Signature::parse(&bad), Err(EthError::Signature), "{v}");
        }
        let zero_r = format!("0x{}{}", "0".repeat(64), &SIGNATURE[66..]);
        let zero_s = format!("{}{}1b", &SIGNATURE[..66], "0".repeat(64));
        for bad in [
            SIGNATURE.trim_start_matches("0x"),
            &SIGNATURE[..130],
            &format!("{SIGNATURE}00"),
            &zero_r,
            &zero_s,
            &format!("0x{}1b", "f".repeat(128)),
        ] {
            assert_eq!(Signature::parse(bad), Err(EthError::Signature), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,200}") {
            let _ = PublicKey::parse(&s);
            let _ = Address::parse(&s);
            let _ = Did::parse(&s);
            let _ = Did::parse_key_id(&s);
            let _ = Signature::parse(&s);
        }

        #[test]
        fn hex_shaped_input_never_panics_and_accepted_values_round_trip(
            prefix in prop_oneof![Just(""), Just("0x")],
            digits in "[0-9a-fA-F]{40}|[0-9a-fA-F]{128}|[0-9a-fA-F]{130}",
        ) {
            let s = format!("{prefix}{digits}");
            if let Ok(key) = PublicKey::parse(&s) {
                prop_assert_eq!(PublicKey::parse(&key.to_string()), Ok(key));
            }
            if let Ok(address) = Address::parse(&s) {
                prop_assert_eq!(address.to_string(), s.to_lowercase());
                let did = Did::parse(&format!("did:eth:{s}")).unwrap();
                prop_assert_eq!(Did::parse(&did.to_string()), Ok(did));
            }
            if let Ok(sig) = Signature::parse(&s) {
                prop_assert_eq!(Signature::parse(&sig.to_string()), Ok(sig));
                // Recovery of an arbitrary signature over an arbitrary hash either
                // fails or yields a valid key; it never panics.
                if let Ok(key) = recover(&keccak256(s.as_bytes()), &sig) {
                    prop_assert_eq!(PublicKey::parse(&key.to_string()), Ok(key));
                }
            }
        }

        #[test]
        fn every_key_signs_and_recovers(secret_bytes in proptest::array::uniform32(1u8..), message in "\\PC{0,120}") {
            let Ok(key) = SecretKey::from_secret_bytes(secret_bytes) else { return Ok(()) };
            let public = PublicKey::from_secp(&secp256k1::PublicKey::from_secret_key(&key));
            prop_assert_eq!(PublicKey::parse(&format!("0x{public}")), Ok(public));
            let sig = sign(&key, message.as_bytes());
            let parsed = Signature::parse(&sig.to_string()).unwrap();
            prop_assert_eq!(recover(&personal_sign_hash(message.as_bytes()), &parsed), Ok(public));
        }
    }
}
