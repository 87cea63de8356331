//! Client assertions (`private_key_jwt`, RFC 7523 §3, OpenID Connect Core §9): a JWT
//! the client signs with a key of the JWK Set it registered.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;

/// How long, at most, an assertion may live (its `exp` from now), seconds.
const MAX_LIFETIME_SECS: i64 = 600;

/// The `sub` an assertion names (its client), read before anything is verified, to
/// find the client whose keys verify it.
pub fn subject(assertion: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Sub {
        sub: String,
    }
    if assertion.len() > 8192 {
        return None;
    }
    let payload = assertion.split('.').nth(1)?;
    let sub: Sub = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
    Some(sub.sub)
}

#[derive(Deserialize)]
struct AssertionClaims {
    jti: String,
    exp: i64,
}

/// The assertion's `jti` and `exp` if a key of `jwks` signed it (RS256, ES256 or
/// EdDSA, as that key says), its `iss` and `sub` are `client_id`, its `aud` names one of
/// `audiences`, and it is unexpired and lives at most ten minutes. The caller records
/// the `jti` so that it is used once.
pub fn verify(
    assertion: &str,
    jwks: &str,
    client_id: &str,
    audiences: &[&str],
    now: i64,
) -> Option<(String, i64)> {
    let set: JwkSet = serde_json::from_str(jwks).ok()?;
    let header = jsonwebtoken::decode_header(assertion).ok()?;
    let embedded = header.jwk.is_some()
        || header.jku.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some();
    let allowed = [
        jsonwebtoken::Algorithm::RS256,
        jsonwebtoken::Algorithm::ES256,
        jsonwebtoken::Algorithm::EdDSA,
    ];
    if embedded || !allowed.contains(&header.alg) {
        return None;
    }
    let candidates = set
        .keys
        .iter()
        .filter(|k| match (&header.kid, &k.common.key_id) {
            (Some(wanted), Some(kid)) => wanted == kid,
            (Some(_), None) => false,
            (None, _) => true,
        });
    // RSA keys come as their modulus and exponent, which our verifier reads.
    for jwk in candidates {
        let family_fits = matches!(
            (&jwk.algorithm, header.alg),
            (AlgorithmParameters::RSA(_), jsonwebtoken::Algorithm::RS256)
                | (
                    AlgorithmParameters::EllipticCurve(_),
                    jsonwebtoken::Algorithm::ES256
                )
                | (
                    AlgorithmParameters::OctetKeyPair(_),
                    jsonwebtoken::Algorithm::EdDSA
                )
        );
        if !family_fits {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.set_issuer(&[client_id]);
        validation.sub = Some(client_id.to_owned());
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        crate::crypto::signing::install_provider();
        let Ok(data) = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) else {
            continue;
        };
        let c = data.claims;
        if c.exp <= now || c.exp > now + MAX_LIFETIME_SECS || c.jti.is_empty() {
            return None;
        }
        return Some((c.jti, c.exp));
    }
    None
}
