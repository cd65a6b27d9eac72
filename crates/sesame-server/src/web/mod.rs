//! The browser pages: sign in, create an account, the signed-in page with
//! sign-out, and password change. Server-rendered HTML, plain forms that work
//! without script (a small script in `/assets/` only enhances them), and no
//! logic of their own: each form post goes through the same handler as its
//! JSON API twin, so parsing, rate limiting, load shedding, events and
//! metrics are the API's.
//!
//! Every page and asset carries a strict Content-Security-Policy (no inline
//! script or style), `frame-ancestors 'none'`, `Referrer-Policy: no-referrer`
//! and `X-Content-Type-Options: nosniff`; every form is CSRF-protected
//! ([`csrf`]).

mod csrf;
mod not_found;
mod pages;
mod render;

pub use not_found::page as not_found_page;

use crate::app::AppState;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use std::sync::OnceLock;
use tower_http::set_header::SetResponseHeaderLayer;

/// No inline script or style, nothing from elsewhere, forms post only here,
/// and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'";

/// The headers on every page and asset (and on the not-found page).
const PAGE_HEADERS: [(&str, &str); 6] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// The pages and their assets, to be merged into the service's router.
pub fn router() -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(pages::sign_in_page))
        .route("/login", get(to_sign_in).post(pages::sign_in))
        .route("/signup", get(pages::sign_up_page).post(pages::sign_up))
        .route("/account", get(pages::account_page))
        .route("/logout", get(to_account).post(pages::sign_out))
        .route(
            "/password",
            get(pages::password_page).post(pages::change_password),
        )
        .route("/assets/sesame.css", get(|| asset(Asset::Css)))
        .route("/assets/sesame.js", get(|| asset(Asset::Js)))
        .route("/assets/favicon.svg", get(|| asset(Asset::Icon)))
        .route("/favicon.ico", get(|| asset(Asset::Icon)));
    PAGE_HEADERS.iter().fold(pages, |pages, &(name, value)| {
        pages.layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ))
    })
}

/// `response` with the headers of the pages (for answers from outside
/// [`router`]: the not-found page and the other fallback answers).
pub fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in PAGE_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

async fn to_sign_in() -> Redirect {
    Redirect::to("/")
}

/// Signing out takes a form post; a typed-in `/logout` shows the button.
async fn to_account() -> Redirect {
    Redirect::to("/account")
}

#[derive(Clone, Copy)]
enum Asset {
    Css,
    Js,
    Icon,
}

impl Asset {
    fn body(self) -> &'static str {
        match self {
            Asset::Css => include_str!("../../assets/sesame.css"),
            Asset::Js => include_str!("../../assets/sesame.js"),
            Asset::Icon => include_str!("../../assets/favicon.svg"),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Asset::Css => "text/css; charset=utf-8",
            Asset::Js => "text/javascript; charset=utf-8",
            Asset::Icon => "image/svg+xml",
        }
    }
}

async fn asset(asset: Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type()),
            // Pages link assets with a content hash in the query string, so
            // a new build is fetched at once; old URLs may be cached.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        asset.body(),
    )
        .into_response()
}

/// A short hash of the assets, for cache-busting links (`?v=...`).
fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for a in [Asset::Css, Asset::Js, Asset::Icon] {
            h.update(a.body().as_bytes());
        }
        h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// Reading and writing the cookies the pages use.
mod cookies {
    use crate::app::AppState;
    use crate::extract::SESSION_COOKIE;
    use axum::http::header::COOKIE;
    use axum::http::{HeaderMap, HeaderValue};

    /// The first cookie called `name`.
    pub fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.trim())
    }

    /// The session cookie as presented (valid or not).
    pub fn session(headers: &HeaderMap) -> Option<&str> {
        get(headers, SESSION_COOKIE).filter(|v| !v.is_empty())
    }

    /// Clears the session cookie, with the attributes it was set with.
    pub fn clear_session(state: &AppState) -> HeaderValue {
        let secure = if state.config.cookie_secure {
            "; Secure"
        } else {
            ""
        };
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"
        ))
        .expect("header-safe")
    }
}
