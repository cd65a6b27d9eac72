//! CSRF protection for the page forms, in two layers, without server-side
//! state and without a secret shared between replicas.
//!
//! * In front, tower-http's [`CsrfLayer`](tower_http::csrf::CsrfLayer)
//!   refuses a form post that the browser declares cross-origin
//!   (`Sec-Fetch-Site`), or, from browsers without that header, whose
//!   `Origin` is not this host (the router wires it, with the refusal page).
//! * Behind it, a token. A random 256-bit nonce lives in an `HttpOnly`
//!   cookie ([`crate::cookies`]); every form carries a token (field `csrf`):
//!   SHA-256 over the nonce **and the session cookie**. Before sign-in it is
//!   a double-submit token; after sign-in it is bound to the session, which
//!   no other site can read or set. A POST is accepted only if its token
//!   equals the one recomputed from the cookies it arrived with (compared
//!   in constant time).
//!
//! `SameSite=Lax` on the session cookie is a third line, not the defence.

use crate::cookies;
use axum::http::{HeaderMap, HeaderValue};
use sesame_domain::SessionToken;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The CSRF state of one request: the nonce it presented, or a new one that
/// the response must set.
pub struct Csrf {
    nonce: String,
    fresh: bool,
    secure: bool,
}

impl Csrf {
    /// The request's nonce if it has a well-formed one, otherwise a new one.
    pub fn for_request(headers: &HeaderMap, secure: bool) -> Self {
        match presented_nonce(headers, secure) {
            Some(nonce) => Self {
                nonce,
                fresh: false,
                secure,
            },
            None => Self {
                nonce: SessionToken::generate().as_str().to_owned(),
                fresh: true,
                secure,
            },
        }
    }

    /// The token to put into a form rendered for this request.
    pub fn token(&self, headers: &HeaderMap) -> String {
        derive(&self.nonce, cookies::session(headers, self.secure))
    }

    /// `Set-Cookie` for a new nonce; `None` when the request already had one.
    pub fn set_cookie(&self) -> Option<HeaderValue> {
        self.fresh
            .then(|| cookies::set_csrf(&self.nonce, self.secure))
    }
}

/// Why a form post's token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    NoCookie,
    BadToken,
}

/// Checks a posted form's token against the request's cookies.
pub fn verify(headers: &HeaderMap, secure: bool, posted: &str) -> Result<(), Refusal> {
    let nonce = presented_nonce(headers, secure).ok_or(Refusal::NoCookie)?;
    let expected = derive(&nonce, cookies::session(headers, secure));
    if bool::from(expected.as_bytes().ct_eq(posted.as_bytes())) {
        Ok(())
    } else {
        Err(Refusal::BadToken)
    }
}

fn presented_nonce(headers: &HeaderMap, secure: bool) -> Option<String> {
    cookies::get(headers, cookies::csrf_name(secure))
        .and_then(SessionToken::parse)
        .map(|t| t.as_str().to_owned())
}

fn derive(nonce: &str, session: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(b"sesame-csrf-v1\0");
    h.update(nonce.as_bytes());
    h.update(b"\0");
    h.update(session.unwrap_or_default().as_bytes());
    let digest = h.finalize();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::COOKIE;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    #[test]
    fn token_round_trip_and_binding() {
        let nonce = SessionToken::generate();
        let session = SessionToken::generate();
        let anon = headers(&format!("sesame_csrf={}", nonce.as_str()));
        let token = Csrf::for_request(&anon, false).token(&anon);
        assert_eq!(verify(&anon, false, &token), Ok(()));
        assert_eq!(verify(&anon, false, ""), Err(Refusal::BadToken));
        assert_eq!(verify(&anon, false, &token[..63]), Err(Refusal::BadToken));
        // The same nonce with a session: the anonymous token no longer fits.
        let signed_in = headers(&format!(
            "sesame_csrf={}; sesame_session={}",
            nonce.as_str(),
            session.as_str()
        ));
        assert_eq!(verify(&signed_in, false, &token), Err(Refusal::BadToken));
        let bound = Csrf::for_request(&signed_in, false).token(&signed_in);
        assert_eq!(verify(&signed_in, false, &bound), Ok(()));
        // Secure mode only believes the __Host- cookie.
        assert_eq!(verify(&anon, true, &token), Err(Refusal::NoCookie));
        // ... and binds to the __Host- session cookie, or the legacy one.
        let secure = headers(&format!(
            "__Host-sesame_csrf={}; __Host-sesame_session={}",
            nonce.as_str(),
            session.as_str()
        ));
        let legacy = headers(&format!(
            "__Host-sesame_csrf={}; sesame_session={}",
            nonce.as_str(),
            session.as_str()
        ));
        let secure_token = Csrf::for_request(&secure, true).token(&secure);
        assert_eq!(secure_token, bound);
        assert_eq!(verify(&legacy, true, &secure_token), Ok(()));
    }

    #[test]
    fn fresh_nonce_sets_a_cookie() {
        let csrf = Csrf::for_request(&HeaderMap::new(), true);
        let cookie = csrf.set_cookie().unwrap();
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.starts_with("__Host-sesame_csrf="), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"));
        let again = headers(cookie.split(';').next().unwrap());
        assert!(Csrf::for_request(&again, true).set_cookie().is_none());
    }
}
