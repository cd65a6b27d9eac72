//! CSRF protection for the page forms, without server-side state and without
//! a secret shared between replicas.
//!
//! * A random 256-bit nonce lives in an `HttpOnly` cookie (`__Host-` prefixed
//!   when cookies are `Secure`, so a sibling subdomain or a network attacker
//!   cannot plant one).
//! * Every form carries a token (field `csrf`): SHA-256 over the nonce **and the session
//!   cookie**. Before sign-in it is a double-submit token; after sign-in it is
//!   bound to the session, which no other site can read or set.
//! * A POST is accepted only if its token equals the one recomputed from the
//!   cookies it arrived with (compared in constant time), and it is refused
//!   outright when the browser says it came from another site
//!   (`Sec-Fetch-Site: cross-site`).
//!
//! `SameSite=Lax` on the session cookie is a second line, not the defence.

use super::cookies;
use axum::http::{HeaderMap, HeaderValue};
use sesame_domain::SessionToken;
use sha2::{Digest, Sha256};

/// The nonce cookie's name: `__Host-` prefixed whenever cookies are `Secure`
/// (browsers accept that prefix only on Secure, host-only, `Path=/` cookies).
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-sesame_csrf"
    } else {
        "sesame_csrf"
    }
}

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
        derive(&self.nonce, cookies::session(headers))
    }

    /// `Set-Cookie` for a new nonce; `None` when the request already had one.
    pub fn set_cookie(&self) -> Option<HeaderValue> {
        self.fresh.then(|| {
            let secure = if self.secure { "; Secure" } else { "" };
            let value = format!(
                "{}={}; Path=/; HttpOnly; SameSite=Lax{secure}",
                cookie_name(self.secure),
                self.nonce
            );
            HeaderValue::from_str(&value).expect("nonce and attributes are header-safe")
        })
    }
}

/// Why a form post was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    CrossSite,
    NoCookie,
    BadToken,
}

/// Checks a posted form's token against the request's cookies.
pub fn verify(headers: &HeaderMap, secure: bool, posted: &str) -> Result<(), Refusal> {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return Err(Refusal::CrossSite);
    }
    let nonce = presented_nonce(headers, secure).ok_or(Refusal::NoCookie)?;
    let expected = derive(&nonce, cookies::session(headers));
    if constant_time_eq(expected.as_bytes(), posted.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal::BadToken)
    }
}

fn presented_nonce(headers: &HeaderMap, secure: bool) -> Option<String> {
    cookies::get(headers, cookie_name(secure))
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        let mut cross = anon.clone();
        cross.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert_eq!(verify(&cross, false, &token), Err(Refusal::CrossSite));
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
