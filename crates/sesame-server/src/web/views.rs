//! The pages as askama templates (`assets/*.html`: placeholders checked at
//! compile time, every value HTML-escaped), and what a page says when an
//! operation failed: the flows' typed errors in words.

use super::assets::asset_version;
use crate::error::ApiError;
use askama::Template;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

/// What every page has around its content (`layout.html`).
pub struct Frame<'a> {
    pub title: &'a str,
    pub alert: Option<Alert>,
}

impl Frame<'_> {
    /// An error page's title starts with "Error: ".
    pub fn is_error(&self) -> bool {
        self.alert.as_ref().is_some_and(|a| a.error)
    }

    /// For cache-busting asset links (`?v=...`).
    pub fn version(&self) -> &'static str {
        asset_version()
    }
}

/// The message at the top of a page (`alert.html`).
pub struct Alert {
    pub error: bool,
    pub text: String,
    /// Seconds until a retry may succeed; the script counts them down.
    pub retry_after: Option<u64>,
}

impl Alert {
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            error: true,
            text: text.into(),
            retry_after: None,
        }
    }

    pub fn notice(text: impl Into<String>) -> Self {
        Self {
            error: false,
            text: text.into(),
            retry_after: None,
        }
    }

    pub fn kind(&self) -> &'static str {
        if self.error {
            "error"
        } else {
            "notice"
        }
    }

    /// Errors are announced at once (and the script focuses them); notices
    /// politely.
    pub fn role(&self) -> &'static str {
        if self.error {
            "alert"
        } else {
            "status"
        }
    }
}

/// The form field an error is about: marked `aria-invalid`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Invalid(pub Option<&'static str>);

impl Invalid {
    pub fn is(&self, field: &str) -> bool {
        self.0 == Some(field)
    }
}

#[derive(Template)]
#[template(path = "sign-in.html")]
pub struct SignIn<'a> {
    pub frame: Frame<'a>,
    pub csrf: String,
    pub user: &'a str,
    /// The user name or the password was wrong (which one is not said).
    pub invalid: bool,
}

#[derive(Template)]
#[template(path = "sign-up.html")]
pub struct SignUp<'a> {
    pub frame: Frame<'a>,
    pub csrf: String,
    pub user: &'a str,
    pub invalid: Invalid,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct Account<'a> {
    pub frame: Frame<'a>,
    pub csrf: String,
    pub user: &'a str,
    pub expires_iso: String,
    pub expires: String,
}

impl<'a> Account<'a> {
    pub fn new(frame: Frame<'a>, csrf: String, user: &'a str, expires_at: DateTime<Utc>) -> Self {
        Self {
            frame,
            csrf,
            user,
            expires_iso: expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            expires: expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "password.html")]
pub struct ChangePassword<'a> {
    pub frame: Frame<'a>,
    pub csrf: String,
    pub user: &'a str,
    pub invalid: Invalid,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct Message<'a> {
    pub frame: Frame<'a>,
    pub href: &'a str,
    pub link: &'a str,
}

#[derive(Template)]
#[template(path = "not-found.html")]
pub struct NotFound<'a> {
    pub frame: Frame<'a>,
    pub text: &'a str,
}

/// A page as an HTML response that no cache keeps (pages hold CSRF tokens
/// and names).
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    let body = match page.render() {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The field a failed operation is about, if one: `user` or `password`.
pub fn field_of(e: &ApiError) -> Option<&'static str> {
    match e.code() {
        "invalid_user" | "user_exists" => Some("user"),
        "invalid_password" | "weak_password" => Some("password"),
        _ => None,
    }
}

/// What to tell the person. `wrong_password` is the message for
/// `invalid_credentials`, which depends on the form.
pub fn alert_for(e: &ApiError, wrong_password: &str) -> Alert {
    let wait = e.retry_after_secs().unwrap_or(1);
    let seconds = if wait == 1 {
        "1 second".to_owned()
    } else {
        format!("{wait} seconds")
    };
    let text = match e {
        ApiError::InvalidCredentials => wrong_password.to_owned(),
        ApiError::RateLimited { .. } => format!(
            "Too many attempts. For your security, please wait {seconds} before trying again."
        ),
        ApiError::Overloaded { .. } => format!(
            "sesame is very busy right now, so this could not be done. \
             Nothing is wrong on your side: please try again in {seconds}."
        ),
        ApiError::Unavailable(_) => {
            "sesame cannot reach its database right now. Please try again in a moment.".to_owned()
        }
        ApiError::UserExists => {
            "That user name is already taken. Choose another one, or sign in.".to_owned()
        }
        ApiError::PayloadTooLarge => "The form is too large to send.".to_owned(),
        _ if e.status().is_client_error() && !e.public_message().is_empty() => {
            sentence(&e.public_message())
        }
        _ => "Something went wrong on our side. Please try again.".to_owned(),
    };
    let countdown = matches!(
        e,
        ApiError::RateLimited { .. } | ApiError::Overloaded { .. }
    );
    Alert {
        error: true,
        text,
        retry_after: countdown.then_some(wait),
    }
}

/// `password must be at least 8 characters` -> `Password must be at least 8 characters.`
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn messages() {
        let limited = alert_for(
            &ApiError::RateLimited {
                retry_after: Duration::from_secs(30),
                scope: "ip",
            },
            "wrong",
        );
        assert!(limited.text.contains("wait 30 seconds"), "{}", limited.text);
        assert_eq!(limited.retry_after, Some(30));
        let busy = alert_for(
            &ApiError::Overloaded {
                retry_after: Duration::from_millis(300),
            },
            "wrong",
        );
        assert!(busy.text.contains("try again in 1 second"), "{}", busy.text);
        let weak = ApiError::Unprocessable(
            "weak_password",
            "password must be at least 8 characters".into(),
        );
        assert_eq!(
            alert_for(&weak, "wrong").text,
            "Password must be at least 8 characters."
        );
        assert_eq!(field_of(&weak), Some("password"));
        assert_eq!(
            alert_for(&ApiError::InvalidCredentials, "wrong").text,
            "wrong"
        );
        let internal = alert_for(&ApiError::Internal("secret detail".into()), "wrong");
        assert!(!internal.text.contains("secret"), "{}", internal.text);
    }

    #[test]
    fn values_are_escaped() {
        let page = SignIn {
            frame: Frame {
                title: "Sign in",
                alert: Some(Alert::error("<script>alert(1)</script>")),
            },
            csrf: "t".into(),
            user: "\"><script>",
            invalid: true,
        };
        let html = page.render().unwrap();
        assert!(
            !html.contains("<script>alert") && !html.contains("\"><script>"),
            "{html}"
        );
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{html}"
        );
        assert!(
            html.contains(r#"value="&#34;&#62;&#60;script&#62;""#),
            "{html}"
        );
        assert!(
            html.contains("<title>Error: Sign in · sesame</title>"),
            "{html}"
        );
        assert_eq!(html.matches(r#" aria-invalid="true""#).count(), 2);
    }
}
