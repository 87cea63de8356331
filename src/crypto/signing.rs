//! Asymmetric account tokens (`jwt.algorithm` `EdDSA` or `ES256`): key pairs, their
//! public JWKs, the private halves sealed for the database, signing, and verification.
//!
//! Verification is `jsonwebtoken`'s (header, algorithm pinned per key, signature, typed
//! claims, `exp`/`nbf`/`iss`), on a crypto provider of ours that calls ed25519-dalek,
//! p256 and rsa (the crate's own `rust_crypto` backend pulls a second generation of RSA,
//! see Cargo.toml). Signing uses the same JOSE header type and encoding, with the key
//! pair held ready: the provider interface rebuilds a signing key from bytes for every
//! call, a scalar multiplication each time, as much as the signature itself. ES256 and
//! RS256 signatures are ring's (the crate rustls links already): its RSA-2048 private-key
//! operation takes about a quarter of the `rsa` release candidate's CPU time and its
//! P-256 a fraction of p256's (assembly, constant-time), and an RS256 ID token is most of
//! a code exchange's cost. The keys, their generation, their sealed form and every
//! verification stay as they were.

use std::sync::Once;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, KeyUtils};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use super::jwt::{Claims, MAX_TOKEN_LEN, TokenError};
use crate::domain::Secret;

/// The asymmetric algorithms tokens may be signed with: account tokens EdDSA or ES256,
/// OpenID Connect tokens any of the three (RS256 by default, as Discovery requires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    EdDSA,
    ES256,
    RS256,
}

/// The size of the RSA keys we make.
const RSA_BITS: usize = 2048;

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "EdDSA" => Some(Algorithm::EdDSA),
            "ES256" => Some(Algorithm::ES256),
            "RS256" => Some(Algorithm::RS256),
            _ => None,
        }
    }

    fn jose(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

enum Signing {
    Ed25519(ed25519_dalek::SigningKey),
    /// ring's signer, and the private scalar (what is sealed).
    P256(Box<ring::signature::EcdsaKeyPair>, Secret<Vec<u8>>),
    /// ring's PKCS#1 v1.5 signer, and the private key's PKCS#8 DER (what is sealed).
    Rsa(Box<ring::signature::RsaKeyPair>, Secret<Vec<u8>>),
}

/// The operating system's random source, as ring takes it (ECDSA nonces).
fn ring_rng() -> &'static ring::rand::SystemRandom {
    static RNG: std::sync::OnceLock<ring::rand::SystemRandom> = std::sync::OnceLock::new();
    RNG.get_or_init(ring::rand::SystemRandom::new)
}

/// The operating system's random source, for RSA key generation.
fn system_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// A signing key: its private half, ready to sign, and its public half as a JWK and as
/// `jsonwebtoken`'s decoding key.
/// The `typ` of RFC 9068 access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

