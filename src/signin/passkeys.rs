//! Passkeys (WebAuthn): registration on a new or a signed-in account, usernameless
//! sign-in, and the account's list. The relying party comes from the configuration
//! alone. Ceremony state is a single-use row in the database (consumed atomically,
//! so a ceremony begun on one node finishes on another, once). Knows nothing of HTTP
//! or SQL; the WebAuthn verification itself is webauthn-rs's.
//!
//! Policies:
//! - User verification is required in every ceremony.
//! - Signature counters: an authenticator that keeps none sends 0, and 0 after 0 is
//!   accepted (synced passkeys). Once a counter is above 0, each use must raise it: a
//!   counter that stays or goes back means a cloned authenticator may be in use, and
//!   that sign-in is refused (`counter_regressed`); the stored counter is left as it
//!   was, so the genuine authenticator goes on working, and the event is logged. The
//!   counter moves by a compare-and-set in the database: of concurrent sign-ins with
//!   one counter exactly one is accepted, the others are refused the same way.
//! - A credential id belongs to one account only (a unique column).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    Credential, DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::{AuthenticatorSelectionCriteria, ResidentKeyRequirement};

use crate::config::PasskeySettings;
use crate::domain::{AccountId, unix_now};
use crate::store::{
    DynStore, FORMAT_WEBAUTHN_RS_0_6, NewAccount, NewPasskey, PasskeyRemoval, PasskeySummary,
    PasskeyUse, StoreError, Unique,
};

const REGISTER: &str = "passkey-register";
const LOGIN: &str = "passkey-login";

/// Longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("passkeys are off")]
    Disabled,
    #[error("the ceremony is unknown, used or expired")]
    UnknownCeremony,
    #[error("the ceremony belongs to another account")]
    OtherAccount,
    #[error("the ceremony was begun for a signed-in account")]
    SignInRequired,
    #[error("the user was not verified")]
    UserNotVerified,
    /// The credential was made on `seen` (its client data's origin, as sent), which
    /// is not one of `allowed` (`passkeys.origins` in force).
    #[error("the credential was made on {seen}, not one of passkeys.origins ({allowed})")]
    WrongOrigin { seen: String, allowed: String },
    #[error("the signature counter did not increase")]
    CounterRegressed,
    #[error("this passkey is registered already")]
    CredentialTaken,
    #[error("unknown passkey")]
    UnknownCredential,
    #[error("the credential was refused: {0}")]
    Refused(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("no such passkey")]
    NotFound,
    #[error("the last way to sign in cannot be removed")]
    LastSignInMethod,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for PasskeyError {
    fn from(e: StoreError) -> Self {
        PasskeyError::Internal(e.into())
    }
}

impl From<WebauthnError> for PasskeyError {
    fn from(e: WebauthnError) -> Self {
        match e {
            WebauthnError::UserNotVerified => PasskeyError::UserNotVerified,
            WebauthnError::InvalidRPOrigin | WebauthnError::CredentialCrossOrigin => {
                PasskeyError::WrongOrigin {
                    seen: "another origin".into(),
                    allowed: "passkeys.origins".into(),
                }
            }
            WebauthnError::CredentialPossibleCompromise => PasskeyError::CounterRegressed,
            other => PasskeyError::Refused(other.to_string()),
        }
    }
}

/// The relying party the settings describe, checked: every origin is `https://` (or
/// `http://` on localhost) with no path, and its host is the RP ID or under it.
pub fn relying_party(p: &PasskeySettings) -> Result<Webauthn, String> {
    let rp_id = p.rp_id.trim();
    if rp_id.is_empty() || rp_id.contains(['/', ':']) {
        return Err("rp_id must be a domain such as example.com".into());
    }
    if p.rp_name.trim().is_empty() {
        return Err("rp_name must not be empty".into());
    }
    let origins = p
        .origins
        .iter()
        .map(|o| origin(o, rp_id))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = origins.first() else {
        return Err("origins must list at least one origin".into());
    };
    let mut builder = WebauthnBuilder::new(rp_id, first)
        .map_err(|e| format!("rp_id {rp_id:?} does not fit origin {first}: {e}"))?
        .rp_name(&p.rp_name)
        .timeout(std::time::Duration::from_secs(
            p.ceremony_ttl_secs.max(1) as u64
        ));
    for o in &origins[1..] {
        builder = builder.append_allowed_origin(o);
    }
    builder.build().map_err(|e| e.to_string())
}

