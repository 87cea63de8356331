//! HS512 JSON Web Tokens, with the algorithm pinned.
//!
//! Account tokens are what integrators verify (with `jwt-simple`), so they are plain
//! HS512 JWTs signed with the configured secret. Every other kind (wallet challenge,
//! wallet session, login, link) is signed with a key derived from the secret for that
//! kind alone and carries a `kind` claim, so no token can stand in for another kind:
//! its signature would not verify.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha512;

use crate::domain::Secret;

type HmacSha512 = Hmac<Sha512>;

/// The only header we issue or accept: `{"alg":"HS512","typ":"JWT"}`.
const HEADER: &str = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9";

/// Larger tokens are refused before any work is done on them.
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A Gatehouse session for an account; what integrators verify.
    Account,
    /// A SelfKey challenge to be signed by a wallet.
    Challenge,
    /// Proof that a wallet answered a challenge.
    Wallet,
    /// The single-use token that `/login` exchanges for an account token.
    Login,
    /// Single-use proof, from a signed-in account, that a wallet may be linked to it.
    Link,
    /// A device that signed in to an account before (the login lockout's device token).
    Device,
}

impl TokenKind {
    /// Every kind, in [`TokenKind::index`] order.
    const ALL: [TokenKind; 6] = [
        TokenKind::Account,
        TokenKind::Challenge,
        TokenKind::Wallet,
        TokenKind::Login,
        TokenKind::Link,
        TokenKind::Device,
    ];

    fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Account => "account",
            TokenKind::Challenge => "challenge",
            TokenKind::Wallet => "wallet",
            TokenKind::Login => "login",
            TokenKind::Link => "link",
            TokenKind::Device => "device",
        }
    }
}

/// Why a token was refused. Callers answer all of these the same way; the reason is
/// for tests and debug logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not HS512")]
    Algorithm,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    Issuer,
    #[error("the token is of another kind")]
    Kind,
}

/// The claims common to every kind, plus the kind's own (`extra`, flattened).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims<T> {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub iss: String,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub extra: T,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    /// Extensions the verifier must understand (RFC 7515, 4.1.11); we understand none,
    /// so a token that lists any, such as an unencoded payload, is refused.
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// Signs and verifies every kind of token.
pub struct TokenKeys {
    /// One HMAC per kind, already keyed: keying hashes the key's inner and outer pads,
    /// two of the six SHA-512 blocks that checking an account token costs, so it is
    /// done once here rather than on every request. Indexed by [`TokenKind::index`].
    keyed: [HmacSha512; 6],
    /// The same for each of `jwt.previous_secrets`: tokens they signed still verify
    /// (until they expire), nothing is signed with them.
    previous: Vec<[HmacSha512; 6]>,
    issuer: String,
}

impl TokenKeys {
    /// `secret` is used as the HMAC key exactly as given (its bytes), as `jwt-simple`
    /// uses the string an integrator passes it.
    pub fn new(secret: &[u8], issuer: &str) -> Self {
        TokenKeys {
            keyed: keys_of(secret),
            previous: Vec::new(),
            issuer: issuer.to_string(),
        }
    }

    /// Also accepts tokens signed with these secrets (`jwt.previous_secrets`), so the
    /// secret can be replaced without ending every session: tokens are signed with the
    /// current secret only.
    pub fn accepting_previous<'a>(mut self, secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        self.previous = secrets.into_iter().map(keys_of).collect();
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn mac(&self, kind: TokenKind, signing_input: &[u8]) -> HmacSha512 {
        let mut mac = self.keyed[kind.index()].clone();
        mac.update(signing_input);
        mac
    }

