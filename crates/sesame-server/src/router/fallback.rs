//! What an unknown path (404) and a method a path does not take (405) get.
//! API paths (`/v1/...`) always get the JSON error envelope (`not_found`,
//! `method_not_allowed`); other paths get the site's HTML page when the
//! client asks for HTML (a browser), and the envelope otherwise. axum adds
//! `Allow` to the 405.
//!
//! The metrics middleware sees no route template for an unknown path: it
//! counts all of them under the one label value `unmatched`, never the path.

use crate::error::ApiError;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

pub async fn not_found(uri: Uri, headers: HeaderMap) -> Response {
    answer(StatusCode::NOT_FOUND, &uri, &headers)
}

pub async fn method_not_allowed(uri: Uri, headers: HeaderMap) -> Response {
    answer(StatusCode::METHOD_NOT_ALLOWED, &uri, &headers)
}

/// The answer, with the pages' security headers whichever it is (a JSON
/// answer does not need them, but neither does it hurt). Outside the API the
/// answer depends on `Accept`, and says so to caches.
fn answer(status: StatusCode, uri: &Uri, headers: &HeaderMap) -> Response {
    let api = is_api(uri.path());
    let mut response = if !api && prefers_html(headers) {
        crate::web::not_found_page(status)
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        crate::web::with_page_headers(ApiError::MethodNotAllowed.into_response())
    } else {
        crate::web::with_page_headers(ApiError::NotFound.into_response())
    };
    if !api {
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept"));
    }
    response
}

fn is_api(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// Whether `Accept` takes HTML (`text/html` or XHTML, q > 0) at least as
/// much as JSON. `*/*` alone (curl, most HTTP libraries) is not a request
/// for a page.
fn prefers_html(headers: &HeaderMap) -> bool {
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    let ranges = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for range in ranges {
        let mut params = range.split(';');
        let media = params.next().unwrap_or_default().trim();
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if media.eq_ignore_ascii_case("text/html")
            || media.eq_ignore_ascii_case("application/xhtml+xml")
        {
            html = html.max(q);
        } else if media.eq_ignore_ascii_case("application/json") {
            json = json.max(q);
        }
    }
    html > 0.0 && html >= json
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        prefers_html(&headers)
    }

    #[test]
    fn browsers_get_pages_and_api_clients_json() {
        // Chromium's and Firefox's navigation Accept.
        assert!(accepts(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
        ));
        assert!(accepts("TEXT/HTML"));
        assert!(!accepts("*/*"));
        assert!(!accepts("application/json"));
        assert!(!accepts("application/json, text/html;q=0.5"));
        assert!(!accepts("text/html;q=0"));
        assert!(!prefers_html(&HeaderMap::new()));
        assert!(is_api("/v1/nope"));
        assert!(is_api("/v1"));
        assert!(!is_api("/v10"));
        assert!(!is_api("/nope"));
    }
}
