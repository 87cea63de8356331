//! The SQL of every [`Store`](super::Store) operation, written once in the dialect both
//! SQLite and PostgreSQL accept (`$N` placeholders, `RETURNING`, `ON CONFLICT`). Each
//! backend runs these same statements through its own driver; a placeholder's number
//! is its position in the driver's argument list (the test below holds SQLite to that).

pub const INSERT_ACCOUNT: &str = "INSERT INTO accounts
        (id, email, email_key, password_hash, ownid_data, created_at, ownid_added_at)
     VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $5 IS NULL THEN NULL ELSE $6 END)";

pub const ACCOUNT_BY_EMAIL: &str =
    "SELECT id, email, password_hash, ownid_data IS NOT NULL, created_at, email_verified,
            disabled_at IS NOT NULL
     FROM accounts WHERE email_key = $1";

/// The same columns as [`ACCOUNT_BY_EMAIL`], by id (a refresh reads the account anew).
pub const ACCOUNT_BY_ID: &str =
    "SELECT id, email, password_hash, ownid_data IS NOT NULL, created_at, email_verified,
            disabled_at IS NOT NULL
     FROM accounts WHERE id = $1";

/// An account's profile, in rows of eleven columns: part 0, the account (columns 0–6,
/// as [`ACCOUNT_BY_EMAIL`]) with one wallet per row (address, linked at: 7, 8), or NULLs
/// for a wallet when it has none; part 1, one passkey per row (id, created at, name: 7,
/// 8, 9), no account. The part is column 10. `$from_where` selects the account `a` and
/// joins its wallets `w`; `$account` names the account for the passkeys. No row of
/// part 0: no such account, whatever passkeys came. No ORDER BY: the rows are put in
/// order as they are read, which costs SQLite no temporary b-tree.
macro_rules! profile_of {
    ($from_where:literal, $account:literal) => {
        concat!(
            "SELECT a.id, a.email, a.password_hash, a.ownid_data IS NOT NULL, a.created_at,
            a.email_verified, a.disabled_at IS NOT NULL, w.address, w.created_at,
            CAST(NULL AS TEXT), 0 ",
            $from_where,
            "
     UNION ALL
     SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, p.id, p.created_at, p.name, 1
     FROM passkeys p WHERE p.account_id = ",
            $account
        )
    };
}

/// The profile of account `$1` (the columns of [`profile_of!`]).
pub const ACCOUNT_PROFILE: &str = profile_of!(
    "FROM accounts a LEFT JOIN wallets w ON w.account_id = a.id WHERE a.id = $1",
    "$1"
);

/// The profile of account `$2` if its session `$1` lives at `$3` (the columns of
/// [`profile_of!`]): the session check of an account token and the read of `/auth/me`
/// in one statement. No row of part 0: the session ended, or the account is disabled
/// or gone.
///
/// The session is found by its primary key whatever the statistics say: its account is
/// compared as `s.account_id || '' = $2`, an expression no index serves (see
/// [`crate::store::sessions`]'s `IS_LIVE`).
pub const LIVE_PROFILE: &str = profile_of!(
    "FROM sessions s JOIN accounts a ON a.id = s.account_id
        LEFT JOIN wallets w ON w.account_id = a.id
     WHERE s.id = $1 AND s.account_id || '' = $2 AND s.idle_expires_at > $3
       AND a.disabled_at IS NULL",
    "$2"
);

pub const REPLACE_PASSWORD_HASH: &str =
    "UPDATE accounts SET password_hash = $1 WHERE id = $2 AND password_hash = $3";

/// The account's email becomes `$1` (key `$2`), verified: its owner proved at `$3`
/// they receive mail there.
pub const SET_VERIFIED_EMAIL: &str = "UPDATE accounts
     SET email = $1, email_key = $2, email_verified = TRUE, email_proven_at = $3 WHERE id = $4";

/// OwnID data, a way in, added at `$2`.
pub const SET_OWNID_DATA: &str =
    "UPDATE accounts SET ownid_data = $1, ownid_added_at = $2 WHERE email_key = $3";

pub const OWNID_DATA: &str = "SELECT ownid_data FROM accounts WHERE email_key = $1";

