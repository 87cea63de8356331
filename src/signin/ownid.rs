//! OwnID's rules: the per-account data OwnID's cloud stores and reads back, and the
//! passwordless sign-in it asks for, each for the account a `loginId` names. Knows
//! nothing of HTTP or SQL; the signature over the request is checked before any of
//! this runs (`crypto::ownid_signature`).

use std::sync::Arc;

use super::flow::{Finished, Proof, SignInFlow};
use crate::accounts::AccountError;
use crate::domain::{Email, Invalid};
use crate::metrics::{Metrics, Outcome, SignInMethod};
use crate::sessions::Device;
use crate::store::{DynStore, OwnIdLookup, StoreResult};

/// OwnID's data of an account, found by the `loginId` OwnID sends.
pub struct OwnId {
    store: DynStore,
    flow: Arc<SignInFlow>,
    metrics: Arc<Metrics>,
    /// `ownid.max_data_bytes`; `None` while OwnID is off (no `ownid.shared_secrets`).
    max_data_bytes: Option<usize>,
}

impl OwnId {
    /// `max_data_bytes` is `ownid.max_data_bytes`, or `None` when OwnID is off: then
    /// no OwnID data is accepted, not even at registration.
    pub fn new(
        store: DynStore,
        flow: Arc<SignInFlow>,
        metrics: Arc<Metrics>,
        max_data_bytes: Option<usize>,
    ) -> OwnId {
        OwnId {
            store,
            flow,
            metrics,
            max_data_bytes,
        }
    }

    /// Accepts OwnID data, from OwnID's cloud or at registration: an opaque string,
    /// stored as received and never logged, non-empty and at most `ownid.max_data_bytes`.
    /// While OwnID is off it accepts nothing: an account made with OwnID data could
    /// never sign in, and would hold its address.
    pub fn parse_data(&self, data: String) -> Result<String, Invalid> {
        let Some(max_data_bytes) = self.max_data_bytes else {
            return Err(Invalid(
                "OwnID sign-in is off on this server: the 'ownIdData' field is not accepted."
                    .into(),
            ));
        };
        if data.is_empty() {
            return Err(Invalid("The 'ownIdData' field must not be empty.".into()));
        }
        if data.len() > max_data_bytes {
            return Err(Invalid(format!(
                "The 'ownIdData' field must be at most {max_data_bytes} bytes long."
            )));
        }
        Ok(data)
    }

    /// Stores `data` (from [`OwnId::parse_data`]) as the account's OwnID data, in place
    /// of any before (a new device enrolled). False when no account has that `loginId`.
    pub async fn set_data(&self, login_id: &str, data: &str) -> StoreResult<bool> {
        match account_email(login_id) {
            Some(email) => {
                let now = crate::domain::unix_now();
                self.store.set_ownid_data(email.key(), data, now).await
            }
            None => Ok(false),
        }
    }

    /// The account's OwnID data, if it has an account and the account has data.
    pub async fn data(&self, login_id: &str) -> StoreResult<OwnIdLookup> {
        match account_email(login_id) {
            Some(email) => self.store.ownid_data(email.key()).await,
            None => Ok(OwnIdLookup::NoAccount),
        }
    }

    /// A session for the account, as a password sign-in starts; `None` when no account
    /// has that `loginId`. OwnID's cloud vouched for the person, so there is no
    /// credential to check here. Counted in the sign-in metrics when the `loginId` is
    /// an email.
    pub async fn sign_in(&self, login_id: &str) -> Result<Option<Finished>, AccountError> {
        let Some(email) = account_email(login_id) else {
            return Ok(None);
        };
        let result = self.sign_in_by_email(&email).await;
        let outcome = match &result {
            Ok(Some(_)) => Outcome::Success,
            Ok(None) => Outcome::Failure,
            Err(AccountError::Disabled) => Outcome::Disabled,
            Err(_) => Outcome::Error,
        };
        self.metrics.sign_in(SignInMethod::Ownid, outcome);
        result
    }

    async fn sign_in_by_email(&self, email: &Email) -> Result<Option<Finished>, AccountError> {
        match self.store.account_by_email(email.key()).await? {
            // The caller is OwnID's server, not the person's device: nothing to record of it.
            Some(account) => Ok(Some(
                self.flow
                    .finish(&account, Proof::Ownid, &Device::default())
                    .await?,
            )),
            None => Ok(None),
        }
    }
}

/// The account a `loginId` names. OwnID may send identifiers other than emails (phone
/// numbers); no account has those, so they are unknown accounts, not bad requests.
fn account_email(login_id: &str) -> Option<Email> {
    Email::parse(login_id, "loginId").ok()
}
