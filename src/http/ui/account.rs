//! The account page (`/ui/account`) and its actions: the address (resend the
//! verification, change it), the password, the sessions, the passkeys, deleting the
//! account. Each action is a form that posts back here and answers with a redirect to
//! the page (with a notice) or the page again with the error next to its field. The
//! rules are the domain's, as for the JSON API: what changes how the account is reached
//! needs a recent sign-in ([`StepUp`]).

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use minijinja::context;

use super::{Browser, Fields, Kind, clear_session, csrf_refusal, field, page, redirect};
use crate::accounts::AccountError;
use crate::app::App;
use crate::crypto::eth::Address;
use crate::domain::{Email, Password, unix_now};
use crate::http::AppState;
use crate::http::reply::rfc3339;
use crate::lifecycle::email_change::EmailChangeError;
use crate::lifecycle::password::{ChangeError, PasswordChange};
use crate::sessions::{Authenticated, Scope, StepUp};
use crate::signin::passkeys::PasskeyError;
use crate::signin::password::LoginClient;
use crate::signin::second_factor::{Enrollment, FactorError};
use crate::signin::selfkey::{SelfKey, SelfKeyError};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/account", get(account_page))
        .route("/ui/account/resend-verification", post(resend_verification))
        .route("/ui/account/email", post(change_email))
        .route("/ui/account/password", post(change_password))
        .route("/ui/account/sessions/end", post(end_session))
        .route("/ui/account/sessions/end-others", post(end_others))
        .route("/ui/account/apps/revoke", post(revoke_app))
        .route("/ui/account/passkeys/rename", post(rename_passkey))
        .route("/ui/account/passkeys/remove", post(remove_passkey))
        .route("/ui/account/wallets/unlink", post(unlink_wallet))
        .route("/ui/account/social/link", post(link_provider))
        .route("/ui/account/social/unlink", post(unlink_provider))
        .route("/ui/account/delete", post(delete_account))
        .route("/ui/account/second-factor/enroll", post(enroll_totp))
        .route("/ui/account/second-factor/confirm", post(confirm_totp))
        .route(
            "/ui/account/second-factor/recovery-codes",
            post(new_recovery_codes),
        )
        .route("/ui/account/second-factor/remove", post(remove_totp))
}

/// The notices a redirect back to the page may name (`?done=`); nothing else is shown.
const NOTICES: [&str; 13] = [
    "provider-linked",
    "provider-unlinked",
    "totp-removed",
    "wallet-unlinked",
    "verification-sent",
    "email-change-sent",
    "password-changed",
    "session-ended",
    "others-ended",
    "passkey-renamed",
    "passkey-removed",
    "passkey-added",
    "app-revoked",
];

/// The sign-in page, coming back here once signed in.
fn to_sign_in(app: &App) -> Response {
    redirect(app, "/ui/sign-in?return_to=%2Fui%2Faccount")
}

/// An error shown on the page: its status, the field it belongs to, the message id.
pub(super) struct Shown {
    status: StatusCode,
    field: &'static str,
    message: &'static str,
}

pub(super) fn shown(status: StatusCode, field: &'static str, message: &'static str) -> Shown {
    Shown {
        status,
        field,
        message,
    }
}

