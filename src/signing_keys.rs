//! Signing keys of asymmetric account tokens (`jwt.algorithm` `EdDSA` or `ES256`) and of
//! the OpenID Connect provider's ID and access tokens (RS256, ES256 and EdDSA side by
//! side): which key signs, which keys are accepted and published, and rotation. Knows
//! nothing of HTTP or SQL.
//!
//! The two purposes never share a key: each [`SigningKeys`] loads and accepts only its
//! own, so an ID token (or an OIDC access token) is never taken for an account token.
//! The JWKS publishes both.
//!
//! Keys live in the database, their private halves sealed under a key derived from the
//! JWT secret, so every node signs with the same keys and accepts every other node's
//! tokens; nothing a node holds in memory is more than a copy of those rows, reloaded
//! every few seconds and at once when a token names a key it has not seen.
//!
//! Rotation never fails a verifier that caches the JWKS for its `max-age`: the next key
//! is published first and signs only `max-age` later, when every cached copy of the
//! JWKS holds it; the key it replaces stays published until every token it signed has
//! expired (`token_lifetime_secs` after it stopped signing, plus a margin for clocks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::de::DeserializeOwned;

use crate::crypto::jwt::{Claims, TokenError};
use crate::crypto::random_id;
use crate::crypto::signing::{Algorithm, KeyPair, Sealer, kid_of};
use crate::store::{DynStore, StoredKey};

/// How far the nodes' clocks may disagree: a key stays published this much longer than
/// its last token lives.
pub const CLOCK_MARGIN_SECS: i64 = 60;

/// A token naming an unknown key makes the node read the keys again, at most this often.
const MISS_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// What a key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Account tokens, in the one algorithm of `jwt.algorithm`.
    Account,
    /// OpenID Connect ID and access tokens, in each algorithm of the policy at once.
    Oidc,
}

impl KeyPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPurpose::Account => "account",
            KeyPurpose::Oidc => "oidc",
        }
    }
}

/// What the keys are for, from the configuration.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    pub purpose: KeyPurpose,
    /// The algorithm that signs (account tokens; for OIDC the default, RS256).
    pub algorithm: Algorithm,
    /// Further algorithms that sign beside it (OIDC: ES256 and EdDSA, for the clients
    /// that registered them).
    pub also: Vec<Algorithm>,
    /// The JWKS's `Cache-Control: max-age`: a published key signs this long after.
    pub jwks_max_age_secs: i64,
    /// Account tokens' lifetime.
    pub token_ttl_secs: i64,
    /// The tokens' `iss`.
    pub issuer: String,
}

impl KeyPolicy {
    /// Every algorithm that signs.
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        std::iter::once(self.algorithm).chain(self.also.iter().copied())
    }

    /// How often a node reads the keys again: well within `max-age`, so a node knows a
    /// key long before it signs.
    pub fn reload_every(&self) -> Duration {
        Duration::from_secs((self.jwks_max_age_secs / 4).clamp(1, 30) as u64)
    }
}

/// Where a key is in its life at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, signing from `signs_from`.
    Next,
    /// The key that signs now.
    Signing,
    /// Another key signs; still published for the tokens it signed (or, for a key of
    /// another algorithm, still accepted).
    Retiring,
    /// No longer published (deleted at the next purge).
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Signing => "signing",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }
}

/// A key as `gatehouse keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: String,
    pub purpose: String,
    pub state: KeyState,
    pub created_at: i64,
    pub signs_from: i64,
    pub retires_at: Option<i64>,
}

/// Whether key `kid` is retired at `now` in what was last read.
fn retired(loaded: &Loaded, kid: &str, now: i64) -> bool {
    loaded
        .signing_order
        .iter()
        .any(|k| k.kid == kid && k.retires_at.is_some_and(|r| r <= now))
}

/// The signing key at `now` among `rows` for `algorithm`: the newest whose time came.
fn signing_kid(rows: &[StoredKey], algorithm: Algorithm, now: i64) -> Option<&str> {
    rows.iter()
        .filter(|k| k.algorithm == algorithm.as_str() && k.signs_from <= now)
        .filter(|k| k.retires_at.is_none_or(|r| r > now))
        .max_by(|a, b| {
            (a.signs_from, a.created_at, &a.kid).cmp(&(b.signs_from, b.created_at, &b.kid))
        })
        .map(|k| k.kid.as_str())
}

