//! argon2id password hashing off the async runtime, with a bound on hashes in flight.
//!
//! Passwords are hashed in Unicode Normalization Form KC (`Password::normalized`), and
//! such hashes carry the associated data `nfkc` (`data=bmZrYw` in the PHC string). A
//! hash without it was made from the password as typed, before normalization: it is
//! checked that way, and the login that matches it rehashes it in the new form, so no
//! account made before the change is locked out and each is converted once.
//!
//! Each hash holds `memory_kib` of memory for tens of milliseconds. The semaphore
//! caps how many run at once, so a burst of logins queues (holding a few hundred
//! bytes each) instead of multiplying that memory or starving the async workers.
//! The hashes' working memory is allocated once per permit and reused: a fresh
//! allocation per hash left each blocking thread's malloc arena holding its own
//! copy, so the resident set grew to hundreds of MiB under a login load.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{
    Algorithm, Argon2, AssociatedData, Block, Params, ParamsBuilder, PasswordHash, Version,
};
use tokio::sync::Semaphore;

use crate::domain::Password;
use crate::metrics::HashQueueMetrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// The associated data of a hash made from the NFKC form of a password.
const NFKC: &[u8] = b"nfkc";

impl HashParams {
    /// argon2id at these parameters, as the `argon2` crate hashes by default.
    pub fn argon2(&self) -> Result<Argon2<'static>, argon2::Error> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// argon2id at these parameters, marked as hashing NFKC passwords.
    fn argon2_nfkc(&self) -> Result<Argon2<'static>, argon2::Error> {
        let params = ParamsBuilder::new()
            .m_cost(self.memory_kib)
            .t_cost(self.iterations)
            .p_cost(self.parallelism)
            .data(AssociatedData::new(NFKC)?)
            .build()?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// The outcome of checking a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    No,
    /// It matches; `rehash` holds a new hash when the stored one used other parameters.
    Yes {
        rehash: Option<String>,
    },
}

/// Why a password was not hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue of hashes would take longer than the allowed wait to reach this one.
    #[error("too many password hashes queued")]
    Busy { retry_after_secs: i64 },
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon2: Argon2<'static>,
    params: HashParams,
    /// Held by each hash until it has finished, not merely until its caller stops
    /// waiting: a request that times out must not free a slot while its hash runs on.
    permits: Arc<Semaphore>,
    slots: usize,
    /// Hashes waiting for a permit or running.
    pending: AtomicUsize,
    /// How long a hash has taken lately (moving average, µs): how fast the queue moves
    /// on this machine now, other load included.
    recent_micros: AtomicU64,
    /// The longest a hash may wait for its turn before it is refused (`Busy`), µs;
    /// `u64::MAX`: no limit.
    max_wait_micros: AtomicU64,
    /// Working memories of `argon2`'s size, at most one per permit: taken by a hash,
    /// given back after it.
    memory: Mutex<Vec<Vec<Block>>>,
    /// Where waits and refusals are counted, if anywhere.
    metrics: Option<HashQueueMetrics>,
    /// A hash of a random password at the current parameters, checked when there is
    /// no real hash, so unknown and passwordless accounts cost the same as real ones.
    dummy: String,
}

impl PasswordHasher {
    pub fn new(params: HashParams, max_in_flight: usize) -> Result<Self, argon2::Error> {
        let slots = max_in_flight.max(1);
        let mut inner = Inner {
            argon2: params.argon2_nfkc()?,
            params,
            permits: Arc::new(Semaphore::new(slots)),
            slots,
            pending: AtomicUsize::new(0),
            recent_micros: AtomicU64::new(0),
            max_wait_micros: AtomicU64::new(u64::MAX),
            memory: Mutex::new(Vec::new()),
            metrics: None,
            dummy: String::new(),
        };
        let dummy_password = hex::encode(super::random_bytes::<16>());
        let started = Instant::now();
        inner.dummy = inner.hash_new(dummy_password.as_bytes())?;
        inner.record(started.elapsed());
        Ok(PasswordHasher {
            inner: Arc::new(inner),
        })
    }