/// The account page of `session`, with `notice` or `error`.
async fn render(
    app: &App,
    b: &Browser,
    session: &Authenticated,
    notice: Option<&str>,
    error: Option<Shown>,
) -> Response {
    let profile = match app.accounts.profile(&session.account).await {
        Ok(Some(profile)) => profile,
        Ok(None) => return to_sign_in(app),
        Err(e) => {
            tracing::error!(error = %e, "the account page failed");
            return internal(app, b);
        }
    };
    let sessions = match app.sessions.list(&session.account).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "the account page failed");
            return internal(app, b);
        }
    };
    let sessions: Vec<_> = sessions
        .iter()
        .map(|s| {
            context! {
                id => s.id,
                current => s.id == session.session,
                device => s.user_agent.as_deref().unwrap_or("?"),
                ip => s.ip.as_deref().unwrap_or("?"),
                last_seen => rfc3339(s.last_used_at),
                method => s.method,
            }
        })
        .collect();
    let factors = match app.second_factor.summary(&session.account).await {
        Ok(summary) => summary,
        Err(e) => {
            tracing::error!(error = %e, "the account page failed");
            return internal(app, b);
        }
    };
    let apps = match app.store.authorize().consents(&session.account).await {
        Ok(consents) => consents,
        Err(e) => {
            tracing::error!(error = %e, "the account page failed");
            return internal(app, b);
        }
    };
    let apps: Vec<_> = apps
        .iter()
        .map(|c| {
            let scopes: Vec<String> = c.scopes.split(' ').map(|s| format!("scope-{s}")).collect();
            context! { client_id => c.client_id, name => c.client_name, scopes => scopes, granted => rfc3339(c.granted_at) }
        })
        .collect();
    let passkeys: Vec<_> = profile
        .passkeys
        .iter()
        .map(|p| context! { id => p.id, name => p.name, created => rfc3339(p.created_at) })
        .collect();
    let wallets: Vec<_> = profile
        .wallets
        .iter()
        .map(|w| context! { address => w.address })
        .collect();
    let (identities, providers) = match &app.social {
        Some(social) => match social.identities(&session.account).await {
            Ok(list) => {
                let linked: Vec<_> = list
                    .iter()
                    .map(|i| {
                        context! {
                            id => i.id,
                            name => social.name_of(&i.provider),
                            email => i.email,
                            person => i.display_name,
                            linked => rfc3339(i.linked_at),
                        }
                    })
                    .collect();
                let providers: Vec<_> = social
                    .enabled()
                    .into_iter()
                    .map(|(id, name)| context! { id => id, name => name })
                    .collect();
                (linked, providers)
            }
            Err(e) => {
                tracing::error!(error = %e, "the account page failed");
                return internal(app, b);
            }
        },
        None => (Vec::new(), Vec::new()),
    };
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let context = context! {
        social_on => app.social.is_some(),
        identities => identities,
        providers => providers,
        title => "account",
        email => profile.account.email,
        email_verified => profile.account.email_verified,
        has_password => profile.account.password_hash.is_some(),
        mail => app.lifecycle.is_some(),
        passkeys_on => app.settings.passkeys.enabled,
        sessions => sessions,
        oidc => app.oidc.is_some(),
        apps => apps,
        passkeys => passkeys,
        wallets => wallets,
        totp => factors.totp,
        recovery_codes_left => factors.recovery_codes_left,
        notice => notice.map(|id| b.message(app, id)),
        field => error.as_ref().map(|e| e.field),
        error => error.as_ref().map(|e| b.message(app, e.message)),
    };
    page(app, b, status, "account.html", Kind::Plain, context)
}

/// The account page with a refusal of [`step_up`].
pub(super) async fn again(
    app: &App,
    b: &Browser,
    session: &Authenticated,
    message: &'static str,
) -> Response {
    render(app, b, session, None, Some(refused("", message))).await
}

/// The account page with a passkey's error.
pub(super) async fn passkey_failed(app: &App, b: &Browser, session: &Authenticated) -> Response {
    render(
        app,
        b,
        session,
        None,
        Some(shown(StatusCode::BAD_REQUEST, "", "error-passkey")),
    )
    .await
}

fn internal(app: &App, b: &Browser) -> Response {
    let context = context! { title => "account", error => b.message(app, "error-internal") };
    page(
        app,
        b,
        StatusCode::INTERNAL_SERVER_ERROR,
        "message.html",
        Kind::Plain,
        context,
    )
}

/// Signed out (or a session that ended): to the sign-in page, coming back here.
async fn account_page(
    State(app): State<AppState>,
    b: Browser,
    q: Result<Query<Fields>, QueryRejection>,
) -> Response {
    let Some(session) = b.session(&app).await else {
        let mut res = to_sign_in(&app);
        if b.session_cookie.is_some() {
            clear_session(&b, &mut res);
        }
        return res;
    };
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let notice = field(&q, "done").and_then(|d| NOTICES.iter().find(|n| **n == d).copied());
    render(&app, &b, &session, notice, None).await
}

