//! The page handlers. Each form post is checked for its CSRF token, then
//! handed to the JSON API's own handler (same parsing, rate limiting, load
//! shedding, events and metrics), whose answer becomes a redirect or the
//! form again with a message.

use super::cookies;
use super::csrf::{self, Csrf};
use super::render::{self, Alert, Failure, Page, Var};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::routes::login::{self, ClientInfo, LoginRequest};
use crate::routes::users::{self, ChangePasswordRequest, RegisterRequest};
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use sesame_domain::{Session, SessionToken};
use std::net::{IpAddr, SocketAddr};

const WRONG_SIGN_IN: &str = "The user name or password is not correct. Check them and try again.";
const WRONG_CURRENT: &str = "Your current password is not correct.";
const EXPIRED_FORM: &str = "For your security this form expired or did not come from this \
site, so nothing was done. Please check it and send it again.";
const BAD_FORM: &str = "The form could not be read. Please try again.";
const MISMATCH: &str = "The two new passwords do not match.";

/// Marks the field an error is about (the error itself is announced and
/// focused by the alert).
const INVALID: &str = r#" aria-invalid="true""#;

/// What to say about a form body that could not be read.
fn bad_form(rejection: &FormRejection) -> Alert {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Alert::error("The form is too large to send. Please use shorter entries.")
    } else {
        Alert::error(BAD_FORM)
    }
}

fn secure(state: &AppState) -> bool {
    state.config.cookie_secure
}

/// The page as a response, setting the CSRF nonce cookie when it is new.
fn respond(status: StatusCode, page: &Page<'_>, csrf: &Csrf) -> Response {
    let mut response = render::html(status, page.html());
    if let Some(cookie) = csrf.set_cookie() {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `303 See Other` to `location`, with any cookies given.
fn see_other(location: &str, cookies: impl IntoIterator<Item = HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(location).expect("locations are built percent-encoded"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// Adds the API's `Retry-After` to a page answering a shed or limited post.
fn with_retry_after(mut response: Response, failure: &Failure) -> Response {
    if let Some(secs) = failure.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The live session named by the session cookie, if any.
async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(SessionToken, Session)>, ApiError> {
    let Some(token) = cookies::session(headers).and_then(SessionToken::parse) else {
        return Ok(None);
    };
    Ok(state
        .service
        .session(&token)
        .await?
        .map(|session| (token, session)))
}

/// Back to sign-in from a page that needs a session: saying so, and making
/// the browser forget the cookie, when the one it sent has ended.
fn to_sign_in(state: &AppState, headers: &HeaderMap) -> Response {
    if cookies::session(headers).is_some() {
        see_other("/?notice=session_ended", [cookies::clear_session(state)])
    } else {
        see_other("/", [])
    }
}

async fn failure_of(e: ApiError) -> Failure {
    Failure::read(e.into_response()).await
}

// ---- sign in -------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct SignInForm {
    csrf: String,
    user: String,
    password: String,
}

fn sign_in_view(
    headers: &HeaderMap,
    csrf: &Csrf,
    user: &str,
    alert: Option<Alert>,
    invalid: bool,
) -> Page<'static> {
    let attrs = if invalid { INVALID } else { "" };
    Page {
        title: "Sign in",
        alert,
        content: render::fill(
            render::SIGN_IN,
            &[
                ("csrf", Var::Text(&csrf.token(headers))),
                ("user", Var::Text(user)),
                ("user_attrs", Var::Html(attrs)),
                ("password_attrs", Var::Html(attrs)),
            ],
        ),
    }
}

/// `GET /`: the sign-in form, or the account page for a signed-in browser.
pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SignInQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    match current_session(&state, &headers).await {
        Ok(Some(_)) => return see_other("/account", []),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "session lookup for the sign-in page failed"),
    }
    let alert = match query.notice.as_deref() {
        Some("registered") => Some(Alert::notice(
            "Your account is ready. Sign in with your new password.",
        )),
        Some("signed_out") => Some(Alert::notice("You have signed out.")),
        Some("session_ended") => Some(Alert::notice(
            "Your session has ended. Please sign in again.",
        )),
        Some("password_changed") => Some(Alert::notice(
            "Your password was changed and you were signed out everywhere. \
             Sign in with your new password.",
        )),
        _ => None,
    };
    let csrf = Csrf::for_request(&headers, secure(&state));
    let user = query.user.as_deref().unwrap_or_default();
    let page = sign_in_view(&headers, &csrf, user, alert, false);
    respond(StatusCode::OK, &page, &csrf)
}

/// `POST /login`: signs in through `POST /v1/login`'s handler.
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let csrf = Csrf::for_request(&headers, secure(&state));
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => {
            let page = sign_in_view(&headers, &csrf, "", Some(bad_form(&rejection)), false);
            return respond(rejection.status(), &page, &csrf);
        }
    };
    if let Err(refusal) = csrf::verify(&headers, secure(&state), &form.csrf) {
        tracing::info!(?refusal, path = "/login", "form refused: CSRF check failed");
        let alert = Some(Alert::error(EXPIRED_FORM));
        let page = sign_in_view(&headers, &csrf, &form.user, alert, false);
        return respond(StatusCode::FORBIDDEN, &page, &csrf);
    }
    let request = LoginRequest {
        timestamp: None,
        ip: browser_ip(&state, peer.ip(), &headers),
        user: form.user.clone(),
        password: form.password,
        client: Some(ClientInfo {
            region: None,
            platform: Some("web".into()),
            app_version: None,
        }),
    };
    let answer = login::login(
        State(state.clone()),
        ConnectInfo(peer),
        headers.clone(),
        Ok(ApiJson(request)),
    )
    .await;
    if answer.status().is_success() {
        // The API handler set the session cookie; keep it, drop the JSON.
        let set = answer.headers().get_all(header::SET_COOKIE).iter().cloned();
        return see_other("/account", set.collect::<Vec<_>>());
    }
    let failure = Failure::read(answer).await;
    let invalid = failure.code == "invalid_credentials" || failure.field().is_some();
    let page = sign_in_view(
        &headers,
        &csrf,
        &form.user,
        Some(failure.alert(WRONG_SIGN_IN)),
        invalid,
    );
    with_retry_after(respond(failure.status, &page, &csrf), &failure)
}

