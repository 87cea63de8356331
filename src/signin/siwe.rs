//! Sign-In with Ethereum (EIP-4361): server-issued nonces, the strict checks of a
//! signed message, and the account the address signs in to. Knows nothing of HTTP or
//! SQL.
//!
//! An address is a wallet in the one `wallets` table that Login with SelfKey uses too:
//! an address that signed in through either is the same wallet of the same account.
//!
//! Every check runs before the nonce is consumed, so nobody who sees a nonce (or a
//! whole message) in flight can burn it with a bad submission; then the nonce is
//! consumed by one atomic delete, so of any number of concurrent submissions of one
//! signed message, on any number of nodes, exactly one signs in.

pub mod message;

use time::OffsetDateTime;

use super::selfkey::{self, SelfKeyError};
use crate::crypto::eth::{self, Address, PublicKey, Signature};
use crate::crypto::jwt::TokenKeys;
use crate::domain::{Account, AccountId};
use crate::store::{NewAccount, NewWallet, Store, StoreError, Unique};
pub use message::{GrammarError, Message};

const NONCE_PURPOSE: &str = "siwe-nonce";

/// Longest signature read, hex digits after `0x`: a contract wallet's signature can be
/// long (several owners, an EIP-6492 wrapper), but it is refused either way.
const MAX_SIGNATURE_DIGITS: usize = 8 * 1024;

/// An origin messages may be for: a scheme and an RFC 3986 authority, lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    authority: String,
}

impl Origin {
    /// `scheme://authority`, optionally with a trailing `/`, nothing else.
    pub fn parse(s: &str) -> Option<Origin> {
        let s = s.strip_suffix('/').unwrap_or(s);
        let (scheme, authority) = s.split_once("://")?;
        (message::is_scheme(scheme) && message::is_authority(authority)).then(|| Origin {
            scheme: scheme.to_ascii_lowercase(),
            authority: authority.to_ascii_lowercase(),
        })
    }

