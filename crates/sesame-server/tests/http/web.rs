//! The browser pages over real HTTP: CSRF, cookies, security headers and the
//! messages, against a real server on port 0 with a fresh SQLite database.
//! (The full flows in a real browser are in `tests/browser/`.)

use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use sesame_server::ServerConfig;
use sesame_testkit::{Backend, TestServer};
use std::collections::BTreeMap;

mod front;

/// A minimal browser: a cookie jar (name -> value) and the last form token.
struct Browser<'s> {
    server: &'s TestServer,
    jar: BTreeMap<String, String>,
}

impl<'s> Browser<'s> {
    fn new(server: &'s TestServer) -> Self {
        Self {
            server,
            jar: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let value = value.to_str().unwrap();
            let (pair, attrs) = value.split_once(';').unwrap_or((value, ""));
            let (name, val) = pair.split_once('=').unwrap();
            if val.is_empty() || attrs.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), val.to_owned());
            }
        }
    }

    async fn get(&mut self, path: &str) -> Response {
        let response = self
            .server
            .http
            .get(self.server.url(path))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.remember(response.headers());
        response
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let response = self
            .server
            .http
            .post(self.server.url(path))
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.remember(response.headers());
        response
    }

    /// GETs `path` and returns the form token in it.
    async fn token(&mut self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        csrf_in(&response.text().await.unwrap())
    }
}

fn csrf_in(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..start + 64].to_owned()
}

fn location(response: &Response) -> &str {
    response.headers()[LOCATION].to_str().unwrap()
}

fn header<'r>(response: &'r Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