/// The browser's address for the login handler's `ip` field: from
/// `X-Forwarded-For`, only when the connection comes from a trusted proxy
/// (the handler believes the field only then, too). The nearest address
/// that is not itself a trusted proxy is the browser's.
fn browser_ip(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> Option<String> {
    let trusted = |ip: &IpAddr| {
        state
            .config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(ip))
    };
    if !trusted(&peer) {
        return None;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = None;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = Some(ip);
        if !trusted(&ip) {
            break;
        }
    }
    client.map(|ip| ip.to_string())
}

// ---- create account ------------------------------------------------------

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct SignUpForm {
    csrf: String,
    user: String,
    password: String,
    confirm: String,
}

fn sign_up_view(
    headers: &HeaderMap,
    csrf: &Csrf,
    user: &str,
    alert: Option<Alert>,
    field: Option<&str>,
) -> Page<'static> {
    let attrs = |name: &str| if field == Some(name) { INVALID } else { "" };
    Page {
        title: "Create an account",
        alert,
        content: render::fill(
            render::SIGN_UP,
            &[
                ("csrf", Var::Text(&csrf.token(headers))),
                ("user", Var::Text(user)),
                ("user_attrs", Var::Html(attrs("user"))),
                ("password_attrs", Var::Html(attrs("password"))),
                ("confirm_attrs", Var::Html(attrs("confirm"))),
            ],
        ),
    }
}

/// `GET /signup`.
pub async fn sign_up_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::for_request(&headers, secure(&state));
    let page = sign_up_view(&headers, &csrf, "", None, None);
    respond(StatusCode::OK, &page, &csrf)
}