/// What every action does first: the CSRF check and the signed-in session.
async fn action(
    app: &App,
    b: &Browser,
    form: &str,
    fields: &Fields,
) -> Result<Authenticated, Response> {
    if let Some(refusal) = csrf_refusal(app, b, form, fields) {
        return Err(refusal);
    }
    b.session(app).await.ok_or_else(|| to_sign_in(app))
}

fn done(app: &App, notice: &str) -> Response {
    redirect(app, &format!("/ui/account?done={notice}"))
}

/// The step-up rule of the API's `RecentSession`, for the same changes: a recent
/// sign-in and, when the account has a second factor, one that gave it. `Err` holds
/// the message id of the refusal.
pub(super) async fn step_up(app: &App, session: &Authenticated) -> Result<(), &'static str> {
    if !StepUp::of(&app.settings).allows(session, unix_now()) {
        return Err("error-recent-sign-in");
    }
    second_factor_given(app, session).await
}

/// The second half of [`step_up`], the API's `second_factor_given`: a session whose
/// sign-in gave no second factor changes nothing of an account that has one.
async fn second_factor_given(app: &App, session: &Authenticated) -> Result<(), &'static str> {
    if !StepUp::owes_second_factor(session) {
        return Ok(());
    }
    match app.store.mfa().has_second_factor(&session.account).await {
        Ok(false) => Ok(()),
        Ok(true) => Err("error-second-factor-step-up"),
        Err(e) => {
            tracing::error!(error = %e, "the second-factor check of a page failed");
            Err("error-internal")
        }
    }
}

/// A refusal of [`step_up`] as an error on the page, at `field`.
fn refused(field: &'static str, message: &'static str) -> Shown {
    let status = match message {
        "error-internal" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::FORBIDDEN,
    };
    shown(status, field, message)
}

fn fields(form: Result<Form<Fields>, FormRejection>) -> Fields {
    form.map(|Form(f)| f).unwrap_or_default()
}

fn account_shown(e: &AccountError) -> Shown {
    match e {
        AccountError::LockedOut { .. } | AccountError::Busy { .. } => {
            shown(StatusCode::TOO_MANY_REQUESTS, "", "error-too-many")
        }
        AccountError::Disabled => shown(StatusCode::FORBIDDEN, "", "error-disabled"),
        AccountError::EmailTaken => shown(StatusCode::CONFLICT, "new_email", "error-email-taken"),
        other => {
            tracing::error!(error = %other, "an account page action failed");
            shown(StatusCode::INTERNAL_SERVER_ERROR, "", "error-internal")
        }
    }
}

async fn resend_verification(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "resend_verification", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let result = match (&app.lifecycle, app.accounts.profile(&session.account).await) {
        (Some(lifecycle), Ok(Some(profile))) => lifecycle.send_verification(&profile.account).await,
        (_, Err(e)) => Err(e),
        _ => Ok(()),
    };
    match result {
        Ok(()) => done(&app, "verification-sent"),
        Err(e) => render(&app, &b, &session, None, Some(account_shown(&e))).await,
    }
}

async fn change_email(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "change_email", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if let Err(message) = step_up(&app, &session).await {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(refused("new_email", message)),
        )
        .await;
    }
    let Ok(new) = Email::parse(field(&f, "new_email").unwrap_or_default(), "new_email") else {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(shown(
                StatusCode::BAD_REQUEST,
                "new_email",
                "error-email-invalid",
            )),
        )
        .await;
    };
    let (Some(lifecycle), Ok(Some(profile))) =
        (&app.lifecycle, app.accounts.profile(&session.account).await)
    else {
        return to_sign_in(&app);
    };
    match lifecycle.request_email_change(&profile.account, &new).await {
        Ok(()) => done(&app, "email-change-sent"),
        Err(EmailChangeError::Unchanged) => {
            render(
                &app,
                &b,
                &session,
                None,
                Some(shown(
                    StatusCode::BAD_REQUEST,
                    "new_email",
                    "error-same-email",
                )),
            )
            .await
        }
        Err(EmailChangeError::Account(e)) => {
            render(&app, &b, &session, None, Some(account_shown(&e))).await
        }
    }
}