pub struct KeyPair {
    kid: String,
    algorithm: Algorithm,
    signing: Signing,
    /// The encoded JOSE header `{"typ":"JWT","alg":…,"kid":…}`, made once.
    header: String,
    /// The same with `"typ":"at+jwt"` (RFC 9068 access tokens), made once.
    access_header: String,
    decoding: DecodingKey,
    validation: Validation,
    jwk: Jwk,
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate(algorithm: Algorithm, kid: &str, issuer: &str) -> KeyPair {
        if algorithm == Algorithm::RS256 {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut system_rng(), RSA_BITS)
                .expect("a 2048-bit RSA key is generated");
            let der = key.to_pkcs8_der().expect("an RSA key encodes");
            return KeyPair::from_private(algorithm, kid, der.as_bytes(), issuer)
                .expect("a key just made opens");
        }
        loop {
            // A P-256 scalar must be below the group order: all but a 2^-32 share of
            // 32-byte strings are.
            let private = Secret::new(super::random_bytes::<32>().to_vec());
            if let Ok(pair) = KeyPair::from_private(algorithm, kid, private.expose(), issuer) {
                return pair;
            }
        }
    }

    /// The key pair of a private key (the 32 bytes [`KeyPair::private_bytes`] gives).
    pub fn from_private(
        algorithm: Algorithm,
        kid: &str,
        private: &[u8],
        issuer: &str,
    ) -> Result<KeyPair, SigningKeyError> {
        install_provider();
        let (signing, parameters, decoding) = match algorithm {
            Algorithm::EdDSA => {
                let seed: &[u8; 32] = private.try_into().map_err(|_| SigningKeyError)?;
                let key = ed25519_dalek::SigningKey::from_bytes(seed);
                let public = key.verifying_key().to_bytes();
                let parameters = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: B64.encode(public),
                });
                let decoding = DecodingKey::from_ed_der(&public);
                (Signing::Ed25519(key), parameters, decoding)
            }
            Algorithm::ES256 => {
                let key =
                    p256::ecdsa::SigningKey::from_slice(private).map_err(|_| SigningKeyError)?;
                let point = key.verifying_key().to_sec1_bytes();
                let (x, y) = point[1..].split_at(32);
                let parameters = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: B64.encode(x),
                    y: B64.encode(y),
                });
                let decoding = DecodingKey::from_ec_der(&point);
                let signer = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    private,
                    &point,
                    ring_rng(),
                )
                .map_err(|_| SigningKeyError)?;
                (
                    Signing::P256(Box::new(signer), Secret::new(private.to_vec())),
                    parameters,
                    decoding,
                )
            }
            Algorithm::RS256 => {
                use rsa::pkcs1::EncodeRsaPublicKey;
                use rsa::pkcs8::DecodePrivateKey;
                use rsa::traits::PublicKeyParts;
                let key =
                    rsa::RsaPrivateKey::from_pkcs8_der(private).map_err(|_| SigningKeyError)?;
                let public = key.to_public_key();
                let parameters = AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n: B64.encode(public.n_bytes()),
                    e: B64.encode(public.e_bytes()),
                });
                let der = public.to_pkcs1_der().map_err(|_| SigningKeyError)?;
                let decoding = DecodingKey::from_rsa_der(der.as_bytes());
                let signer = ring::signature::RsaKeyPair::from_pkcs8(private)
                    .map_err(|_| SigningKeyError)?;
                (
                    Signing::Rsa(Box::new(signer), Secret::new(private.to_vec())),
                    parameters,
                    decoding,
                )
            }
        };
        let jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(match algorithm {
                    Algorithm::EdDSA => KeyAlgorithm::EdDSA,
                    Algorithm::ES256 => KeyAlgorithm::ES256,
                    Algorithm::RS256 => KeyAlgorithm::RS256,
                }),
                key_id: Some(kid.to_owned()),
                ..CommonParameters::default()
            },
            algorithm: parameters,
        };
        let mut header = Header::new(algorithm.jose());
        header.kid = Some(kid.to_owned());
        let encode = |h: &Header| B64.encode(serde_json::to_vec(h).expect("a header serialises"));
        let access_header = encode(&Header {
            typ: Some(ACCESS_TOKEN_TYP.to_owned()),
            ..header.clone()
        });
        let header = encode(&header);
        let mut validation = Validation::new(algorithm.jose());
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        Ok(KeyPair {
            kid: kid.to_owned(),
            algorithm,
            signing,
            header,
            access_header,
            decoding,
            validation,
            jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public key, as the JWKS publishes it.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The private key, to be sealed: 32 bytes for Ed25519 (the seed) and P-256 (the
    /// scalar), PKCS#8 DER for RSA.
    pub fn private_bytes(&self) -> Secret<Vec<u8>> {
        match &self.signing {
            Signing::Ed25519(k) => Secret::new(k.to_bytes().to_vec()),
            Signing::P256(_, scalar) => scalar.clone(),
            Signing::Rsa(_, der) => der.clone(),
        }
    }

    /// A JWT of `claims`, with this key's `kid` in its header.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        self.sign_encoded(&self.header, claims)
    }

    /// A JWT of `claims` whose header's `typ` is `typ` (`at+jwt` for RFC 9068 access
    /// tokens, which a verifier must not take for another kind of token).
    pub fn sign_typed<C: Serialize>(&self, typ: &str, claims: &C) -> String {
        if typ == ACCESS_TOKEN_TYP {
            return self.sign_encoded(&self.access_header, claims);
        }
        let mut header = Header::new(self.algorithm.jose());
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        let header = B64.encode(serde_json::to_vec(&header).expect("a header serialises"));
        self.sign_encoded(&header, claims)
    }

    fn sign_encoded<C: Serialize>(&self, header: &str, claims: &C) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialise");
        let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 350);
        token.push_str(header);
        token.push('.');
        B64.encode_string(&payload, &mut token);
        let signature: Vec<u8> = match &self.signing {
            Signing::Ed25519(k) => {
                use ed25519_dalek::Signer;
                k.sign(token.as_bytes()).to_bytes().to_vec()
            }
            // ECDSA's IEEE P1363 form, r then s, 32 bytes each, as JWS wants it.
            Signing::P256(k, _) => k
                .sign(ring_rng(), token.as_bytes())
                .expect("the system's random source answers")
                .as_ref()
                .to_vec(),
            Signing::Rsa(k, _) => {
                let mut signature = vec![0; k.public().modulus_len()];
                k.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    ring_rng(),
                    token.as_bytes(),
                    &mut signature,
                )
                .expect("a buffer of the modulus' length takes the signature");
                signature
            }
        };
        token.push('.');
        B64.encode_string(signature, &mut token);
        token
    }

    /// Verifies a token this key signed, at `now`: the header names this key and its
    /// algorithm and nothing we do not understand, the signature verifies, the claims
    /// have their types, `exp` is after `now`, `nbf` not after it, `iss` is ours.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Claims<T>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let embedded = header.jwk.is_some()
            || header.jku.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some();
        if header.alg != self.algorithm.jose() || header.crit.is_some() || embedded {
            return Err(TokenError::Algorithm);
        }
        if header.kid.as_deref() != Some(&self.kid) {
            return Err(TokenError::Signature);
        }
        let data = jsonwebtoken::decode::<Claims<T>>(token, &self.decoding, &self.validation)
            .map_err(token_error)?;
        let claims = data.claims;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(TokenError::NotYetValid);
        }
        if claims.kind.is_some() {
            return Err(TokenError::Kind);
        }
        Ok(claims)
    }
}

