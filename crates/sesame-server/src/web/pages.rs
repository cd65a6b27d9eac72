//! The page handlers: read the form, check its CSRF token, call the same
//! flow as the JSON API (same parsing, rate limiting, load shedding, events
//! and metrics), and answer with a redirect or the form again with a
//! message.

use super::csrf::{self, Csrf};
use super::views::{self, Account, Alert, ChangePassword, Frame, Invalid, Message, SignIn, SignUp};
use crate::cookies;
use crate::error::ApiError;
use crate::flows::{self, Caller, ClientLabels, LoginInput};
use crate::state::AppState;
use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use sesame_domain::{Session, SessionToken};
use subtle::ConstantTimeEq;
use tower_http::csrf::ProtectionError;

const WRONG_SIGN_IN: &str = "The user name or password is not correct. Check them and try again.";
const WRONG_CURRENT: &str = "Your current password is not correct.";
const EXPIRED_FORM: &str = "For your security this form expired or did not come from this \
site, so nothing was done. Please check it and send it again.";
const BAD_FORM: &str = "The form could not be read. Please try again.";
const MISMATCH: &str = "The two new passwords do not match.";

/// What to say about a form body that could not be read.
fn bad_form(rejection: &FormRejection) -> Option<Alert> {
    Some(if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Alert::error("The form is too large to send. Please use shorter entries.")
    } else {
        Alert::error(BAD_FORM)
    })
}

/// The page as a response, setting the CSRF nonce cookie when it is new.
fn respond(status: StatusCode, page: &impl Template, csrf: &Csrf) -> Response {
    let mut response = views::html(status, page);
    if let Some(cookie) = csrf.set_cookie() {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The form again after a failed operation, with the status and
/// `Retry-After` the API would have answered.
fn failed(e: &ApiError, page: &impl Template, csrf: &Csrf) -> Response {
    e.report();
    let mut response = respond(e.status(), page, csrf);
    if let Some(secs) = e.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Whether a password and its repetition match, in constant time like
/// every comparison of a secret here.
fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
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

/// The live session named by the session cookie, if any.
async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(SessionToken, Session)>, ApiError> {
    let presented = cookies::session(headers, state.cookie_secure());
    let Some(token) = presented.and_then(SessionToken::parse) else {
        return Ok(None);
    };
    Ok(flows::session(state, &token)
        .await?
        .map(|session| (token, session)))
}

/// Back to sign-in from a page that needs a session: saying so, and making
/// the browser forget the cookie, when the one it sent has ended.
fn to_sign_in(state: &AppState, headers: &HeaderMap) -> Response {
    let secure = state.cookie_secure();
    if cookies::session(headers, secure).is_some() {
        see_other("/?notice=session_ended", cookies::clear_session(secure))
    } else {
        see_other("/", [])
    }
}

/// A page for when the session store cannot be asked.
fn unavailable(csrf: &Csrf, e: ApiError) -> Response {
    tracing::warn!(error = %e, "session lookup for a page failed");
    let page = Message {
        frame: Frame {
            title: "Please try again",
            alert: Some(Alert::error(
                "sesame cannot check your session right now. Please try again in a moment.",
            )),
        },
        href: "/account",
        link: "Try again",
    };
    let mut response = respond(StatusCode::SERVICE_UNAVAILABLE, &page, csrf);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
    response
}

// ---- refused posts -----------------------------------------------------------

/// A refused post to `path` changes nothing (the session cookie included)
/// and gets its form again, 403, with a fresh token: a person whose form
/// merely went stale can send it again.
async fn refused(state: &AppState, path: &str, headers: &HeaderMap, user: &str) -> Response {
    let csrf = Csrf::for_request(headers, state.cookie_secure());
    let alert = || Some(Alert::error(EXPIRED_FORM));
    match path {
        "/signup" => {
            let page = sign_up_view(headers, &csrf, user, alert(), Invalid(None));
            respond(StatusCode::FORBIDDEN, &page, &csrf)
        }
        "/password" => match current_session(state, headers).await {
            Ok(Some((_, session))) => {
                let page = password_view(headers, &csrf, &session.username, alert(), None);
                respond(StatusCode::FORBIDDEN, &page, &csrf)
            }
            Ok(None) => to_sign_in(state, headers),
            Err(e) => unavailable(&csrf, e),
        },
        "/logout" => match current_session(state, headers).await {
            Ok(Some((_, session))) => {
                let page = account_view(headers, &csrf, &session, alert());
                respond(StatusCode::FORBIDDEN, &page, &csrf)
            }
            _ => {
                let page = sign_in_view(headers, &csrf, "", alert(), false);
                respond(StatusCode::FORBIDDEN, &page, &csrf)
            }
        },
        _ => {
            let page = sign_in_view(headers, &csrf, user, alert(), false);
            respond(StatusCode::FORBIDDEN, &page, &csrf)
        }
    }
}

/// Middleware behind tower-http's CSRF layer: a post it refused as
/// cross-origin is answered like a post with a bad token.
pub async fn refuse_cross_origin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let response = next.run(request).await;
    match response.extensions().get::<ProtectionError>() {
        Some(error) => {
            tracing::info!(%error, path, "form refused: cross-origin");
            refused(&state, &path, &headers, "").await
        }
        None => response,
    }
}

/// The token check of every form post; `Err` is the answer.
async fn check_token(
    state: &AppState,
    path: &str,
    headers: &HeaderMap,
    posted: &str,
    user: &str,
) -> Result<(), Response> {
    match csrf::verify(headers, state.cookie_secure(), posted) {
        Ok(()) => Ok(()),
        Err(refusal) => {
            tracing::info!(?refusal, path, "form refused: CSRF check failed");
            Err(refused(state, path, headers, user).await)
        }
    }
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

fn sign_in_view<'a>(
    headers: &HeaderMap,
    csrf: &Csrf,
    user: &'a str,
    alert: Option<Alert>,
    invalid: bool,
) -> SignIn<'a> {
    SignIn {
        frame: Frame {
            title: "Sign in",
            alert,
        },
        csrf: csrf.token(headers),
        user,
        invalid,
    }
}

/// `GET /`: the sign-in form, or the account page for a signed-in browser.
pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SignInQuery>, QueryRejection>,
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
    let csrf = Csrf::for_request(&headers, state.cookie_secure());
    let user = query.user.as_deref().unwrap_or_default();
    let page = sign_in_view(&headers, &csrf, user, alert, false);
    respond(StatusCode::OK, &page, &csrf)
}