    /// Issues a token of `kind` for `sub`, valid for `ttl` seconds from `now`.
    /// Returns the token and its `jti`.
    pub fn issue<T: Serialize>(
        &self,
        kind: TokenKind,
        sub: &str,
        now: i64,
        ttl: i64,
        extra: T,
    ) -> (String, String) {
        let jti = super::random_id();
        let claims = Claims {
            sub: sub.to_string(),
            iat: now,
            exp: now + ttl,
            nbf: None,
            iss: self.issuer.clone(),
            jti: jti.clone(),
            kind: (kind != TokenKind::Account).then(|| kind.name().to_string()),
            extra,
        };
        (self.sign(kind, &claims), jti)
    }

    /// Signs arbitrary claims as `kind` (tests use this to forge edge cases).
    pub fn sign<C: Serialize>(&self, kind: TokenKind, claims: &C) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialise");
        let mut token = String::with_capacity(HEADER.len() + payload.len() * 4 / 3 + 90);
        token.push_str(HEADER);
        token.push('.');
        B64.encode_string(&payload, &mut token);
        let tag = self.mac(kind, token.as_bytes()).finalize().into_bytes();
        token.push('.');
        B64.encode_string(tag, &mut token);
        token
    }

    /// Verifies a token of `kind` at time `now`: structure, pinned algorithm,
    /// signature (constant time), expiry, not-before, issuer and kind.
    pub fn verify<T: DeserializeOwned>(
        &self,
        kind: TokenKind,
        token: &str,
        now: i64,
    ) -> Result<Claims<T>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        // Our own header is exactly `HEADER`: nothing to decode. (`jwt-simple`'s has
        // its two members the other way round.)
        if header != HEADER {
            let header: Header = decode_json(header)?;
            if header.alg != "HS512" || header.crit.is_some() {
                return Err(TokenError::Algorithm);
            }
        }
        let signature = B64.decode(signature).map_err(|_| TokenError::Malformed)?;
        let signing_input = &token[..token.len() - signature_len(token)];
        let verifies = |keyed: &[HmacSha512; 6]| {
            let mut mac = keyed[kind.index()].clone();
            mac.update(signing_input.as_bytes());
            mac.verify_slice(&signature).is_ok()
        };
        if !verifies(&self.keyed) && !self.previous.iter().any(verifies) {
            return Err(TokenError::Signature);
        }
        let claims: Claims<T> = decode_json(payload)?;
        let expected_kind = (kind != TokenKind::Account).then(|| kind.name());
        if claims.kind.as_deref() != expected_kind {
            return Err(TokenError::Kind);
        }
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer);
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

/// One HMAC per kind, keyed: the account kind with the secret as given, every other
/// kind with a key derived from it for that kind alone.
fn keys_of(secret: &[u8]) -> [HmacSha512; 6] {
    let keyed = |key: &[u8]| HmacSha512::new_from_slice(key).expect("any key length");
    TokenKind::ALL.map(|kind| {
        if kind == TokenKind::Account {
            return keyed(secret);
        }
        let mut mac = keyed(secret);
        mac.update(b"gatehouse token kind: ");
        mac.update(kind.name().as_bytes());
        let key = Secret::new(mac.finalize().into_bytes());
        keyed(key.expose())
    })
}

/// The length of the last part and its dot.
fn signature_len(token: &str) -> usize {
    token.rsplit('.').next().map_or(0, |s| s.len() + 1)
}