impl KeyPair {
    /// Verifies the header and signature of a token this key signed, and its `iss`,
    /// whatever its `exp`: an ID token a relying party hands back as `id_token_hint`
    /// (RP-Initiated Logout §2 accepts an expired one). The claims are `T` as they are.
    pub fn verify_ignoring_expiry<T: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<T, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let embedded = header.jwk.is_some()
            || header.jku.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some();
        if header.alg != self.algorithm.jose() || header.crit.is_some() || embedded {
            return Err(TokenError::Algorithm);
        }
        if header.kid.as_deref() != Some(&self.kid) {
            return Err(TokenError::Signature);
        }
        let mut validation = self.validation.clone();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["iss", "sub"]);
        jsonwebtoken::decode::<T>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(token_error)
    }
}

fn token_error(e: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => TokenError::Signature,
        K::InvalidAlgorithm | K::InvalidAlgorithmName => TokenError::Algorithm,
        K::ExpiredSignature => TokenError::Expired,
        K::ImmatureSignature => TokenError::NotYetValid,
        K::InvalidIssuer => TokenError::Issuer,
        _ => TokenError::Malformed,
    }
}

/// A key that cannot be used: a private key of the wrong length or out of range.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("not a usable private key")]
pub struct SigningKeyError;

/// The kid a token's header names, if it is a well-formed JWT header; for choosing the
/// key, before anything is verified.
pub fn kid_of(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// The `typ` a token's header names, if it is a well-formed JWT header.
pub fn typ_of(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    jsonwebtoken::decode_header(token).ok()?.typ
}

/// Seals private keys for the database ([`super::seal`]), with the kid and the
/// algorithm as associated data, so a sealed key cannot be moved to another row.
pub struct Sealer(super::seal::Sealer);

impl Sealer {
    pub fn new(secret: &[u8]) -> Sealer {
        Sealer(super::seal::Sealer::new(secret, b"gatehouse signing keys"))
    }

    fn aad(kid: &str, algorithm: Algorithm) -> Vec<u8> {
        format!("{kid}.{}", algorithm.as_str()).into_bytes()
    }

    /// `v1.<nonce>.<ciphertext and tag>`, base64url.
    pub fn seal(&self, kid: &str, algorithm: Algorithm, private: &[u8]) -> String {
        self.0.seal(&Self::aad(kid, algorithm), private)
    }

    /// The private key sealed for `kid`; `None` if it was sealed under another secret,
    /// for another row, or altered.
    pub fn open(&self, kid: &str, algorithm: Algorithm, sealed: &str) -> Option<Secret<Vec<u8>>> {
        self.0.open(&Self::aad(kid, algorithm), sealed)
    }
}

/// `jsonwebtoken`'s verifiers for our two algorithms, on the crates we link. Installed
/// once per process; signing goes through [`KeyPair::sign`], not through it.
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: |_, _| Err(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into()),
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Installs our verifiers as `jsonwebtoken`'s provider (once per process).
pub fn install_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = PROVIDER.install_default();
    });
}