fn origin(text: &str, rp_id: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("origins: {text:?} is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let local = host == "localhost" || host.ends_with(".localhost");
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && local);
    if !scheme_ok {
        return Err(format!(
            "origins: {text:?} must be https:// (http:// only on localhost)"
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "origins: {text:?} must be an origin only, such as https://example.com"
        ));
    }
    if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
        return Err(format!(
            "origins: the host of {text:?} is not rp_id {rp_id:?} or under it"
        ));
    }
    Ok(url)
}

/// The `origin` of a credential's client data, as the browser wrote it (at most 200
/// characters: it is the client's text), or `an unreadable origin`.
fn origin_in(client_data_json: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ClientData {
        origin: String,
    }
    match serde_json::from_slice::<ClientData>(client_data_json) {
        Ok(data) => data.origin.chars().take(200).collect(),
        Err(_) => "an unreadable origin".into(),
    }
}

/// A begun ceremony: its id and the options for the browser (`publicKey`).
pub struct Begun {
    pub ceremony: String,
    pub public_key: serde_json::Value,
}

/// A finished registration.
pub struct Registered {
    pub passkey: PasskeySummary,
    /// The account, when the ceremony created it.
    pub new_account: Option<AccountId>,
}

/// What a registration ceremony remembers between its two steps.
#[derive(Serialize, Deserialize)]
struct RegistrationCeremony {
    account: String,
    /// The ceremony creates this account (no one was signed in when it began).
    new_account: bool,
    state: PasskeyRegistration,
}

pub struct Passkeys {
    webauthn: Option<Webauthn>,
    /// `passkeys.origins` in force, for the message of a refused origin.
    origins: String,
    store: DynStore,
    ceremony_ttl_secs: i64,
}

impl Passkeys {
    pub fn new(settings: &PasskeySettings, store: DynStore) -> anyhow::Result<Passkeys> {
        let webauthn = if settings.enabled {
            Some(relying_party(settings).map_err(|e| anyhow::anyhow!("passkeys: {e}"))?)
        } else {
            None
        };
        Ok(Passkeys {
            webauthn,
            origins: settings.origins.join(", "),
            store,
            ceremony_ttl_secs: settings.ceremony_ttl_secs,
        })
    }

    fn webauthn(&self) -> Result<&Webauthn, PasskeyError> {
        self.webauthn.as_ref().ok_or(PasskeyError::Disabled)
    }

    /// A finish refused by webauthn-rs; a wrong origin names the origin the
    /// credential was made on (from its client data) and the origins allowed, and is
    /// logged: it is most often a configuration that does not match the site.
    fn refused(&self, e: WebauthnError, client_data_json: &[u8]) -> PasskeyError {
        match PasskeyError::from(e) {
            PasskeyError::WrongOrigin { .. } => {
                let seen = origin_in(client_data_json);
                tracing::warn!(origin = ?seen, allowed = %self.origins, "passkey ceremony refused: the credential was made on an origin not in passkeys.origins");
                PasskeyError::WrongOrigin {
                    seen,
                    allowed: self.origins.clone(),
                }
            }
            other => other,
        }
    }

    /// Begins registering a passkey: on `account` (signed in) or, with `None`, on a new
    /// account the finish creates. `user_name` is what the authenticator shows.
    pub async fn begin_registration(
        &self,
        account: Option<&AccountId>,
        user_name: &str,
    ) -> Result<Begun, PasskeyError> {
        let webauthn = self.webauthn()?;
        let (account, new_account, exclude) = match account {
            Some(id) => {
                let known = self.store.passkeys(id).await?;
                let exclude = known
                    .iter()
                    .filter_map(|p| B64.decode(&p.credential_id).ok())
                    .collect::<Vec<_>>();
                (id.clone(), false, Some(exclude))
            }
            None => (AccountId::generate(), true, None),
        };
        let user = Uuid::parse_str(&account.0)
            .map_err(|e| anyhow::anyhow!("account id is not a UUID: {e}"))?;
        let (mut options, state) =
            webauthn.start_passkey_registration(user, user_name, user_name, exclude)?;
        // Usernameless sign-in needs a discoverable credential: ask for one.
        let selection = options
            .public_key
            .authenticator_selection
            .get_or_insert_with(AuthenticatorSelectionCriteria::default);
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
        let ceremony = RegistrationCeremony {
            account: account.0,
            new_account,
            state,
        };
        let id = self.put_ceremony(REGISTER, &ceremony).await?;
        Ok(Begun {
            ceremony: id,
            public_key: serde_json::to_value(&options.public_key).map_err(anyhow::Error::from)?,
        })
    }