/// The password change of `POST /auth/password/change`: the current password (under
/// the login lockout), the other sessions ended.
async fn change_password(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let mut f = fields(form);
    let session = match action(&app, &b, "change_password", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if let Err(message) = second_factor_given(&app, &session).await {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(refused("new_password", message)),
        )
        .await;
    }
    let Ok(new) = Password::parse(f.remove("new_password").unwrap_or_default()) else {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(shown(
                StatusCode::BAD_REQUEST,
                "new_password",
                "error-password-invalid",
            )),
        )
        .await;
    };
    let current = match f
        .remove("current_password")
        .filter(|p| !p.is_empty())
        .map(Password::parse)
        .transpose()
    {
        Ok(current) => current,
        Err(_) => {
            return render(
                &app,
                &b,
                &session,
                None,
                Some(shown(
                    StatusCode::FORBIDDEN,
                    "current_password",
                    "error-wrong-password",
                )),
            )
            .await;
        }
    };
    let change = PasswordChange {
        store: &app.store,
        accounts: &app.accounts,
        passwords: &app.passwords,
        lifecycle: app.lifecycle.as_ref(),
        step_up: StepUp::of(&app.settings),
    };
    let client = LoginClient {
        address: b.address.clone(),
        device_token: None,
    };
    let error = match change
        .change(&session, &client, current.as_ref(), &new)
        .await
    {
        Ok(()) => return done(&app, "password-changed"),
        Err(ChangeError::WrongPassword) => shown(
            StatusCode::FORBIDDEN,
            "current_password",
            "error-wrong-password",
        ),
        Err(ChangeError::SignInAgain) => shown(
            StatusCode::FORBIDDEN,
            "new_password",
            "error-recent-sign-in",
        ),
        Err(ChangeError::Raced) => shown(
            StatusCode::CONFLICT,
            "current_password",
            "error-wrong-password",
        ),
        Err(ChangeError::Account(e)) => account_shown(&e),
    };
    render(&app, &b, &session, None, Some(error)).await
}

async fn end_session(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "end_session", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let id = field(&f, "session").unwrap_or_default();
    match app.sessions.end(&session.account, id).await {
        Ok(_) => done(&app, "session-ended"),
        Err(e) => {
            tracing::error!(error = %e, "ending a session from the account page failed");
            render(
                &app,
                &b,
                &session,
                None,
                Some(shown(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "",
                    "error-internal",
                )),
            )
            .await
        }
    }
}

/// Revokes the consent to a client ("Connected apps"), ending the client's sessions
/// of the account with it: its refresh and access tokens are refused from then on.
async fn revoke_app(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "revoke_app", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let client = field(&f, "client").unwrap_or_default();
    match app
        .store
        .authorize()
        .revoke_consent(&session.account, client)
        .await
    {
        Ok(_) => {
            tracing::info!(account = %session.account.0, client, "consent revoked from the account page");
            done(&app, "app-revoked")
        }
        Err(e) => {
            tracing::error!(error = %e, "revoking a consent from the account page failed");
            render(
                &app,
                &b,
                &session,
                None,
                Some(shown(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "",
                    "error-internal",
                )),
            )
            .await
        }
    }
}

async fn end_others(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "end_others", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    match app.sessions.sign_out(&session, Scope::Others).await {
        Ok(()) => done(&app, "others-ended"),
        Err(e) => {
            tracing::error!(error = %e, "signing out elsewhere from the account page failed");
            render(
                &app,
                &b,
                &session,
                None,
                Some(shown(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "",
                    "error-internal",
                )),
            )
            .await
        }
    }
}

fn passkey_shown(e: PasskeyError) -> Shown {
    match e {
        PasskeyError::LastSignInMethod => shown(StatusCode::CONFLICT, "", "error-last-way-in"),
        PasskeyError::NotFound | PasskeyError::InvalidName(_) => {
            shown(StatusCode::BAD_REQUEST, "", "error-passkey")
        }
        other => {
            tracing::error!(error = %other, "a passkey action of the account page failed");
            shown(StatusCode::INTERNAL_SERVER_ERROR, "", "error-internal")
        }
    }
}

async fn rename_passkey(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "rename_passkey", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let id = field(&f, "passkey").unwrap_or_default();
    let name = field(&f, "name").map(str::to_owned);
    match app.passkeys.rename(&session.account, id, name).await {
        Ok(_) => done(&app, "passkey-renamed"),
        Err(e) => render(&app, &b, &session, None, Some(passkey_shown(e))).await,
    }
}

