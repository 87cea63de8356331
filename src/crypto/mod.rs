//! Cryptography, kept boring: pinned algorithms and parameters, constant-time
//! compares, keys that cannot be printed.

pub mod eth;
pub mod jwt;
pub mod link_token;
pub mod ownid_signature;
pub mod passwords;
pub mod refresh;
pub mod seal;
pub mod signing;
pub mod tag;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf
}

/// The hex SHA-256 of a high-entropy token, as single-use values are stored: a copy
/// of the database yields none.
pub fn digest_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A random identifier: 16 bytes as 32 hex digits.
pub fn random_id() -> String {
    hex::encode(random_bytes::<16>())
}