    /// Counts each hash's wait for a slot and each refusal in `metrics`.
    pub fn observed_by(mut self, metrics: HashQueueMetrics) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.metrics = Some(metrics);
        }
        self
    }

    /// Hashes waiting for a slot or running.
    pub fn queue_depth(&self) -> usize {
        self.inner.pending.load(Ordering::Relaxed)
    }

    pub fn params(&self) -> HashParams {
        self.inner.params
    }

    /// Refuses (`HashError::Busy`) a hash that has waited `max_wait` for its turn, and
    /// at once one that would clearly wait more than twice that: in a burst of logins,
    /// those that would time out in the queue get a 429 instead, and the queue does
    /// not grow past what can be served. The prompt refusal is judged by the recent
    /// pace of hashing, which lags a sudden change in the CPU the server gets; hence
    /// the margin, and the wait limit as the guarantee.
    pub fn refuse_waits_over(&self, max_wait: Duration) {
        let micros = u64::try_from(max_wait.as_micros()).unwrap_or(u64::MAX);
        self.inner.max_wait_micros.store(micros, Ordering::Relaxed);
    }

    /// Hashes a new password as a PHC string with a random salt.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let password = password.clone();
        let hashed = self
            .run(move |inner| {
                inner
                    .hash_new(password.normalized().as_bytes())
                    .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
            })
            .await?;
        Ok(hashed?)
    }

    /// Checks `password` against `stored`; with no stored hash, checks it against the
    /// dummy hash and answers no, taking the same time.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let password = password.clone();
        let stored = stored.map(str::to_owned);
        let verified = self.run(move |inner| -> anyhow::Result<Verified> {
            let (phc, real) = match &stored {
                Some(s) => (s.as_str(), true),
                None => (inner.dummy.as_str(), false),
            };
            let parsed = PasswordHash::new(phc)
                .map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
            // One hash per check either way: the form the stored hash was made from.
            let normalized = password.normalized();
            let candidate = if of_nfkc(&parsed) {
                normalized.as_bytes()
            } else {
                password.expose().as_bytes()
            };
            let matches = inner.matches(candidate, &parsed);
            if !(matches && real) {
                return Ok(Verified::No);
            }
            let rehash = if inner.is_current(&parsed) {
                None
            } else {
                let fresh = inner
                    .hash_new(normalized.as_bytes())
                    .map_err(|e| anyhow::anyhow!("argon2 rehash failed: {e}"))?;
                Some(fresh)
            };
            Ok(Verified::Yes { rehash })
        });
        Ok(verified.await??)
    }

    /// Runs `work` on the blocking pool once a permit is free. The permit goes with
    /// the work, so hashes in flight never exceed the bound even when callers give up
    /// (a burst of logins timing out together used to start one more hash per
    /// cancelled caller, each with its own working memory). Work whose caller is
    /// already gone when a thread picks it up is skipped.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let limit = self.inner.max_wait();
        let joined = Instant::now();
        let queued = Pending::join(&self.inner, limit).inspect_err(|_| self.inner.refused())?;
        let acquire = Arc::clone(&self.inner.permits).acquire_owned();
        let permit = match limit {
            None => acquire.await,
            Some(limit) => tokio::time::timeout(limit, acquire).await.map_err(|_| {
                self.inner.refused();
                self.inner.busy()
            })?,
        }
        .map_err(anyhow::Error::from)?;
        if let Some(m) = &self.inner.metrics {
            m.wait.observe(joined.elapsed().as_secs_f64());
        }
        let inner = Arc::clone(&self.inner);
        let (done, result) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let outcome = (!done.is_closed()).then(|| {
                let started = Instant::now();
                let outcome = work(&inner);
                inner.record(started.elapsed());
                outcome
            });
            // Out of the queue before the caller hears back, so its next hash does not
            // see this one still ahead of it.
            drop((permit, queued));
            if let Some(outcome) = outcome {
                let _ = done.send(outcome);
            }
        });
        result
            .await
            .map_err(|_| anyhow::anyhow!("the hashing task ended without a result").into())
    }
}

/// A place in the hashing queue, counted in `Inner::pending` until dropped: with the
/// caller if it gives up while waiting, else when its hash has run.
struct Pending(Arc<Inner>);

