//! The HTTP side: the target (loopback unless `--allow-remote`), keep-alive
//! connections, and the requests each operation sends.
//!
//! Each worker owns one HTTP/1.1 connection from hyper's connection API, so
//! the pool is bounded by `--connections` by construction and a request never
//! waits on a pool lock.

use crate::scenario::{Arrival, ClientProfile, Op};
use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Mutex;

/// Where the load goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    host: HeaderValue,
    /// Path prefix of the service, without a trailing slash.
    base: String,
}

impl Target {
    /// Resolves `url` (http only); a host that is not loopback is refused
    /// unless `allow_remote`, so a typo cannot load someone's production.
    pub async fn resolve(url: &str, allow_remote: bool) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("target {url:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            bail!("target {url:?}: only http:// is supported (put TLS in front of sesame, not in the load tool's path)");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("target {url:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("cannot resolve {host}"))?
            .collect();
        let Some(addr) = addrs.first().copied() else {
            bail!("{host} resolves to no address");
        };
        if !allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
            bail!("target {url} is not on this machine (loopback); pass --allow-remote to load it on purpose");
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            addr,
            host: HeaderValue::from_str(authority.as_str())?,
            base: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

pub type Sender = SendRequest<Full<Bytes>>;

/// Opens one keep-alive connection; its I/O runs in a task of its own that
/// ends when the sender is dropped.
pub async fn connect(target: &Target) -> std::io::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends a request and reads the whole answer. The body is kept only when
/// asked for (a login's token); otherwise it is drained to free the connection.
pub async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
    keep_body: bool,
) -> hyper::Result<(u16, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    if keep_body {
        return Ok((status, body.collect().await?.to_bytes()));
    }
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok((status, Bytes::new()))
}

/// Session tokens from successful logins, for the session checks.
#[derive(Default)]
pub struct Tokens(Mutex<Vec<HeaderValue>>);

const KEPT_TOKENS: usize = 256;

impl Tokens {
    pub fn remember(&self, login_answer: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Answer<'a> {
            session: &'a str,
        }
        let Ok(answer) = serde_json::from_slice::<Answer>(login_answer) else {
            return;
        };
        let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", answer.session)) else {
            return;
        };
        let mut tokens = self.0.lock().expect("tokens lock");
        if tokens.len() < KEPT_TOKENS {
            tokens.push(value);
        } else {
            let slot = value.as_bytes().iter().map(|b| *b as usize).sum::<usize>() % KEPT_TOKENS;
            tokens[slot] = value;
        }
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("tokens lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pick(&self, n: u32) -> Option<HeaderValue> {
        let tokens = self.0.lock().expect("tokens lock");
        (!tokens.is_empty()).then(|| tokens[n as usize % tokens.len()].clone())
    }
}

/// Names and passwords of the synthetic users (`sesame load seed` made them).
#[derive(Debug, Clone)]
pub struct Users {
    pub prefix: String,
    pub count: u32,
    pub password: String,
}

impl Users {
    pub fn name(&self, n: u32) -> String {
        format!("{}{n}", self.prefix)
    }

    /// Distinct from every seeded name whatever the count.
    fn unknown_name(&self, n: u32) -> String {
        format!("{}unknown-{n}", self.prefix)
    }

    fn wrong_password(&self) -> String {
        format!("{}-but-wrong", self.password)
    }
}

#[derive(Serialize)]
struct LoginBody<'a> {
    timestamp: &'a str,
    ip: &'a str,
    user: &'a str,
    password: &'a str,
    client: ClientBody<'a>,
}

#[derive(Serialize)]
struct ClientBody<'a> {
    region: &'a str,
    platform: &'a str,
    app_version: &'a str,
}

/// Turns arrivals into HTTP requests.
pub struct Requests {
    pub target: Target,
    pub get_path: String,
    pub users: Users,
    pub clients: Vec<ClientProfile>,
    pub tokens: Tokens,
    /// Names this run's registrations apart from every other run's
    /// ([`new_run_id`]).
    pub run_id: String,
}

/// A run id: the start time (UTC, to the second) and 24 random bits, so that
/// runs started in the same second, even on other machines, do not collide.
pub fn new_run_id() -> String {
    format!(
        "{}-{:06x}",
        chrono::Utc::now().format("%y%m%d%H%M%S"),
        rand::random::<u32>() >> 8
    )
}

impl Requests {
    /// The user the run's registration number `n` creates:
    /// `{prefix}reg-{run id}-{n}`. Seeded names are the prefix and digits,
    /// unknown ones `{prefix}unknown-{n}`, so neither can collide with it.
    pub fn registered_name(&self, n: u32) -> String {
        format!("{}reg-{}-{n}", self.users.prefix, self.run_id)
    }

