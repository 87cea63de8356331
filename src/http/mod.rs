//! The HTTP surface: one module per API (its `router()` and wire types), shared
//! extractors and middleware, and the server itself.

pub mod auth;
pub mod changes;
pub mod client;
pub mod consents;
pub mod error;
pub mod health;
pub mod json;
pub mod jwks;
pub mod lifecycle;
pub mod limits;
pub mod linger;
pub mod mfa;
pub mod observe;
pub mod oidc;
pub mod ownid;
pub mod passkeys;
pub mod reply;
pub mod selfkey;
pub mod session;
pub mod sessions;
pub mod siwe;
pub mod social;
pub mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::App;
use crate::config::Settings;
use auth::BearerScheme;
use error::ApiError;

/// Shared by every handler.
pub type AppState = Arc<App>;

#[derive(OpenApi)]
#[openapi(modifiers(&BearerScheme), info(
    title = "Gatehouse",
    description = "Email/password, Login with SelfKey, Sign-In with Ethereum and OwnID sign-in \
        on one user store. The OwnID routes are in this document, and served, only when \
        `ownid.shared_secrets` is set; the SelfKey routes only when `selfkey.enabled` (the \
        default); the SIWE routes only when `siwe.enabled` (the default)."
))]
struct ApiDoc;

/// The whole application: every API's routes and the OpenAPI document built from them.
pub fn router(app: AppState) -> Router {
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(changes::router(&app))
        .merge(consents::router())
        .merge(health::router())
        .merge(jwks::router())
        .merge(oidc::router())
        .merge(ui::oidc_router())
        .merge(lifecycle::router(&app))
        .merge(mfa::router())
        .merge(ownid::router(&app))
        .merge(passkeys::router())
        .merge(selfkey::router(&app.settings))
        .merge(sessions::router())
        .merge(siwe::router(&app.settings))
        .merge(social::router(&app))
        .split_for_parts();
    ui::document(&mut api, &app);
    limits::document(&mut api, &app.settings);
    let api = Arc::new(api);
    let timeout = Duration::from_secs(app.settings.http.request_timeout_secs);
    let metrics = &app.settings.metrics;
    let router = if metrics.enabled && metrics.listen.is_none() {
        router.route("/metrics", axum::routing::get(observe::metrics))
    } else {
        router
    };
    router
        .merge(ui::router(&app))
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let api = Arc::clone(&api);
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound(error::NO_ROUTE.into()) })
        .method_not_allowed_fallback(|| async {
            let body = error::ErrorBody {
                message: "Method not allowed on this route.".into(),
                error: None,
            };
            (axum::http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(body))
        })
        // One layer of the whole stack, outermost first, rather than a `.layer()` each:
        // axum boxes each `.layer()` around every route, and every `from_fn` clones the
        // services under it at each request, so nine boxes meant dozens of allocations
        // and clones a request, where one box costs two.
        .layer(
            tower::ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(
                    Arc::clone(&app),
                    observe::observe,
                ))
                .layer(middleware::from_fn(mail_language))
                .layer(middleware::from_fn(linger::close_if_body_unread))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    // The path only: queries can carry tokens (`?meta=`), headers
                    // credentials.
                    let id = req.extensions().get::<observe::RequestId>();
                    tracing::info_span!("request",
                        id = id.map_or("", observe::RequestId::as_str),
                        method = %req.method(),
                        path = %req.uri().path())
                }))
                .layer(tower::util::option_layer(cors(
                    &app.settings.http.cors_origins,
                )))
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::Internal(anyhow::anyhow!("a handler panicked")).into_response()
                }))
                .layer(middleware::from_fn(move |req, next| {
                    with_timeout(timeout, req, next)
                }))
                .layer(DefaultBodyLimit::max(app.settings.http.body_limit_bytes))
                .layer(middleware::from_fn_with_state(
                    Arc::clone(&app),
                    limits::per_address,
                )),
        )
        .with_state(app)
}

/// Serves the request in the language its `Accept-Language` asks for, so that a mail it
/// queues is written in that language (the pages choose theirs the same way).
async fn mail_language(req: Request, next: middleware::Next) -> axum::response::Response {
    let lang = req
        .headers()
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::ui::i18n::requested);
    crate::mail::in_language(lang, next.run(req)).await
}

