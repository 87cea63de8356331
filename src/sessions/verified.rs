//! Account tokens whose signature this node has checked already, with their claims.
//!
//! A web app sends the same account token with every request for its whole life (15
//! minutes by default), and each time its signature would be checked again: for HS512
//! two thirds of the work of `GET /auth/me` besides HTTP, for ES256 about 240 µs. A
//! token's bytes and the signature over them do not change, so the answer does not
//! either: what is kept here is only "these exact bytes verified, with these claims".
//! Everything that can change is still checked on every request: expiry and
//! not-before against the clock here, the key (still published, not retired) by the
//! caller, and the session in the database by [`super::Sessions`], so revocation
//! takes effect at once as before. (Envoy's JWT filter keeps such a cache for the same
//! reason.)
//!
//! Bounded: at most [`CAPACITY`] tokens. An entry is found by the whole token, so a
//! token that differs in one byte is another entry. The bucket comes from a keyed hash
//! (SipHash with a random key) of the token's last [`HASHED_TAIL`] bytes, its
//! signature, which nobody can choose for a token that verifies. Only tokens that
//! verified are ever stored, so filling it takes valid tokens; when it is full, the
//! expired are swept out (at most once a second) and otherwise one entry makes room.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, PoisonError};

/// How many verified tokens are kept: a few MiB (a token and its claims are well
/// under 1 KiB), and more than the tokens a node sees used within their lifetime on
/// most sites.
pub const CAPACITY: usize = 4096;

/// How much of a token's end is hashed to find its bucket: all of an HS512
/// signature (86 characters) or most of an EdDSA or ES256 one.
const HASHED_TAIL: usize = 64;

pub struct VerifiedTokens<C> {
    inner: Mutex<Inner<C>>,
    capacity: usize,
}

struct Inner<C> {
    tokens: HashMap<Box<str>, Entry<C>, TailHash>,
    /// When the expired were last swept out (Unix seconds).
    swept_at: i64,
}

struct Entry<C> {
    claims: C,
    exp: i64,
    nbf: Option<i64>,
}

impl<C: Clone> Default for VerifiedTokens<C> {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl<C: Clone> VerifiedTokens<C> {
    pub fn with_capacity(capacity: usize) -> Self {
        VerifiedTokens {
            inner: Mutex::new(Inner {
                tokens: HashMap::with_hasher(TailHash(RandomState::new())),
                swept_at: i64::MIN,
            }),
            capacity: capacity.max(1),
        }
    }

    /// The claims of `token` if it verified before and is valid at `now`: not expired,
    /// not before its `nbf`. `None` sends the caller to verify it in full (which
    /// refuses an expired one with the right reason).
    pub fn get(&self, token: &str, now: i64) -> Option<C> {
        let inner = self.lock();
        let entry = inner.tokens.get(token)?;
        let valid = entry.exp > now && entry.nbf.is_none_or(|nbf| nbf <= now);
        valid.then(|| entry.claims.clone())
    }

    /// Keeps `token`, which has just verified, with its claims and validity.
    pub fn insert(&self, token: &str, claims: C, exp: i64, nbf: Option<i64>, now: i64) {
        let mut inner = self.lock();
        if inner.tokens.len() >= self.capacity && !inner.tokens.contains_key(token) {
            if inner.swept_at < now {
                inner.swept_at = now;
                inner.tokens.retain(|_, e| e.exp > now);
            }
            if inner.tokens.len() >= self.capacity {
                // The map's order is its keyed hash's: an arbitrary entry goes.
                let some = inner.tokens.keys().next().cloned();
                if let Some(key) = some {
                    inner.tokens.remove(&key);
                }
            }
        }
        inner
            .tokens
            .insert(token.into(), Entry { claims, exp, nbf });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().tokens.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<C>> {
        // Nothing here can leave the map half-changed; a panic elsewhere while the
        // lock was held does not make its content wrong.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hashes the last [`HASHED_TAIL`] bytes of each write: a `str` key is one write of
/// its bytes (and one of a terminator byte).
#[derive(Clone)]
struct TailHash(RandomState);

impl BuildHasher for TailHash {
    type Hasher = Tail<<RandomState as BuildHasher>::Hasher>;

    fn build_hasher(&self) -> Self::Hasher {
        Tail(self.0.build_hasher())
    }
}

struct Tail<H>(H);

impl<H: Hasher> Hasher for Tail<H> {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_token_is_found_until_it_expires() {
        let cache = VerifiedTokens::with_capacity(8);
        cache.insert("a.b.c", "claims of a", 1060, None, 1000);
        assert_eq!(cache.get("a.b.c", 1000), Some("claims of a"));
        assert_eq!(cache.get("a.b.c", 1059), Some("claims of a"));
        assert_eq!(cache.get("a.b.c", 1060), None, "expired at exp");
        assert_eq!(cache.get("a.b.d", 1000), None, "another token");
        assert_eq!(cache.get("a.b.", 1000), None, "a prefix is another token");
    }

    #[test]
    fn a_token_is_not_found_before_its_nbf() {
        let cache = VerifiedTokens::with_capacity(8);
        cache.insert("t", 1, 2000, Some(1500), 1000);
        assert_eq!(cache.get("t", 1499), None);
        assert_eq!(cache.get("t", 1500), Some(1));
    }

    #[test]
    fn it_never_holds_more_than_its_capacity_and_sweeps_the_expired_first() {
        let cache = VerifiedTokens::with_capacity(4);
        // Two that expire at 1010, two that live on.
        cache.insert("old-1", 1, 1010, None, 1000);
        cache.insert("old-2", 2, 1010, None, 1000);
        cache.insert("live-1", 3, 2000, None, 1000);
        cache.insert("live-2", 4, 2000, None, 1000);
        cache.insert("new", 5, 2000, None, 1020);
        assert_eq!(cache.len(), 3, "the two expired were swept out");
        assert_eq!(cache.get("live-1", 1020), Some(3));
        assert_eq!(cache.get("live-2", 1020), Some(4));
        assert_eq!(cache.get("new", 1020), Some(5));
        for i in 0..100 {
            cache.insert(&format!("more-{i}"), 6, 2000, None, 1020 + i);
            assert!(cache.len() <= 4, "{} entries", cache.len());
        }
        assert_eq!(cache.get("more-99", 1200), Some(6), "the newest is kept");
    }

    #[test]
    fn tokens_that_end_alike_are_still_different_entries() {
        let cache = VerifiedTokens::with_capacity(8);
        let tail = "s".repeat(HASHED_TAIL);
        let (a, b) = (format!("a.{tail}"), format!("b.{tail}"));
        cache.insert(&a, 1, 2000, None, 1000);
        assert_eq!(cache.get(&b, 1000), None, "same bucket, another token");
        cache.insert(&b, 2, 2000, None, 1000);
        assert_eq!(
            (cache.get(&a, 1000), cache.get(&b, 1000)),
            (Some(1), Some(2))
        );
    }

    #[test]
    fn inserting_a_known_token_again_keeps_one_entry() {
        let cache = VerifiedTokens::with_capacity(2);
        cache.insert("t", 1, 2000, None, 1000);
        cache.insert("u", 2, 2000, None, 1000);
        cache.insert("t", 1, 2000, None, 1001);
        assert_eq!((cache.len(), cache.get("u", 1001)), (2, Some(2)));
    }
}