/// Every key's state at `now`, account keys for `account` (the algorithm of
/// `jwt.algorithm`, `None` for HS512) and OIDC keys each for its own algorithm.
pub fn describe(rows: &[StoredKey], account: Option<Algorithm>, now: i64) -> Vec<KeyInfo> {
    rows.iter()
        .map(|k| {
            let in_force = if k.purpose == KeyPurpose::Oidc.as_str() {
                Algorithm::parse(&k.algorithm)
            } else {
                account
            };
            let same: Vec<StoredKey> = rows
                .iter()
                .filter(|r| r.purpose == k.purpose)
                .cloned()
                .collect();
            let signing = in_force.and_then(|a| signing_kid(&same, a, now).map(str::to_owned));
            (k, in_force, signing)
        })
        .map(|(k, in_force, signing)| KeyInfo {
            kid: k.kid.clone(),
            algorithm: k.algorithm.clone(),
            purpose: k.purpose.clone(),
            state: if k.retires_at.is_some_and(|r| r <= now) {
                KeyState::Retired
            } else if Some(&k.kid) == signing.as_ref() {
                KeyState::Signing
            } else if in_force.is_some_and(|a| k.algorithm == a.as_str()) && k.signs_from > now {
                KeyState::Next
            } else {
                KeyState::Retiring
            },
            created_at: k.created_at,
            signs_from: k.signs_from,
            retires_at: k.retires_at,
        })
        .collect()
}

/// Seals a new key of `algorithm` for the policy's purpose, signing from `signs_from`.
fn new_key(
    sealer: &Sealer,
    policy: &KeyPolicy,
    algorithm: Algorithm,
    now: i64,
    signs_from: i64,
) -> StoredKey {
    let kid = random_id();
    let pair = KeyPair::generate(algorithm, &kid, &policy.issuer);
    StoredKey {
        private_key: sealer.seal(&kid, algorithm, pair.private_bytes().expose()),
        public_jwk: serde_json::to_string(pair.jwk()).expect("a JWK serialises"),
        algorithm: algorithm.as_str().to_owned(),
        purpose: policy.purpose.as_str().to_owned(),
        kid,
        created_at: now,
        signs_from,
        retires_at: None,
    }
}

/// Publishes the next key: it signs `jwks_max_age_secs` (and a second) from `now`, and
/// every key not yet retiring retires once the tokens it may still sign until then have
/// expired. The whole of `gatehouse keys rotate`; works on any node's database, running
/// or not.
///
/// The extra second: times are whole seconds, and a key set fetched at 10.3 s, before a
/// rotation at 10.5 s (stored as 10), is cached until 12.3 s; signing from 10 + 2 would
/// sign with a key that cache lacks (jose's remote key set failed exactly so).
pub async fn rotate(
    store: &DynStore,
    sealer: &Sealer,
    policy: &KeyPolicy,
    now: i64,
) -> anyhow::Result<Vec<KeyInfo>> {
    let signs_from = now + policy.jwks_max_age_secs + 1;
    let retire_at = signs_from + policy.token_ttl_secs + CLOCK_MARGIN_SECS;
    let mut published = Vec::new();
    for algorithm in policy.algorithms() {
        let key = new_key(sealer, policy, algorithm, now, signs_from);
        store
            .signing_keys()
            .add_signing_key(&key, Some(retire_at))
            .await?;
        tracing::info!(kid = %key.kid, algorithm = %key.algorithm, purpose = %key.purpose, signs_from, "signing key published");
        published.extend(describe(std::slice::from_ref(&key), Some(algorithm), now));
    }
    Ok(published)
}

/// The keys a node holds: every published key, ready to verify (and the signing one to
/// sign), as last read from the database.
struct Loaded {
    keys: HashMap<String, Arc<KeyPair>>,
    signing_order: Vec<StoredKey>,
}

pub struct SigningKeys {
    store: DynStore,
    sealer: Sealer,
    policy: KeyPolicy,
    loaded: RwLock<Arc<Loaded>>,
    last_miss_reload: Mutex<Option<Instant>>,
}

