use serde::Serialize;
use utoipa::ToSchema;

/// An account's identifier: a random UUID, the `sub` of its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(pub String);

impl AccountId {
    pub fn generate() -> Self {
        AccountId(uuid::Uuid::new_v4().to_string())
    }
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub email: Option<String>,
    /// The owner proved they receive mail at `email`.
    pub email_verified: bool,
    pub password_hash: Option<String>,
    pub has_ownid: bool,
    pub created_at: i64,
    /// An operator disabled it: no sign-in, refresh or token of it is accepted.
    pub disabled: bool,
}

/// A wallet linked to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WalletSummary {
    /// The wallet's Ethereum address, `0x` + 40 lower-case hex digits.
    pub address: String,
    /// When it was linked, Unix seconds.
    pub linked_at: i64,
}

/// One way to sign in to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum SignInMethod {
    Password,
    /// A wallet: the same address signs in with Login with SelfKey and with
    /// Sign-In with Ethereum (one identity per address).
    Wallet {
        address: String,
        linked_at: i64,
    },
    Ownid,
    /// A passkey; `created_at` in Unix seconds.
    Passkey {
        id: String,
        name: String,
        created_at: i64,
    },
    /// An upstream provider's identity (`social.providers`); `linked_at` in Unix
    /// seconds; `id` for `DELETE /auth/social/identities/{id}`.
    Social {
        id: String,
        provider: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// The person's name as the provider gave it (Apple: on the first sign-in
        /// only, kept since).
        #[serde(skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        linked_at: i64,
    },
}

impl Account {
    /// Every way this account can sign in, given its wallets.
    pub fn sign_in_methods(&self, wallets: &[WalletSummary]) -> Vec<SignInMethod> {
        let mut methods = Vec::with_capacity(wallets.len() + 2);
        if self.password_hash.is_some() {
            methods.push(SignInMethod::Password);
        }
        methods.extend(wallets.iter().map(|w| SignInMethod::Wallet {
            address: w.address.clone(),
            linked_at: w.linked_at,
        }));
        if self.has_ownid {
            methods.push(SignInMethod::Ownid);
        }
        methods
    }
}
