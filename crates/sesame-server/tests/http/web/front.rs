//! What stands in front of the pages and the API: a load balancer and its
//! `X-Forwarded-For`, the session cookie in production (Secure) mode, and
//! the cross-origin check on the forms. (A module of the `web` suite, which
//! owns the server and the browser helpers.)

use super::*;
use serde_json::{json, Value};

/// HAProxy on 127.0.0.0/8 in front of sesame (the tests' peer is 127.0.0.1).
fn behind_balancer(c: &mut ServerConfig) {
    c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
}

async fn api_login(server: &TestServer, xff: &str, body: Value) -> StatusCode {
    server
        .http
        .post(server.url("/v1/login"))
        .header("x-forwarded-for", xff)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_balancer_the_api_and_the_pages_count_the_same_client() {
    let server = TestServer::start_with(Backend::Sqlite, behind_balancer).await;
    let claim =
        |user: &str| json!({"ip": "203.0.113.9", "user": user, "password": "whatever it is"});
    // A browser through the balancer, calling the API itself: its own claim
    // and a forged entry are not believed.
    assert_eq!(
        api_login(&server, "198.51.100.7", claim("a")).await,
        StatusCode::UNAUTHORIZED
    );
    let forged = "192.0.2.1, 198.51.100.8";
    assert_eq!(
        api_login(&server, forged, claim("b")).await,
        StatusCode::UNAUTHORIZED
    );
    // The API tier (trusted) through the balancer names the end user.
    assert_eq!(
        api_login(&server, "127.0.0.9", claim("c")).await,
        StatusCode::UNAUTHORIZED
    );
    // A hop that is not an address: the balancer that wrote it counts.
    assert_eq!(
        api_login(&server, "unknown", claim("d")).await,
        StatusCode::UNAUTHORIZED
    );
    // The same browser on the sign-in page: the same address as on the API.
    let mut b = Browser::new(&server);
    let token = b.token("/").await;
    let page = server
        .http
        .post(server.url("/login"))
        .header(COOKIE, b.cookie_header())
        .header("x-forwarded-for", forged)
        .form(&[
            ("csrf", token.as_str()),
            ("user", "e"),
            ("password", "whatever it is"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    let ips: Vec<String> = server
        .events()
        .iter()
        .map(|e| e["ip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ips,
        [
            "198.51.100.7",
            "198.51.100.8",
            "203.0.113.9",
            "127.0.0.1",
            "198.51.100.8"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn registrations_behind_a_balancer_are_limited_per_browser_not_per_balancer() {
    // One registration per address per hour: the second from a browser is
    // refused, and a different browser is not.
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        behind_balancer(c);
        c.login.limits.per_ip = sesame_domain::Rate::per_minute(1.0 / 60.0, 1);
    })
    .await;
    let register = |xff: &'static str, user: &'static str| {
        server
            .http
            .post(server.url("/v1/users"))
            .header("x-forwarded-for", xff)
            .json(&json!({"user": user, "password": "correct horse battery"}))
            .send()
    };
    assert_eq!(
        register("198.51.100.1", "una").await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        register("198.51.100.1", "una2").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        register("198.51.100.2", "dos").await.unwrap().status(),
        StatusCode::CREATED
    );
    // The page's sign-up goes by the same address.
    let mut b = Browser::new(&server);
    let token = b.token("/signup").await;
    let form = [
        ("csrf", token.as_str()),
        ("user", "tres"),
        ("password", "correct horse battery"),
        ("confirm", "correct horse battery"),
    ];
    for (xff, expected) in [("198.51.100.2", 429), ("198.51.100.3", 303)] {
        let r = server
            .http
            .post(server.url("/signup"))
            .header(COOKIE, b.cookie_header())
            .header("x-forwarded-for", xff)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected, "{xff}");
    }
    server.stop().await;
}

fn set_cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_secure_session_cookie_is_cleared_as_it_was_set() {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.cookie_secure = true).await;
    let mut b = Browser::new(&server);
    sign_up(&mut b, "sol", "correct horse battery").await;
    // The API's login sets it, its logout clears it: Secure both times (the
    // API's logout once cleared it without, which a browser ignores for a
    // Secure cookie), the pre-`__Host-` name too.
    let login = server
        .http
        .post(server.url("/v1/login"))
        .json(&json!({"user": "sol", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let set = set_cookies(&login);
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(set[0].starts_with("__Host-sesame_session=") && set[0].contains("Secure"));
    let token = login.json::<Value>().await.unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = server
        .http
        .delete(server.url("/v1/session"))
        .header(COOKIE, format!("__Host-sesame_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&out);
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    for (cookie, name) in cleared
        .iter()
        .zip(["__Host-sesame_session=;", "sesame_session=;"])
    {
        assert!(cookie.starts_with(name), "{cookie}");
        for attr in ["Max-Age=0", "Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attr), "{cookie}");
        }
    }
    // The page's sign-out clears it the same way.
    assert_eq!(
        sign_in(&mut b, "sol", "correct horse battery")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let page = b.get("/account").await.text().await.unwrap();
    let out = b.post("/logout", &[("csrf", &csrf_in(&page))]).await;
    assert_eq!(location(&out), "/?notice=signed_out");
    assert_eq!(set_cookies(&out), cleared);
    server.stop().await;
}

#[tokio::test]
async fn a_session_cookie_from_before_the_host_prefix_still_counts() {
    let server = TestServer::start_with(Backend::Sqlite, |c| c.cookie_secure = true).await;
    let mut b = Browser::new(&server);
    sign_up(&mut b, "luna", "correct horse battery").await;
    let login = server
        .http
        .post(server.url("/v1/login"))
        .json(&json!({"user": "luna", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let token = login.json::<Value>().await.unwrap()["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let with = |cookie: String| {
        server
            .http
            .get(server.url("/v1/session"))
            .header(COOKIE, cookie)
            .send()
    };
    // A browser signed in before the upgrade sends the old name.
    let old = with(format!("sesame_session={token}")).await.unwrap();
    assert_eq!(old.status(), StatusCode::OK);
    let mut old_browser = Browser::new(&server);
    old_browser
        .jar
        .insert("sesame_session".into(), token.clone());
    assert_eq!(old_browser.get("/account").await.status(), StatusCode::OK);
    // With both, the new name wins (here: a stale one, so no session).
    let both = with(format!(
        "sesame_session={token}; __Host-sesame_session={}",
        "A".repeat(43)
    ));
    assert_eq!(both.await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Its page sign-out clears both names.
    let page = old_browser.get("/account").await.text().await.unwrap();
    let out = old_browser
        .post("/logout", &[("csrf", &csrf_in(&page))])
        .await;
    assert_eq!(location(&out), "/?notice=signed_out");
    assert!(
        !old_browser.jar.contains_key("sesame_session"),
        "{:?}",
        old_browser.jar
    );
    assert_eq!(
        with(format!("sesame_session={token}"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test]
async fn cross_origin_form_posts_are_refused_and_the_api_is_left_alone() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut b = Browser::new(&server);
    sign_up(&mut b, "orion", "correct horse battery").await;
    let token = b.token("/").await;
    let creds = [
        ("csrf", token.as_str()),
        ("user", "orion"),
        ("password", "correct horse battery"),
    ];
    let host = server.base.trim_start_matches("http://").to_owned();
    let post = |headers: &[(&str, &str)]| {
        let mut request = server
            .http
            .post(server.url("/login"))
            .header(COOKIE, b.cookie_header())
            .form(&creds);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    // A sibling subdomain (same-site, not same-origin), another origin
    // declared by an older browser, and one without a scheme we know: all
    // refused before the form is read, with the form again.
    for headers in [
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "http://evil.example")],
        vec![("sec-fetch-site", "cross-site"), ("origin", "null")],
    ] {
        let r = post(&headers).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(header(&r, "x-frame-options"), "DENY");
        let html = r.text().await.unwrap();
        assert!(html.contains("nothing was done"), "{html}");
        assert_eq!(csrf_in(&html), token, "the form again, ready to send");
    }
    assert!(server.events().is_empty(), "no login was attempted");
    // The browser's own origin passes, declared either way.
    let origin = format!("http://{host}");
    let same = post(&[("sec-fetch-site", "same-origin"), ("origin", &origin)])
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::SEE_OTHER);
    let old_browser = post(&[("origin", &origin)]).await.unwrap();
    assert_eq!(old_browser.status(), StatusCode::SEE_OTHER);
    // The JSON API is not behind the layer: its answers stay its own.
    let api = server
        .http
        .post(server.url("/v1/login"))
        .header("sec-fetch-site", "cross-site")
        .header("origin", "http://evil.example")
        .json(&json!({"user": "orion", "password": "not it at all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    // ... and a cross-site form aimed at it cannot log anyone in.
    let form = server
        .http
        .post(server.url("/v1/login"))
        .header("sec-fetch-site", "cross-site")
        .header(CONTENT_TYPE, "text/plain")
        .body(r#"{"user":"orion","password":"correct horse battery"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(form.headers().get(SET_COOKIE).is_none());
    server.stop().await;
}
