//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when an OIDC session
//! ends while it lives, its client is told so by a logout token POSTed to the
//! `backchannel_logout_uri` it registered.
//!
//! The database queues the logout in the same statement that ends the session (a
//! trigger on the session row's DELETE: see migration 0013), so every way a session
//! ends queues one, on any node, and a crash after the session ended loses nothing.
//! Every node runs a [`Deliverer`]: it leases due logouts, signs each token as it
//! sends it (with the algorithm the client registered for its ID tokens), and deletes
//! the row once the client answered 2xx; a failure is retried later, the wait doubling
//! each time, until [`GIVE_UP_SECS`] after the session ended. The token is never
//! logged: it names the person and the session.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::crypto::jwt::Claims;
use crate::crypto::signing::Algorithm;
use crate::domain::{backoff_secs, unix_now};
use crate::signing_keys::SigningKeys;
use crate::store::DynStore;
use crate::store::oidc::QueuedLogout;

/// The event a logout token carries (§2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a logout token is valid after it is made (the spec recommends at most two
/// minutes).
pub const TOKEN_TTL_SECS: i64 = 120;

/// A logout still not delivered a day after its session ended is dropped: whoever the
/// client was, it has heard of the session's end another way by then, or never will.
pub const GIVE_UP_SECS: i64 = 86_400;

/// How often a deliverer looks for due logouts (queued on any node, or due a retry).
const POLL: Duration = Duration::from_millis(500);

/// How long a lease holds: longer than a delivery can take ([`SEND_TIMEOUT`]).
const LEASE_SECS: i64 = 60;

/// The most a delivery may take, connection and answer included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries under way at once.
const CONCURRENCY: usize = 8;

/// A logout token's claims besides `iss`, `sub`, `iat`, `exp` and `jti` (§2.4): no
/// `nonce`, ever.
#[derive(Debug, Clone, Serialize)]
pub struct LogoutClaims {
    pub aud: String,
    pub sid: String,
    pub events: serde_json::Value,
}

/// POSTs a form to a client: the transport, kept out of the domain (see
/// [`crate::outbound`]). The error says what failed, never what was sent.
#[async_trait::async_trait]
pub trait FormPoster: Send + Sync + 'static {
    async fn post_form(&self, uri: &str, form: &[(&str, &str)]) -> anyhow::Result<()>;
}

pub struct Deliverer {
    store: DynStore,
    keys: Arc<SigningKeys>,
    issuer: String,
    poster: Arc<dyn FormPoster>,
    retry_base_secs: i64,
    retry_max_secs: i64,
}

impl Deliverer {
    pub fn new(
        store: DynStore,
        keys: Arc<SigningKeys>,
        issuer: String,
        poster: Arc<dyn FormPoster>,
        retry_base_secs: i64,
        retry_max_secs: i64,
    ) -> Deliverer {
        Deliverer {
            store,
            keys,
            issuer,
            poster,
            retry_base_secs,
            retry_max_secs,
        }
    }

    /// Delivers until the task is dropped.
    pub async fn run(self) {
        let me = Arc::new(self);
        loop {
            let full = match Arc::clone(&me).deliver_due().await {
                Ok(full) => full,
                Err(e) => {
                    tracing::warn!(error = %e, "back-channel logout: leasing failed");
                    false
                }
            };
            if !full {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Leases one batch and delivers it; true if the batch was full (more may be due).
    pub async fn deliver_due(self: Arc<Self>) -> anyhow::Result<bool> {
        let now = unix_now();
        let lease = crate::crypto::random_id();
        let limit = (CONCURRENCY * 8) as i64;
        let batch = self
            .store
            .oidc()
            .lease_logouts(&lease, now, now + LEASE_SECS, limit)
            .await?;
        let full = batch.len() as i64 == limit;
        let mut delivering = tokio::task::JoinSet::new();
        let mut waiting = batch.into_iter();
        for logout in waiting.by_ref().take(CONCURRENCY) {
            delivering.spawn(Arc::clone(&self).settle(lease.clone(), logout));
        }
        while let Some(done) = delivering.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "back-channel logout: a delivery panicked");
            }
            if let Some(logout) = waiting.next() {
                delivering.spawn(Arc::clone(&self).settle(lease.clone(), logout));
            }
        }
        Ok(full)
    }

    /// Delivers one logout and records the outcome.
    async fn settle(self: Arc<Self>, lease: String, logout: QueuedLogout) {
        let store = self.store.oidc();
        let outcome = match self.deliver(&logout).await {
            Ok(Delivery::Sent) => {
                tracing::info!(logout = %logout.id, client = %logout.client_id,
                    session = %logout.session_id, "back-channel logout delivered");
                store.logout_done(&lease, &logout.id).await
            }
            Ok(Delivery::Pointless(why)) => {
                tracing::info!(logout = %logout.id, client = %logout.client_id, why,
                    "back-channel logout dropped");
                store.logout_done(&lease, &logout.id).await
            }
            Err(e) if unix_now() >= logout.created_at + GIVE_UP_SECS => {
                tracing::warn!(logout = %logout.id, client = %logout.client_id,
                    attempts = logout.attempts + 1, error = %e,
                    "back-channel logout: given up after a day of failures");
                store.logout_done(&lease, &logout.id).await
            }
            Err(e) => {
                let wait = backoff_secs(self.retry_base_secs, self.retry_max_secs, logout.attempts);
                tracing::warn!(logout = %logout.id, client = %logout.client_id,
                    attempts = logout.attempts + 1, retry_in_secs = wait, error = %e,
                    "back-channel logout failed; will retry");
                let error = format!("{e:#}");
                store
                    .logout_failed(&lease, &logout.id, unix_now() + wait, &error)
                    .await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(logout = %logout.id, error = %e, "back-channel logout: recording the outcome failed");
        }
    }

    async fn deliver(&self, logout: &QueuedLogout) -> anyhow::Result<Delivery> {
        let Some(client) = self.store.oidc().client(&logout.client_id).await? else {
            return Ok(Delivery::Pointless("the client is no longer registered"));
        };
        let Some(uri) = client.backchannel_logout_uri.as_deref() else {
            return Ok(Delivery::Pointless(
                "the client no longer has a backchannel_logout_uri",
            ));
        };
        let token = self.token(logout, &client.id_token_alg, unix_now())?;
        self.poster
            .post_form(uri, &[("logout_token", &token)])
            .await?;
        Ok(Delivery::Sent)
    }

    /// The logout token (§2.4), signed as the client's ID tokens are.
    fn token(&self, logout: &QueuedLogout, alg: &str, now: i64) -> anyhow::Result<String> {
        let algorithm = Algorithm::parse(alg).unwrap_or(Algorithm::RS256);
        let signer = self
            .keys
            .signer_for(algorithm, now)
            .ok_or_else(|| anyhow::anyhow!("no OIDC key signs {algorithm:?} now"))?;
        Ok(signer.sign_typed(
            "logout+jwt",
            &Claims {
                sub: logout.account_id.clone(),
                iat: now,
                exp: now + TOKEN_TTL_SECS,
                nbf: None,
                iss: self.issuer.clone(),
                jti: logout.id.clone(),
                kind: None,
                extra: LogoutClaims {
                    aud: logout.client_id.clone(),
                    sid: logout.session_id.clone(),
                    events: serde_json::json!({ LOGOUT_EVENT: {} }),
                },
            },
        ))
    }
}

enum Delivery {
    Sent,
    /// Nobody to tell any more.
    Pointless(&'static str),
}
