//! The second factor in the database: the narrow interface its rules
//! ([`crate::signin::second_factor`]) need, and its SQL, written once for both backends
//! (as in [`super::queries`]).
//!
//! Every single-use value is consumed by one conditional write, so no node keeps
//! anything another needs: a TOTP time step moves `last_step` on (`WHERE last_step <
//! $step`), a recovery code sets `used_at` (`WHERE used_at IS NULL`), a pending sign-in
//! counts an attempt (`WHERE attempts < $max`) before its code is checked and is
//! deleted by the one that succeeds.
//!
//! The second step with a TOTP code, the hot path, is one read
//! ([`MfaStore::second_step`]: the pending sign-in, the account's authenticator and its
//! recent wrong codes) and one write ([`MfaStore::spend_attempt`]: the attempt, the
//! step, the pending sign-in's deletion and the session's start in one transaction).
//! A recovery code takes the same two.

use async_trait::async_trait;

use super::sessions::NewSession;
use super::{Purged, StoreResult, WindowCount};
use crate::domain::AccountId;

/// An account's TOTP authenticator as stored.
#[derive(Clone)]
pub struct StoredTotp {
    /// The secret, sealed.
    pub secret: String,
    pub confirmed: bool,
}

impl std::fmt::Debug for StoredTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTotp")
            .field("secret", &"<hidden>")
            .field("confirmed", &self.confirmed)
            .finish()
    }
}

/// A sign-in that owes its second factor, about to be stored.
#[derive(Debug, Clone)]
pub struct NewPending {
    /// SHA-256 of the token the client holds.
    pub id_hash: String,
    pub account: AccountId,
    /// The first factor's `amr` values, space-separated.
    pub amr: String,
    /// How the session will have begun (`sessions.method`).
    pub method: String,
    /// `accounts.require_mfa` and no factor yet: only enrolment may follow.
    pub enroll_only: bool,
    pub expires_at: i64,
}

/// A pending sign-in that admitted one more attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAttempt {
    pub account: AccountId,
    pub amr: String,
    pub method: String,
    pub enroll_only: bool,
}

/// What the second step of a pending sign-in reads before it writes
/// ([`MfaStore::second_step`]).
#[derive(Debug, Clone)]
pub struct SecondStep {
    /// The pending sign-in, as it was (its attempt is not counted yet).
    pub pending: PendingAttempt,
    /// The account's authenticator, confirmed or not.
    pub totp: Option<StoredTotp>,
    /// The account's wrong codes in the current window, if any.
    pub failures: Option<WindowCount>,
}

/// What a second step offers, as the rules read it from [`MfaStore::second_step`].
#[derive(Clone, PartialEq, Eq)]
pub enum Proof {
    /// Nothing to accept: the code proves no step, or a refusal comes first.
    Nothing,
    /// This time step of the account's confirmed authenticator.
    Step(i64),
    /// The recovery code with this digest.
    RecoveryCode(String),
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proof::Nothing => f.write_str("Nothing"),
            Proof::Step(step) => f.debug_tuple("Step").field(step).finish(),
            Proof::RecoveryCode(_) => f.write_str("RecoveryCode(<hidden>)"),
        }
    }
}

/// What [`MfaStore::spend_attempt`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spent {
    /// No attempt: the pending sign-in is unknown, expired, used or out of attempts.
    NotPending,
    /// The attempt is counted, and nothing was accepted (no proof was offered, the step
    /// was used already, the authenticator is not confirmed, or the recovery code is
    /// not the account's or used already).
    Counted(PendingAttempt),
    /// The attempt is counted, the proof accepted, the pending sign-in used and the
    /// session (if one was given) started: the one caller that gets this signs in.
    Accepted {
        attempt: PendingAttempt,
        /// The account's older sessions ended over `session.max_per_account`.
        ended: u64,
        /// With a recovery code: how many the account has left.
        codes_left: Option<i64>,
    },
}

/// The second factors an account has, for `/auth/me`, `GET /auth/mfa` and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FactorSummary {
    /// A confirmed TOTP authenticator.
    pub totp: bool,
    /// Recovery codes not used yet.
    pub recovery_codes_left: i64,
}