    fn has_authority(&self, authority: &str) -> bool {
        self.authority.eq_ignore_ascii_case(authority)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// What a message must satisfy, from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The sites messages may be for (`siwe.domains`).
    pub origins: Vec<Origin>,
    /// The EIP-155 chains accepted (`siwe.chain_ids`).
    pub chain_ids: Vec<u64>,
    /// How long a nonce can be used, seconds.
    pub nonce_ttl_secs: i64,
    /// How far `issued-at` may be ahead of the server's clock, and before the oldest
    /// live nonce, seconds. `None` checks nothing (the reference vectors, which are
    /// years old, verify without it).
    pub issued_at_skew_secs: Option<i64>,
}

/// Why a submission was refused; each is its own error code on the wire.
#[derive(Debug, thiserror::Error)]
pub enum SiweError {
    #[error("not an EIP-4361 message: {0}")]
    Grammar(#[from] GrammarError),
    #[error("the signature is not 0x and hex digits")]
    MalformedSignature,
    #[error(
        "a contract wallet's signature (EIP-1271 or EIP-6492); only EOA signatures are accepted"
    )]
    ContractWallet,
    #[error("the message's scheme is not this site's")]
    SchemeMismatch,
    #[error("the message's domain is not this site's")]
    DomainMismatch,
    #[error("the message's URI is not on this site")]
    UriMismatch,
    #[error("the message's chain is not accepted")]
    ChainNotAllowed,
    #[error("the message's issued-at is too far from now")]
    IssuedAtOutOfRange,
    #[error("the message has expired")]
    Expired,
    #[error("the message is not valid yet")]
    NotYetValid,
    #[error("the signature was not made by the message's address")]
    SignatureMismatch,
    #[error("the nonce was not issued here, was used already, or has expired")]
    InvalidNonce,
    #[error("the link token is invalid, expired or already used")]
    InvalidLinkToken,
    #[error("the address belongs to another account")]
    WalletLinked,
    #[error("the account no longer exists")]
    AccountGone,
    /// The signature was right, but an operator disabled the account.
    #[error("the account is disabled")]
    AccountDisabled,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for SiweError {
    fn from(e: StoreError) -> Self {
        SiweError::Internal(e.into())
    }
}

impl From<SelfKeyError> for SiweError {
    fn from(e: SelfKeyError) -> Self {
        match e {
            SelfKeyError::InvalidLinkToken => SiweError::InvalidLinkToken,
            SelfKeyError::WalletTaken => SiweError::WalletLinked,
            SelfKeyError::AccountDisabled => SiweError::AccountDisabled,
            other => SiweError::Internal(other.into()),
        }
    }
}

/// A message that passed every check but the nonce's.
#[derive(Debug, Clone)]
pub struct Verified {
    pub message: Message,
    pub public_key: PublicKey,
}

impl Policy {
    /// Every check of a message and its signature that needs no database, cheapest
    /// first, the signature's recovery last.
    pub fn verify(
        &self,
        text: &str,
        signature: &str,
        now: OffsetDateTime,
    ) -> Result<Verified, SiweError> {
        let message = Message::parse(text)?;
        let signature = parse_signature(signature)?;

        let origin = self
            .origins
            .iter()
            .find(|o| o.has_authority(&message.domain))
            .ok_or(SiweError::DomainMismatch)?;
        // No scheme in the message: the wallet checked the page's origin as https.
        if let Some(scheme) = &message.scheme
            && !scheme.eq_ignore_ascii_case(&origin.scheme)
        {
            return Err(SiweError::SchemeMismatch);
        }
        if !self.origins.iter().any(|o| uri_is_on(&message.uri, o)) {
            return Err(SiweError::UriMismatch);
        }
        if !self.chain_ids.contains(&message.chain_id) {
            return Err(SiweError::ChainNotAllowed);
        }
        if let Some(skew) = self.issued_at_skew_secs {
            let skew = time::Duration::seconds(skew);
            let oldest = now - time::Duration::seconds(self.nonce_ttl_secs) - skew;
            let at = message.issued_at.at;
            if at > now + skew || at < oldest {
                return Err(SiweError::IssuedAtOutOfRange);
            }
        }
        // Valid from not-before up to, not including, the expiration time.
        if message
            .expiration_time
            .as_ref()
            .is_some_and(|t| now >= t.at)
        {
            return Err(SiweError::Expired);
        }
        if message.not_before.as_ref().is_some_and(|t| now < t.at) {
            return Err(SiweError::NotYetValid);
        }

        let hash = eth::personal_sign_hash(text.as_bytes());
        let public_key =
            eth::recover(&hash, &signature).map_err(|_| SiweError::SignatureMismatch)?;
        if public_key.address() != message.address {
            return Err(SiweError::SignatureMismatch);
        }
        Ok(Verified {
            message,
            public_key,
        })
    }
}

/// An EOA's 65-byte signature. A longer one is a contract wallet's: EIP-1271
/// signatures are whatever the contract accepts (several owners' signatures, a type
/// byte after one), and EIP-6492 wraps one with the contract's deployment; checking
/// either needs a chain RPC, so they are refused with a
/// code of their own. (A 65-byte signature from a contract wallet looks like an
/// EOA's and is refused as [`SiweError::SignatureMismatch`]: without the chain, it
/// cannot be told from a wrong key's.)
fn parse_signature(text: &str) -> Result<Signature, SiweError> {
    let digits = text
        .strip_prefix("0x")
        .ok_or(SiweError::MalformedSignature)?;
    if digits.len() > MAX_SIGNATURE_DIGITS
        || digits.len() % 2 != 0
        || !digits.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(SiweError::MalformedSignature);
    }
    if digits.len() > 130 {
        return Err(SiweError::ContractWallet);
    }
    Signature::parse(text).map_err(|_| SiweError::MalformedSignature)
}

/// The URI's scheme and authority are the origin's.
fn uri_is_on(uri: &str, origin: &Origin) -> bool {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    scheme.eq_ignore_ascii_case(&origin.scheme) && origin.has_authority(authority)
}