/// Locks the session's row (PostgreSQL) until the transaction ends, if it lives.
pub const HOLD_LIVE_SESSION: &str = "UPDATE sessions SET last_used_at = last_used_at
     WHERE id = $1 AND account_id || '' = $2 AND idle_expires_at > $3";

pub const WALLET_ACCOUNT: &str = "SELECT account_id FROM wallets WHERE address = $1";

pub const INSERT_WALLET: &str =
    "INSERT INTO wallets (address, public_key, account_id, attributes, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $5)";

pub const UPDATE_WALLET_ATTRIBUTES: &str = "UPDATE wallets SET attributes = $1, updated_at = $2
     WHERE address = $3 AND account_id = $4";

pub const WALLETS: &str = "SELECT address, created_at FROM wallets WHERE account_id = $1
     ORDER BY created_at, address";

pub const WALLET_RECORD: &str =
    "SELECT address, public_key, attributes, created_at, updated_at FROM wallets
     WHERE address = $1 AND account_id = $2";

/// Removing a wallet, in one transaction: a no-op write locks the account row
/// (PostgreSQL) or the database (SQLite) first, so two removals cannot both see
/// "another way to sign in is left"; then the conditional delete; when it deleted
/// nothing, [`WALLET_LINKED`] tells "last way to sign in" from "not there".
pub const LOCK_ACCOUNT: &str = "UPDATE accounts SET created_at = created_at WHERE id = $1";

pub const DELETE_WALLET_UNLESS_LAST: &str =
    "DELETE FROM wallets WHERE address = $1 AND account_id = $2 AND (
        (SELECT COUNT(*) FROM wallets WHERE account_id = $2) > 1
        OR EXISTS (SELECT 1 FROM passkeys WHERE account_id = $2)
        OR EXISTS (SELECT 1 FROM social_identities WHERE account_id = $2)
        OR EXISTS (SELECT 1 FROM accounts WHERE id = $2
                   AND (password_hash IS NOT NULL OR ownid_data IS NOT NULL)))";

pub const WALLET_LINKED: &str =
    "SELECT address FROM wallets WHERE address = $1 AND account_id = $2";

pub const INSERT_PASSKEY: &str = "INSERT INTO passkeys (id, account_id, credential_id, name,
        credential, format, aaguid, transports, backup_eligible, backup_state, sign_count,
        created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

pub const PASSKEY_BY_CREDENTIAL_ID: &str =
    "SELECT id, account_id, credential, format, backup_state, sign_count
     FROM passkeys WHERE credential_id = $1";

pub const PASSKEYS: &str = "SELECT id, credential_id, name, aaguid, transports,
        backup_eligible, backup_state, created_at, last_used_at
     FROM passkeys WHERE account_id = $1 ORDER BY created_at, id";

/// The signature counter's compare-and-set: the use is recorded only if the new
/// counter is above the stored one, or both are 0 (an authenticator that keeps no
/// counter), so of concurrent sign-ins that present one counter exactly one moves it.
pub const RECORD_PASSKEY_USE: &str = "UPDATE passkeys
    SET sign_count = $1, backup_state = $2, last_used_at = $3
    WHERE id = $4 AND (sign_count < $1 OR (sign_count = 0 AND $1 = 0))";

pub const RENAME_PASSKEY: &str = "UPDATE passkeys SET name = $1 WHERE id = $2 AND account_id = $3";

/// As [`DELETE_WALLET_UNLESS_LAST`], after [`LOCK_ACCOUNT`]: another passkey, a
/// wallet, a social identity, a password or OwnID must be left.
pub const DELETE_PASSKEY_UNLESS_LAST: &str =
    "DELETE FROM passkeys WHERE id = $1 AND account_id = $2 AND (
        (SELECT COUNT(*) FROM passkeys WHERE account_id = $2) > 1
        OR EXISTS (SELECT 1 FROM wallets WHERE account_id = $2)
        OR EXISTS (SELECT 1 FROM social_identities WHERE account_id = $2)
        OR EXISTS (SELECT 1 FROM accounts WHERE id = $2
                   AND (password_hash IS NOT NULL OR ownid_data IS NOT NULL)))";

pub const PASSKEY_OF_ACCOUNT: &str = "SELECT id FROM passkeys WHERE id = $1 AND account_id = $2";