/// `POST /login`: signs in through the login flow (a login event with
/// `platform: "web"`).
pub async fn sign_in(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let secure = state.cookie_secure();
    let csrf = Csrf::for_request(&headers, secure);
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => {
            let page = sign_in_view(&headers, &csrf, "", bad_form(&rejection), false);
            return respond(rejection.status(), &page, &csrf);
        }
    };
    if let Err(answer) = check_token(&state, "/login", &headers, &form.csrf, &form.user).await {
        return answer;
    }
    let input = LoginInput {
        user: form.user.clone(),
        password: form.password,
        client: ClientLabels {
            platform: Some("web".into()),
            ..ClientLabels::default()
        },
        ..LoginInput::default()
    };
    match flows::login(&state, &caller, Ok(input)).await.result {
        Ok(signed_in) => {
            let ttl = state.config.login.session_ttl;
            let cookie = cookies::set_session(signed_in.token.as_str(), ttl, secure);
            see_other("/account", [cookie])
        }
        Err(e) => {
            let invalid =
                matches!(e, ApiError::InvalidCredentials) || views::field_of(&e).is_some();
            let alert = Some(views::alert_for(&e, WRONG_SIGN_IN));
            let page = sign_in_view(&headers, &csrf, &form.user, alert, invalid);
            failed(&e, &page, &csrf)
        }
    }
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

fn sign_up_view<'a>(
    headers: &HeaderMap,
    csrf: &Csrf,
    user: &'a str,
    alert: Option<Alert>,
    invalid: Invalid,
) -> SignUp<'a> {
    SignUp {
        frame: Frame {
            title: "Create an account",
            alert,
        },
        csrf: csrf.token(headers),
        user,
        invalid,
    }
}

/// `GET /signup`.
pub async fn sign_up_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::for_request(&headers, state.cookie_secure());
    let page = sign_up_view(&headers, &csrf, "", None, Invalid(None));
    respond(StatusCode::OK, &page, &csrf)
}

