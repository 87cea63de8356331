//! OwnID's server endpoints: the three calls OwnID's cloud makes on this server under
//! `ownid.base`, signed with a shared secret from OwnID's console.
//!
//! The signature is checked over the raw body bytes before anything is parsed, read or
//! written, and an exact replay is refused by remembering accepted signatures in the
//! database until their timestamps leave the window, so it holds across nodes. The
//! signature does not cover the path, so the guard is keyed by the signature alone: a
//! captured `getOwnIDDataByLoginId` cannot be replayed as `getSessionByLoginId` either.
//! Refusals and misses have OwnID's wire format: a status with an empty body. What the
//! calls do is `signin::ownid`'s.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::error::{ApiError, ErrorBody, NO_ROUTE};
use super::json;
use super::reply::{TokenResponse, mfa_required, token_response};
use super::reply::{account_error, no_store, required};
use crate::app::App;
use crate::domain::unix_now_millis;
use crate::signin::flow::Finished;
use crate::store::OwnIdLookup;

/// The OwnID routes under `ownid.base`; none when no shared secret is configured.
pub fn router(app: &App) -> OpenApiRouter<AppState> {
    if app.ownid_verifier.key_count() == 0 {
        return OpenApiRouter::new();
    }
    let calls = OpenApiRouter::with_openapi(Calls::openapi()).route("/{name}", post(handle));
    OpenApiRouter::new().nest(&app.settings.ownid.base, calls)
}

/// The documented calls. They share one route: OwnID's clients vary the names' case,
/// which the router cannot match, so [`Call`] does.
#[derive(OpenApi)]
#[openapi(paths(set_data, get_data, get_session))]
struct Calls;

async fn handle(
    State(app): State<AppState>,
    call: Call,
    body: SignedBody,
) -> Result<Response, ApiError> {
    match call {
        Call::SetData => set_data(&app, body.json()?).await,
        Call::GetData => get_data(&app, body.json()?).await,
        Call::GetSession => get_session(&app, body.json()?).await,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    SetData,
    GetData,
    GetSession,
}

impl Call {
    const NAMES: [(&str, Call); 3] = [
        ("setOwnIDDataByLoginId", Call::SetData),
        ("getOwnIDDataByLoginId", Call::GetData),
        ("getSessionByLoginId", Call::GetSession),
    ];

    fn from_name(name: &str) -> Option<Call> {
        Self::NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, call)| call)
    }
}

/// The call the last path segment names. An unknown name is refused here, before the
/// body is read, so it spends no replay-guard entry.
impl<S: Send + Sync> FromRequestParts<S> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let name = parts.uri.path().rsplit('/').next().unwrap_or_default();
        Call::from_name(name).ok_or_else(|| ApiError::NotFound(NO_ROUTE.into()))
    }
}

/// The headers OwnID signs its requests with (names case-insensitive).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
struct SignatureHeaders {
    /// Standard base64 of HMAC-SHA256(base64-decoded shared secret, raw body + "." +
    /// `ownid-timestamp`).
    #[param(rename = "ownid-signature")]
    signature: String,
    /// When OwnID signed the request, milliseconds since the Unix epoch; accepted within
    /// ±`ownid.timestamp_tolerance_secs` (60) of the server's clock.
    #[param(rename = "ownid-timestamp")]
    timestamp: String,
}

impl SignatureHeaders {
    /// Both headers, each present once and printable; otherwise nothing.
    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let one = |name: &str| {
            let mut values = headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => value.to_str().ok().map(str::to_owned),
                _ => None,
            }
        };
        Some(SignatureHeaders {
            signature: one("ownid-signature")?,
            timestamp: one("ownid-timestamp")?,
        })
    }
}

/// The raw body of a request that OwnID signed and that was not seen before.
struct SignedBody(Bytes);

impl SignedBody {
    fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        json::parse(&self.0)
    }
}

impl FromRequest<AppState> for SignedBody {
    type Rejection = Response;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        let headers = SignatureHeaders::from_headers(req.headers())
            .ok_or_else(|| unsigned("a signature header is missing, repeated or unprintable"))?;
        let body = json::read_body(req, app.settings.http.body_limit_bytes)
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
        let now = unix_now_millis();
        let accepted = app
            .ownid_verifier
            .verify(&body, &headers.signature, &headers.timestamp, now)
            .map_err(|why| unsigned(&why.to_string()))?;
        let key = format!("ownid:{}", hex::encode(accepted.tag));
        let first_time = app
            .store
            .remember_once(&key, now.div_euclid(1000), accepted.window_end_secs())
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
        if !first_time {
            return Err(unsigned("an exact replay of an accepted request"));
        }
        Ok(SignedBody(body))
    }
}

