//! A very small template engine (`{{name}}` placeholders, values escaped
//! unless marked as markup) and what the pages say when something fails.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

pub const LAYOUT: &str = include_str!("../../assets/layout.html");
pub const SIGN_IN: &str = include_str!("../../assets/sign-in.html");
pub const SIGN_UP: &str = include_str!("../../assets/sign-up.html");
pub const ACCOUNT: &str = include_str!("../../assets/account.html");
pub const PASSWORD: &str = include_str!("../../assets/password.html");
pub const MESSAGE: &str = include_str!("../../assets/message.html");

/// A template value: text (escaped) or markup built by this module.
pub enum Var<'a> {
    Text(&'a str),
    Html(&'a str),
}

/// Replaces every `{{name}}` in `template`. A placeholder without a value
/// is a bug in this crate: it fails debug builds and renders empty otherwise.
pub fn fill(template: &str, vars: &[(&str, Var<'_>)]) -> String {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            debug_assert!(false, "unclosed placeholder");
            break;
        };
        let key = after[..end].trim();
        match vars.iter().find(|(k, _)| *k == key) {
            Some((_, Var::Text(text))) => escape_into(&mut out, text),
            Some((_, Var::Html(html))) => out.push_str(html),
            None => debug_assert!(false, "no value for placeholder {key}"),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The message at the top of a page.
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

    /// Errors are `role="alert"` (announced at once, and the script moves
    /// focus to them); notices are `role="status"`.
    fn html(&self) -> String {
        let (class, role) = if self.error {
            ("alert alert-error", "alert")
        } else {
            ("alert alert-notice", "status")
        };
        let countdown = self
            .retry_after
            .map(|s| {
                format!(r#"<p class="countdown" data-retry-after="{s}" aria-hidden="true"></p>"#)
            })
            .unwrap_or_default();
        format!(
            r#"<div class="{class}" id="alert" role="{role}" tabindex="-1"><p>{}</p>{countdown}</div>"#,
            escape(&self.text)
        )
    }
}

/// A whole page: the layout around `content`.
pub struct Page<'a> {
    pub title: &'a str,
    pub alert: Option<Alert>,
    pub content: String,
}

impl Page<'_> {
    pub fn html(&self) -> String {
        let alert = self.alert.as_ref().map(Alert::html).unwrap_or_default();
        let prefix = match &self.alert {
            Some(a) if a.error => "Error: ",
            _ => "",
        };
        fill(
            LAYOUT,
            &[
                ("title_prefix", Var::Text(prefix)),
                ("title", Var::Text(self.title)),
                ("version", Var::Text(super::asset_version())),
                ("alert", Var::Html(&alert)),
                ("content", Var::Html(&self.content)),
            ],
        )
    }
}

/// An HTML response that no cache keeps (pages hold CSRF tokens and names).
pub fn html(status: StatusCode, body: String) -> Response {
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

/// What the API said when an operation failed: its status, error code and
/// message, and `Retry-After`.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl Failure {
    /// Reads an API error response (`{"error":{"code","message"}}`).
    pub async fn read(response: Response) -> Self {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let field = |name: &str| json["error"][name].as_str().unwrap_or_default().to_owned();
        Self {
            status,
            code: field("code"),
            message: field("message"),
            retry_after,
        }
    }

    /// The field the problem is about, if one: `user` or `password`.
    pub fn field(&self) -> Option<&'static str> {
        match self.code.as_str() {
            "invalid_user" | "user_exists" => Some("user"),
            "invalid_password" | "weak_password" => Some("password"),
            _ => None,
        }
    }

    /// What to tell the person. `wrong_password` is the message for
    /// `invalid_credentials`, which depends on the form.
    pub fn alert(&self, wrong_password: &str) -> Alert {
        let wait = self.retry_after.unwrap_or(1).max(1);
        let seconds = if wait == 1 {
            "1 second".to_owned()
        } else {
            format!("{wait} seconds")
        };
        let text = match self.code.as_str() {
            "invalid_credentials" => wrong_password.to_owned(),
            "rate_limited" => format!(
                "Too many attempts. For your security, please wait {seconds} before trying again."
            ),
            "overloaded" => format!(
                "sesame is very busy right now, so this could not be done. \
                 Nothing is wrong on your side: please try again in {seconds}."
            ),
            "unavailable" => {
                "sesame cannot reach its database right now. Please try again in a moment."
                    .to_owned()
            }
            "user_exists" => {
                "That user name is already taken. Choose another one, or sign in.".to_owned()
            }
            "payload_too_large" => "The form is too large to send.".to_owned(),
            _ if self.status.is_client_error() && !self.message.is_empty() => {
                sentence(&self.message)
            }
            _ => "Something went wrong on our side. Please try again.".to_owned(),
        };
        let countdown = matches!(self.code.as_str(), "rate_limited" | "overloaded");
        Alert {
            error: true,
            text,
            retry_after: if countdown { Some(wait) } else { None },
        }
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

    #[test]
    fn fills_and_escapes() {
        let out = fill(
            "<p title=\"{{a}}\">{{ b }}</p>{{c}}",
            &[
                ("a", Var::Text("\"><script>")),
                ("b", Var::Text("Tom & 'Jerry'")),
                ("c", Var::Html("<br>")),
            ],
        );
        assert_eq!(
            out,
            "<p title=\"&quot;&gt;&lt;script&gt;\">Tom &amp; &#39;Jerry&#39;</p><br>"
        );
    }

    #[test]
    fn messages() {
        let failure = |code: &str, message: &str, retry_after| Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: code.into(),
            message: message.into(),
            retry_after,
        };
        let limited = failure("rate_limited", "", Some(30)).alert("wrong");
        assert!(limited.text.contains("wait 30 seconds"), "{}", limited.text);
        assert_eq!(limited.retry_after, Some(30));
        let busy = failure("overloaded", "", None).alert("wrong");
        assert!(busy.text.contains("try again in 1 second"), "{}", busy.text);
        let weak = Failure {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            ..failure(
                "weak_password",
                "password must be at least 8 characters",
                None,
            )
        };
        assert_eq!(
            weak.alert("wrong").text,
            "Password must be at least 8 characters."
        );
        assert_eq!(
            failure("invalid_credentials", "", None).alert("wrong").text,
            "wrong"
        );
    }
}
