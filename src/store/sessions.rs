//! Sessions in the database: the narrow interface the session rules ([`crate::sessions`])
//! need, and its SQL, written once for both backends (as in [`super::queries`]).
//!
//! A session is one row; it ends by deleting that row. Refreshing is one conditional
//! UPDATE that moves the row's `generation` on, so of concurrent refreshes with the same
//! token exactly one rotates, on any node; the others find the generation moved and are
//! served as replays (within the grace) or end the session (after it).

use async_trait::async_trait;

use super::{AccountProfile, StoreResult};
use crate::domain::{Account, AccountId};

/// A session about to start.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub account: AccountId,
    pub method: String,
    /// The factors the sign-in proved (RFC 8176, space-separated).
    pub amr: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub now: i64,
    /// `now` + idle timeout, no later than `expires_at`.
    pub idle_expires_at: i64,
    pub expires_at: i64,
    /// The most sessions the account keeps, this one included.
    pub max_per_account: i64,
    /// For an OpenID Connect session (a code exchange starts one): its client and the
    /// scopes granted, written with the row.
    pub oidc: Option<OidcBinding>,
    /// How many it keeps, this one included, once a sign-in takes it over
    /// `max_per_account`: fewer, so that the sort that picks which to end runs on one
    /// sign-in in several, not on every sign-in of an account that keeps signing in.
    pub keep_per_account: i64,
}

/// The client an OIDC session belongs to, and the scopes it was granted.
#[derive(Debug, Clone)]
pub struct OidcBinding {
    pub client_id: String,
    /// Space-separated.
    pub scopes: String,
}

/// A live session, as listed to its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub method: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub last_used_at: i64,
}

/// What a refresh may do, at `now`.
#[derive(Debug, Clone, Copy)]
pub struct RefreshRules {
    pub now: i64,
    /// How long an unused session lives; a refresh pushes its end this far out (never
    /// past the absolute end).
    pub idle_secs: i64,
    /// How long after a rotation the previous token still gets the current one.
    pub grace_secs: i64,
    /// How many times it does, at most.
    pub max_replays: i64,
}

/// The session a refresh token names, after the refresh.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub id: String,
    /// The session's generation now: its current refresh token's.
    pub generation: i64,
    pub auth_time: i64,
    /// The factors its sign-in proved, as it started with them.
    pub amr: String,
    pub account: Account,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone)]
pub enum Refresh {
    /// It was the current token: the session moved to the next generation.
    Rotated(Refreshed),
    /// It was the previous token, presented within the grace: the session is as it was.
    Replayed(Refreshed),
    /// It was an older token, or the previous one after the grace: the session ended.
    Revoked,
    /// No live session has this token (unknown, expired, ended, or replayed too often).
    Refused,
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Starts the session and, in the same write, when the account then has more than
    /// `max_per_account`, ends its least recently used others (by last use, then
    /// start) beyond `keep_per_account`: how many ended. Concurrent sign-ins of one account on PostgreSQL may leave one more each
    /// for a moment; the next sign-in ends them.
    async fn create_session(&self, session: &NewSession) -> StoreResult<u64>;
    /// True while the session lives, belongs to `account` and the account is not
    /// disabled: the check on every request that carries an account token (one read by
    /// primary keys, no write).
    async fn session_is_live(&self, id: &str, account: &AccountId, now: i64) -> StoreResult<bool>;
    /// The account's profile if the session lives, as [`SessionStore::session_is_live`]
    /// decides: the check and `/auth/me`'s read in one statement. `None`: not live.
    async fn live_profile(
        &self,
        id: &str,
        account: &AccountId,
        now: i64,
    ) -> StoreResult<Option<AccountProfile>>;
    /// Presents the refresh token of generation `generation` of session `id`.
    async fn refresh_session(
        &self,
        id: &str,
        generation: i64,
        rules: RefreshRules,
    ) -> StoreResult<Refresh>;
    /// The account's live sessions, oldest first.
    async fn sessions_of(&self, account: &AccountId, now: i64) -> StoreResult<Vec<SessionRecord>>;
    /// Ends one session of `account`; false if it has none with this id.
    async fn end_session(&self, account: &AccountId, id: &str) -> StoreResult<bool>;
    /// Ends every session of `account` except `keep`; how many ended.
    async fn end_sessions(&self, account: &AccountId, keep: Option<&str>) -> StoreResult<u64>;
    /// Deletes at most `limit` sessions that timed out before `now`: how many.
    async fn purge_sessions(&self, now: i64, limit: i64) -> StoreResult<u64>;
}