/// The router of the separate metrics listener (`metrics.listen`).
fn metrics_router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(observe::metrics))
        .fallback(|| async { ApiError::NotFound(error::NO_ROUTE.into()) })
        .with_state(app)
}

/// CORS for every route, so a page on one of `http.cors_origins` can call any of them
/// (the SelfKey page routes, linking with an `Authorization` header, the password
/// routes, a cookie refresh with its `X-Gatehouse-CSRF` header) and read every answer,
/// errors included. Outside the rate limit, so a
/// preflight costs nobody a request. Origins are checked at start ([`Settings`]); the
/// wallet's `Origin: IDW` is not a browser origin and simply gets no CORS headers.
/// With no origins configured there is no CORS layer at all: no
/// `access-control-allow-credentials` on every answer, and a preflight is the `405` of
/// any other `OPTIONS`. The methods are every method a route answers (`PATCH` renames
/// a passkey).
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok());
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::HeaderName::from_static(sessions::CSRF_HEADER),
        ])
        .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600));
    Some(layer)
}

async fn with_timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// A bound listener and the application behind it.
pub struct Server {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    app: AppState,
}

impl Server {
    /// Binds every address first: a busy port stops the start before anything is
    /// created, and the defaults that derive from `listen` (the passkey and SIWE
    /// origins, `http://localhost:<port>`) take the port really bound, so
    /// `--listen 127.0.0.1:0` works as well as any other.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Server> {
        let listen = settings.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("listen: cannot bind {listen}: {e}"))?;
        settings.listen = listener.local_addr()?;
        let metrics_listener = match settings.metrics.listen {
            Some(addr) if settings.metrics.enabled => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("metrics.listen: cannot bind {addr}: {e}"))?,
            ),
            _ => None,
        };
        let app = Arc::new(App::build(settings).await?);
        Ok(Server {
            listener,
            metrics_listener,
            app,
        })
    }

    /// The separate metrics listener's address, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn app(&self) -> AppState {
        Arc::clone(&self.app)
    }

    /// Serves until `shutdown` completes, then answers 503 on `/ready` while it goes
    /// on serving for `drain_secs`, stops accepting, gives in-flight requests
    /// `shutdown_grace_secs` to finish, and closes the database pool.
    ///
    /// The accept loop is hyper's own rather than `axum::serve`, which sets no timer:
    /// without one, hyper applies no header read timeout, and a client that trickles
    /// its headers (or idles on a keep-alive connection) holds a connection forever.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = self.app;
        let http = &app.settings.http;
        let grace = Duration::from_secs(http.shutdown_grace_secs);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(http.header_read_timeout_secs))
            .max_header_size(http.max_header_bytes);
        let service = router(Arc::clone(&app));
        let housekeeping = tokio::spawn(purge_expired(Arc::clone(&app)));
        let optimizing = tokio::spawn(optimize_statistics(Arc::clone(&app)));
        let key_reloads = app
            .signing_keys
            .as_ref()
            .map(|keys| tokio::spawn(reload_keys(Arc::clone(keys))));
        let oidc_key_reloads = app
            .oidc
            .as_ref()
            .map(|p| tokio::spawn(reload_keys(Arc::clone(p.keys()))));
        let outbox = app.lifecycle.as_ref().map(|l| {
            let sender = crate::mail::outbox::Sender::new(
                Arc::clone(&app.store),
                Arc::clone(l.mailer()),
                &app.settings.mail,
            );
            tokio::spawn(sender.run())
        });
        let logouts = match app.oidc.as_ref() {
            Some(p) => {
                let o = &app.settings.oidc;
                let deliverer = crate::oidc::logout::Deliverer::new(
                    Arc::clone(&app.store),
                    Arc::clone(p.keys()),
                    p.policy().issuer.clone(),
                    Arc::new(crate::outbound::HttpPoster::new()?),
                    o.backchannel_logout_retry_base_secs,
                    o.backchannel_logout_retry_max_secs,
                );
                Some(tokio::spawn(deliverer.run()))
            }
            None => None,
        };
        let metrics_server = self.metrics_listener.map(|listener| {
            let router = metrics_router(Arc::clone(&app));
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::warn!(error = %e, "the metrics listener stopped");
                }
            })
        });
        let connections = GracefulShutdown::new();
        // On the signal, `/ready` says 503 at once; the node goes on serving for
        // `drain_secs`, so the balancer takes it out before it stops listening.
        let drain = Duration::from_secs(http.drain_secs);
        let signalled = Arc::clone(&app);
        let shutdown = async move {
            shutdown.await;
            signalled
                .draining
                .store(true, std::sync::atomic::Ordering::Relaxed);
            if !drain.is_zero() {
                tracing::info!(
                    drain_secs = drain.as_secs(),
                    "draining: /ready answers 503, still serving"
                );
                tokio::time::sleep(drain).await;
            }
        };
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(connection) => connection,
                    Err(e) => {
                        // Out of file descriptors, or a connection reset before it was
                        // accepted: wait a moment rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service =
                service
                    .clone()
                    .map_request(move |mut req: Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        req
                    });
            let connection = builder.serve_connection(
                TokioIo::new(linger::Lingering::new(stream)),
                TowerToHyperService::new(service),
            );
            let connection = connections.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection closed with an error");
                }
            });
        }
        drop(self.listener);
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        tokio::select! {
            () = connections.shutdown() => {}
            () = tokio::time::sleep(grace) => {
                tracing::warn!("requests still in flight after the grace period; stopping anyway");
            }
        }
        housekeeping.abort();
        optimizing.abort();
        for reloads in [key_reloads, oidc_key_reloads].into_iter().flatten() {
            reloads.abort();
        }
        for task in [outbox, logouts].into_iter().flatten() {
            task.abort();
        }
        if let Some(task) = metrics_server {
            task.abort();
        }
        app.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How often the purge runs, seconds; its lease outlives two runs, so the node that
