//! The authorization endpoint's rules (RFC 6749 §4.1, OpenID Connect Core §3.1.2):
//! which requests are shown an error page and which are answered at the client's
//! redirect URI, and what a checked request needs next — a sign-in, consent, or its
//! code. Knows nothing of HTTP or SQL; time is passed in.
//!
//! Until the client and its redirect URI are known to be registered, nothing is sent
//! to the URI: an unknown `client_id` or a `redirect_uri` not registered byte for byte
//! is an error page (RFC 6749 §4.1.2.1), so the endpoint never redirects anywhere an
//! attacker chose.

use serde::{Deserialize, Serialize};

use super::clients::{Client, GRANT_AUTHORIZATION_CODE};
use super::provider::{OAuthError, is_s256_challenge, known_scopes};
use super::redirect::{RedirectUri, is_registered};

/// How long a pending request waits for its sign-in and consent.
pub const REQUEST_TTL_SECS: i64 = 600;

/// The `acr` of a sign-in that proved two factors ([`crate::sessions::acr_of`]).
pub const ACR_MFA: &str = "aal2";

/// The longest value taken for a free-text parameter (`state`, `nonce`, hints).
const MAX_PARAM: usize = 1024;

/// Why a request is answered with an error page, never a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageError {
    /// No `client_id`, or no such client, or one that may not use codes.
    UnknownClient,
    /// No `redirect_uri` (and the client registered more than one), or one that is not
    /// registered exactly.
    RedirectUri,
    /// `client_id` or `redirect_uri` given twice.
    Duplicated,
}

impl PageError {
    /// The message id the page shows.
    pub fn message(self) -> &'static str {
        match self {
            PageError::UnknownClient => "authorize-unknown-client",
            PageError::RedirectUri => "authorize-bad-redirect",
            PageError::Duplicated => "authorize-bad-request",
        }
    }
}

/// Where an authorization response goes, once the client and URI are checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub redirect_uri: String,
    pub state: Option<String>,
    /// `response_mode=form_post`: an auto-posting form, not a redirect.
    pub form_post: bool,
}

/// A request refused at the client's redirect URI.
#[derive(Debug)]
pub struct Refused {
    pub reply: Reply,
    pub error: OAuthError,
}

/// A checked authorization request, as it waits in the database for its sign-in and
/// consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub reply: Reply,
    /// The known scopes asked for, in our order (unknown ones dropped).
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    /// The PKCE `S256` challenge.
    pub challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
    /// `acr_values` asks for a sign-in with two factors.
    pub wants_mfa: bool,
    /// When the request came (Unix seconds).
    pub created_at: i64,
    /// The browser's session when the request came, if any: a sign-in this request
    /// asked for must start another.
    pub stale_session: Option<String>,
}

/// The `prompt` values we honour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// The request's parameters, as the HTTP layer read them (query or form), in order.
pub type Params = [(String, String)];

fn one<'p>(params: &'p Params, name: &str) -> Result<Option<&'p str>, ()> {
    let mut found = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let first = found.next();
    if found.next().is_some() {
        return Err(());
    }
    Ok(first.map(String::as_str).filter(|v| !v.is_empty()))
}

/// The client and redirect URI of a request, checked: the client (from `lookup`'s
/// answer for `client_id`) and where its answers go. Anything wrong here is a page.
pub fn client_and_redirect<'c>(
    params: &Params,
    client: Option<&'c Client>,
) -> Result<(&'c Client, String), PageError> {
    let id = one(params, "client_id").map_err(|_| PageError::Duplicated)?;
    let asked = one(params, "redirect_uri").map_err(|_| PageError::Duplicated)?;
    let client = match (id, client) {
        (Some(id), Some(c)) if c.id == id && c.may_use(GRANT_AUTHORIZATION_CODE) => c,
        _ => return Err(PageError::UnknownClient),
    };
    let registered: Vec<RedirectUri> = client
        .redirect_uris
        .iter()
        .filter_map(|u| RedirectUri::parse(u).ok())
        .collect();
    let uri = match asked {
        Some(asked) if is_registered(&registered, asked) => asked.to_owned(),
        // OpenID Connect requires it; OAuth lets a client with one URI leave it out.
        None if registered.len() == 1 => registered[0].as_str().to_owned(),
        _ => return Err(PageError::RedirectUri),
    };
    Ok((client, uri))
}