pub const PUT_ONE_TIME: &str =
    "INSERT INTO one_time_tokens (id, purpose, subject, expires_at) VALUES ($1, $2, $3, $4)";

/// One statement, so of concurrent consumers exactly one gets the row.
pub const TAKE_ONE_TIME: &str =
    "DELETE FROM one_time_tokens WHERE id = $1 AND purpose = $2 AND expires_at > $3
     RETURNING subject";

/// Inserts the key, or revives it only if it has expired: changes one row when the
/// key was not live, none when it was.
pub const REMEMBER_ONCE: &str = "INSERT INTO seen_requests (key, expires_at) VALUES ($1, $2)
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
     WHERE seen_requests.expires_at <= $3";

/// One more hit in a fixed window of `$3` seconds at time `$2`. Every SET expression
/// reads the row as it was, so the window restarts and the count resets together.
pub const HIT: &str = "INSERT INTO rate_counters (key, window_start, count, expires_at)
     VALUES ($1, $2, 1, $2 + $3)
     ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN rate_counters.window_start + $3 <= $2
                     THEN 1 ELSE rate_counters.count + 1 END,
        window_start = CASE WHEN rate_counters.window_start + $3 <= $2
                     THEN $2 ELSE rate_counters.window_start END,
        expires_at = CASE WHEN rate_counters.window_start + $3 <= $2
                     THEN $2 + $3 ELSE rate_counters.expires_at END
     RETURNING count, window_start";

pub const COUNT: &str =
    "SELECT count, window_start FROM rate_counters WHERE key = $1 AND window_start + $2 > $3";

pub const RESET: &str = "DELETE FROM rate_counters WHERE key = $1";

/// Takes back one hit of [`HIT`] (an attempt that is no longer in flight).
pub const RELEASE: &str = "UPDATE rate_counters SET count = count - 1 WHERE key = $1 AND count > 0";

/// A rate, not a window (GCRA): `window_start` holds the time at which the key's
/// spending is paid off; each spend at `$2` moves it `$3` seconds past the later of
/// that time and now. The row expires once it is paid off.
pub const SPEND: &str = "INSERT INTO rate_counters (key, window_start, count, expires_at)
     VALUES ($1, $2 + $3, 1, $2 + $3)
     ON CONFLICT (key) DO UPDATE SET
        window_start = CASE WHEN rate_counters.window_start > $2
                       THEN rate_counters.window_start ELSE $2 END + $3,
        count = rate_counters.count + 1,
        expires_at = CASE WHEN rate_counters.window_start > $2
                     THEN rate_counters.window_start ELSE $2 END + $3
     RETURNING window_start";

/// Takes the lease `$1` for holder `$2` until `$3`, or renews it: only when it is
/// free, expired at `$4`, or already this holder's. Changes one row when held.
pub const TAKE_LEASE: &str = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
     WHERE leases.holder = excluded.holder OR leases.expires_at <= $4";

/// A batch of the purge: deletes at most `$2` rows of `$table` whose `$expiry` is at or
/// before `$1` (or the `$cutoff` given, an expression of `$1`), found through the
/// expiry index. The purge runs it again until it deletes fewer, so no write holds
/// SQLite's writer (or PostgreSQL's locks) for a million rows at once. The condition
/// is repeated outside the subquery: a row revived between the two (a counter hit
/// again, a session refreshed) is left, as PostgreSQL checks the outer condition again
/// on the row's newest version. It is written `+$expiry`, an expression no index
/// serves, so the outer DELETE finds its rows by their keys whatever the statistics
/// (through the expiry index it would walk every expired row for each batch).
///
/// SQLite deletes by `rowid`: the subquery reads the expiry index alone (it holds the
/// rowid), and each row is found in the table at once. By the primary key, as before,
/// every row cost a lookup in the table for its key and one in the key's index for
/// its rowid: on a million expired sessions a batch of 1,000 held the writer about
/// 350 ms, by rowid about 190 ms (BENCHMARKS.md, "Expiry at scale"). PostgreSQL gets
/// the `$key`s as an array (`= ANY(ARRAY(…))`: an index scan of the primary key), as
/// it may otherwise hash-join the batch against a scan of the whole table; a table
/// whose primary key has two columns goes by `ctid` (a TID scan).
macro_rules! purge_batch {
    (sqlite, $table:literal, $expiry:literal) => {
        $crate::store::queries::purge_batch!(sqlite, $table, $expiry, "$1")
    };
    (sqlite, $table:literal, $expiry:literal, $cutoff:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            " WHERE rowid IN (SELECT rowid FROM ",
            $table,
            " WHERE ",
            $expiry,
            " <= ",
            $cutoff,
            " LIMIT $2) AND +",
            $expiry,
            " <= ",
            $cutoff
        )
    };
    (postgres, $table:literal, $key:literal, $expiry:literal) => {
        $crate::store::queries::purge_batch!(postgres, $table, $key, $expiry, "$1")
    };
    (postgres, $table:literal, $key:literal, $expiry:literal, $cutoff:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            " WHERE ",
            $key,
            " = ANY(ARRAY(SELECT ",
            $key,
            " FROM ",
            $table,
            " WHERE ",
            $expiry,
            " <= ",
            $cutoff,
            " LIMIT $2)) AND +",
            $expiry,
            " <= ",
            $cutoff
        )
    };
}
pub(crate) use purge_batch;

