//! Every cookie sesame sets or reads, in one place so that their names and
//! attributes cannot drift apart between the API and the pages.
//!
//! * The session cookie: `__Host-sesame_session` when cookies are Secure
//!   (`--cookie-secure`, the default), `sesame_session` when not; HttpOnly,
//!   SameSite=Lax, Path=/, never a Domain (`__Host-` requires Secure and
//!   Path=/ without Domain, so a sibling subdomain or a network attacker
//!   cannot plant one).
//! * The CSRF nonce cookie of the pages: `__Host-sesame_csrf` /
//!   `sesame_csrf`, the same attributes, for the browser session only.
//!
//! A request's first cookie of a name wins.

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use cookie::time::Duration;
use cookie::{Cookie, SameSite};

/// The session cookie's name before the `__Host-` prefix, still read when
/// cookies are Secure so that browsers signed in before the upgrade stay
/// signed in. Such a cookie lives at most one session lifetime
/// (`--session-ttl`, 12 h by default): once every instance has run a
/// release with `__Host-` for that long, no live session is left under the
/// old name and [`LEGACY_SESSION`]'s reading and clearing can be removed.
pub const LEGACY_SESSION: &str = "sesame_session";

/// The session cookie's name.
pub fn session_name(secure: bool) -> &'static str {
    if secure {
        "__Host-sesame_session"
    } else {
        LEGACY_SESSION
    }
}

/// The CSRF nonce cookie's name.
pub fn csrf_name(secure: bool) -> &'static str {
    if secure {
        "__Host-sesame_csrf"
    } else {
        "sesame_csrf"
    }
}

/// The first cookie called `name` in the request.
pub fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
}

/// The session token as presented (valid or not; an empty value is none).
pub fn session(headers: &HeaderMap, secure: bool) -> Option<&str> {
    let current = get(headers, session_name(secure)).filter(|v| !v.is_empty());
    current.or_else(|| {
        secure
            .then(|| get(headers, LEGACY_SESSION))
            .flatten()
            .filter(|v| !v.is_empty())
    })
}

/// Sets the session cookie to `token` for `ttl`.
pub fn set_session(token: &str, ttl: chrono::Duration, secure: bool) -> HeaderValue {
    let max_age = Duration::seconds(ttl.num_seconds().max(0));
    header(base(session_name(secure), token, secure).max_age(max_age))
}

/// Clears the session cookie, with the attributes it was set with (and,
/// when Secure, the pre-`__Host-` one a browser may still hold).
pub fn clear_session(secure: bool) -> Vec<HeaderValue> {
    let mut names = vec![session_name(secure)];
    if secure {
        names.push(LEGACY_SESSION);
    }
    names
        .into_iter()
        .map(|name| header(base(name, "", secure).max_age(Duration::ZERO)))
        .collect()
}

/// Sets the CSRF nonce cookie, for the browser session.
pub fn set_csrf(nonce: &str, secure: bool) -> HeaderValue {
    header(base(csrf_name(secure), nonce, secure))
}

fn base<'c>(name: &'c str, value: &'c str, secure: bool) -> cookie::CookieBuilder<'c> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
}

fn header(cookie: cookie::CookieBuilder<'_>) -> HeaderValue {
    HeaderValue::from_str(&cookie.build().to_string())
        .expect("tokens, nonces and attributes are header-safe")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn the_first_cookie_of_a_name_wins() {
        let h = request(&[
            "a=1; sesame_session=first; sesame_session=second",
            "sesame_session=third",
        ]);
        assert_eq!(get(&h, "sesame_session"), Some("first"));
        assert_eq!(get(&h, "a"), Some("1"));
        assert_eq!(get(&h, "b"), None);
        // Pieces that are not cookies are passed over.
        let h = request(&["junk; =x; sesame_session = spaced ;"]);
        assert_eq!(get(&h, "sesame_session"), Some("spaced"));
        assert_eq!(session(&request(&["sesame_session="]), false), None);
    }

    #[test]
    fn secure_names_and_the_legacy_session_cookie() {
        let both = request(&["sesame_session=old; __Host-sesame_session=new"]);
        assert_eq!(session(&both, true), Some("new"));
        assert_eq!(session(&both, false), Some("old"));
        let old = request(&["sesame_session=old"]);
        assert_eq!(session(&old, true), Some("old"), "read until it expires");
        // Plain-HTTP mode never reads a __Host- cookie.
        assert_eq!(
            session(&request(&["__Host-sesame_session=new"]), false),
            None
        );
    }

    #[test]
    fn attributes() {
        let set = set_session("tok", chrono::Duration::hours(12), true);
        let set = set.to_str().unwrap();
        assert!(set.starts_with("__Host-sesame_session=tok;"), "{set}");
        for attr in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=43200",
        ] {
            assert!(set.contains(attr), "{set}");
        }
        assert!(!set.contains("Domain"), "{set}");
        let plain = set_session("tok", chrono::Duration::hours(12), false);
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("sesame_session=tok;") && !plain.contains("Secure"));

        // Cleared with the attributes it was set with: Secure included.
        let cleared = clear_session(true);
        let cleared: Vec<&str> = cleared.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(cleared.len(), 2);
        assert!(
            cleared[0].starts_with("__Host-sesame_session=;"),
            "{cleared:?}"
        );
        assert!(cleared[1].starts_with("sesame_session=;"), "{cleared:?}");
        for c in &cleared {
            for attr in ["Max-Age=0", "Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
                assert!(c.contains(attr), "{c}");
            }
        }
        let cleared = clear_session(false);
        assert_eq!(cleared.len(), 1);
        assert!(!cleared[0].to_str().unwrap().contains("Secure"));

        let csrf = set_csrf("nonce", true);
        let csrf = csrf.to_str().unwrap();
        assert!(csrf.starts_with("__Host-sesame_csrf=nonce;"), "{csrf}");
        assert!(csrf.contains("HttpOnly") && csrf.contains("Path=/") && csrf.contains("Secure"));
        assert!(!csrf.contains("Max-Age"), "a browser-session cookie");
    }
}