async fn remove_passkey(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "remove_passkey", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if let Err(message) = step_up(&app, &session).await {
        return render(&app, &b, &session, None, Some(refused("", message))).await;
    }
    let id = field(&f, "passkey").unwrap_or_default();
    match app.passkeys.remove(&session.account, id).await {
        Ok(()) => done(&app, "passkey-removed"),
        Err(e) => render(&app, &b, &session, None, Some(passkey_shown(e))).await,
    }
}

/// Unlinks a wallet as `DELETE /wallets/{address}` does: with a recent sign-in, never
/// the last way in.
async fn unlink_wallet(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "unlink_wallet", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if let Err(message) = step_up(&app, &session).await {
        return render(&app, &b, &session, None, Some(refused("", message))).await;
    }
    let Some(address) = field(&f, "address").and_then(|a| Address::parse(a).ok()) else {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(shown(StatusCode::BAD_REQUEST, "", "error-internal")),
        )
        .await;
    };
    let selfkey = SelfKey::new(app.store.as_ref(), &app.tokens, &app.settings.selfkey);
    match selfkey.remove_wallet(&session.account, &address).await {
        Ok(()) => done(&app, "wallet-unlinked"),
        Err(SelfKeyError::LastSignInMethod) => {
            render(
                &app,
                &b,
                &session,
                None,
                Some(shown(StatusCode::CONFLICT, "", "error-last-way-in")),
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "unlinking a wallet from the account page failed");
            render(
                &app,
                &b,
                &session,
                None,
                Some(shown(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "",
                    "error-internal",
                )),
            )
            .await
        }
    }
}

/// Starts linking a provider as `POST /auth/social/{provider}/link` does: with a
/// recent sign-in, to the provider and back to this page.
async fn link_provider(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    use crate::signin::social::{Intent, SocialError};
    let f = fields(form);
    let session = match action(&app, &b, "link_provider", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if let Err(message) = step_up(&app, &session).await {
        return render(&app, &b, &session, None, Some(refused("", message))).await;
    }
    let Some(social) = &app.social else {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(shown(StatusCode::NOT_FOUND, "", "social-unknown_provider")),
        )
        .await;
    };
    let intent = Intent::Link {
        account: session.account.clone(),
        session: session.session.clone(),
        return_to: Some("/ui/account?done=provider-linked".into()),
    };
    let provider = field(&f, "provider").unwrap_or_default();
    match social.begin(provider, intent, unix_now()).await {
        Ok(begun) => crate::http::reply::to_provider(&app.settings, b.secure, begun),
        Err(e) => {
            let message = match e {
                SocialError::UnknownProvider => ("social-unknown_provider", StatusCode::NOT_FOUND),
                SocialError::ProviderDisabled => {
                    ("social-provider_disabled", StatusCode::FORBIDDEN)
                }
                SocialError::Upstream(_) => {
                    ("social-provider_unavailable", StatusCode::BAD_GATEWAY)
                }
                e => {
                    tracing::error!(error = %e, "linking a provider from the account page failed");
                    ("error-internal", StatusCode::INTERNAL_SERVER_ERROR)
                }
            };
            render(
                &app,
                &b,
                &session,
                None,
                Some(shown(message.1, "", message.0)),
            )
            .await
        }
    }
}

/// Unlinks an identity as `DELETE /auth/social/identities/{id}` does: with a recent
/// sign-in, never the last way in.
async fn unlink_provider(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    use crate::signin::social::SocialError;
    let f = fields(form);
    let session = match action(&app, &b, "unlink_provider", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if let Err(message) = step_up(&app, &session).await {
        return render(&app, &b, &session, None, Some(refused("", message))).await;
    }
    let Some(social) = &app.social else {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(shown(StatusCode::NOT_FOUND, "", "social-not_found")),
        )
        .await;
    };
    let id = field(&f, "identity").unwrap_or_default();
    match social.unlink(&session.account, id).await {
        Ok(()) => done(&app, "provider-unlinked"),
        Err(SocialError::LastWayIn) => {
            render(
                &app,
                &b,
                &session,
                None,
                Some(shown(StatusCode::CONFLICT, "", "error-last-way-in")),
            )
            .await
        }
        Err(SocialError::NotFound) => {
            render(
                &app,
                &b,
                &session,
                None,
                Some(shown(StatusCode::NOT_FOUND, "", "social-not_found")),
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "unlinking a provider from the account page failed");
            render(
                &app,
                &b,
                &session,
                None,
                Some(shown(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "",
                    "error-internal",
                )),
            )
            .await
        }
    }
}