/// `POST /signup`: registers through the registration flow, then on to the
/// sign-in form.
pub async fn sign_up(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    form: Result<Form<SignUpForm>, FormRejection>,
) -> Response {
    let csrf = Csrf::for_request(&headers, state.cookie_secure());
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => {
            let page = sign_up_view(&headers, &csrf, "", bad_form(&rejection), Invalid(None));
            return respond(rejection.status(), &page, &csrf);
        }
    };
    if let Err(answer) = check_token(&state, "/signup", &headers, &form.csrf, &form.user).await {
        return answer;
    }
    if !same_secret(&form.password, &form.confirm) {
        let alert = Some(Alert::error(MISMATCH.replace("new ", "")));
        let page = sign_up_view(&headers, &csrf, &form.user, alert, Invalid(Some("confirm")));
        return respond(StatusCode::UNPROCESSABLE_ENTITY, &page, &csrf);
    }
    match flows::register(&state, &caller, &form.user, &form.password).await {
        Ok(canonical) => {
            let user = query_escape(&canonical.to_string());
            see_other(&format!("/?notice=registered&user={user}"), [])
        }
        Err(e) => {
            let alert = Some(views::alert_for(&e, WRONG_SIGN_IN));
            let invalid = Invalid(views::field_of(&e));
            let page = sign_up_view(&headers, &csrf, &form.user, alert, invalid);
            failed(&e, &page, &csrf)
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

fn account_view<'a>(
    headers: &HeaderMap,
    csrf: &Csrf,
    session: &'a Session,
    alert: Option<Alert>,
) -> Account<'a> {
    let frame = Frame {
        title: "Your account",
        alert,
    };
    Account::new(
        frame,
        csrf.token(headers),
        &session.username,
        session.expires_at,
    )
}

/// `GET /account`: who is signed in, sign-out, and a way to change the password.
pub async fn account_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::for_request(&headers, state.cookie_secure());
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
    let secure = state.cookie_secure();
    let csrf = Csrf::for_request(&headers, secure);
    let posted = form.map(|Form(f)| f.csrf).unwrap_or_default();
    // The token first: another site must not even make the browser forget
    // its cookie.
    if let Err(answer) = check_token(&state, "/logout", &headers, &posted, "").await {
        return answer;
    }
    let (token, session) = match current_session(&state, &headers).await {
        Ok(Some(session)) => session,
        // Nothing to sign out of; make sure the browser forgets the cookie.
        Ok(None) => return see_other("/", cookies::clear_session(secure)),
        Err(e) => return unavailable(&csrf, e),
    };
    if let Err(e) = flows::logout(&state, &token).await {
        let alert = Alert::error(format!(
            "You could not be signed out: {}",
            views::alert_for(&e, "").text
        ));
        let page = account_view(&headers, &csrf, &session, Some(alert));
        return failed(&e, &page, &csrf);
    }
    see_other("/?notice=signed_out", cookies::clear_session(secure))
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

fn password_view<'a>(
    headers: &HeaderMap,
    csrf: &Csrf,
    user: &'a str,
    alert: Option<Alert>,
    invalid: Option<&'static str>,
) -> ChangePassword<'a> {
    ChangePassword {
        frame: Frame {
            title: "Change your password",
            alert,
        },
        csrf: csrf.token(headers),
        user,
        invalid: Invalid(invalid),
    }
}

/// `GET /password`.
pub async fn password_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::for_request(&headers, state.cookie_secure());
    match current_session(&state, &headers).await {
        Ok(Some((_, session))) => {
            let page = password_view(&headers, &csrf, &session.username, None, None);
            respond(StatusCode::OK, &page, &csrf)
        }
        Ok(None) => to_sign_in(&state, &headers),
        Err(e) => unavailable(&csrf, e),
    }
}

/// `POST /password`: changes the signed-in user's password through the
/// password-change flow. Every session of the user is revoked, this one
/// included, so the browser goes back to sign-in.
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let secure = state.cookie_secure();
    let csrf = Csrf::for_request(&headers, secure);
    let session = match current_session(&state, &headers).await {
        Ok(Some((_, session))) => session,
        Ok(None) => return to_sign_in(&state, &headers),
        Err(e) => return unavailable(&csrf, e),
    };
    let user = session.username.as_str();
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => {
            let page = password_view(&headers, &csrf, user, bad_form(&rejection), None);
            return respond(rejection.status(), &page, &csrf);
        }
    };
    if let Err(answer) = check_token(&state, "/password", &headers, &form.csrf, "").await {
        return answer;
    }
    if !same_secret(&form.new_password, &form.confirm) {
        let alert = Some(Alert::error(MISMATCH));
        let page = password_view(&headers, &csrf, user, alert, Some("confirm"));
        return respond(StatusCode::UNPROCESSABLE_ENTITY, &page, &csrf);
    }
    let (old, new) = (&form.old_password, &form.new_password);
    match flows::change_password(&state, &caller, user, old, new).await {
        Ok(()) => see_other(
            &format!("/?notice=password_changed&user={}", query_escape(user)),
            cookies::clear_session(secure),
        ),
        Err(e) => {
            let field = match e.code() {
                "invalid_credentials" => Some("old"),
                "weak_password" | "invalid_password" => Some("new"),
                _ => None,
            };
            let alert = Some(views::alert_for(&e, WRONG_CURRENT));
            let page = password_view(&headers, &csrf, user, alert, field);
            failed(&e, &page, &csrf)
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