async fn sign_up(b: &mut Browser<'_>, user: &str, password: &str) {
    let token = b.token("/signup").await;
    let r = b
        .post(
            "/signup",
            &[
                ("csrf", &token),
                ("user", user),
                ("password", password),
                ("confirm", password),
            ],
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
}

async fn sign_in(b: &mut Browser<'_>, user: &str, password: &str) -> Response {
    let token = b.token("/").await;
    b.post(
        "/login",
        &[("csrf", &token), ("user", user), ("password", password)],
    )
    .await
}

#[tokio::test]
async fn pages_and_assets_carry_the_security_headers() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut b = Browser::new(&server);
    for path in ["/", "/signup", "/assets/sesame.js", "/assets/sesame.css"] {
        let r = b.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let csp = header(&r, "content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert_eq!(header(&r, "x-frame-options"), "DENY");
    }
    let page = b.get("/").await;
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert_eq!(header(&page, "cache-control"), "no-store");
    let html = page.text().await.unwrap();
    // No inline script or style for the CSP to forbid.
    assert!(!html.contains(" style="), "{html}");
    for script in html.split("<script").skip(1) {
        assert!(
            script.trim_start().starts_with("src=\"/assets/"),
            "{script}"
        );
    }
    assert!(html.contains(r#"<label for="user">"#) && html.contains(r#"<label for="password">"#));
    let js = b.get("/assets/sesame.js").await;
    assert!(header(&js, "content-type").starts_with("text/javascript"));
    server.stop().await;
}

#[tokio::test]
async fn the_csrf_cookie_is_httponly_and_host_prefixed_when_secure() {
    let plain = TestServer::start(Backend::Sqlite).await;
    let r = Browser::new(&plain).get("/").await;
    let cookie = header(&r, "set-cookie");
    assert!(cookie.starts_with("sesame_csrf="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(!cookie.contains("Secure"), "{cookie}");
    plain.stop().await;

    let secure = TestServer::start_with(Backend::Sqlite, |c| c.cookie_secure = true).await;
    let mut b = Browser::new(&secure);
    let r = b.get("/").await;
    let cookie = header(&r, "set-cookie");
    assert!(cookie.starts_with("__Host-sesame_csrf="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("Path=/"));
    // A nonce that is already there is kept.
    let again = b.get("/").await;
    assert!(again.headers().get(SET_COOKIE).is_none());
    sign_up(&mut b, "secure-sam", "correct horse battery").await;
    let r = sign_in(&mut b, "secure-sam", "correct horse battery").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = header(&r, "set-cookie");
    assert!(session.starts_with("__Host-sesame_session="), "{session}");
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Domain"), "{session}");
    secure.stop().await;
}

#[tokio::test]
async fn form_posts_without_a_valid_token_are_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut b = Browser::new(&server);
    sign_up(&mut b, "carol", "correct horse battery").await;
    let token = b.token("/").await;
    let creds = [("user", "carol"), ("password", "correct horse battery")];

    // No token, a wrong one, or no cookie: refused before any password is checked.
    let missing = b.post("/login", &creds).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert!(missing
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("sesame_session")));
    assert!(missing.text().await.unwrap().contains("nothing was done"));
    let zeros = "0".repeat(64);
    let wrong = [("csrf", zeros.as_str()), creds[0], creds[1]];
    assert_eq!(
        b.post("/login", &wrong).await.status(),
        StatusCode::FORBIDDEN
    );
    let with_token = [("csrf", token.as_str()), creds[0], creds[1]];
    let no_cookie = server
        .http
        .post(server.url("/login"))
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(no_cookie.status(), StatusCode::FORBIDDEN);
    // Even with the right token, a browser-declared cross-site post is refused.
    let cross = server
        .http
        .post(server.url("/login"))
        .header(COOKIE, b.cookie_header())
        .header("sec-fetch-site", "cross-site")
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(server.events().is_empty(), "no login was attempted");
    let signup = [("user", "mallory"), ("password", "x"), ("confirm", "x")];
    assert_eq!(
        b.post("/signup", &signup).await.status(),
        StatusCode::FORBIDDEN
    );

    // Signed in, the token is bound to the session: the anonymous one no
    // longer works for sign-out or the password change.
    let r = b.post("/login", &with_token).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/account");
    let stale = [("csrf", token.as_str())];
    assert_eq!(
        b.post("/logout", &stale).await.status(),
        StatusCode::FORBIDDEN
    );
    let change = [
        ("csrf", token.as_str()),
        ("old_password", "correct horse battery"),
        ("new_password", "a brand new passphrase"),
        ("confirm", "a brand new passphrase"),
    ];
    assert_eq!(
        b.post("/password", &change).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        b.get("/account").await.status(),
        StatusCode::OK,
        "still signed in"
    );
    server.stop().await;
}

#[tokio::test]
async fn sign_up_sign_in_account_sign_out() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut b = Browser::new(&server);
    assert_eq!(b.get("/account").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&b.get("/login").await), "/");
    assert_eq!(location(&b.get("/logout").await), "/account");

    let token = b.token("/signup").await;
    let mismatch = b
        .post(
            "/signup",
            &[
                ("csrf", &token),
                ("user", "Dave"),
                ("password", "correct horse battery"),
                ("confirm", "correct horse batteyr"),
            ],
        )
        .await;
    assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(mismatch.text().await.unwrap().contains("do not match"));
    let weak = b
        .post(
            "/signup",
            &[
                ("csrf", &token),
                ("user", "Dave"),
                ("password", "password1"),
                ("confirm", "password1"),
            ],
        )
        .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = weak.text().await.unwrap();
    assert!(
        html.contains(r#"role="alert""#) && html.contains("too common"),
        "{html}"
    );
    assert!(html.contains("<title>Error: "));

    let r = b
        .post(
            "/signup",
            &[
                ("csrf", &token),
                ("user", "Dave"),
                ("password", "correct horse battery"),
                ("confirm", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/?notice=registered&user=dave");
    let taken = b
        .post(
            "/signup",
            &[
                ("csrf", &token),
                ("user", "DAVE"),
                ("password", "another fine phrase"),
                ("confirm", "another fine phrase"),
            ],
        )
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert!(taken.text().await.unwrap().contains("already taken"));

    let wrong = sign_in(&mut b, "dave", "not my password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let html = wrong.text().await.unwrap();
    assert!(
        html.contains("user name or password is not correct"),
        "{html}"
    );
    assert!(html.contains(r#"value="dave""#), "the user name is kept");

    let ok = sign_in(&mut b, "dave", "correct horse battery").await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert!(b.jar.contains_key("sesame_session"));
    let account = b.get("/account").await;
    assert_eq!(account.status(), StatusCode::OK);
    let html = account.text().await.unwrap();
    assert!(
        html.contains(r#"<strong id="signed-in-user">dave</strong>"#),
        "{html}"
    );
    assert_eq!(location(&b.get("/").await), "/account");
    let session = b.jar["sesame_session"].clone();

    let token = csrf_in(&html);
    let out = b.post("/logout", &[("csrf", &token)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/?notice=signed_out");
    assert!(header(&out, "set-cookie").contains("Max-Age=0"));
    assert!(!b.jar.contains_key("sesame_session"));
    // The session is revoked on the server, not only forgotten by the browser.
    let api = server
        .http
        .get(server.url("/v1/session"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let events = server.events();
    assert_eq!(events.len(), 2, "each sign-in is a login event");
    assert_eq!(events[1]["outcome"], "ok");
    assert_eq!(events[1]["platform"], "web");
    server.stop().await;
}

#[tokio::test]
async fn password_change_signs_out_everywhere() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut b = Browser::new(&server);
    sign_up(&mut b, "erin", "correct horse battery").await;
    assert_eq!(
        sign_in(&mut b, "erin", "correct horse battery")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    // The same user on another device.
    let mut other = Browser::new(&server);
    assert_eq!(
        sign_in(&mut other, "erin", "correct horse battery")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let token = b.token("/password").await;
    let wrong = b
        .post(
            "/password",
            &[
                ("csrf", &token),
                ("old_password", "not the password"),
                ("new_password", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("current password is not correct"));
    let changed = b
        .post(
            "/password",
            &[
                ("csrf", &token),
                ("old_password", "correct horse battery"),
                ("new_password", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&changed), "/?notice=password_changed&user=erin");
    assert_eq!(b.get("/account").await.status(), StatusCode::SEE_OTHER);
    // The other device is signed out too, and told so.
    let ended = other.get("/account").await;
    assert_eq!(location(&ended), "/?notice=session_ended");
    assert!(!other.jar.contains_key("sesame_session"));
    let html = other
        .get("/?notice=session_ended")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Your session has ended"), "{html}");
    assert_eq!(
        sign_in(&mut b, "erin", "correct horse battery")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&mut b, "erin", "a brand new passphrase")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    server.stop().await;
}

#[tokio::test]
async fn overload_says_try_again_with_the_wait() {
    let server = TestServer::start_with(Backend::Sqlite, crate::overloaded).await;
    let mut b = Browser::new(&server);
    let r = sign_in(&mut b, "frank", "whatever it is").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let wait = header(&r, "retry-after").to_owned();
    let html = r.text().await.unwrap();
    assert!(
        html.contains("very busy") && html.contains("try again in"),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"data-retry-after="{wait}""#)),
        "{html}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_browser_address_comes_from_a_trusted_proxy_only() {
    for (trusted, expected) in [(true, "203.0.113.9"), (false, "127.0.0.1")] {
        let server = TestServer::start_with(Backend::Sqlite, |c| {
            if trusted {
                c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
            }
        })
        .await;
        let mut b = Browser::new(&server);
        let token = b.token("/").await;
        let r = server
            .http
            .post(server.url("/login"))
            .header(COOKIE, b.cookie_header())
            .header("x-forwarded-for", "198.51.100.1, 203.0.113.9, 127.0.0.2")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("csrf={token}&user=nobody&password=whatever+it+is"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(server.events()[0]["ip"], expected, "trusted: {trusted}");
        server.stop().await;
    }
}

#[tokio::test]
async fn an_oversized_form_is_refused_with_a_message() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut b = Browser::new(&server);
    let token = b.token("/").await;
    let huge = "x".repeat(10_000);
    let r = b
        .post(
            "/login",
            &[("csrf", &token), ("user", "x"), ("password", &huge)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().await.unwrap().contains("too large"));
    server.stop().await;
}