/// `POST /signup`: registers through `POST /v1/users`'s handler, then on to
/// the sign-in form.
pub async fn sign_up(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<SignUpForm>, FormRejection>,
) -> Response {
    let csrf = Csrf::for_request(&headers, secure(&state));
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => {
            let page = sign_up_view(&headers, &csrf, "", Some(bad_form(&rejection)), None);
            return respond(rejection.status(), &page, &csrf);
        }
    };
    if let Err(refusal) = csrf::verify(&headers, secure(&state), &form.csrf) {
        tracing::info!(
            ?refusal,
            path = "/signup",
            "form refused: CSRF check failed"
        );
        let page = sign_up_view(
            &headers,
            &csrf,
            &form.user,
            Some(Alert::error(EXPIRED_FORM)),
            None,
        );
        return respond(StatusCode::FORBIDDEN, &page, &csrf);
    }
    if form.password != form.confirm {
        let alert = Some(Alert::error(MISMATCH.replace("new ", "")));
        let page = sign_up_view(&headers, &csrf, &form.user, alert, Some("confirm"));
        return respond(StatusCode::UNPROCESSABLE_ENTITY, &page, &csrf);
    }
    let request = RegisterRequest {
        user: form.user.clone(),
        password: form.password,
    };
    match users::register(State(state.clone()), ConnectInfo(peer), ApiJson(request)).await {
        Ok(_) => {
            let canonical = users::parse_username(&form.user)
                .map(|u| u.to_string())
                .unwrap_or_default();
            see_other(
                &format!("/?notice=registered&user={}", query_escape(&canonical)),
                [],
            )
        }
        Err(e) => {
            let failure = failure_of(e).await;
            let alert = Some(failure.alert(WRONG_SIGN_IN));
            let page = sign_up_view(&headers, &csrf, &form.user, alert, failure.field());
            with_retry_after(respond(failure.status, &page, &csrf), &failure)
        }
    }
}

/// Percent-encodes a query value (everything but unreserved ASCII).
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---- signed in -------------------------------------------------------------

fn account_view(
    headers: &HeaderMap,
    csrf: &Csrf,
    session: &Session,
    alert: Option<Alert>,
) -> Page<'static> {
    let expires = session.expires_at;
    Page {
        title: "Your account",
        alert,
        content: render::fill(
            render::ACCOUNT,
            &[
                ("csrf", Var::Text(&csrf.token(headers))),
                ("user", Var::Text(&session.username)),
                (
                    "expires_iso",
                    Var::Text(&expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                ),
                (
                    "expires",
                    Var::Text(&expires.format("%Y-%m-%d %H:%M UTC").to_string()),
                ),
            ],
        ),
    }
}

/// A page for when the session store cannot be asked.
fn unavailable(csrf: &Csrf, e: ApiError) -> Response {
    tracing::warn!(error = %e, "session lookup for a page failed");
    let page = Page {
        title: "Please try again",
        alert: Some(Alert::error(
            "sesame cannot check your session right now. Please try again in a moment.",
        )),
        content: render::fill(
            render::MESSAGE,
            &[
                ("href", Var::Text("/account")),
                ("link", Var::Text("Try again")),
            ],
        ),
    };
    let mut response = respond(StatusCode::SERVICE_UNAVAILABLE, &page, csrf);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
    response
}

/// `GET /account`: who is signed in, sign-out, and a way to change the password.
pub async fn account_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::for_request(&headers, secure(&state));
    match current_session(&state, &headers).await {
        Ok(Some((_, session))) => {
            let page = account_view(&headers, &csrf, &session, None);
            respond(StatusCode::OK, &page, &csrf)
        }
        Ok(None) => to_sign_in(&state, &headers),
        Err(e) => unavailable(&csrf, e),
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    csrf: String,
}

/// `POST /logout`: revokes the session and clears its cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let csrf = Csrf::for_request(&headers, secure(&state));
    let posted = form.map(|Form(f)| f.csrf).unwrap_or_default();
    // The token first: another site must not even make the browser forget
    // its cookie.
    if let Err(refusal) = csrf::verify(&headers, secure(&state), &posted) {
        tracing::info!(
            ?refusal,
            path = "/logout",
            "form refused: CSRF check failed"
        );
        let alert = Some(Alert::error(EXPIRED_FORM));
        let page = match current_session(&state, &headers).await {
            Ok(Some((_, session))) => account_view(&headers, &csrf, &session, alert),
            _ => sign_in_view(&headers, &csrf, "", alert, false),
        };
        return respond(StatusCode::FORBIDDEN, &page, &csrf);
    }
    let session = match current_session(&state, &headers).await {
        Ok(Some(session)) => session,
        // Nothing to sign out of; make sure the browser forgets the cookie.
        Ok(None) => return see_other("/", [cookies::clear_session(&state)]),
        Err(e) => return unavailable(&csrf, e),
    };
    if let Err(e) = state.service.logout(&session.0).await {
        let failure = failure_of(e.into()).await;
        let alert = Alert::error(format!(
            "You could not be signed out: {}",
            failure.alert("").text
        ));
        let page = account_view(&headers, &csrf, &session.1, Some(alert));
        return with_retry_after(respond(failure.status, &page, &csrf), &failure);
    }
    see_other("/?notice=signed_out", [cookies::clear_session(&state)])
}