pub(super) mod sql {
    pub const INSERT: &str =
        "INSERT INTO sessions (id, account_id, generation, rotated_at, replays,
        method, user_agent, ip, auth_time, created_at, last_used_at, idle_expires_at, expires_at,
        amr, oidc_client_id, oidc_scopes)
     VALUES ($1, $2, 0, $3, 0, $4, $5, $6, $3, $3, $3, $7, $8, $9, $10, $11)";

    /// The account's (`$1`) sessions, counted in `sessions_account_id` alone.
    pub const COUNT_OF_ACCOUNT: &str = "SELECT COUNT(*) FROM sessions WHERE account_id = $1";

    /// After [`INSERT`] of session `$2`, when [`COUNT_OF_ACCOUNT`] is over the cap: ends
    /// the account's (`$1`) other sessions but the `$3` most recently used (last use,
    /// then start; the id breaks a tie).
    pub const END_OVER_CAP: &str = "DELETE FROM sessions WHERE account_id = $1 AND id <> $2
        AND id NOT IN (SELECT id FROM sessions WHERE account_id = $1 AND id <> $2
                       ORDER BY last_used_at DESC, created_at DESC, id DESC LIMIT $3)";

    /// [`INSERT`] and [`END_OVER_CAP`] as one statement (one round trip, atomic):
    /// the DELETE does not see the row the INSERT adds, so it runs when the account
    /// had `$10` (the cap) or more before it, and keeps `$9` others.
    pub const INSERT_CAPPED_POSTGRES: &str = "WITH started AS (
        INSERT INTO sessions (id, account_id, generation, rotated_at, replays,
            method, user_agent, ip, auth_time, created_at, last_used_at, idle_expires_at,
            expires_at, amr, oidc_client_id, oidc_scopes)
        VALUES ($1, $2, 0, $3, 0, $4, $5, $6, $3, $3, $3, $7, $8, $11, $12, $13))
     DELETE FROM sessions WHERE account_id = $2
        AND (SELECT COUNT(*) FROM sessions WHERE account_id = $2) >= $10
        AND id NOT IN (SELECT id FROM sessions WHERE account_id = $2
                       ORDER BY last_used_at DESC, created_at DESC, id DESC LIMIT $9)";

    /// Live, and its account not disabled: a session that a sign-in started just as
    /// its account was being disabled is refused too.
    ///
    /// Every statement that names a session by its id finds it by the primary key,
    /// whatever statistics the database holds: the account is compared as
    /// `account_id || '' = $2`, an expression that no index serves. With a plain
    /// `account_id = $2`, SQLite after `ANALYZE` (or `PRAGMA optimize`) on a store where
    /// accounts have one session each on average reads the session through
    /// `sessions_account_id`, walking every session of the account: thousands for one
    /// that signed in often. (SQLite's own idiom, a unary `+`, is no operator on text in
    /// PostgreSQL; `|| ''` is an expression in both.)
    pub const IS_LIVE: &str = "SELECT 1 FROM sessions s JOIN accounts a ON a.id = s.account_id
     WHERE s.id = $1 AND s.account_id || '' = $2 AND s.idle_expires_at > $3
       AND a.disabled_at IS NULL";

    /// The current token (`$3`, `$4`): the next generation. `$1` now, `$2` the idle
    /// timeout. (SQLite numbers placeholders by first appearance: they appear in order.)
    pub const ROTATE: &str = "UPDATE sessions SET generation = generation + 1, rotated_at = $1,
        replays = 0, last_used_at = $1,
        idle_expires_at = CASE WHEN $1 + $2 < expires_at THEN $1 + $2 ELSE expires_at END
     WHERE id = $3 AND generation = $4 AND idle_expires_at > $1
     RETURNING account_id, generation, auth_time, amr";

    /// The previous token (of generation `$2` of session `$1`) within the grace (`$3`
    /// seconds) at `$4`, at most `$5` times.
    pub const REPLAY: &str = "UPDATE sessions SET replays = replays + 1
     WHERE id = $1 AND generation = $2 + 1 AND rotated_at + $3 > $4 AND replays < $5
        AND idle_expires_at > $4
     RETURNING account_id, generation, auth_time, amr";

    /// An older token, or the previous one after the grace: whoever holds it is not the
    /// session's owner, or is racing a thief; the session ends, successors and all.
    pub const REVOKE_REUSED: &str = "DELETE FROM sessions
     WHERE id = $1 AND (generation > $2 + 1 OR (generation = $2 + 1 AND rotated_at + $3 <= $4))";

    /// An account's live sessions, through `sessions_account_id` alone. `+ 0` keeps
    /// `sessions_idle_expires_at` (the purge's) out of it: without statistics
    /// PostgreSQL guesses that an account holds 0.5% of the sessions and a third are
    /// live, and at 10 M sessions it `BitmapAnd`ed both indexes, reading all ten million
    /// entries of the expiry index for one account's sessions (1–1.4 s a statement:
    /// `users show`, `users list`, `GET /auth/sessions`).
    pub const OF_ACCOUNT: &str =
        "SELECT id, method, user_agent, ip, auth_time, created_at, last_used_at FROM sessions
     WHERE account_id = $1 AND idle_expires_at + 0 > $2 ORDER BY created_at, id";

    pub const END_ONE: &str = "DELETE FROM sessions WHERE id = $1 AND account_id || '' = $2";

    pub const END_ALL: &str = "DELETE FROM sessions WHERE account_id = $1";

    pub const END_OTHERS: &str = "DELETE FROM sessions WHERE account_id = $1 AND id <> $2";

    /// The purge's batch of timed-out sessions (see
    /// [`crate::store::queries::purge_batch!`]), on SQLite; a session refreshed in
    /// between is left.
    pub const PURGE: &str =
        crate::store::queries::purge_batch!(sqlite, "sessions", "idle_expires_at");

    /// [`PURGE`] on PostgreSQL.
    pub const PURGE_POSTGRES: &str =
        crate::store::queries::purge_batch!(postgres, "sessions", "id", "idle_expires_at");

    /// Every statement above, for the tests that prepare each on each backend.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        INSERT,
        COUNT_OF_ACCOUNT,
        END_OVER_CAP,
        IS_LIVE,
        ROTATE,
        REPLAY,
        REVOKE_REUSED,
        OF_ACCOUNT,
        END_ONE,
        END_ALL,
        END_OTHERS,
        PURGE,
    ];
}