/// 401 with an empty body, as OwnID expects; the reason goes to the log only.
fn unsigned(reason: &str) -> Response {
    tracing::info!(reason, "OwnID request refused");
    StatusCode::UNAUTHORIZED.into_response()
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnIdSetDataRequest {
    /// The account's email.
    #[schema(example = "sol@testmail.com")]
    login_id: Option<String>,
    /// Opaque, stored as received; at most `ownid.max_data_bytes` (64 KiB).
    own_id_data: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnIdLoginRequest {
    /// The account's email.
    #[schema(example = "sol@testmail.com")]
    login_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnIdSessionRequest {
    /// The account's email.
    #[schema(example = "sol@testmail.com")]
    login_id: Option<String>,
    /// `browser` or `mobile`; both get the same account token.
    #[schema(example = "browser")]
    session_type: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OwnIdDataResponse {
    #[serde(rename = "ownIdData")]
    own_id_data: String,
}

/// Stores the account's OwnID data (a new device enrolled).
#[utoipa::path(post, path = "/setOwnIDDataByLoginId", tag = "ownid", operation_id = "setOwnIDDataByLoginId",
    params(SignatureHeaders),
    request_body = OwnIdSetDataRequest,
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Missing or invalid field, or unparsable body", body = ErrorBody),
        (status = 401, description = "Missing, malformed, wrong, stale or replayed signature; empty body"),
        (status = 404, description = "No such account; empty body (legacy_responses: 200 `{\"errorCode\":404,\"errorMessage\":\"User not found\"}`)"),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn set_data(app: &App, req: OwnIdSetDataRequest) -> Result<Response, ApiError> {
    let login_id = required(req.login_id, "loginId")?;
    let data = app
        .ownid
        .parse_data(required(req.own_id_data, "ownIdData")?)?;
    Ok(if app.ownid.set_data(&login_id, &data).await? {
        StatusCode::NO_CONTENT.into_response()
    } else {
        no_account(app)
    })
}

/// The account's OwnID data.
#[utoipa::path(post, path = "/getOwnIDDataByLoginId", tag = "ownid", operation_id = "getOwnIDDataByLoginId",
    params(SignatureHeaders),
    request_body = OwnIdLoginRequest,
    responses(
        (status = 200, description = "The account's data", body = OwnIdDataResponse),
        (status = 204, description = "The account has no OwnID data; empty body (legacy_responses: 200 `{\"ownIdData\":\"\"}`)"),
        (status = 400, description = "Missing field or unparsable body", body = ErrorBody),
        (status = 401, description = "Missing, malformed, wrong, stale or replayed signature; empty body"),
        (status = 404, description = "No such account; empty body (legacy_responses: 200 `{\"errorCode\":404,\"errorMessage\":\"User not found\"}`)"),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn get_data(app: &App, req: OwnIdLoginRequest) -> Result<Response, ApiError> {
    let login_id = required(req.login_id, "loginId")?;
    Ok(match app.ownid.data(&login_id).await? {
        OwnIdLookup::Data(data) => data_response(data),
        OwnIdLookup::NoData if app.settings.ownid.legacy_responses => data_response(String::new()),
        OwnIdLookup::NoData => StatusCode::NO_CONTENT.into_response(),
        OwnIdLookup::NoAccount => no_account(app),
    })
}

/// An account token for the account, as `/auth/login` gives; OwnID hands it to the page.
#[utoipa::path(post, path = "/getSessionByLoginId", tag = "ownid", operation_id = "getSessionByLoginId",
    params(SignatureHeaders),
    request_body = OwnIdSessionRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Missing field or unparsable body", body = ErrorBody),
        (status = 401, description = "Missing, malformed, wrong, stale or replayed signature; empty body"),
        (status = 404, description = "No such account; empty body (legacy_responses: 200 `{\"errorCode\":404,\"errorMessage\":\"User not found\"}`)"),
        (status = 500, description = "Internal error", body = ErrorBody)))]
async fn get_session(app: &App, req: OwnIdSessionRequest) -> Result<Response, ApiError> {
    let login_id = required(req.login_id, "loginId")?;
    let signed_in = app.ownid.sign_in(&login_id).await.map_err(account_error)?;
    Ok(match signed_in {
        Some(Finished::Session(token)) => {
            tracing::info!(
                session_type = req.session_type.as_deref().unwrap_or("unspecified"),
                "OwnID session issued"
            );
            token_response(token)
        }
        // The account owes a second factor: OwnID's cloud passes this on to the page,
        // which has no token to use and goes on with `POST /auth/mfa/verify`.
        Some(Finished::SecondFactor(pending)) => mfa_required(pending),
        None => no_account(app),
    })
}

fn data_response(own_id_data: String) -> Response {
    let mut res = axum::Json(OwnIdDataResponse { own_id_data }).into_response();
    no_store(&mut res);
    res
}

/// OwnID's older integrations expect a 200 with an error object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LegacyError {
    error_code: u16,
    error_message: &'static str,
}

fn no_account(app: &App) -> Response {
    if app.settings.ownid.legacy_responses {
        axum::Json(LegacyError {
            error_code: 404,
            error_message: "User not found",
        })
        .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_names_match_in_any_case_and_nothing_else() {
        for (name, call) in [
            ("setOwnIDDataByLoginId", Call::SetData),
            ("setownIDdatabyloginid", Call::SetData),
            ("SetOwnIdDataByLoginID", Call::SetData),
            ("GETOWNIDDATABYLOGINID", Call::GetData),
            ("getSessionByLoginID", Call::GetSession),
        ] {
            assert_eq!(Call::from_name(name), Some(call), "{name}");
        }
        for name in [
            "",
            "getSession",
            "getSessionByLoginId ",
            "getSessionByLoginId.json",
            "ownid",
        ] {
            assert_eq!(Call::from_name(name), None, "{name:?}");
        }
    }
}
