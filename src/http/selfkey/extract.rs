//! What the SelfKey handlers take from a request: the wallet token, a JSON body, the
//! sign-up body (JSON or multipart), and the public base URL.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::SelfKeyApiError;
use super::service;
use crate::crypto::jwt::TokenKind;
use crate::domain::lenient::{JsonField, JsonText};
use crate::http::AppState;
use crate::http::client;
use crate::http::error::ApiError;
use crate::http::json::{self, JsonBody};
use crate::http::session::bearer_token;
use crate::signin::selfkey::attributes::is_document_ref;
use crate::signin::selfkey::{Document, SelfKeyError, Submitted, Wallet};

/// The wallet of `Authorization: Bearer <wallet token>`.
pub struct WalletSession(pub Wallet);

impl FromRequestParts<AppState> for WalletSession {
    type Rejection = SelfKeyApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(SelfKeyApiError::no_auth_token)?;
        service(app)
            .wallet(token)
            .map(WalletSession)
            .map_err(|e| match e {
                SelfKeyError::Token(e) => {
                    SelfKeyApiError::token_refused("invalid_token", TokenKind::Wallet, token, e)
                }
                other => other.into(),
            })
    }
}

/// A JSON body, refused in this surface's format (`invalid_request`).
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = SelfKeyApiError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        match JsonBody::<T>::from_request(req, app).await {
            Ok(JsonBody(body)) => Ok(Body(body)),
            Err(ApiError::Unparsable(message) | ApiError::BadRequest(message)) => {
                Err(SelfKeyApiError::bad_request("invalid_request", message))
            }
            Err(other) => Err(SelfKeyApiError::internal(other.into())),
        }
    }
}

/// A sign-up as the wallet sends it: the attributes (not yet checked), the files
/// their data refers to, and the link token from `meta`, if any.
pub struct Submission {
    pub attributes: Submitted,
    pub documents: HashMap<String, Document>,
    pub link_token: Option<String>,
}

fn invalid_attributes(message: impl Into<std::borrow::Cow<'static, str>>) -> SelfKeyApiError {
    SelfKeyApiError::bad_request("invalid_attributes", message)
}

fn too_large() -> SelfKeyApiError {
    SelfKeyApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        "The request body is too large.",
    )
}

/// Reads either body the wallets send: JSON `{"attributes":[…],"meta":{…}}`, held to
/// `http.body_limit_bytes` like every JSON body, or `multipart/form-data` with an
/// `attributes` part (JSON), an optional `meta` part (JSON) and `$document-<n>` file
/// parts, up to the route's larger limit for documents.
pub async fn read_submission(
    req: Request,
    json_limit: usize,
) -> Result<Submission, SelfKeyApiError> {
    if json::is_json(&req) {
        let bytes = json::read_body(req, json_limit)
            .await
            .map_err(|e| match e {
                json::BodyError::TooLarge => too_large(),
                json::BodyError::Unreadable => {
                    invalid_attributes("The request body could not be read.")
                }
            })?;
        let body: super::UsersJson =
            json::parse(&bytes).map_err(|e| invalid_attributes(e.to_string()))?;
        return Ok(Submission {
            attributes: body.attributes.unwrap_or(Submitted::Missing),
            documents: HashMap::new(),
            link_token: link_token(body.meta)?,
        });
    }
    if !is_multipart(&req) {
        return Err(invalid_attributes(
            "Send the attributes as JSON (application/json) or as multipart/form-data.",
        ));
    }
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|_| invalid_attributes("The multipart body could not be read."))?;
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            invalid_attributes("The multipart body could not be read.")
        }
    };
    let mut attributes = None;
    let mut meta = None;
    let mut documents = HashMap::new();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "attributes" => attributes = Some(field.bytes().await.map_err(unreadable)?),
            "meta" => meta = Some(field.bytes().await.map_err(unreadable)?),
            _ if is_document_ref(&name) => {
                let mime_type = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let bytes = field.bytes().await.map_err(unreadable)?.to_vec();
                documents.insert(name, Document { mime_type, bytes });
            }
            // Parts a later wallet may add are skipped, not refused.
            _ => {}
        }
    }
    let attributes = match attributes {
        Some(bytes) => json::parse_value(&bytes).map_err(|e| match e {
            ApiError::Unparsable(message) if !message.contains("not valid JSON") => {
                invalid_attributes(format!("The 'attributes' part: {message}"))
            }
            _ => invalid_attributes("The 'attributes' part is not valid JSON."),
        })?,
        None => Submitted::Missing,
    };
    let meta = match meta {
        Some(bytes) if !bytes.trim_ascii().is_empty() => {
            Some(json::parse_value(&bytes).map_err(|_| invalid_meta())?)
        }
        _ => None,
    };
    Ok(Submission {
        attributes,
        documents,
        link_token: link_token(meta)?,
    })
}

fn is_multipart(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("multipart/form-data"))
}

fn invalid_meta() -> SelfKeyApiError {
    SelfKeyApiError::bad_request(
        "invalid_meta",
        "The 'meta' field must be a JSON object; its 'linkToken', if any, a string.",
    )
}

/// The link token the page put in the LWS `meta` (`{"linkToken": …}`).
pub fn link_token(meta: Option<JsonField>) -> Result<Option<String>, SelfKeyApiError> {
    match meta {
        None | Some(JsonField::Null) => Ok(None),
        Some(ref object @ JsonField::Object(_)) => match object.member("linkToken") {
            None | Some(JsonText::Null) => Ok(None),
            Some(JsonText::Text(token)) => Ok(Some(token.clone())),
            Some(JsonText::Other) => Err(invalid_meta()),
        },
        Some(_) => Err(invalid_meta()),
    }
}

/// `?meta=<json>` of `GET /auth/token`.
pub fn link_token_from_query(meta: Option<&str>) -> Result<Option<String>, SelfKeyApiError> {
    match meta {
        None => Ok(None),
        Some(text) => link_token(Some(
            json::parse_value(text.as_bytes()).map_err(|_| invalid_meta())?,
        )),
    }
}

/// `scheme://host` of the site as its visitors see it ([`client::public_base`]).
pub struct PublicBase(pub String);

impl FromRequestParts<AppState> for PublicBase {
    type Rejection = SelfKeyApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        client::public_base(parts, app)
            .map(PublicBase)
            .ok_or_else(|| {
                SelfKeyApiError::bad_request(
                    "invalid_host",
                    "The request's Host header is missing or invalid.",
                )
            })
    }
}

pub use crate::http::client::SecureCookies;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_in_meta() {
        use serde_json::json;
        let meta = |v: serde_json::Value| Some(serde_json::from_value(v).unwrap());
        assert_eq!(link_token(None).unwrap(), None);
        assert_eq!(link_token(meta(json!({}))).unwrap(), None);
        assert_eq!(
            link_token(meta(json!({"linkToken": "t", "other": {"deep": [1]}}))).unwrap(),
            Some("t".into())
        );
        assert!(link_token(meta(json!({"linkToken": 5}))).is_err());
        assert!(link_token(meta(json!("t"))).is_err());
        assert!(link_token(meta(json!([{"linkToken": "t"}]))).is_err());
        assert_eq!(
            link_token_from_query(Some(r#"{"linkToken":"t"}"#)).unwrap(),
            Some("t".into())
        );
        assert!(link_token_from_query(Some("{")).is_err());
    }
}