/// The rest of the request, checked against `client` (whose `redirect_uri` is
/// `redirect_uri`, checked already); what is wrong is answered at that URI.
pub fn check(
    params: &Params,
    client: &Client,
    redirect_uri: String,
    require_pkce_for_confidential: bool,
    stale_session: Option<String>,
    now: i64,
) -> Result<AuthorizationRequest, Refused> {
    // The state is echoed even on errors, so it is read first (a duplicated one is
    // not echoed: which would it be?).
    let state = one(params, "state").ok().flatten().map(str::to_owned);
    let form_post = matches!(one(params, "response_mode"), Ok(Some("form_post")));
    let reply = Reply {
        redirect_uri,
        state,
        form_post,
    };
    let refuse = |code: &'static str, description: &str| Refused {
        reply: reply.clone(),
        error: OAuthError::new(code, description),
    };
    let invalid = |description: &str| refuse("invalid_request", description);
    if params
        .iter()
        .enumerate()
        .any(|(i, (k, _))| params[..i].iter().any(|(j, _)| j == k))
    {
        return Err(invalid("A parameter is given more than once."));
    }
    if params.iter().any(|(_, v)| v.len() > MAX_PARAM) {
        return Err(invalid("A parameter is too long."));
    }
    let get = |name: &str| one(params, name).ok().flatten();
    if get("request").is_some() {
        return Err(refuse(
            "request_not_supported",
            "Request objects are not supported.",
        ));
    }
    if get("request_uri").is_some() {
        return Err(refuse(
            "request_uri_not_supported",
            "request_uri is not supported.",
        ));
    }
    match get("response_type") {
        Some("code") => {}
        None => return Err(invalid("response_type is required.")),
        Some(_) => {
            return Err(refuse(
                "unsupported_response_type",
                "Only response_type=code is supported.",
            ));
        }
    }
    match get("response_mode") {
        None | Some("query") | Some("form_post") => {}
        Some(_) => return Err(invalid("response_mode must be query or form_post.")),
    }
    let challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) => None,
        (Some(c), Some("S256")) if is_s256_challenge(c) => Some(c.to_owned()),
        (Some(_), Some("S256")) => return Err(invalid("code_challenge is not an S256 challenge.")),
        (Some(_), None | Some("plain")) | (None, Some("plain")) => {
            return Err(invalid(
                "code_challenge_method must be S256 (plain is refused).",
            ));
        }
        (None, Some(_)) => return Err(invalid("code_challenge is required.")),
        (Some(_), Some(_)) => return Err(invalid("code_challenge_method must be S256.")),
    };
    if challenge.is_none() && (client.public || require_pkce_for_confidential) {
        return Err(invalid("PKCE (code_challenge with S256) is required."));
    }
    let mut prompt = Prompt::default();
    for value in get("prompt").unwrap_or_default().split(' ') {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            // select_account and others: we have one account per browser.
            _ => {}
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(invalid("prompt=none cannot go with other values."));
    }
    let max_age = match get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => return Err(invalid("max_age must be a number of seconds.")),
        },
    };
    let wants_mfa = get("acr_values").is_some_and(|v| v.split(' ').any(|a| a == ACR_MFA));
    Ok(AuthorizationRequest {
        client_id: client.id.clone(),
        scopes: known_scopes(get("scope").unwrap_or_default()),
        nonce: get("nonce").map(str::to_owned),
        challenge,
        prompt,
        max_age,
        login_hint: get("login_hint").map(str::to_owned),
        ui_locales: get("ui_locales").map(str::to_owned),
        wants_mfa,
        created_at: now,
        stale_session,
        reply,
    })
}

/// What the authorization server knows of the browser's sign-in.
#[derive(Debug, Clone)]
pub struct BrowserSession<'a> {
    pub session: &'a str,
    pub auth_time: i64,
    pub multi_factor: bool,
}

/// What a request needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// The sign-in page; `fresh`: even with a session (`prompt=login`, `max_age`, a
    /// second factor asked for).
    SignIn { fresh: bool },
    /// The consent page.
    Consent,
    /// The code.
    Issue,
    /// An error to the client (`prompt=none` that would need a page).
    Refuse(&'static str, &'static str),
}

impl AuthorizationRequest {
    /// Whether `session` began after this request asked for a sign-in: its sign-in is
    /// fresh enough for any rule of the request, so none sends it back again.
    fn signed_in_for_this(&self, session: &BrowserSession<'_>) -> bool {
        session.auth_time >= self.created_at
            && self.stale_session.as_deref() != Some(session.session)
    }