#[async_trait]
pub trait MfaStore: Send + Sync + 'static {
    /// The account's authenticator, confirmed or not.
    async fn totp(&self, account: &AccountId) -> StoreResult<Option<StoredTotp>>;
    /// Whether the account has a confirmed authenticator: whether it owes a second
    /// factor at sign-in.
    async fn has_second_factor(&self, account: &AccountId) -> StoreResult<bool>;
    /// Starts an enrolment with this sealed secret, replacing an unconfirmed one; false
    /// (nothing written) when the account has a confirmed authenticator.
    async fn begin_totp(&self, account: &AccountId, sealed: &str, now: i64) -> StoreResult<bool>;
    /// Accepts time step `step` for the account's authenticator (confirmed or, with
    /// `confirming`, unconfirmed): true once per step, on any node, and only for a step
    /// newer than every step accepted before. With `confirming`, the same write
    /// confirms the enrolment and stores the recovery codes (digests), replacing any.
    async fn accept_step(
        &self,
        account: &AccountId,
        step: i64,
        confirming: Option<&[String]>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Removes the authenticator and the recovery codes; false if there was none.
    async fn remove_factors(&self, account: &AccountId) -> StoreResult<bool>;
    /// Replaces the recovery codes with these digests; false (nothing written) if the
    /// account has no confirmed authenticator.
    async fn replace_recovery_codes(
        &self,
        account: &AccountId,
        hashes: &[String],
        now: i64,
    ) -> StoreResult<bool>;
    async fn factor_summary(&self, account: &AccountId) -> StoreResult<FactorSummary>;

    /// Stores a pending sign-in.
    async fn put_pending(&self, pending: &NewPending) -> StoreResult<()>;
    /// Counts one attempt on a live pending sign-in with fewer than `max_attempts`
    /// attempts: of concurrent callers, at most `max_attempts` in all get it.
    async fn attempt_pending(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
    ) -> StoreResult<Option<PendingAttempt>>;
    /// The live pending sign-in with fewer than `max_attempts` attempts, read without
    /// counting one: what the pages show it may do next. Grants nothing.
    async fn peek_pending(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
    ) -> StoreResult<Option<PendingAttempt>>;
    /// The second step's read, one statement: the live pending sign-in `id_hash` with
    /// fewer than `max_attempts` attempts, its account's authenticator, and the
    /// account's counter `failure_prefix || account` if its window (`failure_window`
    /// seconds) is current. Counts nothing and grants nothing: the rules decide on it,
    /// then [`MfaStore::spend_attempt`] writes.
    async fn second_step(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
        failure_prefix: &str,
        failure_window: i64,
    ) -> StoreResult<Option<SecondStep>>;
    /// The second step's write, one transaction: counts one attempt on the live pending
    /// sign-in `id_hash` (as [`MfaStore::attempt_pending`]); then accepts `proof` — the
    /// time step, once, for the account's confirmed authenticator (as
    /// [`MfaStore::accept_step`]), or the recovery code, once (as
    /// `USE_CODE`) — and, if accepted, uses up the pending sign-in (in place,
    /// `SPEND_PENDING`) and starts `session` (with the per-account cap, as
    /// [`super::SessionStore::create_session`]) for the pending sign-in's own account,
    /// whatever account `session` names. One commit: no session without the step
    /// spent, no step spent without its session. The attempt stays counted whatever
    /// follows.
    async fn spend_attempt(
        &self,
        id_hash: &str,
        now: i64,
        max_attempts: i64,
        proof: Proof,
        session: Option<&NewSession>,
    ) -> StoreResult<Spent>;
    /// Deletes the pending sign-in: true for the one caller that deleted it.
    async fn take_pending(&self, id_hash: &str) -> StoreResult<bool>;
    /// The purge's batch ([`crate::purge`]): deletes at most `limit` pending sign-ins
    /// that expired at or before `now`.
    async fn purge_pending(&self, now: i64, limit: i64) -> StoreResult<Purged>;
}

pub(super) mod sql {
    pub const TOTP: &str =
        "SELECT secret, confirmed_at IS NOT NULL FROM totp_factors WHERE account_id = $1";

    pub const HAS_SECOND_FACTOR: &str =
        "SELECT 1 FROM totp_factors WHERE account_id = $1 AND confirmed_at IS NOT NULL";

    /// A new enrolment (`$2` sealed, `$3` now), over an unconfirmed one only.
    pub const BEGIN_TOTP: &str = "INSERT INTO totp_factors
        (account_id, secret, created_at, confirmed_at, last_step) VALUES ($1, $2, $3, NULL, -1)
     ON CONFLICT (account_id) DO UPDATE SET secret = excluded.secret,
        created_at = excluded.created_at, last_step = -1
     WHERE totp_factors.confirmed_at IS NULL";

    /// Step `$1` of account `$2`'s confirmed authenticator, once. (SQLite numbers
    /// placeholders by first appearance: they appear in order.)
    pub const ACCEPT_STEP: &str = "UPDATE totp_factors SET last_step = $1
     WHERE account_id = $2 AND confirmed_at IS NOT NULL AND last_step < $1";