/// The purge's batches of single-use values, replay keys and counters, by table (see
/// [`purge_batch!`]), on SQLite.
pub const PURGE_EXPIRED: [(&str, &str); 5] = [
    (
        "one_time_tokens",
        purge_batch!(sqlite, "one_time_tokens", "expires_at"),
    ),
    (
        "seen_requests",
        purge_batch!(sqlite, "seen_requests", "expires_at"),
    ),
    (
        "rate_counters",
        purge_batch!(sqlite, "rate_counters", "expires_at"),
    ),
    (
        "social_pending",
        purge_batch!(sqlite, "social_pending", "expires_at"),
    ),
    (
        "social_codes",
        purge_batch!(sqlite, "social_codes", "expires_at"),
    ),
];

/// [`PURGE_EXPIRED`] on PostgreSQL.
pub const PURGE_EXPIRED_POSTGRES: [(&str, &str); 5] = [
    (
        "one_time_tokens",
        purge_batch!(postgres, "one_time_tokens", "id", "expires_at"),
    ),
    (
        "seen_requests",
        purge_batch!(postgres, "seen_requests", "key", "expires_at"),
    ),
    (
        "rate_counters",
        purge_batch!(postgres, "rate_counters", "key", "expires_at"),
    ),
    (
        "social_pending",
        purge_batch!(postgres, "social_pending", "state_hash", "expires_at"),
    ),
    (
        "social_codes",
        purge_batch!(postgres, "social_codes", "code_hash", "expires_at"),
    ),
];

/// Every statement above, for the tests that prepare each on each backend.
#[cfg(test)]
pub const ALL: &[&str] = &[
    INSERT_ACCOUNT,
    ACCOUNT_BY_EMAIL,
    ACCOUNT_BY_ID,
    ACCOUNT_PROFILE,
    LIVE_PROFILE,
    REPLACE_PASSWORD_HASH,
    SET_VERIFIED_EMAIL,
    SET_OWNID_DATA,
    HOLD_LIVE_SESSION,
    OWNID_DATA,
    WALLET_ACCOUNT,
    INSERT_WALLET,
    UPDATE_WALLET_ATTRIBUTES,
    WALLETS,
    WALLET_RECORD,
    LOCK_ACCOUNT,
    DELETE_WALLET_UNLESS_LAST,
    WALLET_LINKED,
    INSERT_PASSKEY,
    PASSKEY_BY_CREDENTIAL_ID,
    PASSKEYS,
    RECORD_PASSKEY_USE,
    RENAME_PASSKEY,
    DELETE_PASSKEY_UNLESS_LAST,
    PASSKEY_OF_ACCOUNT,
    PUT_ONE_TIME,
    TAKE_ONE_TIME,
    REMEMBER_ONCE,
    HIT,
    COUNT,
    RESET,
    RELEASE,
    SPEND,
    TAKE_LEASE,
    PURGE_EXPIRED[0].1,
    PURGE_EXPIRED[1].1,
    PURGE_EXPIRED[2].1,
    PURGE_EXPIRED[3].1,
    PURGE_EXPIRED[4].1,
];
