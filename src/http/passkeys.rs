//! Passkeys (WebAuthn): `/auth/passkeys/…`. Registration (on a new account, or with
//! a Bearer token on the signed-in one), usernameless sign-in, and the account's
//! list, rename and removal.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::AppState;
use super::client::SecureCookies;
use super::error::{ApiError, ErrorBody};
use super::json::JsonBody;
use super::reply::{TokenResponse, no_store, rfc3339, signed_in};
use super::session::{RecentSession, Session};
use crate::domain::AccountId;
use crate::metrics::{Outcome, SignInMethod};
use crate::sessions::{Device, SignIn};
use crate::signin::flow::{Finished, Proof, Refused};
use crate::signin::passkeys::{Begun, PasskeyError};
use crate::store::PasskeySummary;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_options))
        .routes(routes!(register))
        .routes(routes!(login_options))
        .routes(routes!(login))
        .routes(routes!(list))
        .routes(routes!(rename, remove))
}

/// Begins a registration. With a Bearer token (a recent sign-in) the passkey will
/// join that account; without one, the ceremony creates a new account.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RegisterOptionsRequest {
    /// The name the authenticator shows for the account (default: the account's
    /// email, or "Gatehouse account").
    #[schema(max_length = 64)]
    user_name: Option<String>,
}

/// A begun ceremony.
#[derive(Serialize, ToSchema)]
pub struct CeremonyResponse {
    /// Send it back with the credential; single use, valid for
    /// `passkeys.ceremony_ttl_secs`.
    ceremony: String,
    /// The options for `navigator.credentials.create` / `.get` (JSON form, base64url
    /// binary fields, as `@simplewebauthn/browser` takes them).
    #[schema(value_type = Object)]
    #[serde(rename = "publicKey")]
    public_key: serde_json::Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    ceremony: String,
    /// What `navigator.credentials.create` returned, in its JSON form.
    #[schema(value_type = Object)]
    credential: RegisterPublicKeyCredential,
    /// 1 to 64 characters; default "Passkey".
    #[schema(max_length = 64)]
    name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    ceremony: String,
    /// What `navigator.credentials.get` returned, in its JSON form.
    #[schema(value_type = Object)]
    credential: PublicKeyCredential,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// 1 to 64 characters.
    #[schema(max_length = 64)]
    name: Option<String>,
}

/// A passkey of the signed-in account.
#[derive(Serialize, ToSchema)]
pub struct PasskeyResponse {
    id: String,
    name: String,
    /// RFC 3339, UTC.
    created_at: String,
    /// RFC 3339, UTC; absent until first used.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
    /// The credential id, base64url.
    credential_id: String,
    /// The authenticator model (all zeros when it does not say).
    aaguid: String,
    #[schema(value_type = Vec<String>)]
    transports: serde_json::Value,
    /// The passkey may be synced to other devices.
    backup_eligible: bool,
    /// The passkey is synced.
    backup_state: bool,
}

/// A registered passkey; `session` when the registration created the account.
#[derive(Serialize, ToSchema)]
pub struct RegisteredResponse {
    #[serde(flatten)]
    passkey: PasskeyResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<TokenResponse>,
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    passkeys: Vec<PasskeyResponse>,
}

/// Starts a passkey registration.
#[utoipa::path(post, path = "/auth/passkeys/register/options", tag = "passkeys",
    request_body(content = RegisterOptionsRequest, description = "Optional"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Ceremony begun", body = CeremonyResponse),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 401, description = "An invalid Bearer token", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled; or the sign-in is not recent enough (error: recent_sign_in_required)", body = ErrorBody),
        (status = 404, description = "Passkeys are off", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn register_options(
    State(app): State<AppState>,
    session: MaybeSession,
    body: Bytes,
) -> Result<Response, PasskeyApiError> {
    // The body is optional: none, or a JSON object.
    let req: RegisterOptionsRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RegisterOptionsRequest::default()
    } else {
        super::json::parse(&body)?
    };
    let account = recent_account(&app, session).await?;
    let user_name = match req.user_name {
        Some(name) => bounded_user_name(&name)?,
        None => default_user_name(&app, account.as_ref()).await?,
    };
    let begun = app
        .passkeys
        .begin_registration(account.as_ref(), &user_name)
        .await?;
    Ok(ceremony_response(begun))
}

