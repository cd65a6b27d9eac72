//! The page a browser gets for an address that is none of sesame's (404),
//! or for a page asked for with a method it does not take (405): in the
//! site's layout, with the pages' security headers. Clients that do not ask
//! for HTML, and every `/v1/` path, get the JSON error envelope instead
//! (see `router::fallback`).

use super::assets::with_page_headers;
use super::views::{self, Frame, NotFound};
use axum::http::StatusCode;
use axum::response::Response;

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
    let page = NotFound {
        frame: Frame { title, alert: None },
        text,
    };
    with_page_headers(views::html(status, &page))
}
