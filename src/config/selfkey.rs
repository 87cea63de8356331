//! Login with SelfKey (`selfkey`): its routes, its tokens, and what the site asks
//! wallets to share.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SelfKeySettings {
    /// Serve the Login with SelfKey routes.
    pub enabled: bool,
    /// Where the LWS routes are mounted.
    pub mount: String,
    /// How long a wallet has to sign a challenge, seconds.
    pub challenge_ttl_secs: i64,
    /// Lifetime of the token a wallet gets for a signed challenge, seconds.
    pub wallet_token_ttl_secs: i64,
    /// Lifetime of the single-use login token the page exchanges at `/login`, seconds.
    pub login_token_ttl_secs: i64,
    /// Lifetime of the single-use link token a signed-in page asks for, seconds.
    pub link_token_ttl_secs: i64,
    /// Where `/login` sends the page after a successful sign-in.
    pub redirect_to: String,
    /// Where `/login` sends the page after a failed one.
    pub error_redirect_to: String,
    /// Largest multipart `/users` body, bytes.
    pub multipart_limit_bytes: usize,
    /// Trust a wallet's email attribute to link it to an existing account with that
    /// email. Off: anyone can put any email in a wallet.
    pub trust_wallet_email: bool,
    /// The cookie `/login` sets (holding the account token).
    pub cookie_name: String,
    /// The site as the wallet shows it.
    pub website: Website,
    /// What the site asks wallets to share (a list of tables).
    pub attributes: Vec<RequestedAttribute>,
}

impl Default for SelfKeySettings {
    fn default() -> Self {
        SelfKeySettings {
            enabled: true,
            mount: "/api/v1/selfkey".into(),
            challenge_ttl_secs: 300,
            wallet_token_ttl_secs: 300,
            login_token_ttl_secs: 60,
            link_token_ttl_secs: 600,
            redirect_to: "/".into(),
            error_redirect_to: "/login".into(),
            multipart_limit_bytes: 10 * 1024 * 1024,
            trust_wallet_email: false,
            cookie_name: "gatehouse_session".into(),
            website: Website::default(),
            attributes: vec![RequestedAttribute {
                key: "email".into(),
                label: "Email".into(),
                schema: "http://platform.selfkey.org/schema/attribute/email.json".into(),
                required: true,
            }],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Website {
    /// The site's name, shown by the wallet.
    pub name: String,
    /// Absolute, or relative to the public URL.
    pub url: String,
    /// The terms of service: absolute, or relative to the public URL.
    pub terms_url: String,
    /// The privacy policy: absolute, or relative to the public URL.
    pub policy_url: String,
}

impl Default for Website {
    fn default() -> Self {
        Website {
            name: "Gatehouse".into(),
            url: "/".into(),
            terms_url: "/terms".into(),
            policy_url: "/privacy".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedAttribute {
    /// The attribute's key in the wallet's answer (`email` becomes the account's email).
    pub key: String,
    /// What the wallet shows the person.
    pub label: String,
    /// The attribute's schema URL, e.g. `http://platform.selfkey.org/schema/attribute/email.json`.
    pub schema: String,
    /// A sign-up without it is refused (`400 missing_attribute`).
    #[serde(default)]
    pub required: bool,
}
