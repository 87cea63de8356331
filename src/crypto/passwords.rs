//! argon2id password hashing off the async runtime, with a bound on hashes in flight.
//!
//! Each hash holds `memory_kib` of memory for tens of milliseconds. The semaphore
//! caps how many run at once, so a burst of logins queues (holding a few hundred
//! bytes each) instead of multiplying that memory or starving the async workers.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashParams {
    pub fn argon2(&self) -> Result<Argon2<'static>, argon2::Error> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)?;
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

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon2: Argon2<'static>,
    params: HashParams,
    permits: Semaphore,
    /// A hash of a random password at the current parameters, checked when there is
    /// no real hash, so unknown and passwordless accounts cost the same as real ones.
    dummy: String,
}

impl PasswordHasher {
    pub fn new(params: HashParams, max_in_flight: usize) -> Result<Self, argon2::Error> {
        let argon2 = params.argon2()?;
        let dummy_password = hex::encode(super::random_bytes::<16>());
        let dummy = argon2
            .hash_password(dummy_password.as_bytes())
            .map_err(|_| argon2::Error::AlgorithmInvalid)?
            .to_string();
        Ok(PasswordHasher {
            inner: Arc::new(Inner {
                argon2,
                params,
                permits: Semaphore::new(max_in_flight.max(1)),
                dummy,
            }),
        })
    }

    pub fn params(&self) -> HashParams {
        self.inner.params
    }

    /// Hashes a new password as a PHC string with a random salt.
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let password = password.clone();
        self.run(move |inner| {
            inner
                .argon2
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
        })
        .await?
    }

    /// Checks `password` against `stored`; with no stored hash, checks it against the
    /// dummy hash and answers no, taking the same time.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> anyhow::Result<Verified> {
        let password = password.clone();
        let stored = stored.map(str::to_owned);
        self.run(move |inner| {
            let (phc, real) = match &stored {
                Some(s) => (s.as_str(), true),
                None => (inner.dummy.as_str(), false),
            };
            let parsed = PasswordHash::new(phc)
                .map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
            let matches = inner
                .argon2
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok();
            if !(matches && real) {
                return Ok(Verified::No);
            }
            let rehash = if inner.is_current(&parsed) {
                None
            } else {
                let fresh = inner
                    .argon2
                    .hash_password(password.expose().as_bytes())
                    .map_err(|e| anyhow::anyhow!("argon2 rehash failed: {e}"))?;
                Some(fresh.to_string())
            };
            Ok(Verified::Yes { rehash })
        })
        .await?
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.inner.permits.acquire().await?;
        let inner = Arc::clone(&self.inner);
        Ok(tokio::task::spawn_blocking(move || work(&inner)).await?)
    }
}

impl Inner {
    fn is_current(&self, hash: &PasswordHash) -> bool {
        let Ok(params) = Params::try_from(hash) else {
            return false;
        };
        hash.algorithm.as_str() == "argon2id"
            && params.m_cost() == self.params.memory_kib
            && params.t_cost() == self.params.iterations
            && params.p_cost() == self.params.parallelism
    }
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
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
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
            rehashed.starts_with("$argon2id$v=19$m=128,t=2,p=1$"),
            "{rehashed}"
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