/// Finishes a passkey registration.
#[utoipa::path(post, path = "/auth/passkeys/register", tag = "passkeys",
    request_body = RegisterRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Registered", body = RegisteredResponse),
        (status = 400, description = "Unknown, used or expired ceremony, a refused credential (error: user_not_verified, wrong_origin, credential_refused, ceremony_unknown), or an invalid body", body = ErrorBody),
        (status = 401, description = "The ceremony was begun signed in and this request has no valid token", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled; or another account's ceremony; or `recent_sign_in_required`", body = ErrorBody),
        (status = 404, description = "Passkeys are off", body = ErrorBody),
        (status = 409, description = "This passkey is registered already (error: credential_taken)", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn register(
    State(app): State<AppState>,
    session: MaybeSession,
    device: Device,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Response, PasskeyApiError> {
    let account = recent_account(&app, session).await?;
    let registered = app
        .passkeys
        .finish_registration(&req.ceremony, &req.credential, req.name, account.as_ref())
        .await?;
    let session = match registered.new_account {
        Some(id) => Some(TokenResponse::from(sign_in(&app, &id, &device).await?)),
        None => None,
    };
    let body = RegisteredResponse {
        passkey: passkey_response(registered.passkey),
        session,
    };
    let mut res = (StatusCode::CREATED, axum::Json(body)).into_response();
    no_store(&mut res);
    Ok(res)
}

/// Starts a usernameless passkey sign-in (also for conditional UI).
#[utoipa::path(post, path = "/auth/passkeys/login/options", tag = "passkeys",
    responses(
        (status = 200, description = "Ceremony begun", body = CeremonyResponse),
        (status = 404, description = "Passkeys are off", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn login_options(State(app): State<AppState>) -> Result<Response, PasskeyApiError> {
    Ok(ceremony_response(app.passkeys.begin_login().await?))
}

/// Finishes a passkey sign-in.
#[utoipa::path(post, path = "/auth/passkeys/login", tag = "passkeys",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Unknown, used or expired ceremony, or an invalid body", body = ErrorBody),
        (status = 401, description = "Refused (error: unknown_credential, user_not_verified, wrong_origin, counter_regressed, credential_refused)", body = ErrorBody),
        (status = 404, description = "Passkeys are off", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn login(
    State(app): State<AppState>,
    SecureCookies(secure): SecureCookies,
    device: Device,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Response, PasskeyApiError> {
    let answer = match app
        .passkeys
        .finish_login(&req.ceremony, &req.credential)
        .await
    {
        Ok(account) => sign_in(&app, &account, &device).await,
        Err(e) => Err(PasskeyApiError::SignIn(e)),
    };
    let outcome = match &answer {
        Ok(_) => Outcome::Success,
        Err(PasskeyApiError::Api(ApiError::AccountDisabled)) => Outcome::Disabled,
        Err(PasskeyApiError::SignIn(PasskeyError::Internal(_)) | PasskeyApiError::Api(_)) => {
            Outcome::Error
        }
        Err(_) => Outcome::Failure,
    };
    app.metrics.sign_in(SignInMethod::Passkey, outcome);
    Ok(signed_in(&app.settings, secure, answer?))
}

/// The signed-in account's passkeys.
#[utoipa::path(get, path = "/auth/passkeys", tag = "passkeys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The passkeys", body = PasskeyList),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn list(
    State(app): State<AppState>,
    session: Session,
) -> Result<axum::Json<PasskeyList>, PasskeyApiError> {
    let passkeys = app.passkeys.list(&session.account).await?;
    Ok(axum::Json(PasskeyList {
        passkeys: passkeys.into_iter().map(passkey_response).collect(),
    }))
}

/// Renames a passkey of the signed-in account.
#[utoipa::path(patch, path = "/auth/passkeys/{id}", tag = "passkeys",
    params(("id" = String, Path, description = "The passkey's id")),
    request_body = RenameRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Renamed", body = PasskeyResponse),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled", body = ErrorBody),
        (status = 404, description = "No such passkey on this account", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn rename(
    State(app): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RenameRequest>,
) -> Result<axum::Json<PasskeyResponse>, PasskeyApiError> {
    let name = req.name.ok_or_else(|| {
        PasskeyApiError::from(PasskeyError::InvalidName(
            "The 'name' field is required and was not provided.".into(),
        ))
    })?;
    let passkey = app
        .passkeys
        .rename(&session.account, &id, Some(name))
        .await?;
    Ok(axum::Json(passkey_response(passkey)))
}

/// Removes a passkey of the signed-in account, unless it is the last way in.
#[utoipa::path(delete, path = "/auth/passkeys/{id}", tag = "passkeys",
    params(("id" = String, Path, description = "The passkey's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "`account_disabled`: the account is disabled; or the sign-in is not recent enough (error: recent_sign_in_required)", body = ErrorBody),
        (status = 404, description = "No such passkey on this account", body = ErrorBody),
        (status = 409, description = "The account's last way to sign in (error: last_sign_in_method)", body = ErrorBody),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn remove(
    State(app): State<AppState>,
    session: RecentSession,
    Path(id): Path<String>,
) -> Result<StatusCode, PasskeyApiError> {
    app.passkeys.remove(&session.account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every passkey sign-in ends here: a session of the account.
async fn sign_in(
    app: &AppState,
    account: &AccountId,
    device: &Device,
) -> Result<SignIn, PasskeyApiError> {
    let internal = |e: anyhow::Error| PasskeyApiError::Api(ApiError::Internal(e));
    let profile = app
        .accounts
        .profile(account)
        .await
        .map_err(|e| internal(e.into()))?
        .ok_or_else(|| internal(anyhow::anyhow!("a passkey's account is gone")))?;
    let done = app
        .flow
        .finish(&profile.account, Proof::Passkey, device)
        .await
        .map_err(|e| match e {
            Refused::Disabled => PasskeyApiError::Api(ApiError::AccountDisabled),
            other => internal(other.into()),
        })?;
    match done {
        Finished::Session(sign_in) => Ok(sign_in),
        // A passkey with user verification is two factors: the flow never asks more.
        Finished::SecondFactor(_) => Err(internal(anyhow::anyhow!(
            "a passkey sign-in was asked for a second factor"
        ))),
    }
}

/// The account a signed-in ceremony adds a passkey to, if its session may
/// ([`RecentSession`]); `None` signed out (a new account).
async fn recent_account(
    app: &AppState,
    session: MaybeSession,
) -> Result<Option<AccountId>, PasskeyApiError> {
    match session.0 {
        Some(s) => Ok(Some(RecentSession::check(app, s).await?.account.clone())),
        None => Ok(None),
    }
}

fn bounded_user_name(name: &str) -> Result<String, PasskeyApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(PasskeyApiError::BadRequest(
            "The 'user_name' field must be 1 to 64 printable characters.".into(),
        ));
    }
    Ok(name.to_string())
}

async fn default_user_name(
    app: &AppState,
    account: Option<&AccountId>,
) -> Result<String, PasskeyApiError> {
    let email = match account {
        Some(id) => app
            .accounts
            .profile(id)
            .await
            .map_err(|e| PasskeyApiError::Api(super::reply::account_error(e)))?
            .and_then(|p| p.account.email),
        None => None,
    };
    Ok(email.unwrap_or_else(|| "Gatehouse account".into()))
}

fn ceremony_response(begun: Begun) -> Response {
    let mut res = axum::Json(CeremonyResponse {
        ceremony: begun.ceremony,
        public_key: begun.public_key,
    })
    .into_response();
    no_store(&mut res);
    res
}

fn passkey_response(p: PasskeySummary) -> PasskeyResponse {
    PasskeyResponse {
        id: p.id,
        name: p.name,
        created_at: rfc3339(p.created_at),
        last_used_at: p.last_used_at.map(rfc3339),
        credential_id: p.credential_id,
        aaguid: p.aaguid,
        transports: serde_json::from_str(&p.transports)
            .unwrap_or_else(|_| serde_json::Value::Array(Vec::new())),
        backup_eligible: p.backup_eligible,
        backup_state: p.backup_state,
    }
}

/// The session if the request carries an `Authorization` header (then it must be
/// valid: a bad token is refused, never taken as "signed out").
pub struct MaybeSession(Option<Session>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        if !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            return Ok(MaybeSession(None));
        }
        Ok(MaybeSession(Some(
            Session::from_request_parts(parts, app).await?,
        )))
    }
}

/// This surface's errors: the seed's `{"message", "error"}` body, `error` a stable
/// code a client can branch on.
#[derive(Debug)]
pub enum PasskeyApiError {
    Passkey(PasskeyError),
    /// As `Passkey`, in a sign-in: a credential that does not verify is a 401 there.
    SignIn(PasskeyError),
    BadRequest(String),
    Api(ApiError),
}

impl From<PasskeyError> for PasskeyApiError {
    fn from(e: PasskeyError) -> Self {
        PasskeyApiError::Passkey(e)
    }
}

impl From<ApiError> for PasskeyApiError {
    fn from(e: ApiError) -> Self {
        PasskeyApiError::Api(e)
    }
}

impl IntoResponse for PasskeyApiError {
    fn into_response(self) -> Response {
        use PasskeyError as E;
        let (status, code, message): (StatusCode, &str, String) = match self {
            PasskeyApiError::SignIn(
                e @ (E::UserNotVerified | E::WrongOrigin { .. } | E::Refused(_)),
            ) => {
                let mut res = PasskeyApiError::Passkey(e).into_response();
                *res.status_mut() = StatusCode::UNAUTHORIZED;
                return res;
            }
            PasskeyApiError::SignIn(e) => return PasskeyApiError::Passkey(e).into_response(),
            PasskeyApiError::Api(e) => return e.into_response(),
            PasskeyApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m),
            PasskeyApiError::Passkey(e) => match e {
                E::Internal(cause) => return ApiError::Internal(cause).into_response(),
                E::Disabled => return ApiError::NotFound(super::error::NO_ROUTE.into()).into_response(),
                E::UnknownCeremony => (
                    StatusCode::BAD_REQUEST,
                    "ceremony_unknown",
                    "The ceremony is unknown, already used or expired; start again.".into(),
                ),
                E::SignInRequired => {
                    return ApiError::Unauthorized.into_response();
                }
                E::OtherAccount => (
                    StatusCode::FORBIDDEN,
                    "ceremony_of_another_account",
                    "This ceremony was begun for another account.".into(),
                ),
                E::UserNotVerified => (
                    StatusCode::BAD_REQUEST,
                    "user_not_verified",
                    "The authenticator did not verify the user (PIN or biometrics); user verification is required.".into(),
                ),
                E::WrongOrigin { seen, allowed } => (
                    StatusCode::BAD_REQUEST,
                    "wrong_origin",
                    format!("The credential was made on {seen}, which is not one of this server's passkeys.origins ({allowed})."),
                ),
                E::CounterRegressed => (
                    StatusCode::UNAUTHORIZED,
                    "counter_regressed",
                    "The passkey's signature counter did not increase; it may have been cloned.".into(),
                ),
                E::CredentialTaken => (
                    StatusCode::CONFLICT,
                    "credential_taken",
                    "This passkey is registered already.".into(),
                ),
                E::UnknownCredential => (
                    StatusCode::UNAUTHORIZED,
                    "unknown_credential",
                    "This passkey is not registered here.".into(),
                ),
                E::Refused(why) => {
                    tracing::debug!(reason = %why, "passkey credential refused");
                    (
                        StatusCode::BAD_REQUEST,
                        "credential_refused",
                        "The credential did not verify.".into(),
                    )
                }
                E::InvalidName(m) => (StatusCode::BAD_REQUEST, "invalid_name", m),
                E::NotFound => (
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "No such passkey on this account.".into(),
                ),
                E::LastSignInMethod => (
                    StatusCode::CONFLICT,
                    "last_sign_in_method",
                    "This is the account's last way to sign in: set a password first (POST /auth/password/change, right after signing in) or add another passkey or a wallet.".into(),
                ),
            },
        };
        let body = ErrorBody {
            message,
            error: Some(code.to_string()),
        };
        (status, axum::Json(body)).into_response()
    }
}