fn decode_json<T: DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = B64.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Reads a token's claims without verifying it: only for tests and tools that need
/// to look inside a token they hold (the wallet does the same with challenges).
pub fn peek_claims(token: &str) -> Option<serde_json::Value> {
    decode_json(token.split('.').nth(1)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Extra {
        #[serde(default)]
        email: Option<String>,
    }

    fn keys() -> TokenKeys {
        TokenKeys::new(
            b"a-test-secret-that-is-long-enough-for-hs512",
            "gatehouse-test",
        )
    }

    #[test]
    fn tokens_of_a_previous_secret_verify_and_are_never_signed() {
        let (a, b) = (
            b"secret-a-that-is-long-enough-for-hs512".as_slice(),
            b"secret-b-that-is-long-enough-for-hs512".as_slice(),
        );
        let old = TokenKeys::new(a, "gatehouse-test");
        let rotated = TokenKeys::new(b, "gatehouse-test").accepting_previous([a]);
        let without = TokenKeys::new(b, "gatehouse-test");
        for kind in TokenKind::ALL {
            let (t, _) = old.issue(kind, "acc-1", 1000, 60, Extra { email: None });
            let claims = rotated.verify::<Extra>(kind, &t, 1001).unwrap();
            assert_eq!(claims.sub, "acc-1");
            assert_eq!(
                without.verify::<Extra>(kind, &t, 1001).unwrap_err(),
                TokenError::Signature
            );
            assert_eq!(
                rotated.verify::<Extra>(kind, &t, 1060).unwrap_err(),
                TokenError::Expired,
                "until it expires"
            );
            let (new, _) = rotated.issue(kind, "acc-1", 1000, 60, Extra { email: None });
            assert!(
                without.verify::<Extra>(kind, &new, 1001).is_ok(),
                "signed with B"
            );
            assert_eq!(
                old.verify::<Extra>(kind, &new, 1001).unwrap_err(),
                TokenError::Signature
            );
        }
        // A previous secret keeps its kinds apart too.
        let (t, _) = old.issue(TokenKind::Link, "acc-1", 1000, 60, Extra { email: None });
        assert_eq!(
            rotated
                .verify::<Extra>(TokenKind::Login, &t, 1001)
                .unwrap_err(),
            TokenError::Signature
        );
    }

    #[test]
    fn round_trip_and_header_is_pinned() {
        let k = keys();
        let (t, jti) = k.issue(
            TokenKind::Account,
            "acc-1",
            1000,
            60,
            Extra {
                email: Some("a@b.io".into()),
            },
        );
        assert!(t.starts_with(HEADER));
        let c: Claims<Extra> = k.verify(TokenKind::Account, &t, 1001).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.iat, c.exp, c.jti),
            ("acc-1", 1000, 1060, jti)
        );
        assert_eq!(c.extra.email.as_deref(), Some("a@b.io"));
        assert!(c.kind.is_none());
    }

    #[test]
    fn signatures_are_hmac_sha512_under_the_secret_or_the_kinds_derived_key() {
        let secret = b"a-test-secret-that-is-long-enough-for-hs512";
        let k = keys();
        for (i, kind) in TokenKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i);
            let (t, _) = k.issue(kind, "s", 1000, 60, Extra { email: None });
            let (signing_input, signature) = t.rsplit_once('.').unwrap();
            let key = if kind == TokenKind::Account {
                secret.to_vec()
            } else {
                let mut mac = HmacSha512::new_from_slice(secret).unwrap();
                mac.update(b"gatehouse token kind: ");
                mac.update(kind.name().as_bytes());
                mac.finalize().into_bytes().to_vec()
            };
            let mut mac = HmacSha512::new_from_slice(&key).unwrap();
            mac.update(signing_input.as_bytes());
            assert_eq!(
                B64.decode(signature).unwrap(),
                mac.finalize().into_bytes().to_vec(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn expiry_and_not_before() {
        let k = keys();
        let (t, _) = k.issue(TokenKind::Account, "s", 1000, 60, Extra { email: None });
        assert_eq!(
            k.verify::<Extra>(TokenKind::Account, &t, 1060).unwrap_err(),
            TokenError::Expired
        );
        let mut c = k.verify::<Extra>(TokenKind::Account, &t, 1000).unwrap();
        c.nbf = Some(2000);
        c.exp = 3000;
        let t = k.sign(TokenKind::Account, &c);
        assert_eq!(
            k.verify::<Extra>(TokenKind::Account, &t, 1500).unwrap_err(),
            TokenError::NotYetValid
        );
    }

    #[test]
    fn kinds_do_not_mix() {
        let k = keys();
        let kinds = TokenKind::ALL;
        for issued in kinds {
            let (t, _) = k.issue(issued, "s", 1000, 60, Extra { email: None });
            for expected in kinds {
                let r = k.verify::<Extra>(expected, &t, 1001);
                assert_eq!(r.is_ok(), issued == expected, "{issued:?} as {expected:?}");
            }
        }
    }

    #[test]
    fn other_algorithms_and_tampering_are_refused() {
        let k = keys();
        let (t, _) = k.issue(TokenKind::Account, "s", 1000, 60, Extra { email: None });
        let (_, payload_sig) = t.split_once('.').unwrap();
        for alg in ["none", "HS256", "HS384", "RS256", "ES256", "hs512"] {
            let h = B64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let forged = format!("{h}.{payload_sig}");
            assert_eq!(
                k.verify::<Extra>(TokenKind::Account, &forged, 1001)
                    .unwrap_err(),
                TokenError::Algorithm
            );
        }
        let stripped = &t[..t.rfind('.').unwrap() + 1];
        assert_eq!(
            k.verify::<Extra>(TokenKind::Account, stripped, 1001)
                .unwrap_err(),
            TokenError::Signature
        );
        let parts: Vec<&str> = t.split('.').collect();
        let other = B64
            .encode(br#"{"sub":"admin","iat":1000,"exp":9999,"iss":"gatehouse-test","jti":"x"}"#);
        let altered = format!("{}.{}.{}", parts[0], other, parts[2]);
        assert_eq!(
            k.verify::<Extra>(TokenKind::Account, &altered, 1001)
                .unwrap_err(),
            TokenError::Signature
        );
        let wrong_issuer = TokenKeys::new(
            b"a-test-secret-that-is-long-enough-for-hs512",
            "someone-else",
        );
        assert_eq!(
            wrong_issuer
                .verify::<Extra>(TokenKind::Account, &t, 1001)
                .unwrap_err(),
            TokenError::Issuer
        );
        let long = format!("{t}{}", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(
            k.verify::<Extra>(TokenKind::Account, &long, 1001)
                .unwrap_err(),
            TokenError::Malformed
        );
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_verifies_or_panics(s in "\\PC{0,300}") {
            prop_assert!(keys().verify::<Extra>(TokenKind::Account, &s, 1001).is_err());
        }

        #[test]
        fn only_the_hs512_header_verifies_even_when_signed_with_our_key(
            alg in prop_oneof![
                Just("HS512".to_string()),
                Just("none".to_string()),
                "[A-Za-z0-9]{0,8}",
            ],
            extra in prop_oneof![
                Just(String::new()),
                Just(r#","typ":"JWT""#.to_string()),
                Just(r#","crit":["b64"],"b64":false"#.to_string()),
                Just(r#","kid":"../../etc/passwd""#.to_string()),
            ],
        ) {
            let k = keys();
            let (t, _) = k.issue(TokenKind::Account, "s", 1000, 60, Extra { email: None });
            let payload = t.split('.').nth(1).unwrap();
            let header = B64.encode(format!(r#"{{"alg":"{alg}"{extra}}}"#));
            let input = format!("{header}.{payload}");
            let tag = k.mac(TokenKind::Account, input.as_bytes()).finalize().into_bytes();
            let forged = format!("{input}.{}", B64.encode(tag));
            let accepted = k.verify::<Extra>(TokenKind::Account, &forged, 1001).is_ok();
            prop_assert_eq!(accepted, alg == "HS512" && !extra.contains("crit"));
        }

        #[test]
        fn arbitrary_dotted_parts_never_verify(a in "[A-Za-z0-9_-]{0,60}", b in "[A-Za-z0-9_-]{0,60}", c in "[A-Za-z0-9_-]{0,90}") {
            let t = format!("{a}.{b}.{c}");
            prop_assert!(keys().verify::<Extra>(TokenKind::Account, &t, 1001).is_err());
        }
    }
}
