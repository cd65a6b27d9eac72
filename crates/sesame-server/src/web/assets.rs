//! The style sheet, the script and the icon, and the security headers that
//! every page and asset carries.

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

/// No inline script or style, nothing from elsewhere, forms post only here,
/// and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'";

/// The headers on every page and asset (and on the not-found page).
pub const PAGE_HEADERS: [(&str, &str); 6] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// `response` with the headers of the pages (for answers from outside the
/// pages' router: the not-found page and the other fallback answers).
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

#[derive(Clone, Copy)]
pub enum Asset {
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

pub async fn asset(asset: Asset) -> Response {
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
pub fn asset_version() -> &'static str {
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