    /// What this request needs next, for a browser with `session` (none: not signed
    /// in) that consented to `consented` scopes of the client (none: never).
    pub fn next(
        &self,
        session: Option<&BrowserSession<'_>>,
        first_party: bool,
        consented: Option<&str>,
        now: i64,
    ) -> Next {
        let Some(session) = session else {
            return if self.prompt.none {
                Next::Refuse("login_required", "No one is signed in.")
            } else {
                Next::SignIn { fresh: false }
            };
        };
        if !self.signed_in_for_this(session) {
            let too_old = self
                .max_age
                .is_some_and(|max| now.saturating_sub(session.auth_time) > max);
            let lacks_mfa = self.wants_mfa && !session.multi_factor;
            if self.prompt.none && lacks_mfa {
                return Next::Refuse(
                    "interaction_required",
                    "The sign-in lacks the second factor asked for.",
                );
            }
            if self.prompt.none && too_old {
                return Next::Refuse("login_required", "The sign-in is older than max_age.");
            }
            if self.prompt.login || too_old || lacks_mfa {
                return Next::SignIn { fresh: true };
            }
        }
        if first_party {
            return Next::Issue;
        }
        let covered = consented.is_some_and(|granted| {
            let granted: Vec<&str> = granted.split(' ').collect();
            self.scopes.iter().all(|s| granted.contains(&s.as_str()))
        });
        match (self.prompt.consent, covered, self.prompt.none) {
            (false, true, _) => Next::Issue,
            (_, _, true) => Next::Refuse("consent_required", "Consent is needed."),
            _ => Next::Consent,
        }
    }
}

/// The scopes of a consent that adds `asked` to `granted` (our order).
pub fn union(granted: Option<&str>, asked: &[String]) -> String {
    let mut all: Vec<String> = granted
        .map(|g| g.split(' ').map(str::to_owned).collect())
        .unwrap_or_default();
    all.extend(asked.iter().cloned());
    known_scopes(&all.join(" ")).join(" ")
}

/// The query or form fields of an authorization response (RFC 6749 §4.1.2, §4.1.2.1;
/// RFC 9207's `iss`).
pub fn response_fields(
    reply: &Reply,
    issuer: &str,
    outcome: Result<&str, &OAuthError>,
) -> Vec<(&'static str, String)> {
    let mut fields = match outcome {
        Ok(code) => vec![("code", code.to_owned())],
        Err(e) => vec![
            ("error", e.code.to_owned()),
            ("error_description", e.description.clone()),
        ],
    };
    if let Some(state) = &reply.state {
        fields.push(("state", state.clone()));
    }
    fields.push(("iss", issuer.to_owned()));
    fields
}