/// Deletes the account as `DELETE /auth/me` does, with a recent sign-in and the box
/// ticked.
async fn delete_account(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "delete_account", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if field(&f, "confirm") != Some("yes") {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(shown(
                StatusCode::BAD_REQUEST,
                "confirm",
                "error-confirm-needed",
            )),
        )
        .await;
    }
    if let Err(message) = step_up(&app, &session).await {
        return render(&app, &b, &session, None, Some(refused("confirm", message))).await;
    }
    let profile = match app.accounts.profile(&session.account).await {
        Ok(Some(profile)) => profile,
        Ok(None) => return to_sign_in(&app),
        Err(e) => return render(&app, &b, &session, None, Some(account_shown(&e))).await,
    };
    match crate::lifecycle::delete_account(&app.store, app.lifecycle.as_ref(), &profile.account)
        .await
    {
        Ok(_) => {
            let context = context! { title => "delete-account", notice => b.message(&app, "account-deleted") };
            let mut res = page(
                &app,
                &b,
                StatusCode::OK,
                "message.html",
                Kind::Plain,
                context,
            );
            clear_session(&b, &mut res);
            res
        }
        Err(e) => render(&app, &b, &session, None, Some(account_shown(&e))).await,
    }
}

pub(super) fn factor_shown(field: &'static str, e: FactorError) -> Shown {
    match e {
        FactorError::WrongCode => shown(StatusCode::UNAUTHORIZED, field, "error-code-wrong"),
        FactorError::TooManyFailures { .. } => {
            shown(StatusCode::TOO_MANY_REQUESTS, field, "error-code-too-many")
        }
        FactorError::AlreadyEnrolled => {
            shown(StatusCode::CONFLICT, field, "error-already-enrolled")
        }
        FactorError::NotEnrolled => shown(StatusCode::NOT_FOUND, field, "error-not-enrolled"),
        FactorError::Disabled => shown(StatusCode::FORBIDDEN, field, "error-disabled"),
        other => {
            tracing::error!(error = %other, "a second-factor action of the account page failed");
            shown(StatusCode::INTERNAL_SERVER_ERROR, field, "error-internal")
        }
    }
}

/// Where an enrolment page's forms go: the account page's, or the second-factor
/// step's of a sign-in that must enroll (`accounts.require_mfa`).
pub(super) struct EnrolmentForms {
    /// The confirmation's action and form (CSRF) name.
    pub confirm: (&'static str, &'static str),
    /// "Start again with a new key": its action and form name.
    pub restart: (&'static str, &'static str),
    /// The way back: its link and text.
    pub back: (&'static str, &'static str),
}

const ACCOUNT_ENROLMENT: EnrolmentForms = EnrolmentForms {
    confirm: ("/ui/account/second-factor/confirm", "confirm_totp"),
    restart: ("/ui/account/second-factor/enroll", "enroll_totp"),
    back: ("/ui/account", "back-to-account"),
};

/// The enrolment page: the QR code and the key of a new enrolment (`enrollment`), or,
/// after a wrong code, the code field alone (the key is shown once), with `error`.
pub(super) fn enrollment_page(
    app: &App,
    b: &Browser,
    forms: &EnrolmentForms,
    enrollment: Option<&Enrollment>,
    return_to: Option<&str>,
    error: Option<Shown>,
) -> Response {
    // The SVG goes into the page as markup: no prolog, nothing but the server's own
    // rendering of the URI (no script, no style).
    let qr_svg = enrollment.map(|e| {
        let svg = e.qr_svg.as_str();
        minijinja::Value::from_safe_string(svg[svg.find("<svg").unwrap_or(0)..].to_owned())
    });
    let status = error.as_ref().map_or(StatusCode::OK, |e| e.status);
    let context = context! {
        title => "totp-enroll-title",
        qr_svg => qr_svg,
        secret => enrollment.map(|e| e.secret.as_str()),
        confirm_action => forms.confirm.0,
        confirm_form => forms.confirm.1,
        restart_action => forms.restart.0,
        restart_form => forms.restart.1,
        back_href => forms.back.0,
        back_text => forms.back.1,
        return_to => return_to,
        field => error.as_ref().map(|e| e.field),
        error => error.as_ref().map(|e| b.message(app, e.message)),
    };
    page(app, b, status, "totp_enroll.html", Kind::Plain, context)
}