    pub fn build(&self, arrival: &Arrival) -> Request<Full<Bytes>> {
        let builder = |method: Method, path: &str| {
            Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.target.base))
                .header(HOST, self.target.host.clone())
        };
        let login = |user: &str, password: &str| {
            let client = &self.clients[arrival.client as usize % self.clients.len()];
            let body = serde_json::to_vec(&LoginBody {
                timestamp: &chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
                ip: &client.ip,
                user,
                password,
                client: ClientBody {
                    region: &client.region,
                    platform: &client.platform,
                    app_version: &client.app_version,
                },
            })
            .expect("a login body serializes");
            builder(Method::POST, "/v1/login")
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(Full::new(Bytes::from(body)))
        };
        let users = &self.users;
        let request = match arrival.op {
            Op::Get => builder(Method::GET, &self.get_path).body(Full::default()),
            Op::Login => login(&users.name(arrival.user), &users.password),
            Op::WrongPassword => login(&users.name(arrival.user), &users.wrong_password()),
            Op::UnknownUser => login(&users.unknown_name(arrival.user), &users.password),
            Op::Attack => {
                let user = if arrival.user < users.count {
                    users.name(arrival.user)
                } else {
                    users.unknown_name(arrival.user)
                };
                login(&user, &users.wrong_password())
            }
            Op::Session => {
                let mut request = builder(Method::GET, "/v1/session");
                if let Some(token) = self.tokens.pick(arrival.user) {
                    request = request.header(AUTHORIZATION, token);
                }
                request.body(Full::default())
            }
            Op::Register => return self.register(&self.registered_name(arrival.user)),
        };
        request.expect("requests are built from valid parts")
    }

    /// `POST /v1/users` of `user` with the synthetic users' password (the
    /// slow seeding path, and the `register` operation).
    pub fn register(&self, user: &str) -> Request<Full<Bytes>> {
        let body = serde_json::json!({ "user": user, "password": self.users.password });
        Request::builder()
            .method(Method::POST)
            .uri(format!("{}/v1/users", self.target.base))
            .header(HOST, self.target.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a registration is built from valid parts")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_remote_targets_unless_allowed() {
        assert!(Target::resolve("http://127.0.0.1:9", false).await.is_ok());
        assert!(Target::resolve("http://[::1]:9/", false).await.is_ok());
        assert!(Target::resolve("http://localhost:9", false).await.is_ok());
        let remote = Target::resolve("http://192.0.2.1:80", false).await;
        assert!(remote.unwrap_err().to_string().contains("--allow-remote"));
        assert!(Target::resolve("http://192.0.2.1:80", true).await.is_ok());
        assert!(Target::resolve("https://127.0.0.1:9", false).await.is_err());
    }

    #[tokio::test]
    async fn builds_login_bodies_with_the_client_context() {
        let requests = Requests {
            target: Target::resolve("http://127.0.0.1:9/base/", false)
                .await
                .unwrap(),
            get_path: "/healthz".into(),
            users: Users {
                prefix: "load-".into(),
                count: 10,
                password: "pw-Xk2-long".into(),
            },
            clients: crate::scenario::user_clients(2, 1),
            tokens: Tokens::default(),
            run_id: "260126061502-00ab12".into(),
        };
        let arrival = |op, user| Arrival {
            at: None,
            op,
            user,
            client: 1,
        };
        let body = async |op, user| {
            let req = requests.build(&arrival(op, user));
            assert_eq!(req.uri().path(), "/base/v1/login");
            let bytes = req.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        let ok = body(Op::Login, 3).await;
        assert_eq!(ok["user"], "load-3");
        assert_eq!(ok["password"], "pw-Xk2-long");
        assert_eq!(ok["ip"], requests.clients[1].ip.as_str());
        assert_eq!(ok["client"]["region"], requests.clients[1].region.as_str());
        assert_ne!(body(Op::WrongPassword, 3).await["password"], "pw-Xk2-long");
        assert_eq!(body(Op::UnknownUser, 3).await["user"], "load-unknown-3");
        assert_eq!(body(Op::Attack, 3).await["user"], "load-3");
        assert_eq!(
            body(Op::Attack, 4_000_000).await["user"],
            "load-unknown-4000000"
        );

        let register = requests.build(&arrival(Op::Register, 7));
        assert_eq!(register.method(), Method::POST);
        assert_eq!(register.uri().path(), "/base/v1/users");
        let bytes = register.into_body().collect().await.unwrap().to_bytes();
        let sent: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"user": "load-reg-260126061502-00ab12-7", "password": "pw-Xk2-long"})
        );
    }

    #[test]
    fn run_ids_differ_and_fit_in_a_user_name() {
        let (a, b) = (new_run_id(), new_run_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 19, "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || c == '-'));
    }
}