/// The redirect URI with `fields` added to its query (keeping the query it has).
pub fn redirect_with(redirect_uri: &str, fields: &[(&'static str, String)]) -> String {
    let mut url = url::Url::parse(redirect_uri).expect("a registered URI parses");
    url.query_pairs_mut()
        .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())));
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::Registration;

    fn client(public: bool) -> Client {
        Registration {
            name: "Wiki".into(),
            redirect_uris: vec!["https://wiki.example/cb".into()],
            public,
            ..Registration::default()
        }
        .check("wiki".into(), 1)
        .unwrap()
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("client_id", "wiki"),
            ("redirect_uri", "https://wiki.example/cb"),
            ("response_type", "code"),
            ("scope", "openid email bogus"),
            ("state", "s1"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
    }

    fn checked(pairs: &[(&str, &str)]) -> Result<AuthorizationRequest, Refused> {
        let c = client(true);
        let p = params(pairs);
        let (c, uri) = client_and_redirect(&p, Some(&c)).unwrap();
        check(&p, c, uri, true, None, 100)
    }

    #[test]
    fn a_bad_client_or_redirect_uri_is_a_page() {
        let c = client(false);
        let p = params(&base());
        assert!(client_and_redirect(&p, Some(&c)).is_ok());
        assert_eq!(
            client_and_redirect(&p, None).unwrap_err(),
            PageError::UnknownClient
        );
        let mut other = base();
        other[1].1 = "https://wiki.example/cb/";
        assert_eq!(
            client_and_redirect(&params(&other), Some(&c)).unwrap_err(),
            PageError::RedirectUri
        );
        let mut twice = base();
        twice.push(("redirect_uri", "https://evil.example/"));
        assert_eq!(
            client_and_redirect(&params(&twice), Some(&c)).unwrap_err(),
            PageError::Duplicated
        );
    }

    #[test]
    fn the_rest_is_refused_at_the_redirect_uri() {
        let ok = checked(&base()).unwrap();
        assert_eq!(ok.scopes, ["openid", "email"]);
        assert_eq!(ok.reply.state.as_deref(), Some("s1"));
        for (change, code) in [
            (("response_type", "token"), "unsupported_response_type"),
            (("code_challenge_method", "plain"), "invalid_request"),
            (("code_challenge", "short"), "invalid_request"),
            (("prompt", "none login"), "invalid_request"),
            (("max_age", "-1"), "invalid_request"),
            (("request", "eyJ"), "request_not_supported"),
        ] {
            let mut p: Vec<_> = base().into_iter().filter(|(k, _)| *k != change.0).collect();
            p.push(change);
            let refused = checked(&p).unwrap_err();
            assert_eq!(refused.error.code, code, "{change:?}");
            assert_eq!(refused.reply.state.as_deref(), Some("s1"));
        }
        let no_pkce: Vec<_> = base()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("code_"))
            .collect();
        assert_eq!(checked(&no_pkce).unwrap_err().error.code, "invalid_request");
        let c = client(false);
        let p = params(&no_pkce);
        let (c, uri) = client_and_redirect(&p, Some(&c)).unwrap();
        assert!(check(&p, c, uri.clone(), false, None, 1).is_ok());
        assert!(check(&p, c, uri, true, None, 1).is_err());
    }

    #[test]
    fn what_comes_next() {
        let r = checked(&base()).unwrap();
        let s = BrowserSession {
            session: "s",
            auth_time: 50,
            multi_factor: false,
        };
        assert_eq!(
            r.next(None, false, None, 100),
            Next::SignIn { fresh: false }
        );
        assert_eq!(r.next(Some(&s), false, None, 100), Next::Consent);
        assert_eq!(r.next(Some(&s), true, None, 100), Next::Issue);
        assert_eq!(
            r.next(Some(&s), false, Some("openid email profile"), 100),
            Next::Issue
        );
        assert_eq!(r.next(Some(&s), false, Some("openid"), 100), Next::Consent);

        let mut none = r.clone();
        none.prompt.none = true;
        assert_eq!(
            none.next(None, false, None, 100).refusal(),
            "login_required"
        );
        assert_eq!(
            none.next(Some(&s), false, None, 100).refusal(),
            "consent_required"
        );

        let mut login = r.clone();
        login.prompt.login = true;
        login.stale_session = Some("s".into());
        assert_eq!(
            login.next(Some(&s), true, None, 100),
            Next::SignIn { fresh: true }
        );
        let fresh = BrowserSession {
            session: "t",
            auth_time: 100,
            multi_factor: false,
        };
        assert_eq!(login.next(Some(&fresh), true, None, 101), Next::Issue);

        let mut aged = r.clone();
        aged.max_age = Some(30);
        assert_eq!(
            aged.next(Some(&s), true, None, 100),
            Next::SignIn { fresh: true }
        );
        aged.max_age = Some(60);
        assert_eq!(aged.next(Some(&s), true, None, 100), Next::Issue);

        let mut mfa = r.clone();
        mfa.wants_mfa = true;
        mfa.stale_session = Some("s".into());
        assert_eq!(
            mfa.next(Some(&s), true, None, 100),
            Next::SignIn { fresh: true }
        );
        // A fresh sign-in without the factor is not sent back (no loop): its acr says so.
        assert_eq!(mfa.next(Some(&fresh), true, None, 100), Next::Issue);
        mfa.prompt.none = true;
        assert_eq!(
            mfa.next(Some(&s), true, None, 100).refusal(),
            "interaction_required"
        );
    }

    impl Next {
        fn refusal(&self) -> &'static str {
            match self {
                Next::Refuse(code, _) => code,
                _ => "",
            }
        }
    }

    #[test]
    fn responses_keep_the_uris_query_and_carry_iss() {
        let reply = Reply {
            redirect_uri: "https://app.example/cb?tenant=a".into(),
            state: Some("x y&z".into()),
            form_post: false,
        };
        let fields = response_fields(&reply, "https://id.example", Ok("c0de"));
        assert_eq!(
            redirect_with(&reply.redirect_uri, &fields),
            "https://app.example/cb?tenant=a&code=c0de&state=x+y%26z&iss=https%3A%2F%2Fid.example"
        );
        assert_eq!(
            union(Some("openid email"), &["profile".into()]),
            "openid profile email"
        );
    }
}