/// The recovery codes, shown once (the page, as every page, is `no-store`), then a
/// link on: `next` (the account page when `None`).
pub(super) fn codes_page(app: &App, b: &Browser, codes: &[String], next: Option<&str>) -> Response {
    let context = context! {
        title => "recovery-codes-title",
        codes => codes,
        next => next.unwrap_or("/ui/account"),
        next_text => if next.is_some() { "continue" } else { "back-to-account" },
    };
    page(
        app,
        b,
        StatusCode::OK,
        "recovery_codes.html",
        Kind::Plain,
        context,
    )
}

/// `POST /auth/mfa/totp` on the page: a new enrolment (replacing one not confirmed).
async fn enroll_totp(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "enroll_totp", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if let Err(message) = step_up(&app, &session).await {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(refused("second_factor", message)),
        )
        .await;
    }
    let account = match app.accounts.profile(&session.account).await {
        Ok(Some(profile)) => profile.account,
        Ok(None) => return to_sign_in(&app),
        Err(e) => return render(&app, &b, &session, None, Some(account_shown(&e))).await,
    };
    match app.second_factor.enroll(&account).await {
        Ok(enrollment) => {
            enrollment_page(&app, &b, &ACCOUNT_ENROLMENT, Some(&enrollment), None, None)
        }
        Err(e) => {
            render(
                &app,
                &b,
                &session,
                None,
                Some(factor_shown("second_factor", e)),
            )
            .await
        }
    }
}

/// `POST /auth/mfa/totp/confirm` on the page: the recovery codes, once.
async fn confirm_totp(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "confirm_totp", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if let Err(message) = step_up(&app, &session).await {
        return enrollment_page(
            &app,
            &b,
            &ACCOUNT_ENROLMENT,
            None,
            None,
            Some(refused("code", message)),
        );
    }
    let code: String = field(&f, "code")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if code.is_empty() {
        let error = shown(StatusCode::BAD_REQUEST, "code", "error-code-missing");
        return enrollment_page(&app, &b, &ACCOUNT_ENROLMENT, None, None, Some(error));
    }
    match app.second_factor.confirm(&session.account, &code).await {
        Ok(codes) => codes_page(&app, &b, &codes, None),
        Err(e) => enrollment_page(
            &app,
            &b,
            &ACCOUNT_ENROLMENT,
            None,
            None,
            Some(factor_shown("code", e)),
        ),
    }
}

/// `POST /auth/mfa/recovery-codes` on the page: a new set, the old one void.
async fn new_recovery_codes(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "recovery_codes", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if let Err(message) = step_up(&app, &session).await {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(refused("second_factor", message)),
        )
        .await;
    }
    match app.second_factor.regenerate_codes(&session.account).await {
        Ok(codes) => codes_page(&app, &b, &codes, None),
        Err(e) => {
            render(
                &app,
                &b,
                &session,
                None,
                Some(factor_shown("second_factor", e)),
            )
            .await
        }
    }
}

/// `DELETE /auth/mfa/totp` on the page: the authenticator and its recovery codes.
async fn remove_totp(
    State(app): State<AppState>,
    b: Browser,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let f = fields(form);
    let session = match action(&app, &b, "remove_totp", &f).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    if let Err(message) = step_up(&app, &session).await {
        return render(
            &app,
            &b,
            &session,
            None,
            Some(refused("second_factor", message)),
        )
        .await;
    }
    match app.second_factor.remove(&session.account).await {
        Ok(()) => done(&app, "totp-removed"),
        Err(e) => {
            render(
                &app,
                &b,
                &session,
                None,
                Some(factor_shown("second_factor", e)),
            )
            .await
        }
    }
}
