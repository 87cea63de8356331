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
        None => new_request_id(),
    })
}

/// Random bytes drawn from the operating system this many at a time for request ids:
/// one `getrandom` call per 256 requests instead of one each (a request id names a
/// request in the logs; it guards nothing, so bytes kept a moment in memory are fine).
const ID_BYTES_BATCH: usize = 4096;

thread_local! {
    static ID_BYTES: std::cell::RefCell<(Box<[u8; ID_BYTES_BATCH]>, usize)> =
        std::cell::RefCell::new((Box::new([0; ID_BYTES_BATCH]), ID_BYTES_BATCH));
}

/// A random UUID v4 in its 32 hex digits, as `X-Request-Id` has always carried.
fn new_request_id() -> HeaderValue {
    let bytes = ID_BYTES.with_borrow_mut(|(batch, used)| {
        if *used + 16 > ID_BYTES_BATCH {
            getrandom::fill(&mut batch[..]).expect("the operating system's random source failed");
            *used = 0;
        }
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&batch[*used..*used + 16]);
        *used += 16;
        bytes
    });
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut hex = [0u8; uuid::fmt::Simple::LENGTH];
    HeaderValue::from_str(id.simple().encode_lower(&mut hex)).expect("hex is a valid header value")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids stay UUID v4s in 32 hex digits, each new, across the refills of the batch.
    #[test]
    fn request_ids_are_distinct_uuid_v4s_across_batches() {
        let ids: Vec<String> = (0..3 * ID_BYTES_BATCH / 16)
            .map(|_| new_request_id().to_str().unwrap().to_owned())
            .collect();
        for id in &ids {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(
                (id.len(), uuid.get_version_num(), uuid.simple().to_string()),
                (32, 4, id.clone())
            );
        }
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