/// holds it keeps it while it lives, and another takes over within three minutes of
/// its death.
const PURGE_EVERY_SECS: u64 = 60;
const PURGE_LEASE_SECS: i64 = 150;

/// Deletes expired single-use values, counters, timed-out sessions, mails and mail
/// tokens, pending sign-ins, OIDC codes and client assertions now and then, in bounded
/// batches ([`crate::purge`]; the OIDC tables too when the provider is off, so that
/// what it left goes). On several nodes, one at a time does it: the holder of the
/// `purge` lease.
async fn purge_expired(app: AppState) {
    let node = crate::crypto::random_id();
    let mut tick = tokio::time::interval(Duration::from_secs(PURGE_EVERY_SECS));
    loop {
        tick.tick().await;
        let now = crate::domain::unix_now();
        match app
            .store
            .take_lease("purge", &node, now, now + PURGE_LEASE_SECS)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "purge: cannot take its lease");
                continue;
            }
        }
        let batches = crate::purge::Batches::DEFAULT;
        let lease = crate::purge::Lease {
            name: "purge",
            holder: &node,
            secs: PURGE_LEASE_SECS,
        };
        let purge =
            crate::purge::expired(app.store.as_ref(), &app.metrics, now, batches, Some(lease));
        match purge.await {
            Ok(p) if p.rows > 0 => {
                tracing::debug!(rows = p.rows, rounds = p.rounds, "purged expired rows");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
        }
        match app.store.signing_keys().purge_signing_keys(now).await {
            Ok(n) if n > 0 => tracing::info!(keys = n, "deleted retired signing keys"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "deleting retired signing keys failed"),
        }
    }
}

/// Keeps the planner's statistics current ([`crate::store::Store::optimize`]): at
/// start, then every `database_optimize_every_secs`. SQLite is one node; on PostgreSQL
/// it does nothing.
async fn optimize_statistics(app: AppState) {
    let every = app.settings.database_optimize_every_secs;
    if every == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        match app.store.optimize().await {
            Ok(()) => tracing::debug!(
                took_ms = started.elapsed().as_millis() as u64,
                "optimized the planner's statistics"
            ),
            Err(e) => tracing::warn!(error = %e, "optimizing the planner's statistics failed"),
        }
    }
}

/// Reads the signing keys again every few seconds (well within the JWKS max-age), so a
/// key published on another node, or by `gatehouse keys rotate`, is known here long
/// before it signs, and a retired one stops verifying.
async fn reload_keys(keys: Arc<crate::signing_keys::SigningKeys>) {
    let mut tick = tokio::time::interval(keys.policy().reload_every());
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = keys.reload(crate::domain::unix_now()).await {
            tracing::warn!(error = %format!("{e:#}"), "reading the signing keys failed");
        }
    }
}