impl SigningKeys {
    /// Reads the keys; when none of the policy's algorithm can sign (a first start, or
    /// a new algorithm), makes one that signs at once — nobody has cached a JWKS
    /// without it that a token of it could fail — and sets the other algorithm's keys
    /// to retire once their tokens have expired.
    pub async fn open(
        store: DynStore,
        secret: &[u8],
        policy: KeyPolicy,
        now: i64,
    ) -> anyhow::Result<SigningKeys> {
        let keys = SigningKeys {
            sealer: Sealer::new(secret),
            store,
            policy,
            loaded: RwLock::new(Arc::new(Loaded {
                keys: HashMap::new(),
                signing_order: Vec::new(),
            })),
            last_miss_reload: Mutex::new(None),
        };
        keys.reload(now).await?;
        let algorithms: Vec<Algorithm> = keys.policy.algorithms().collect();
        for algorithm in algorithms {
            if keys.signer_for(algorithm, now).is_some() {
                continue;
            }
            let p = &keys.policy;
            let key = new_key(&keys.sealer, p, algorithm, now, now);
            let retire_others = now + p.token_ttl_secs + CLOCK_MARGIN_SECS;
            keys.store
                .signing_keys()
                .add_signing_key(&key, Some(retire_others))
                .await?;
            tracing::info!(kid = %key.kid, algorithm = %key.algorithm, purpose = %key.purpose, "signing key created: the first of its algorithm");
            keys.reload(now).await?;
        }
        Ok(keys)
    }

    pub fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Reads the published keys again and opens them.
    pub async fn reload(&self, now: i64) -> anyhow::Result<()> {
        let mut rows = self.store.signing_keys().signing_keys(Some(now)).await?;
        rows.retain(|r| r.purpose == self.policy.purpose.as_str());
        let current = self.current();
        let mut keys = HashMap::with_capacity(rows.len());
        for row in &rows {
            if let Some(known) = current.keys.get(&row.kid) {
                keys.insert(row.kid.clone(), Arc::clone(known));
                continue;
            }
            let pair = self
                .open_row(row)
                .with_context(|| format!("signing key {}", row.kid))?;
            keys.insert(row.kid.clone(), Arc::new(pair));
        }
        let loaded = Arc::new(Loaded {
            keys,
            signing_order: rows,
        });
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(())
    }

    fn open_row(&self, row: &StoredKey) -> anyhow::Result<KeyPair> {
        let algorithm = Algorithm::parse(&row.algorithm)
            .with_context(|| format!("unknown algorithm {:?}", row.algorithm))?;
        let private = self
            .sealer
            .open(&row.kid, algorithm, &row.private_key)
            .context(
                "its private key does not open with this JWT secret: every node must \
                 have the same jwt_secret",
            )?;
        Ok(KeyPair::from_private(
            algorithm,
            &row.kid,
            private.expose(),
            &self.policy.issuer,
        )?)
    }