    /// Finishes a registration. `signed_in` is the account of the request's token, if
    /// it has one: a ceremony begun for an account must be finished by that account,
    /// and one begun signed out creates its account.
    pub async fn finish_registration(
        &self,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
        name: Option<String>,
        signed_in: Option<&AccountId>,
    ) -> Result<Registered, PasskeyError> {
        let webauthn = self.webauthn()?;
        let name = parse_name(name)?;
        let ceremony: RegistrationCeremony = self.take_ceremony(REGISTER, ceremony).await?;
        let account = AccountId(ceremony.account);
        match (ceremony.new_account, signed_in) {
            (false, None) => return Err(PasskeyError::SignInRequired),
            (false, Some(who)) if *who != account => return Err(PasskeyError::OtherAccount),
            (true, Some(_)) => return Err(PasskeyError::OtherAccount),
            _ => {}
        }
        let passkey = webauthn
            .finish_passkey_registration(credential, &ceremony.state)
            .map_err(|e| self.refused(e, &credential.response.client_data_json))?;
        let now = unix_now();
        let new = new_passkey(passkey, credential, name, now)?;
        let stored = if ceremony.new_account {
            let new_account = NewAccount {
                id: account.clone(),
                email: None,
                password_hash: None,
                ownid_data: None,
                created_at: now,
            };
            self.store
                .create_account_with_passkey(&new_account, &new)
                .await
        } else {
            self.store.add_passkey(&account, &new).await
        };
        match stored {
            Ok(()) => {}
            Err(StoreError::Conflict(Unique::Passkey)) => {
                return Err(PasskeyError::CredentialTaken);
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(account = %account.0, passkey = %new.id, new_account = ceremony.new_account, "passkey registered");
        Ok(Registered {
            passkey: summary(&new),
            new_account: ceremony.new_account.then_some(account),
        })
    }

    /// Begins a usernameless sign-in: no account is named, so nothing is enumerable;
    /// the options fit conditional UI (autofill) as well as a modal prompt.
    pub async fn begin_login(&self) -> Result<Begun, PasskeyError> {
        let webauthn = self.webauthn()?;
        let (options, state) = webauthn.start_discoverable_authentication()?;
        let id = self.put_ceremony(LOGIN, &state).await?;
        Ok(Begun {
            ceremony: id,
            public_key: serde_json::to_value(&options.public_key).map_err(anyhow::Error::from)?,
        })
    }

    /// Finishes a sign-in: the account the passkey belongs to.
    pub async fn finish_login(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
    ) -> Result<AccountId, PasskeyError> {
        let webauthn = self.webauthn()?;
        let state: DiscoverableAuthentication = self.take_ceremony(LOGIN, ceremony).await?;
        let (user, credential_id) = webauthn
            .identify_discoverable_authentication(credential)
            .map_err(|_| PasskeyError::UnknownCredential)?;
        let stored = self
            .store
            .passkey_by_credential_id(&B64.encode(credential_id))
            .await?
            .filter(|p| p.format == FORMAT_WEBAUTHN_RS_0_6)
            .ok_or(PasskeyError::UnknownCredential)?;
        // The user handle the authenticator returned must be the passkey's account.
        if Uuid::parse_str(&stored.account.0).ok() != Some(user) {
            return Err(PasskeyError::UnknownCredential);
        }
        let mut cred: Credential = serde_json::from_str::<Passkey>(&stored.credential)
            .map_err(|e| anyhow::anyhow!("stored passkey {} unreadable: {e}", stored.id))?
            .into();
        // The columns hold what changes with use; the stored form what does not.
        cred.counter = u32::try_from(stored.sign_count).unwrap_or(u32::MAX);
        cred.backup_state = stored.backup_state;
        let regressed = || {
            tracing::warn!(account = %stored.account.0, passkey = %stored.id, "passkey sign-in refused: the signature counter did not increase (a cloned authenticator?)");
            PasskeyError::CounterRegressed
        };
        let result = match webauthn.finish_discoverable_authentication_v2(credential, state, &cred)
        {
            Ok(result) => result,
            Err(e) => {
                return Err(
                    match self.refused(e, &credential.response.client_data_json) {
                        PasskeyError::CounterRegressed => regressed(),
                        e => e,
                    },
                );
            }
        };
        // The check above read the counter before; the database moves it only if no
        // concurrent sign-in took this counter meanwhile, so exactly one of them wins.
        let recorded = self
            .store
            .record_passkey_use(
                &stored.id,
                PasskeyUse {
                    sign_count: i64::from(result.counter().max(cred.counter)),
                    backup_state: result.backup_state(),
                    at: unix_now(),
                },
            )
            .await?;
        if !recorded {
            return Err(regressed());
        }
        Ok(stored.account)
    }

    /// The account's passkeys. Like every call here, refused while passkeys are off.
    pub async fn list(&self, account: &AccountId) -> Result<Vec<PasskeySummary>, PasskeyError> {
        self.webauthn()?;
        Ok(self.store.passkeys(account).await?)
    }

    pub async fn rename(
        &self,
        account: &AccountId,
        id: &str,
        name: Option<String>,
    ) -> Result<PasskeySummary, PasskeyError> {
        self.webauthn()?;
        let name = parse_name(name)?;
        if !self.store.rename_passkey(account, id, &name).await? {
            return Err(PasskeyError::NotFound);
        }
        self.store
            .passkeys(account)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or(PasskeyError::NotFound)
    }

    pub async fn remove(&self, account: &AccountId, id: &str) -> Result<(), PasskeyError> {
        self.webauthn()?;
        match self.store.remove_passkey(account, id).await? {
            PasskeyRemoval::Removed => {
                tracing::info!(account = %account.0, passkey = %id, "passkey removed");
                Ok(())
            }
            PasskeyRemoval::NotFound => Err(PasskeyError::NotFound),
            PasskeyRemoval::LastSignInMethod => Err(PasskeyError::LastSignInMethod),
        }
    }

    async fn put_ceremony(&self, purpose: &str, state: &impl Serialize) -> anyhow::Result<String> {
        let id = crate::crypto::random_id();
        let state = serde_json::to_string(state)?;
        self.store
            .put_one_time(&id, purpose, &state, unix_now() + self.ceremony_ttl_secs)
            .await?;
        Ok(id)
    }

    /// Consumes a ceremony: of concurrent finishes exactly one gets it.
    async fn take_ceremony<T: serde::de::DeserializeOwned>(
        &self,
        purpose: &str,
        id: &str,
    ) -> Result<T, PasskeyError> {
        if id.is_empty() || id.len() > 64 {
            return Err(PasskeyError::UnknownCeremony);
        }
        let state = self
            .store
            .take_one_time(id, purpose, unix_now())
            .await?
            .ok_or(PasskeyError::UnknownCeremony)?;
        Ok(serde_json::from_str(&state).map_err(anyhow::Error::from)?)
    }
}

/// A passkey's name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control
/// characters; "Passkey" when none is given.
fn parse_name(name: Option<String>) -> Result<String, PasskeyError> {
    let Some(name) = name else {
        return Ok("Passkey".into());
    };
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(PasskeyError::InvalidName(format!(
            "The 'name' field must be 1 to {MAX_NAME_CHARS} characters."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(PasskeyError::InvalidName(
            "The 'name' field must not contain control characters.".into(),
        ));
    }
    Ok(name.to_string())
}

fn new_passkey(
    passkey: Passkey,
    registration: &RegisterPublicKeyCredential,
    name: String,
    now: i64,
) -> Result<NewPasskey, PasskeyError> {
    let stored = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
    let cred: Credential = passkey.into();
    let transports = cred
        .transports
        .as_deref()
        .or(registration.response.transports.as_deref())
        .unwrap_or_default();
    Ok(NewPasskey {
        id: uuid::Uuid::new_v4().to_string(),
        credential_id: B64.encode(&cred.cred_id),
        name,
        credential: stored,
        format: FORMAT_WEBAUTHN_RS_0_6,
        aaguid: aaguid(&registration.response.attestation_object)
            .map(|a| Uuid::from_bytes(a).to_string())
            .unwrap_or_else(|| Uuid::nil().to_string()),
        transports: serde_json::to_string(transports).map_err(anyhow::Error::from)?,
        backup_eligible: cred.backup_eligible,
        backup_state: cred.backup_state,
        sign_count: i64::from(cred.counter),
        created_at: now,
    })
}

/// The authenticator model's AAGUID: bytes 37–52 of the attested authenticator data
/// (after the RP ID hash, the flags and the counter). The verifier has checked the
/// attestation object already; this only reads it again.
fn aaguid(attestation_object: &[u8]) -> Option<[u8; 16]> {
    #[derive(Deserialize)]
    struct Object<'a> {
        #[serde(rename = "authData", borrow)]
        auth_data: &'a [u8],
    }
    let object: Object<'_> = serde_cbor_2::from_slice(attestation_object).ok()?;
    object.auth_data.get(37..53)?.try_into().ok()
}

fn summary(p: &NewPasskey) -> PasskeySummary {
    PasskeySummary {
        id: p.id.clone(),
        credential_id: p.credential_id.clone(),
        name: p.name.clone(),
        aaguid: p.aaguid.clone(),
        transports: p.transports.clone(),
        backup_eligible: p.backup_eligible,
        backup_state: p.backup_state,
        created_at: p.created_at,
        last_used_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rp_id: &str, origins: &[&str]) -> PasskeySettings {
        PasskeySettings {
            rp_id: rp_id.into(),
            origins: origins.iter().map(|s| s.to_string()).collect(),
            ..PasskeySettings::default()
        }
    }

    #[test]
    fn the_default_relying_party_is_localhost_on_the_listening_port() {
        let origins_of = |listen: &str| -> Vec<String> {
            let settings = crate::config::Settings {
                listen: listen.parse().unwrap(),
                ..Default::default()
            };
            relying_party(&settings.passkeys_in_force())
                .unwrap()
                .get_allowed_origins()
                .iter()
                .map(|u| u.origin().ascii_serialization())
                .collect()
        };
        assert_eq!(origins_of("127.0.0.1:8080"), ["http://localhost:8080"]);
        assert_eq!(origins_of("0.0.0.0:9000"), ["http://localhost:9000"]);
        // Configured origins are taken as they are.
        let mut settings = crate::config::Settings::default();
        settings.passkeys.origins = vec!["http://localhost:3000".into()];
        assert_eq!(
            settings.passkeys_in_force().origins,
            ["http://localhost:3000"]
        );
    }

    #[test]
    fn origins_must_fit_the_rp_id_and_be_secure() {
        assert!(relying_party(&settings("example.com", &["https://login.example.com"])).is_ok());
        for (rp, origin, why) in [
            ("example.com", "https://example.org", "not rp_id"),
            ("example.com", "https://badexample.com", "not rp_id"),
            ("example.com", "http://example.com", "must be https"),
            ("example.com", "https://example.com/login", "an origin only"),
            ("localhost", "nonsense", "not a URL"),
        ] {
            let err = relying_party(&settings(rp, &[origin])).unwrap_err();
            assert!(err.contains(why), "{origin}: {err}");
        }
        let err = relying_party(&settings("example.com", &[])).unwrap_err();
        assert!(err.contains("at least one"), "{err}");
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert_eq!(parse_name(None).unwrap(), "Passkey");
        assert_eq!(parse_name(Some("  Laptop ".into())).unwrap(), "Laptop");
        assert!(parse_name(Some("".into())).is_err());
        assert!(parse_name(Some("a\u{0}b".into())).is_err());
        assert!(parse_name(Some("x".repeat(65))).is_err());
        assert_eq!(
            parse_name(Some("é".repeat(64))).unwrap().chars().count(),
            64
        );
    }
}