impl Pending {
    /// Joins the queue, unless the hashes ahead would take more than twice `limit`.
    fn join(inner: &Arc<Inner>, limit: Option<Duration>) -> Result<Pending, HashError> {
        let ahead = inner.pending.fetch_add(1, Ordering::AcqRel);
        let place = Pending(Arc::clone(inner));
        if limit.is_some_and(|limit| inner.wait_behind(ahead) > limit * 2) {
            return Err(inner.busy());
        }
        Ok(place)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Inner {
    fn max_wait(&self) -> Option<Duration> {
        match self.max_wait_micros.load(Ordering::Relaxed) {
            u64::MAX => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// How long `ahead` queued or running hashes take to clear, `slots` at a time, at
    /// the recent pace.
    fn wait_behind(&self, ahead: usize) -> Duration {
        let rounds = u32::try_from(ahead / self.slots).unwrap_or(u32::MAX);
        Duration::from_micros(self.recent_micros.load(Ordering::Relaxed)).saturating_mul(rounds)
    }

    fn refused(&self) {
        if let Some(m) = &self.metrics {
            m.refused.inc();
        }
    }

    /// Busy, coming back when the queue as it is now should have cleared.
    fn busy(&self) -> HashError {
        let wait = self.wait_behind(self.pending.load(Ordering::Acquire));
        let retry_after_secs = i64::try_from(wait.as_secs() + 1).unwrap_or(i64::MAX);
        HashError::Busy { retry_after_secs }
    }

    /// Folds one hash's duration into the moving average (weight 1/8).
    fn record(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let old = self.recent_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            micros
        } else {
            old - old / 8 + micros / 8
        };
        self.recent_micros.store(new, Ordering::Relaxed);
    }

    /// A PHC string of `password` at the current parameters, with a random salt.
    fn hash_new(&self, password: &[u8]) -> Result<String, argon2::Error> {
        let salt = super::random_bytes::<16>();
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.compute(&self.argon2, password, &salt, &mut out)?;
        // Only unreachable sizes fail here: 16-byte salt, 32-byte output, valid params.
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon2.params())
                .map_err(|_| argon2::Error::AlgorithmInvalid)?,
            salt: Some(Salt::new(&salt).map_err(|_| argon2::Error::SaltTooShort)?),
            hash: Some(Output::new(&out).map_err(|_| argon2::Error::OutputTooShort)?),
        };
        Ok(phc.to_string())
    }

    /// Whether `password` hashes to `stored` under `stored`'s own algorithm, version
    /// and parameters. Anything unreadable or unsupported does not match.
    fn matches(&self, password: &[u8], stored: &PasswordHash) -> bool {
        let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::new(stored.algorithm.as_str()) else {
            return false;
        };
        let version = match stored.version.map(Version::try_from).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(_) => return false,
        };
        let Ok(params) = Params::try_from(stored) else {
            return false;
        };
        let argon2 = Argon2::new(algorithm, version, params);
        let mut out = vec![0u8; expected.len()];
        if self.compute(&argon2, password, salt, &mut out).is_err() {
            return false;
        }
        // `Output`'s equality is constant-time.
        Output::new(&out).is_ok_and(|computed| computed == *expected)
    }

    /// Runs `argon2` in a reused working memory when it fits the configured size; a
    /// hash stored at larger parameters (before they were lowered) gets its own, once:
    /// the login that checks it rehashes it at the current ones.
    fn compute(
        &self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        let needed = argon2.params().block_count();
        let size = self.argon2.params().block_count();
        if needed > size {
            return argon2.hash_password_into(password, salt, out);
        }
        let spare = self.memory.lock().expect("memory pool lock").pop();
        let mut blocks = spare.unwrap_or_else(|| vec![Block::new(); size]);
        let result = argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..]);
        self.memory.lock().expect("memory pool lock").push(blocks);
        result
    }

    fn is_current(&self, hash: &PasswordHash) -> bool {
        let Ok(params) = Params::try_from(hash) else {
            return false;
        };
        hash.algorithm.as_str() == "argon2id"
            && params.data() == NFKC
            && params.m_cost() == self.params.memory_kib
            && params.t_cost() == self.params.iterations
            && params.p_cost() == self.params.parallelism
    }
}

