//! Sign-In with Ethereum (EIP-4361): `GET /auth/siwe/nonce` and `POST /auth/siwe`.
//! Errors are `{"code","message"}`, as on the SelfKey routes: each refusal has a code
//! of its own, so that a page can tell the person what to do.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::client::SecureCookies;
use super::error::ApiError;
use super::json::JsonBody;
use super::reply;
use super::reply::no_store;
use super::selfkey::{SelfKeyApiError, SelfKeyErrorBody};
use crate::app::App;
use crate::config::Settings;
use crate::domain::unix_now;
use crate::metrics::{Outcome, SignInMethod};
use crate::sessions::Device;
use crate::signin::flow::{Proof, Refused};
use crate::signin::siwe::{SignedIn, Siwe, SiweError};

/// The SIWE routes; none when `siwe.enabled` is off. The page calls them from the
/// browser; CORS (`http.cors_origins`) is answered for every route.
pub fn router(settings: &Settings) -> OpenApiRouter<AppState> {
    if !settings.siwe.enabled {
        return OpenApiRouter::new();
    }
    OpenApiRouter::new()
        .routes(routes!(nonce))
        .routes(routes!(sign_in))
}

fn service(app: &App) -> Siwe<'_> {
    Siwe::new(app.store.as_ref(), &app.tokens, &app.siwe)
}

#[derive(Serialize, ToSchema)]
pub struct NonceResponse {
    /// Put it in the message's `Nonce:` line; usable once, for `siwe.nonce_ttl_secs`.
    #[schema(example = "5f0c1e9a3b7d4c2e8a6f1b0d9c3e7a25")]
    nonce: String,
}

/// A nonce for one SIWE message. No address is asked: the signature names it.
#[utoipa::path(get, path = "/auth/siwe/nonce", tag = "siwe",
    responses((status = 200, description = "A single-use nonce", body = NonceResponse),
        (status = 500, description = "Internal error", body = SelfKeyErrorBody)))]
async fn nonce(State(app): State<AppState>) -> Result<Response, SelfKeyApiError> {
    let nonce = service(&app)
        .issue_nonce(unix_now())
        .await
        .map_err(siwe_error)?;
    let mut res = axum::Json(NonceResponse { nonce }).into_response();
    no_store(&mut res);
    Ok(res)
}

#[derive(Deserialize, ToSchema)]
pub struct SignInRequest {
    /// The EIP-4361 message, exactly as the wallet signed it.
    #[schema(value_type = String, required)]
    message: Option<String>,
    /// The wallet's EIP-191 `personal_sign` signature: `0x` and 130 hex digits.
    #[schema(value_type = String, required)]
    signature: Option<String>,
    /// From the SelfKey `link-token` route: the address joins that signed-in account.
    #[serde(rename = "linkToken")]
    link_token: Option<String>,
}

/// Verifies a signed message and signs its address in: to the account it is a wallet
/// of, to the link token's account (which it joins), or to a new account.
#[utoipa::path(post, path = "/auth/siwe", tag = "siwe", request_body = SignInRequest,
    responses((status = 200, description = "Signed in: an account token", body = super::reply::TokenResponse),
        (status = 400, description = "`invalid_request`, `invalid_message` (not EIP-4361; the message says which line), `invalid_signature` (not hex), `contract_wallet_unsupported` (EIP-1271/6492)", body = SelfKeyErrorBody),
        (status = 401, description = "`domain_mismatch`, `scheme_mismatch`, `uri_mismatch`, `chain_not_allowed`, `issued_at_out_of_range`, `expired`, `not_yet_valid`, `signature_mismatch`, `invalid_nonce`, `invalid_link_token`", body = SelfKeyErrorBody),
        (status = 409, description = "`wallet_linked`: with a link token, the address belongs to another account", body = SelfKeyErrorBody),
        (status = 500, description = "Internal error", body = SelfKeyErrorBody)))]
async fn sign_in(
    State(app): State<AppState>,
    SecureCookies(secure): SecureCookies,
    device: Device,
    body: Result<JsonBody<SignInRequest>, ApiError>,
) -> Result<Response, SelfKeyApiError> {
    let JsonBody(req) = body.map_err(|e| match e {
        ApiError::Unparsable(m) | ApiError::BadRequest(m) => {
            SelfKeyApiError::bad_request("invalid_request", m)
        }
        other => SelfKeyApiError::internal(other.into()),
    })?;
    let missing = |field: &'static str| {
        SelfKeyApiError::bad_request(
            "invalid_request",
            format!("The '{field}' field is required and was not provided."),
        )
    };
    let message = req.message.ok_or_else(|| missing("message"))?;
    let signature = req.signature.ok_or_else(|| missing("signature"))?;
    let verified = service(&app)
        .sign_in(
            &message,
            &signature,
            req.link_token.as_deref(),
            OffsetDateTime::now_utc(),
        )
        .await;
    let answer = match verified {
        Ok(signed_in) => session(&app, secure, &device, &signed_in).await,
        Err(e) => Err(e),
    };
    let outcome = match &answer {
        Ok(_) => Outcome::Success,
        Err(SiweError::AccountDisabled) => Outcome::Disabled,
        Err(SiweError::Internal(_)) => Outcome::Error,
        Err(_) => Outcome::Failure,
    };
    app.metrics.sign_in(SignInMethod::Siwe, outcome);
    answer.map_err(siwe_error)
}

/// Where a SIWE sign-in becomes a session.
async fn session(
    app: &App,
    secure: bool,
    device: &Device,
    signed_in: &SignedIn,
) -> Result<Response, SiweError> {
    let done = app
        .flow
        .finish(&signed_in.account, Proof::Siwe, device)
        .await
        .map_err(|e| match e {
            Refused::Disabled => SiweError::AccountDisabled,
            other => SiweError::Internal(other.into()),
        })?;
    Ok(reply::finished(&app.settings, secure, done))
}

fn siwe_error(e: SiweError) -> SelfKeyApiError {
    use SiweError as E;
    let unauthorized =
        |code, message: String| SelfKeyApiError::new(StatusCode::UNAUTHORIZED, code, message);
    let message = e.to_string();
    match e {
        E::Grammar(_) => SelfKeyApiError::bad_request("invalid_message", message),
        E::MalformedSignature => SelfKeyApiError::bad_request("invalid_signature", message),
        E::ContractWallet => SelfKeyApiError::bad_request("contract_wallet_unsupported", message),
        E::SchemeMismatch => unauthorized("scheme_mismatch", message),
        E::DomainMismatch => unauthorized("domain_mismatch", message),
        E::UriMismatch => unauthorized("uri_mismatch", message),
        E::ChainNotAllowed => unauthorized("chain_not_allowed", message),
        E::IssuedAtOutOfRange => unauthorized("issued_at_out_of_range", message),
        E::Expired => unauthorized("expired", message),
        E::NotYetValid => unauthorized("not_yet_valid", message),
        E::SignatureMismatch => unauthorized(
            "signature_mismatch",
            format!(
                "{message}; a smart-contract wallet's 65-byte signature (EIP-1271) is refused the same way"
            ),
        ),
        E::InvalidNonce => unauthorized("invalid_nonce", message),
        E::InvalidLinkToken => unauthorized("invalid_link_token", message),
        E::AccountGone => unauthorized("account_gone", message),
        E::AccountDisabled => SelfKeyApiError::account_disabled(),
        E::WalletLinked => SelfKeyApiError::new(StatusCode::CONFLICT, "wallet_linked", message),
        E::Internal(cause) => SelfKeyApiError::internal(cause),
    }
}