    fn current(&self) -> Arc<Loaded> {
        Arc::clone(&self.loaded.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The key that signs account tokens (OIDC: RS256 tokens) at `now`.
    pub fn signer(&self, now: i64) -> Option<Arc<KeyPair>> {
        self.signer_for(self.policy.algorithm, now)
    }

    /// The key that signs with `algorithm` at `now`.
    pub fn signer_for(&self, algorithm: Algorithm, now: i64) -> Option<Arc<KeyPair>> {
        let loaded = self.current();
        let kid = signing_kid(&loaded.signing_order, algorithm, now)?;
        loaded.keys.get(kid).cloned()
    }

    /// Verifies an account token with the published key its `kid` names; a kid this
    /// node has not seen makes it read the keys again first (at most once a second).
    pub async fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Claims<T>, TokenError> {
        let kid = kid_of(token).ok_or(TokenError::Malformed)?;
        let key = match self.current().keys.get(&kid) {
            Some(key) => Arc::clone(key),
            None => {
                if !self.may_reload_on_miss() {
                    return Err(TokenError::Signature);
                }
                if let Err(e) = self.reload(now).await {
                    tracing::warn!(error = %e, "reading the signing keys failed");
                }
                let loaded = self.current();
                Arc::clone(loaded.keys.get(&kid).ok_or(TokenError::Signature)?)
            }
        };
        let claims = key.verify(token, now)?;
        // A key retired since the last read no longer verifies.
        if retired(&self.current(), &kid, now) {
            return Err(TokenError::Signature);
        }
        Ok(claims)
    }

    /// [`SigningKeys::verify`] for a token whose header's `typ` must be `typ` (an
    /// RFC 9068 access token's `at+jwt`): no other kind of token passes for it.
    pub async fn verify_typed<T: DeserializeOwned>(
        &self,
        typ: &str,
        token: &str,
        now: i64,
    ) -> Result<Claims<T>, TokenError> {
        if crate::crypto::signing::typ_of(token).as_deref() != Some(typ) {
            return Err(TokenError::Kind);
        }
        self.verify(token, now).await
    }

    /// A token signed by a loaded key, verified whatever its expiry
    /// ([`KeyPair::verify_ignoring_expiry`]): an `id_token_hint`.
    pub fn verify_ignoring_expiry<T: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<T, TokenError> {
        let kid = kid_of(token).ok_or(TokenError::Malformed)?;
        let key = Arc::clone(self.current().keys.get(&kid).ok_or(TokenError::Signature)?);
        key.verify_ignoring_expiry(token)
    }

    /// Whether a token that verified before still would at `now`: the key its `kid`
    /// names is still loaded, and not retired.
    pub fn still_verifies(&self, token: &str, now: i64) -> bool {
        kid_of(token).is_some_and(|kid| self.kid_still_verifies(&kid, now))
    }

    /// [`Self::still_verifies`] for a token whose `kid` the caller kept when it
    /// verified it: the key is still loaded (published) and not retired at `now`.
    pub fn kid_still_verifies(&self, kid: &str, now: i64) -> bool {
        let loaded = self.current();
        loaded.keys.contains_key(kid) && !retired(&loaded, kid, now)
    }

    fn may_reload_on_miss(&self) -> bool {
        let mut last = self
            .last_miss_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= MISS_RELOAD_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// The JWKS: every published key, read from the database (so a key published on
    /// another node is in it at once).
    pub async fn jwks(&self, now: i64) -> anyhow::Result<JwkSet> {
        let rows = self.store.signing_keys().signing_keys(Some(now)).await?;
        let keys = rows
            .iter()
            .map(|r| serde_json::from_str::<Jwk>(&r.public_jwk))
            .collect::<Result<_, _>>()
            .context("a stored public JWK does not parse")?;
        Ok(JwkSet { keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, alg: &str, signs_from: i64, retires_at: Option<i64>) -> StoredKey {
        StoredKey {
            kid: kid.into(),
            algorithm: alg.into(),
            purpose: "account".into(),
            public_jwk: String::new(),
            private_key: String::new(),
            created_at: signs_from - 10,
            signs_from,
            retires_at,
        }
    }

    #[test]
    fn the_newest_key_whose_time_came_signs() {
        let rows = [
            row("old", "EdDSA", 100, Some(1000)),
            row("new", "EdDSA", 400, None),
            row("es", "ES256", 500, None),
        ];
        let at = |now| signing_kid(&rows, Algorithm::EdDSA, now);
        assert_eq!(at(50), None);
        assert_eq!(
            at(399),
            Some("old"),
            "the next key waits for the JWKS max-age"
        );
        assert_eq!(at(400), Some("new"));
        assert_eq!(signing_kid(&rows, Algorithm::ES256, 600), Some("es"));
        let states: Vec<_> = describe(&rows, Some(Algorithm::EdDSA), 300)
            .into_iter()
            .map(|k| (k.kid, k.state))
            .collect();
        assert_eq!(
            states,
            [
                ("old".to_string(), KeyState::Signing),
                ("new".to_string(), KeyState::Next),
                ("es".to_string(), KeyState::Retiring),
            ]
        );
        let later: Vec<_> = describe(&rows, Some(Algorithm::EdDSA), 1000)
            .into_iter()
            .map(|k| k.state)
            .collect();
        assert_eq!(
            later,
            [KeyState::Retired, KeyState::Signing, KeyState::Retiring]
        );
    }
}
