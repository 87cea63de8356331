//! A JSON body extractor whose every rejection is a JSON 400 in the seed's shape,
//! never the framework's plain-text rejection or a 413/415.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::Unparsable(
                "The request body must be JSON, sent with Content-Type: application/json.".into(),
            ));
        }
        parse(&read_body(req, app.settings.http.body_limit_bytes).await?).map(JsonBody)
    }
}

/// The raw body, at most `limit` bytes. A body whose declared length is over the
/// limit is refused before a byte of it is read.
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::Unparsable("The request body is too large.".into());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            let over_limit = e
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            if over_limit {
                too_large()
            } else {
                ApiError::Unparsable("The request body could not be read.".into())
            }
        })
}

/// Parses a JSON body, explaining what is wrong with it.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would read a struct from an array too; every body here is an object.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
            return Err(ApiError::Unparsable(
                "The request body must be a JSON object.".into(),
            ));
        }
        _ => {
            return Err(ApiError::Unparsable(
                "The request body is not valid JSON.".into(),
            ));
        }
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::Unparsable(match e.classify() {
            serde_json::error::Category::Data => {
                format!("The request body has an invalid value: {e}.")
            }
            _ => "The request body is not valid JSON.".into(),
        })
    })
}

pub fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}