/// Whether `hash` was made from the NFKC form of its password.
fn of_nfkc(hash: &PasswordHash) -> bool {
    Params::try_from(hash).is_ok_and(|p| p.data() == NFKC)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn pw(s: &str) -> Password {
        Password::parse(s.to_string()).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_rehash_on_new_parameters() {
        let old = PasswordHasher::new(SMALL, 2).unwrap();
        let hash = old.hash(&pw("correct horse battery")).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=64,t=1,p=1,data=bmZrYw$"),
            "{hash}"
        );
        assert_eq!(
            old.verify(&pw("correct horse battery"), Some(&hash))
                .await
                .unwrap(),
            Verified::Yes { rehash: None }
        );
        assert_eq!(
            old.verify(&pw("wrong horse battery"), Some(&hash))
                .await
                .unwrap(),
            Verified::No
        );

        let new = PasswordHasher::new(
            HashParams {
                memory_kib: 128,
                iterations: 2,
                parallelism: 1,
            },
            2,
        )
        .unwrap();
        let Verified::Yes {
            rehash: Some(rehashed),
        } = new
            .verify(&pw("correct horse battery"), Some(&hash))
            .await
            .unwrap()
        else {
            panic!("expected a rehash");
        };
        assert!(
            rehashed.starts_with("$argon2id$v=19$m=128,t=2,p=1,data=bmZrYw$"),
            "{rehashed}"
        );
    }

    #[tokio::test]
    async fn hashes_are_interchangeable_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = PasswordHasher::new(SMALL, 2).unwrap();
        let theirs = SMALL
            .argon2()
            .unwrap()
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();
        // A plain argon2id hash is one made before normalization: it matches, and is
        // rehashed in the marked form.
        assert!(matches!(
            h.verify(&pw("correct horse battery"), Some(&theirs))
                .await
                .unwrap(),
            Verified::Yes { rehash: Some(_) }
        ));
        let ours = h.hash(&pw("correct horse battery")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        let argon2 = SMALL.argon2().unwrap();
        assert!(
            argon2
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(
            argon2
                .verify_password(b"wrong horse battery", &parsed)
                .is_err()
        );
        // Unreadable or foreign hashes never match, and do not fail the request.
        for foreign in [
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            assert_eq!(
                h.verify(&pw("correct horse battery"), Some(foreign))
                    .await
                    .unwrap_or(Verified::No),
                Verified::No
            );
        }
    }

    #[tokio::test]
    async fn a_password_typed_two_ways_is_one_password() {
        let h = PasswordHasher::new(SMALL, 2).unwrap();
        let composed = "caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e";
        let decomposed = "cafe\u{301} cre\u{300}me bru\u{302}le\u{301}e";
        let full_width = "\u{ff50}\u{ff41}\u{ff53}\u{ff53}\u{ff57}\u{ff4f}\u{ff52}\u{ff44}";
        let hash = h.hash(&pw(decomposed)).await.unwrap();
        for typed in [composed, decomposed] {
            assert_eq!(
                h.verify(&pw(typed), Some(&hash)).await.unwrap(),
                Verified::Yes { rehash: None },
                "{typed:?}"
            );
        }
        let hash = h.hash(&pw(full_width)).await.unwrap();
        assert_eq!(
            h.verify(&pw("password"), Some(&hash)).await.unwrap(),
            Verified::Yes { rehash: None }
        );
        assert_eq!(
            h.verify(&pw("Password"), Some(&hash)).await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn a_hash_made_before_normalization_is_checked_as_typed_once_then_rehashed() {
        let h = PasswordHasher::new(SMALL, 2).unwrap();
        let decomposed = "cafe\u{301} cre\u{300}me";
        let composed = "caf\u{e9} cr\u{e8}me";
        // How Gatehouse hashed before: the bytes as typed, no associated data.
        let legacy = {
            use argon2::password_hash::PasswordHasher as _;
            SMALL
                .argon2()
                .unwrap()
                .hash_password(decomposed.as_bytes())
                .unwrap()
                .to_string()
        };
        // Only the spelling it was made from matches it.
        assert_eq!(
            h.verify(&pw(composed), Some(&legacy)).await.unwrap(),
            Verified::No
        );
        let Verified::Yes {
            rehash: Some(rehashed),
        } = h.verify(&pw(decomposed), Some(&legacy)).await.unwrap()
        else {
            panic!("the old hash matches as typed and is rehashed");
        };
        assert!(rehashed.contains(",data=bmZrYw$"), "{rehashed}");
        // From then on either spelling signs in, and nothing is rehashed again.
        for typed in [composed, decomposed] {
            assert_eq!(
                h.verify(&pw(typed), Some(&rehashed)).await.unwrap(),
                Verified::Yes { rehash: None },
                "{typed:?}"
            );
        }
    }

    #[tokio::test]
    async fn working_memory_is_reused_not_multiplied() {
        let h = PasswordHasher::new(SMALL, 2).unwrap();
        let stored = h.hash(&pw("correct horse battery")).await.unwrap();
        let password = pw("correct horse battery");
        let checks = (0..16).map(|_| h.verify(&password, Some(&stored)));
        for outcome in futures::future::join_all(checks).await {
            assert_eq!(outcome.unwrap(), Verified::Yes { rehash: None });
        }
        let pool = h.inner.memory.lock().unwrap();
        assert!(
            (1..=2).contains(&pool.len()),
            "{} working memories",
            pool.len()
        );
        assert!(pool.iter().all(|m| m.len() == 64));
    }

    #[tokio::test]
    async fn callers_that_give_up_do_not_start_more_hashes() {
        use futures::FutureExt;
        // Slow enough that the abandoned hashes would overlap if each got a permit.
        let slow = HashParams {
            memory_kib: 8192,
            iterations: 3,
            parallelism: 1,
        };
        let h = PasswordHasher::new(slow, 1).unwrap();
        let password = pw("correct horse battery");
        let stored = h.hash(&password).await.unwrap();
        for _ in 0..8 {
            // Polled once (taking the permit if it is free), then abandoned.
            assert!(h.verify(&password, Some(&stored)).now_or_never().is_none());
        }
        assert_eq!(
            h.verify(&password, Some(&stored)).await.unwrap(),
            Verified::Yes { rehash: None }
        );
        assert_eq!(h.inner.memory.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn hashes_that_would_wait_too_long_are_refused_at_once() {
        let h = PasswordHasher::new(SMALL, 1).unwrap();
        let password = pw("correct horse battery");
        let stored = h.hash(&password).await.unwrap();
        // The only slot taken, as by a running hash; one caller queues behind it
        // (before there is a limit, so it waits as long as it takes).
        let running = h.inner.permits.acquire().await.unwrap();
        let queued = tokio::spawn({
            let (h, password, stored) = (h.clone(), password.clone(), stored.clone());
            async move { h.verify(&password, Some(&stored)).await }
        });
        while h.inner.pending.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        h.refuse_waits_over(Duration::ZERO);
        // The next would wait behind it: refused at once, with a time to come back.
        match h.verify(&password, Some(&stored)).await {
            Err(HashError::Busy { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(running);
        assert_eq!(
            queued.await.unwrap().unwrap(),
            Verified::Yes { rehash: None }
        );
        assert_eq!(h.inner.pending.load(Ordering::Acquire), 0);
        // Nothing ahead: no wait, however small the limit.
        assert_eq!(
            h.verify(&password, Some(&stored)).await.unwrap(),
            Verified::Yes { rehash: None }
        );
    }

    #[tokio::test]
    async fn hashes_that_wait_too_long_are_refused_then() {
        let h = PasswordHasher::new(SMALL, 1).unwrap();
        let password = pw("correct horse battery");
        let stored = h.hash(&password).await.unwrap();
        h.refuse_waits_over(Duration::from_millis(20));
        // Nothing ahead, so admitted; but the slot never frees within the limit.
        let running = h.inner.permits.acquire().await.unwrap();
        assert!(matches!(
            h.verify(&password, Some(&stored)).await,
            Err(HashError::Busy { .. })
        ));
        drop(running);
        assert_eq!(h.inner.pending.load(Ordering::Acquire), 0);
        assert_eq!(
            h.verify(&password, Some(&stored)).await.unwrap(),
            Verified::Yes { rehash: None }
        );
    }

    #[tokio::test]
    async fn no_stored_hash_never_matches() {
        let h = PasswordHasher::new(SMALL, 1).unwrap();
        assert_eq!(
            h.verify(&pw("anything at all"), None).await.unwrap(),
            Verified::No
        );
    }
}