fn verifier(
    algorithm: &jsonwebtoken::Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    use jsonwebtoken::DecodingKeyKind;
    use jsonwebtoken::errors::ErrorKind;
    if let (jsonwebtoken::Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) =
        (algorithm, key.kind())
    {
        let n = rsa::BoxedUint::from_be_slice_vartime(n);
        let e = rsa::BoxedUint::from_be_slice_vartime(e);
        let key =
            rsa::RsaPublicKey::new(n, e).map_err(|_| ErrorKind::InvalidRsaKey(String::new()))?;
        return Ok(Box::new(RsaVerifier(rsa::pkcs1v15::VerifyingKey::new(key))));
    }
    let bytes = key.try_get_as_bytes()?;
    match algorithm {
        jsonwebtoken::Algorithm::EdDSA => {
            let bytes: &[u8; 32] = bytes.try_into().map_err(|_| ErrorKind::InvalidEddsaKey)?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
                .map_err(|_| ErrorKind::InvalidEddsaKey)?;
            Ok(Box::new(Ed25519Verifier(key)))
        }
        jsonwebtoken::Algorithm::ES256 => {
            // p256 checks the point (compressed or not, on the curve); ring verifies
            // with its uncompressed form.
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
            let point = key.to_sec1_point(false).as_bytes().to_vec();
            Ok(Box::new(P256Verifier(
                ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    point,
                ),
            )))
        }
        jsonwebtoken::Algorithm::RS256 => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            let key = rsa::RsaPublicKey::from_pkcs1_der(bytes)
                .map_err(|_| ErrorKind::InvalidRsaKey(String::new()))?;
            Ok(Box::new(RsaVerifier(rsa::pkcs1v15::VerifyingKey::new(key))))
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

struct Ed25519Verifier(ed25519_dalek::VerifyingKey);

impl signature::Verifier<Vec<u8>> for Ed25519Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let signature = ed25519_dalek::Signature::from_slice(signature)?;
        // Strict: no small-order keys, no malleable signatures.
        self.0.verify_strict(msg, &signature)
    }
}