// ---- password change -------------------------------------------------------

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    csrf: String,
    old_password: String,
    new_password: String,
    confirm: String,
}

fn password_view(
    headers: &HeaderMap,
    csrf: &Csrf,
    user: &str,
    alert: Option<Alert>,
    field: Option<&str>,
) -> Page<'static> {
    let attrs = |name: &str| if field == Some(name) { INVALID } else { "" };
    Page {
        title: "Change your password",
        alert,
        content: render::fill(
            render::PASSWORD,
            &[
                ("csrf", Var::Text(&csrf.token(headers))),
                ("user", Var::Text(user)),
                ("old_attrs", Var::Html(attrs("old"))),
                ("new_attrs", Var::Html(attrs("new"))),
                ("confirm_attrs", Var::Html(attrs("confirm"))),
            ],
        ),
    }
}

/// `GET /password`.
pub async fn password_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::for_request(&headers, secure(&state));
    match current_session(&state, &headers).await {
        Ok(Some((_, session))) => {
            let page = password_view(&headers, &csrf, &session.username, None, None);
            respond(StatusCode::OK, &page, &csrf)
        }
        Ok(None) => to_sign_in(&state, &headers),
        Err(e) => unavailable(&csrf, e),
    }
}

/// `POST /password`: changes the signed-in user's password through
/// `PUT /v1/users/{user}/password`'s handler. Every session of the user is
/// revoked, this one included, so the browser goes back to sign-in.
pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let csrf = Csrf::for_request(&headers, secure(&state));
    let session = match current_session(&state, &headers).await {
        Ok(Some((_, session))) => session,
        Ok(None) => return to_sign_in(&state, &headers),
        Err(e) => return unavailable(&csrf, e),
    };
    let user = session.username.as_str();
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => {
            let page = password_view(&headers, &csrf, user, Some(bad_form(&rejection)), None);
            return respond(rejection.status(), &page, &csrf);
        }
    };
    if let Err(refusal) = csrf::verify(&headers, secure(&state), &form.csrf) {
        tracing::info!(
            ?refusal,
            path = "/password",
            "form refused: CSRF check failed"
        );
        let page = password_view(
            &headers,
            &csrf,
            user,
            Some(Alert::error(EXPIRED_FORM)),
            None,
        );
        return respond(StatusCode::FORBIDDEN, &page, &csrf);
    }
    if form.new_password != form.confirm {
        let page = password_view(
            &headers,
            &csrf,
            user,
            Some(Alert::error(MISMATCH)),
            Some("confirm"),
        );
        return respond(StatusCode::UNPROCESSABLE_ENTITY, &page, &csrf);
    }
    let request = ChangePasswordRequest {
        old_password: form.old_password,
        new_password: form.new_password,
    };
    match users::change_password(
        State(state.clone()),
        ConnectInfo(peer),
        Path(user.to_owned()),
        ApiJson(request),
    )
    .await
    {
        Ok(_) => see_other(
            &format!("/?notice=password_changed&user={}", query_escape(user)),
            [cookies::clear_session(&state)],
        ),
        Err(e) => {
            let failure = failure_of(e).await;
            let field = match failure.code.as_str() {
                "invalid_credentials" => Some("old"),
                "weak_password" | "invalid_password" => Some("new"),
                _ => None,
            };
            let alert = Some(failure.alert(WRONG_CURRENT));
            let page = password_view(&headers, &csrf, user, alert, field);
            with_retry_after(respond(failure.status, &page, &csrf), &failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::query_escape;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_escape("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(query_escape("a+b@c é"), "a%2Bb%40c%20%C3%A9");
    }
}
