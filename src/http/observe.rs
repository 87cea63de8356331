//! Seeing a node: a request id on every request (in its log lines and in the
//! `X-Request-Id` answer header), the request metrics, and `GET /metrics`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::client::peer_is_trusted;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the trusted proxy's, else one made here.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

/// An incoming id is kept only from a trusted proxy (a client could otherwise put
/// anything in the operators' logs) and only when it is short and plain.
fn request_id(req: &Request, app: &AppState) -> RequestId {
    let incoming = req
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            (1..=128).contains(&b.len())
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
        })
        .filter(|_| peer_is_trusted(req.extensions(), &app.proxies));
    RequestId(match incoming {
        Some(v) => v.clone(),
        None => HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
            .expect("hex is a valid header value"),
    })
}

/// The outermost middleware: gives the request its id (read by the trace span),
/// answers with it, and counts the request by its route template and status.
pub async fn observe(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req, &app);
    req.extensions_mut().insert(id.clone());
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut res = next.run(req).await;
    app.metrics.request(
        method,
        route.as_ref().map(MatchedPath::as_str),
        res.status().as_u16(),
        started.elapsed(),
    );
    res.headers_mut().insert(X_REQUEST_ID.clone(), id.0);
    res
}

/// Methods as a fixed set of label values; anything else is `other`.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// `GET /metrics`: the node's counters in the Prometheus text format.
pub async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        app.render_metrics().await,
    )
        .into_response()
}