/// How a sign-in went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The address was a wallet of this account.
    SignedIn,
    /// A new account was created with the address as its wallet.
    Created,
    /// The address joined the account of the link token.
    Linked,
}

/// The account a verified message signs in to.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub account: Account,
    pub address: Address,
    pub outcome: Outcome,
}

/// The service; cheap to build per request from the node's parts.
pub struct Siwe<'a> {
    store: &'a dyn Store,
    tokens: &'a TokenKeys,
    policy: &'a Policy,
}

impl<'a> Siwe<'a> {
    pub fn new(store: &'a dyn Store, tokens: &'a TokenKeys, policy: &'a Policy) -> Self {
        Siwe {
            store,
            tokens,
            policy,
        }
    }

    /// A nonce for one message: 32 random hex digits, usable once for
    /// `nonce_ttl_secs`.
    pub async fn issue_nonce(&self, now: i64) -> Result<String, SiweError> {
        let nonce = crate::crypto::random_id();
        self.store
            .put_one_time(&nonce, NONCE_PURPOSE, "", now + self.policy.nonce_ttl_secs)
            .await?;
        Ok(nonce)
    }

    /// The EIP-4361 message for `address` to sign, as the hosted sign-in page offers it:
    /// for the first of the policy's origins that is `site` (else the first), the page
    /// `path` as its URI, the first allowed chain, a new nonce and `now`. The wallet
    /// signs it unchanged; [`Siwe::sign_in`] checks it as any other.
    pub async fn page_message(
        &self,
        address: &str,
        site: Option<&str>,
        path: &str,
        now: OffsetDateTime,
    ) -> Result<String, SiweError> {
        let address = Address::parse(address).map_err(|_| {
            SiweError::Grammar(message::GrammarError {
                line: 2,
                what: "the address must be 0x and 40 hex digits",
            })
        })?;
        let origin = self
            .policy
            .origins
            .iter()
            .find(|o| site.is_some_and(|s| o.to_string().eq_ignore_ascii_case(s)))
            .or_else(|| self.policy.origins.first())
            .ok_or_else(|| SiweError::Internal(anyhow::anyhow!("siwe: no origin configured")))?;
        let chain = self.policy.chain_ids.first().copied().unwrap_or(1);
        let nonce = self.issue_nonce(now.unix_timestamp()).await?;
        let issued_at = now
            .replace_nanosecond(0)
            .unwrap_or(now)
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| SiweError::Internal(e.into()))?;
        Ok(format!(
            "{authority} wants you to sign in with your Ethereum account:\n{address}\n\n\
             Sign in with Ethereum\n\nURI: {origin}{path}\nVersion: 1\nChain ID: {chain}\n\
             Nonce: {nonce}\nIssued At: {issued_at}",
            authority = origin.authority,
            address = address.to_eip55(),
        ))
    }

    /// Verifies a signed message and signs its address in: to the account it is a
    /// wallet of, or, with a link token, to the token's account, which the address
    /// joins, or else to a new account whose only way in is the address.
    pub async fn sign_in(
        &self,
        text: &str,
        signature: &str,
        link_token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<SignedIn, SiweError> {
        let link = link_token
            .map(|t| selfkey::verify_link(self.tokens, t))
            .transpose()?;
        let verified = self.policy.verify(text, signature, now)?;
        let address = verified.message.address;
        let wallet = address.to_string();
        let owner = self.store.wallet_account(&wallet).await?;
        if let (Some(owner), Some(link)) = (&owner, &link)
            && *owner != link.account
        {
            return Err(SiweError::WalletLinked);
        }
        let unix = now.unix_timestamp();
        if self
            .store
            .take_one_time(&verified.message.nonce, NONCE_PURPOSE, unix)
            .await?
            .is_none()
        {
            return Err(SiweError::InvalidNonce);
        }
        let new_wallet = NewWallet {
            address: wallet,
            public_key: verified.public_key.to_string(),
            attributes: "[]".into(),
            now: unix,
        };
        let (account, outcome) = match (owner, link) {
            (Some(owner), _) => (owner, Outcome::SignedIn),
            (None, Some(link)) => {
                let account = selfkey::link_with(self.store, link, &new_wallet).await?;
                tracing::info!(account = %account.0, wallet = %new_wallet.address, "address linked through SIWE");
                (account, Outcome::Linked)
            }
            (None, None) => self.create_account(&new_wallet).await?,
        };
        let profile = self
            .store
            .account_profile(&account)
            .await?
            .ok_or(SiweError::AccountGone)?;
        Ok(SignedIn {
            account: profile.account,
            address,
            outcome,
        })
    }

    /// A new account with the wallet; if another request created one for the same
    /// address meanwhile, that account.
    async fn create_account(&self, wallet: &NewWallet) -> Result<(AccountId, Outcome), SiweError> {
        let account = NewAccount {
            id: AccountId::generate(),
            email: None,
            password_hash: None,
            ownid_data: None,
            created_at: wallet.now,
        };
        match self
            .store
            .create_account_with_wallet(&account, wallet)
            .await
        {
            Ok(()) => {
                tracing::info!(account = %account.id.0, wallet = %wallet.address, "account created for a SIWE address");
                Ok((account.id, Outcome::Created))
            }
            Err(StoreError::Conflict(Unique::Wallet)) => {
                let owner = self
                    .store
                    .wallet_account(&wallet.address)
                    .await?
                    .ok_or(SiweError::AccountGone)?;
                Ok((owner, Outcome::SignedIn))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use secp256k1::SecretKey;
    use secp256k1::ecdsa::RecoverableSignature;
    use serde_json::Value;
    use time::format_description::well_known::Rfc3339;

    const POSITIVE: &str = include_str!("../../tests/vectors/siwe/verification_positive.json");
    const NEGATIVE: &str = include_str!("../../tests/vectors/siwe/verification_negative.json");
    const EIP1271: &str = include_str!("../../tests/vectors/siwe/eip1271.json");

    fn cases(json: &str) -> Vec<(String, Value)> {
        match serde_json::from_str(json).unwrap() {
            Value::Object(cases) => cases.into_iter().collect(),
            _ => panic!("the vectors are an object of cases"),
        }
    }

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    /// The policy of the site a vector's message is for: its domain and its URI's
    /// origin (or only `site`, the vector's other domain), chain 1, no issued-at
    /// window (the vectors are years old).
    fn policy_for(fields: &Value, site: Option<&str>) -> Policy {
        let origins = match site {
            Some(site) => vec![format!("https://{site}")],
            None => {
                let uri = fields["uri"].as_str().unwrap();
                let domain = fields["domain"].as_str().unwrap();
                vec![
                    format!("https://{domain}"),
                    uri.split('/').take(3).collect::<Vec<_>>().join("/"),
                ]
            }
        };
        Policy {
            origins: origins.iter().map(|o| Origin::parse(o).unwrap()).collect(),
            chain_ids: vec![1],
            nonce_ttl_secs: 300,
            issued_at_skew_secs: None,
        }
    }

    async fn store(dir: &tempfile::TempDir) -> SqliteStore {
        let url = format!("sqlite://{}", dir.path().join("siwe.db").display());
        SqliteStore::connect(&url, 2).await.unwrap()
    }

    fn tokens() -> TokenKeys {
        TokenKeys::new(b"siwe-tests-secret-0123456789-0123456789", "gatehouse")
    }

    /// Signs the message in, after storing its nonce as issued here.
    async fn sign_in_with_nonce(
        store: &SqliteStore,
        policy: &Policy,
        text: &str,
        signature: &str,
        nonce: &str,
        now: OffsetDateTime,
    ) -> Result<SignedIn, SiweError> {
        // Several vectors share a nonce: one still stored from an earlier case is fine.
        match store
            .put_one_time(nonce, NONCE_PURPOSE, "", now.unix_timestamp() + 60)
            .await
        {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
        let tokens = tokens();
        Siwe::new(store, &tokens, policy)
            .sign_in(text, signature, None, now)
            .await
    }

    #[tokio::test]
    async fn every_positive_verification_vector_signs_in_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let cases = cases(POSITIVE);
        assert_eq!(cases.len(), 4);
        for (name, fields) in cases {
            let text = message::tests::prepare(&fields);
            let now = fields["time"]
                .as_str()
                .map_or_else(OffsetDateTime::now_utc, at);
            let policy = policy_for(&fields, None);
            let signature = fields["signature"].as_str().unwrap();
            let nonce = fields["nonce"].as_str().unwrap();
            let signed_in = sign_in_with_nonce(&store, &policy, &text, signature, nonce, now)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                signed_in.address.to_eip55(),
                fields["address"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(signed_in.account.email, None, "{name}");
            // The nonce is spent: the same submission again is refused.
            let tokens = tokens();
            let again = Siwe::new(&store, &tokens, &policy)
                .sign_in(&text, signature, None, now)
                .await;
            assert!(
                matches!(again, Err(SiweError::InvalidNonce)),
                "{name}: {again:?}"
            );
        }
    }

    #[tokio::test]
    async fn every_negative_verification_vector_is_refused_for_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let negative = cases(NEGATIVE);
        assert_eq!(negative.len(), 10);
        for (name, fields) in negative {
            let text = message::tests::prepare(&fields);
            let now = fields["time"]
                .as_str()
                .map_or_else(OffsetDateTime::now_utc, at);
            let policy = policy_for(&fields, fields["domainBinding"].as_str());
            let signature = fields["signature"].as_str().unwrap();
            let nonce = fields["matchNonce"]
                .as_str()
                .or(fields["nonce"].as_str())
                .unwrap();
            let result = sign_in_with_nonce(&store, &policy, &text, signature, nonce, now).await;
            let expected = match name.as_str() {
                "expired message" | "custom time" => matches!(result, Err(SiweError::Expired)),
                "domain binding" => matches!(result, Err(SiweError::DomainMismatch)),
                "custom nonce" => matches!(result, Err(SiweError::InvalidNonce)),
                "malformed signature" => matches!(result, Err(SiweError::MalformedSignature)),
                "wrong signature" => matches!(result, Err(SiweError::SignatureMismatch)),
                "not yet valid" => matches!(result, Err(SiweError::NotYetValid)),
                "invalid issuedAt" | "invalid notBefore" | "invalid expirationTime" => {
                    matches!(result, Err(SiweError::Grammar(_)))
                }
                other => panic!("a vector this test does not know: {other}"),
            };
            assert!(expected, "{name}: {result:?}");
        }
        // Nothing was signed in: no account has any of these addresses.
        for (name, fields) in cases(NEGATIVE) {
            let address = Address::parse(&fields["address"].as_str().unwrap().to_lowercase())
                .unwrap()
                .to_string();
            assert_eq!(
                store.wallet_account(&address).await.unwrap(),
                None,
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn contract_wallet_vectors_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let policy = Policy {
            origins: vec![Origin::parse("http://localhost:4361").unwrap()],
            ..policy_for(
                &serde_json::json!({"domain": "x", "uri": "https://x"}),
                None,
            )
        };
        let cases = cases(EIP1271);
        assert_eq!(cases.len(), 2);
        for (name, case) in cases {
            let text = case["message"].as_str().unwrap();
            let nonce = Message::parse(text).unwrap().nonce;
            let signature = case["signature"].as_str().unwrap();
            let now = OffsetDateTime::now_utc();
            let result = sign_in_with_nonce(&store, &policy, text, signature, &nonce, now).await;
            match name.as_str() {
                // 66 bytes (Loopring appends a signature type): a contract's signature.
                "loopring" => assert!(
                    matches!(result, Err(SiweError::ContractWallet)),
                    "{result:?}"
                ),
                // 65 bytes, an owner key's ECDSA signature: it recovers to the owner,
                // not to the wallet contract's address, and nothing but the chain can
                // tell that from a wrong key.
                "argent" => assert!(
                    matches!(result, Err(SiweError::SignatureMismatch)),
                    "{result:?}"
                ),
                other => panic!("a vector this test does not know: {other}"),
            }
            // The nonce was not consumed by the refusal.
            assert!(
                store
                    .take_one_time(&nonce, NONCE_PURPOSE, now.unix_timestamp())
                    .await
                    .unwrap()
                    .is_some(),
                "{name}"
            );
        }
    }

    const KEY: [u8; 32] = [7; 32];

    fn signer() -> (SecretKey, Address) {
        let key = SecretKey::from_secret_bytes(KEY).unwrap();
        let public = PublicKey::from_secp(&secp256k1::PublicKey::from_secret_key(&key));
        (key, public.address())
    }

    fn sign(key: &SecretKey, text: &str) -> String {
        let digest = secp256k1::Message::from_digest(eth::personal_sign_hash(text.as_bytes()));
        Signature::from_secp(RecoverableSignature::sign_ecdsa_recoverable(digest, key)).to_string()
    }

    fn site_policy() -> Policy {
        Policy {
            origins: vec![
                Origin::parse("https://app.example").unwrap(),
                Origin::parse("http://localhost:8080/").unwrap(),
            ],
            chain_ids: vec![1, 10],
            nonce_ttl_secs: 300,
            issued_at_skew_secs: Some(60),
        }
    }

    const NOW: &str = "2026-06-01T12:00:00Z";

    fn text(address: &Address, edit: impl FnOnce(&mut Vec<(String, String)>)) -> String {
        let mut fields: Vec<(String, String)> = [
            ("origin", "https://app.example"),
            ("uri", "https://app.example/login"),
            ("chain", "1"),
            ("issued", "2026-06-01T11:59:30Z"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        edit(&mut fields);
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let mut out = format!(
            "{} wants you to sign in with your Ethereum account:\n{}\n\nSign in to App\n\n\
             URI: {}\nVersion: 1\nChain ID: {}\nNonce: abcdefgh12345678\nIssued At: {}",
            get("origin").unwrap(),
            address.to_eip55(),
            get("uri").unwrap(),
            get("chain").unwrap(),
            get("issued").unwrap()
        );
        if let Some(exp) = get("exp") {
            out.push_str(&format!("\nExpiration Time: {exp}"));
        }
        if let Some(nbf) = get("nbf") {
            out.push_str(&format!("\nNot Before: {nbf}"));
        }
        out
    }

    fn set(fields: &mut Vec<(String, String)>, key: &str, value: &str) {
        fields.retain(|(k, _)| k != key);
        fields.push((key.to_string(), value.to_string()));
    }

    fn verify(edit: impl FnOnce(&mut Vec<(String, String)>)) -> Result<Verified, SiweError> {
        verify_at(NOW, edit)
    }

    fn verify_at(
        now: &str,
        edit: impl FnOnce(&mut Vec<(String, String)>),
    ) -> Result<Verified, SiweError> {
        let (key, address) = signer();
        let text = text(&address, edit);
        site_policy().verify(&text, &sign(&key, &text), at(now))
    }

    #[test]
    fn a_message_for_this_site_verifies() {
        let verified = verify(|_| {}).unwrap();
        assert_eq!(verified.message.address, signer().1);
        assert_eq!(verified.public_key.address(), signer().1);
        // Without a scheme, the authority alone is matched (the wallet assumed https).
        verify(|f| set(f, "origin", "app.example")).unwrap();
        verify(|f| set(f, "origin", "APP.example")).unwrap();
        verify(|f| {
            set(f, "origin", "http://localhost:8080");
            set(f, "uri", "http://localhost:8080/");
            set(f, "chain", "10");
        })
        .unwrap();
    }

    #[test]
    fn each_binding_is_checked_with_its_own_error() {
        use SiweError as E;
        let cases = [
            (
                "origin",
                "https://evil.example",
                "domain",
                E::DomainMismatch,
            ),
            (
                "origin",
                "app.example:443",
                "domain, port",
                E::DomainMismatch,
            ),
            ("origin", "http://app.example", "scheme", E::SchemeMismatch),
            ("uri", "https://evil.example/login", "uri", E::UriMismatch),
            (
                "uri",
                "http://app.example/login",
                "uri scheme",
                E::UriMismatch,
            ),
            ("uri", "did:key:z6Mk", "uri, no authority", E::UriMismatch),
            ("chain", "137", "chain", E::ChainNotAllowed),
            (
                "issued",
                "2026-06-01T12:01:01Z",
                "future",
                E::IssuedAtOutOfRange,
            ),
            (
                "issued",
                "2026-06-01T11:53:59Z",
                "older than nonces",
                E::IssuedAtOutOfRange,
            ),
            ("exp", "2026-06-01T12:00:00Z", "expires now", E::Expired),
            (
                "nbf",
                "2026-06-01T12:00:00.001Z",
                "valid in 1 ms",
                E::NotYetValid,
            ),
        ];
        for (field, value, what, expected) in cases {
            let e = verify(|f| set(f, field, value)).expect_err(what);
            assert_eq!(
                std::mem::discriminant(&e),
                std::mem::discriminant(&expected),
                "{what}: {e:?}"
            );
        }
        // The bounds themselves are inside.
        verify(|f| set(f, "issued", "2026-06-01T12:01:00Z")).unwrap();
        verify(|f| set(f, "issued", "2026-06-01T11:54:00Z")).unwrap();
        verify(|f| set(f, "exp", "2026-06-01T12:00:00.001Z")).unwrap();
        verify(|f| set(f, "nbf", "2026-06-01T12:00:00Z")).unwrap();
    }

    #[test]
    fn signatures_eoa_only() {
        let (key, address) = signer();
        let text = text(&address, |_| {});
        let policy = site_policy();
        let good = sign(&key, &text);
        let check = |sig: &str| policy.verify(&text, sig, at(NOW));
        assert!(check(&good).is_ok());
        // v as 0/1 is the same signature.
        let v = u8::from_str_radix(&good[130..], 16).unwrap() - 27;
        assert!(check(&format!("{}{v:02x}", &good[..130])).is_ok());
        // Another key's signature of the same text, or this key's of another text.
        let other = SecretKey::from_secret_bytes([9; 32]).unwrap();
        assert!(matches!(
            check(&sign(&other, &text)),
            Err(SiweError::SignatureMismatch)
        ));
        assert!(matches!(
            check(&sign(&key, &format!("{text} "))),
            Err(SiweError::SignatureMismatch)
        ));
        // An EIP-6492 wrapper, a Safe's concatenated owner signatures.
        let wrapped = format!("0x{}{}", "ab".repeat(200), "6492".repeat(16));
        let two_owners = format!("{good}{}", &good[2..]);
        for contract in [wrapped.as_str(), two_owners.as_str()] {
            assert!(
                matches!(check(contract), Err(SiweError::ContractWallet)),
                "{contract}"
            );
        }
        for malformed in [
            "0x",
            &good[..128],
            &good[2..],
            &good[..131],
            &format!("{}zz", &good[..130]),
            &format!("0x{}", "ab".repeat(MAX_SIGNATURE_DIGITS)),
            &format!("{}05", &good[..130]),
        ] {
            assert!(
                matches!(check(malformed), Err(SiweError::MalformedSignature)),
                "{malformed}"
            );
        }
    }

    #[test]
    fn origins_from_the_configuration() {
        for good in [
            "https://app.example",
            "http://localhost:8080/",
            "https://[::1]:8443",
        ] {
            assert!(Origin::parse(good).is_some(), "{good}");
        }
        for bad in [
            "app.example",
            "https://",
            "https://app.example/login",
            "https://a b",
            "1x://a",
        ] {
            assert!(Origin::parse(bad).is_none(), "{bad}");
        }
    }

    #[tokio::test]
    async fn one_address_is_one_wallet_and_links_with_a_link_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let tokens = tokens();
        let policy = site_policy();
        let siwe = Siwe::new(&store, &tokens, &policy);
        let now = at(NOW);
        let (key, address) = signer();
        let sign_in = |link: Option<String>| {
            let siwe = &siwe;
            async move {
                let nonce = siwe.issue_nonce(now.unix_timestamp()).await.unwrap();
                let text = text(&address, |_| {}).replace("abcdefgh12345678", &nonce);
                siwe.sign_in(&text, &sign(&key, &text), link.as_deref(), now)
                    .await
            }
        };
        let first = sign_in(None).await.unwrap();
        assert_eq!(first.outcome, Outcome::Created);
        let again = sign_in(None).await.unwrap();
        assert_eq!(
            (again.account.id, again.outcome),
            (first.account.id.clone(), Outcome::SignedIn)
        );

        // A link token for another account: the address is that account's already.
        let other = AccountId::generate();
        store
            .create_account(&NewAccount {
                id: other.clone(),
                email: Some(("o@example.com".into(), "o@example.com".into())),
                password_hash: Some("$argon2id$x".into()),
                ownid_data: None,
                created_at: 1,
            })
            .await
            .unwrap();
        let settings = crate::config::SelfKeySettings::default();
        let selfkey = crate::signin::selfkey::SelfKey::new(&store, &tokens, &settings);
        // A link holds while the session that asked for it lives.
        let session = crate::store::sessions::NewSession {
            id: "s1".into(),
            account: other.clone(),
            method: "password".into(),
            amr: "pwd".into(),
            user_agent: None,
            ip: None,
            now: now.unix_timestamp(),
            idle_expires_at: now.unix_timestamp() + 3600,
            expires_at: now.unix_timestamp() + 3600,
            max_per_account: 100,
            oidc: None,
            keep_per_account: 90,
        };
        store.sessions().create_session(&session).await.unwrap();
        let (link, _) = selfkey.link_token(&other, "s1").await.unwrap();
        assert!(matches!(
            sign_in(Some(link.clone())).await,
            Err(SiweError::WalletLinked)
        ));
        assert!(matches!(
            sign_in(Some("x".into())).await,
            Err(SiweError::InvalidLinkToken)
        ));

        // A second key links to the other account with the token, once.
        let key2 = SecretKey::from_secret_bytes([8; 32]).unwrap();
        let address2 =
            PublicKey::from_secp(&secp256k1::PublicKey::from_secret_key(&key2)).address();
        let link_second = |link: String| {
            let siwe = &siwe;
            async move {
                let nonce = siwe.issue_nonce(now.unix_timestamp()).await.unwrap();
                let text = text(&address2, |_| {}).replace("abcdefgh12345678", &nonce);
                siwe.sign_in(&text, &sign(&key2, &text), Some(&link), now)
                    .await
            }
        };
        let linked = link_second(link.clone()).await.unwrap();
        assert_eq!(
            (linked.account.id.clone(), linked.outcome),
            (other.clone(), Outcome::Linked)
        );
        assert_eq!(linked.account.email.as_deref(), Some("o@example.com"));
        assert_eq!(
            store.wallet_account(&address2.to_string()).await.unwrap(),
            Some(other.clone())
        );
        // Spent: a third address cannot use it.
        let key3 = SecretKey::from_secret_bytes([6; 32]).unwrap();
        let address3 =
            PublicKey::from_secp(&secp256k1::PublicKey::from_secret_key(&key3)).address();
        let nonce = siwe.issue_nonce(now.unix_timestamp()).await.unwrap();
        let text3 = text(&address3, |_| {}).replace("abcdefgh12345678", &nonce);
        let spent = siwe
            .sign_in(&text3, &sign(&key3, &text3), Some(&link), now)
            .await;
        assert!(
            matches!(spent, Err(SiweError::InvalidLinkToken)),
            "{spent:?}"
        );
    }
}