impl JwtVerifier for Ed25519Verifier {
    fn algorithm(&self) -> jsonwebtoken::Algorithm {
        jsonwebtoken::Algorithm::EdDSA
    }
}

/// ES256 (ECDSA P-256 with SHA-256, the signature as r || s): ring's verification
/// (its P-256 is several times faster than p256's), of a point p256 has checked.
struct P256Verifier(ring::signature::UnparsedPublicKey<Vec<u8>>);

impl signature::Verifier<Vec<u8>> for P256Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        self.0
            .verify(msg, signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for P256Verifier {
    fn algorithm(&self) -> jsonwebtoken::Algorithm {
        jsonwebtoken::Algorithm::ES256
    }
}

struct RsaVerifier(rsa::pkcs1v15::VerifyingKey<Sha256>);

impl signature::Verifier<Vec<u8>> for RsaVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice())?;
        signature::Verifier::verify(&self.0, msg, &signature)
    }
}

impl JwtVerifier for RsaVerifier {
    fn algorithm(&self) -> jsonwebtoken::Algorithm {
        jsonwebtoken::Algorithm::RS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Extra {
        sid: String,
    }

    fn claims(now: i64) -> Claims<Extra> {
        Claims {
            sub: "acc".into(),
            iat: now,
            exp: now + 60,
            nbf: None,
            iss: "gatehouse-test".into(),
            jti: "j".into(),
            kind: None,
            extra: Extra { sid: "s".into() },
        }
    }

    #[test]
    fn an_access_token_header_made_once_is_the_header_made_each_time() {
        let now = crate::domain::unix_now();
        let pair = KeyPair::generate(Algorithm::EdDSA, "k1", "gatehouse-test");
        let header = |token: &str| -> serde_json::Value {
            serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
        };
        let access = pair.sign_typed(ACCESS_TOKEN_TYP, &claims(now));
        let logout = pair.sign_typed("logout+jwt", &claims(now));
        assert_eq!(
            header(&access),
            serde_json::json!({"typ": "at+jwt", "alg": "EdDSA", "kid": "k1"})
        );
        assert_eq!(
            header(&logout),
            serde_json::json!({"typ": "logout+jwt", "alg": "EdDSA", "kid": "k1"})
        );
        assert_eq!(typ_of(&access).as_deref(), Some("at+jwt"));
        let c: Claims<Extra> = pair.verify(&access, now + 1).unwrap();
        assert_eq!(c.extra.sid, "s");
    }

    #[test]
    fn each_algorithm_signs_and_verifies_and_names_its_key() {
        // jsonwebtoken checks `exp` against the clock too: claims of now.
        let now = crate::domain::unix_now();
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let pair = KeyPair::generate(alg, "k1", "gatehouse-test");
            let token = pair.sign(&claims(now));
            assert_eq!(kid_of(&token).as_deref(), Some("k1"));
            let header: serde_json::Value =
                serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap())
                    .unwrap();
            assert_eq!(header["alg"], alg.as_str());
            let c: Claims<Extra> = pair.verify(&token, now + 1).unwrap();
            assert_eq!(c.extra.sid, "s");
            assert_eq!(
                pair.verify::<Extra>(&token, now + 60).unwrap_err(),
                TokenError::Expired
            );
            // Rebuilt from its private bytes, the same key.
            let again =
                KeyPair::from_private(alg, "k1", pair.private_bytes().expose(), "gatehouse-test")
                    .unwrap();
            assert_eq!(again.jwk(), pair.jwk());
            assert!(again.verify::<Extra>(&token, now + 1).is_ok());
            let other = KeyPair::generate(alg, "k1", "gatehouse-test");
            assert_eq!(
                other.verify::<Extra>(&token, now + 1).unwrap_err(),
                TokenError::Signature
            );
            let elsewhere = KeyPair::generate(alg, "k1", "someone-else");
            let foreign = elsewhere.sign(&claims(now));
            assert_eq!(
                elsewhere.verify::<Extra>(&foreign, now + 1).unwrap_err(),
                TokenError::Issuer
            );
        }
    }

    #[test]
    fn tampered_and_confused_tokens_are_refused() {
        let pair = KeyPair::generate(Algorithm::EdDSA, "k1", "gatehouse-test");
        let es = KeyPair::generate(Algorithm::ES256, "k1", "gatehouse-test");
        let token = es.sign(&claims(1000));
        assert_eq!(
            pair.verify::<Extra>(&token, 1001).unwrap_err(),
            TokenError::Algorithm,
            "an ES256 token against an EdDSA key"
        );
        let token = pair.sign(&claims(1000));
        let (input, signature) = token.rsplit_once('.').unwrap();
        let (_, payload) = input.split_once('.').unwrap();
        for header in [
            r#"{"alg":"EdDSA","kid":"k2"}"#,
            r#"{"alg":"EdDSA"}"#,
            r#"{"alg":"EdDSA","kid":"k1","crit":["b64"],"b64":false}"#,
            r#"{"alg":"EdDSA","kid":"k1","jku":"https://evil.example/jwks"}"#,
            r#"{"alg":"none","kid":"k1"}"#,
            r#"{"alg":"HS512","kid":"k1"}"#,
        ] {
            let forged = format!("{}.{payload}.{signature}", B64.encode(header));
            assert!(pair.verify::<Extra>(&forged, 1001).is_err(), "{header}");
        }
        let mut altered = claims(1000);
        altered.sub = "admin".into();
        let altered_payload = B64.encode(serde_json::to_vec(&altered).unwrap());
        let forged = format!(
            "{}.{altered_payload}.{signature}",
            token.split('.').next().unwrap()
        );
        assert_eq!(
            pair.verify::<Extra>(&forged, 1001).unwrap_err(),
            TokenError::Signature
        );
        for exp in [r#""9999999999""#, "9999999999.5", "[9999999999]"] {
            let payload = format!(
                r#"{{"sub":"acc","iat":1000,"exp":{exp},"iss":"gatehouse-test","jti":"j","sid":"s"}}"#
            );
            let message = format!(
                "{}.{}",
                token.split('.').next().unwrap(),
                B64.encode(payload)
            );
            let signed = resign(&pair, &message);
            assert!(pair.verify::<Extra>(&signed, 1001).is_err(), "exp {exp}");
        }
    }

    fn resign(pair: &KeyPair, message: &str) -> String {
        let Signing::Ed25519(k) = &pair.signing else {
            unreachable!()
        };
        use ed25519_dalek::Signer;
        format!(
            "{message}.{}",
            B64.encode(k.sign(message.as_bytes()).to_bytes())
        )
    }

    #[test]
    fn sealed_keys_open_only_for_their_row_and_secret() {
        let sealer = Sealer::new(b"a-test-secret-that-is-long-enough-for-hs512");
        let sealed = sealer.seal("k1", Algorithm::EdDSA, &[7; 32]);
        assert!(sealed.starts_with("v1."), "{sealed}");
        assert!(!sealed.contains(&B64.encode([7u8; 32])));
        assert_eq!(
            sealer
                .open("k1", Algorithm::EdDSA, &sealed)
                .unwrap()
                .expose(),
            &vec![7; 32]
        );
        assert!(sealer.open("k2", Algorithm::EdDSA, &sealed).is_none());
        assert!(sealer.open("k1", Algorithm::ES256, &sealed).is_none());
        let other = Sealer::new(b"another-secret-that-is-long-enough-for-hs512");
        assert!(other.open("k1", Algorithm::EdDSA, &sealed).is_none());
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(sealer.open("k1", Algorithm::EdDSA, &altered).is_none());
        assert!(sealer.open("k1", Algorithm::EdDSA, "v2.x.y").is_none());
    }
}
