//! The browser pages: sign in, create an account, the signed-in page with
//! sign-out, and password change. Server-rendered HTML, plain forms that work
//! without script (a small script in `/assets/` only enhances them), and no
//! logic of their own: each form post calls the same flow as its JSON API
//! twin, so parsing, rate limiting, load shedding, events and metrics are
//! the API's.
//!
//! Every page and asset carries a strict Content-Security-Policy (no inline
//! script or style), `frame-ancestors 'none'`, `Referrer-Policy: no-referrer`
//! and `X-Content-Type-Options: nosniff`; every form is CSRF-protected
//! ([`csrf`]).

mod assets;
mod csrf;
mod not_found;
mod pages;
mod views;

pub use assets::with_page_headers;
pub use not_found::page as not_found_page;

use crate::state::AppState;
use assets::{asset, Asset, PAGE_HEADERS};
use axum::http::{HeaderName, HeaderValue};
use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

/// The pages and their assets, to be merged into the service's router.
///
/// Only here does tower-http's cross-origin check stand in front of the
/// forms. The JSON API (`/v1/...`) does without it: a browser cannot send
/// `Content-Type: application/json`, `PUT` or `DELETE` to another origin
/// without a CORS preflight, which sesame never grants, and the API answers
/// anything else with 415 before reading it; the session cookie is
/// `SameSite=Lax`, so a cross-site `fetch` does not carry it at all. Its
/// errors must also stay the JSON envelope, which the layer's bare 403 is not.
pub fn router(state: AppState) -> Router<AppState> {
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
        .route("/favicon.ico", get(|| asset(Asset::Icon)))
        // Refuses cross-origin posts before they are read...
        .layer(CsrfLayer::new())
        // ... and answers them with the form again (outside the layer).
        .layer(axum::middleware::from_fn_with_state(
            state,
            pages::refuse_cross_origin,
        ));
    PAGE_HEADERS.iter().fold(pages, |pages, &(name, value)| {
        pages.layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ))
    })
}

async fn to_sign_in() -> Redirect {
    Redirect::to("/")
}

/// Signing out takes a form post; a typed-in `/logout` shows the button.
async fn to_account() -> Redirect {
    Redirect::to("/account")
}
