//! The page a browser gets for an address that is none of sesame's (404),
//! or for a page asked for with a method it does not take (405): in the
//! site's layout, with the pages' security headers. Clients that do not ask
//! for HTML, and every `/v1/` path, get the JSON error envelope instead
//! (see `routes::fallback`).

use super::render::{self, Page, Var};
use axum::http::StatusCode;
use axum::response::Response;

const TEMPLATE: &str = include_str!("../../assets/not-found.html");

/// The page for `status`: 405, or else 404.
pub fn page(status: StatusCode) -> Response {
    let (status, title, text) = if status == StatusCode::METHOD_NOT_ALLOWED {
        (
            status,
            "This page cannot do that",
            "This address is a sesame page, but it cannot answer what your browser asked of it.",
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            "Page not found",
            "There is no page at this address.",
        )
    };
    let page = Page {
        title,
        alert: None,
        content: render::fill(TEMPLATE, &[("text", Var::Text(text))]),
    };
    super::with_page_headers(render::html(status, page.html()))
}
