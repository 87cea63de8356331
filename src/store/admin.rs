//! What an operator does to accounts (`gatehouse users …`, `gatehouse sessions …`):
//! its own narrow trait, implemented by each backend, with its SQL written once (as in
//! [`super::queries`]).

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::AccountId;

/// An account as an operator sees it: no secret, no OwnID data, no attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountOverview {
    pub id: AccountId,
    pub email: Option<String>,
    pub email_verified: bool,
    pub created_at: i64,
    /// When it was disabled; `None` while it may sign in.
    pub disabled_at: Option<i64>,
    pub last_sign_in_at: Option<i64>,
    pub has_password: bool,
    pub has_ownid: bool,
    pub wallets: i64,
    pub passkeys: i64,
    /// Live sessions.
    pub sessions: i64,
}

#[async_trait]
pub trait AdminStore: Send + Sync + 'static {
    /// Accounts whose email, id or a wallet address contains `search` (lower case;
    /// every account when empty), oldest first, at most `limit`; with `after`, those
    /// that come after that account (keyset pagination: each page a range of
    /// `accounts_created_at`, whatever the page's depth). None after an unknown id.
    async fn list_accounts(
        &self,
        search: &str,
        now: i64,
        after: Option<&AccountId>,
        limit: i64,
    ) -> StoreResult<Vec<AccountOverview>>;
    async fn account_overview(
        &self,
        id: &AccountId,
        now: i64,
    ) -> StoreResult<Option<AccountOverview>>;
    /// Disables the account (keeping the first `disabled_at`), which ends every
    /// session of it at once: the session check and refresh refuse a disabled
    /// account's sessions, saying why (`account_disabled`), until [`Self::enable_account`]
    /// deletes them. How many live sessions it had; `None` if there is no such account.
    async fn disable_account(&self, id: &AccountId, now: i64) -> StoreResult<Option<u64>>;
    /// True if the account exists and is disabled (to say why a token was refused).
    async fn account_disabled(&self, id: &AccountId) -> StoreResult<bool>;
    /// Lets the account sign in again, deleting the sessions it had (they stay ended),
    /// in one transaction; false if there is no such account.
    async fn enable_account(&self, id: &AccountId) -> StoreResult<bool>;
}

pub(crate) mod sql {
    /// The columns of [`super::AccountOverview`], `$1` the time now (for live sessions;
    /// `+ 0`: see [`crate::store::sessions::sql::OF_ACCOUNT`]).
    macro_rules! overview {
        () => {
            "SELECT a.id, a.email, a.email_verified, a.created_at,
            a.disabled_at, a.last_sign_in_at,
            a.password_hash IS NOT NULL, a.ownid_data IS NOT NULL,
            (SELECT COUNT(*) FROM wallets w WHERE w.account_id = a.id),
            (SELECT COUNT(*) FROM passkeys p WHERE p.account_id = a.id),
            (SELECT COUNT(*) FROM sessions s WHERE s.account_id = a.id
                AND s.idle_expires_at + 0 > $1 AND a.disabled_at IS NULL)
        FROM accounts a"
        };
    }

    /// `$2` a LIKE pattern (`%` for all), `\` its escape.
    macro_rules! matching {
        () => {
            " (a.email_key LIKE $2 ESCAPE '\\' OR a.id LIKE $2 ESCAPE '\\'
            OR EXISTS (SELECT 1 FROM wallets w WHERE w.account_id = a.id
                       AND w.address LIKE $2 ESCAPE '\\'))"
        };
    }

    /// The first page: `$3` the limit.
    pub const LIST: &str = concat!(
        overview!(),
        " WHERE",
        matching!(),
        " ORDER BY a.created_at, a.id LIMIT $3"
    );

    /// A page after account `$3`: `$4` the limit. The page starts at `($3`'s
    /// `created_at`, `$3)` in `accounts_created_at`, both columns. The id is the
    /// parameter itself, not the subquery's: SQLite does not seek an index with a row
    /// value a subquery returns, only with its first column, and walked every account
    /// created in the same second as `$3` up to it (an import: 357 ms a page at 1 M
    /// accounts). PostgreSQL seeks both columns either way.
    pub const LIST_AFTER: &str = concat!(
        overview!(),
        " WHERE",
        matching!(),
        " AND (a.created_at, a.id) > ((SELECT b.created_at FROM accounts b WHERE b.id = $3), $3)
        ORDER BY a.created_at, a.id LIMIT $4"
    );

    pub const ONE: &str = concat!(overview!(), " WHERE a.id = $2");

    pub const DISABLE: &str =
        "UPDATE accounts SET disabled_at = COALESCE(disabled_at, $1) WHERE id = $2";

    /// `+ 0`: see [`crate::store::sessions::sql::OF_ACCOUNT`].
    pub const LIVE_SESSIONS: &str =
        "SELECT COUNT(*) FROM sessions WHERE account_id = $1 AND idle_expires_at + 0 > $2";

    pub const IS_DISABLED: &str =
        "SELECT 1 FROM accounts WHERE id = $1 AND disabled_at IS NOT NULL";

    pub const ENABLE: &str = "UPDATE accounts SET disabled_at = NULL WHERE id = $1";

    #[cfg(test)]
    pub const ALL: &[&str] = &[
        LIST,
        LIST_AFTER,
        ONE,
        DISABLE,
        LIVE_SESSIONS,
        IS_DISABLED,
        ENABLE,
    ];
}

/// A LIKE pattern matching values that contain `text`, `\` escaping `%`, `_` and `\`.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn patterns_escape_like_wildcards() {
        assert_eq!(contains_pattern(""), "%%");
        assert_eq!(contains_pattern("ada"), "%ada%");
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
