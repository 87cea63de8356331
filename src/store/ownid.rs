//! Storage of OwnID's per-account data: its own narrow trait, implemented by each
//! backend. The data is an opaque string on the account's row, found by its email.

use async_trait::async_trait;

use super::StoreResult;

/// OwnID data of an account looked up by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnIdLookup {
    NoAccount,
    NoData,
    Data(String),
}

impl OwnIdLookup {
    /// From the `ownid_data` column of the account's row, if there is a row.
    pub(super) fn from_row(row: Option<Option<String>>) -> OwnIdLookup {
        match row {
            None => OwnIdLookup::NoAccount,
            Some(Some(data)) if !data.is_empty() => OwnIdLookup::Data(data),
            Some(_) => OwnIdLookup::NoData,
        }
    }
}

#[async_trait]
pub trait OwnIdStore {
    /// Sets the OwnID data of the account with this email (added at `now`); false when
    /// there is none.
    async fn set_ownid_data(&self, email_key: &str, data: &str, now: i64) -> StoreResult<bool>;
    async fn ownid_data(&self, email_key: &str) -> StoreResult<OwnIdLookup>;
}