    /// Step `$1` of account `$3`'s unconfirmed authenticator, once: confirms it at `$2`.
    pub const CONFIRM_STEP: &str = "UPDATE totp_factors SET last_step = $1, confirmed_at = $2
     WHERE account_id = $3 AND confirmed_at IS NULL AND last_step < $1";

    pub const REMOVE_TOTP: &str = "DELETE FROM totp_factors WHERE account_id = $1";

    pub const REMOVE_CODES: &str = "DELETE FROM recovery_codes WHERE account_id = $1";

    pub const INSERT_CODE: &str =
        "INSERT INTO recovery_codes (account_id, code_hash, created_at, used_at)
     VALUES ($1, $2, $3, NULL)";

    /// Code `$3` of account `$2`, once, at `$1`.
    pub const USE_CODE: &str = "UPDATE recovery_codes SET used_at = $1
     WHERE account_id = $2 AND code_hash = $3 AND used_at IS NULL";

    /// Account `$1`'s recovery codes not used yet.
    pub const CODES_LEFT: &str =
        "SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL";

    pub const SUMMARY: &str = "SELECT
        (SELECT COUNT(*) FROM totp_factors WHERE account_id = $1 AND confirmed_at IS NOT NULL),
        (SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL)";

    pub const INSERT_PENDING: &str = "INSERT INTO pending_signins
        (id_hash, account_id, amr, method, enroll_only, attempts, expires_at)
     VALUES ($1, $2, $3, $4, $5, 0, $6)";

    /// One more attempt on pending sign-in `$1`, live at `$2`, under `$3` attempts.
    pub const ATTEMPT_PENDING: &str = "UPDATE pending_signins SET attempts = attempts + 1
     WHERE id_hash = $1 AND expires_at > $2 AND attempts < $3
     RETURNING account_id, amr, method, enroll_only";

    /// Pending sign-in `$1`, live at `$2`, under `$3` attempts (read only).
    pub const PEEK_PENDING: &str = "SELECT account_id, amr, method, enroll_only
     FROM pending_signins WHERE id_hash = $1 AND expires_at > $2 AND attempts < $3";

    pub const TAKE_PENDING: &str = "DELETE FROM pending_signins WHERE id_hash = $1";

    /// Pending sign-in `$1` used, in place: its attempts set past any limit, which every
    /// read of a pending sign-in (`attempts < $max`) refuses; the purge deletes the row
    /// at its expiry. The second step's write uses it rather than a `DELETE`: the row's
    /// page is dirty already (its attempt was just counted), while a deletion also moves
    /// an entry in each of the table's three indexes, three more pages a step to write.
    pub const SPEND_PENDING: &str =
        "UPDATE pending_signins SET attempts = 2147483647 WHERE id_hash = $1";

    /// The second step's read: pending sign-in `$1`, live at `$2`, under `$3` attempts;
    /// its account's authenticator; the account's counter `$4 || account` if its window
    /// of `$5` seconds is current at `$2`. Each table by its primary key.
    pub const SECOND_STEP: &str = "WITH p AS (
        SELECT account_id, amr, method, enroll_only FROM pending_signins
        WHERE id_hash = $1 AND expires_at > $2 AND attempts < $3)
     SELECT p.account_id, p.amr, p.method, p.enroll_only,
        t.secret, t.confirmed_at IS NOT NULL, r.count, r.window_start
     FROM p LEFT JOIN totp_factors t ON t.account_id = p.account_id
     LEFT JOIN rate_counters r ON r.key = $4 || p.account_id AND r.window_start + $5 > $2";

    use crate::store::queries::purge_batch;

    /// The purge's batch of expired pending sign-ins (see [`purge_batch!`]), on SQLite.
    pub const PURGE: [(&str, &str); 1] = [(
        "pending_signins",
        purge_batch!(sqlite, "pending_signins", "expires_at"),
    )];

    /// [`PURGE`] on PostgreSQL.
    pub const PURGE_POSTGRES: [(&str, &str); 1] = [(
        "pending_signins",
        purge_batch!(postgres, "pending_signins", "id_hash", "expires_at"),
    )];

    /// Every statement above, for the tests that prepare each on each backend.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        TOTP,
        HAS_SECOND_FACTOR,
        BEGIN_TOTP,
        ACCEPT_STEP,
        CONFIRM_STEP,
        REMOVE_TOTP,
        REMOVE_CODES,
        INSERT_CODE,
        USE_CODE,
        CODES_LEFT,
        SUMMARY,
        INSERT_PENDING,
        ATTEMPT_PENDING,
        PEEK_PENDING,
        TAKE_PENDING,
        SPEND_PENDING,
        SECOND_STEP,
        PURGE[0].1,
    ];
}
