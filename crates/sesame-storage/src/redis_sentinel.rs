//! Redis behind Sentinel (`--cache redis+sentinel://...`): the master is
//! found through the sentinels (`redis::sentinel`), and found again by
//! itself after a failover.
//!
//! There is one connection to the master at a time, shared by every
//! command. A command that fails in a way that says the node is gone or no
//! longer the master (an I/O error, a dropped connection, a timeout,
//! `READONLY`, `MASTERDOWN`) retires that connection; the next command asks
//! the sentinels for the current master. That lookup runs in a background
//! task, so the commands waiting for it stay within their own deadlines
//! (they answer `Unavailable` until a master is found), and a lookup is not
//! restarted by every command that gives up on it. A node is only used
//! once `ROLE` on the very connection sesame will use says `master`.
//!
//! Every second the sentinels are also asked whether the master is still
//! the one in use, so that a master cut off from the sentinels (but not from
//! sesame) after they failed over is left within about a second, even if it
//! still answers.

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, ConnectionAddr, Role};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// The scheme of a Sentinel URL.
pub const SCHEME: &str = "redis+sentinel://";

/// How a Sentinel URL must look, for error messages.
const SYNTAX: &str = "redis+sentinel://[USER:PASS@]HOST:PORT[,HOST:PORT...]/SERVICE_NAME[/DB]";

/// Whether `url` names Redis through Sentinel.
pub fn is_sentinel_url(url: &str) -> bool {
    url.starts_with(SCHEME)
}

/// A parsed `redis+sentinel://[USER:PASS@]HOST:PORT[,HOST:PORT...]/SERVICE_NAME[/DB]`.
///
/// The credentials are those of the Redis nodes (master and replicas); the
/// sentinels themselves are reached without a password.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// The sentinels, `(host, port)`, in the order given.
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels monitor the master under.
    pub service: String,
    /// The database number on the master (`SELECT`), 0 by default.
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("service", &self.service)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SentinelUrl {
    /// Parses a Sentinel URL. Errors name the URL with its password
    /// replaced by `***`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let bad = |why: String| {
            format!(
                "bad Sentinel URL {}: {why} (expected {SYNTAX})",
                crate::redact_url(url)
            )
        };
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad(format!("it does not start with {SCHEME}")))?;
        if rest.contains(['?', '#']) {
            return Err(bad("query strings and fragments are not supported".into()));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        if hosts.is_empty() {
            return Err(bad("no sentinel HOST:PORT".into()));
        }
        let sentinels = hosts
            .split(',')
            .map(host_port)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let mut segments = path.split('/');
        let service = segments.next().unwrap_or_default();
        if service.is_empty() {
            return Err(bad(
                "no service name (the name in `sentinel monitor`)".into()
            ));
        }
        if service.contains(['%', ' ']) {
            return Err(bad(format!("bad service name {service:?}")));
        }
        let db = match segments.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|db| *db >= 0)
                .ok_or_else(|| bad(format!("bad database number {db:?}")))?,
        };
        if let Some(extra) = segments.find(|s| !s.is_empty()) {
            return Err(bad(format!("unexpected path segment {extra:?}")));
        }
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, pass) = match userinfo.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (userinfo, None),
                };
                let decode = |s: &str| {
                    percent_decode(s).ok_or_else(|| bad("bad %-encoding in the credentials".into()))
                };
                let user = Some(decode(user)?).filter(|u| !u.is_empty());
                let pass = pass.map(decode).transpose()?;
                (user, pass)
            }
        };
        Ok(Self {
            sentinels,
            service: service.to_owned(),
            db,
            username,
            password,
        })
    }
}

/// `HOST:PORT` or `[IPv6]:PORT`.
fn host_port(address: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("bad sentinel address {address:?}"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("sentinel address {address:?} has no port"))?;
        (host, port)
    } else {
        address
            .rsplit_once(':')
            .ok_or_else(|| format!("sentinel address {address:?} has no port"))?
    };
    if host.is_empty() {
        return Err(format!("sentinel address {address:?} has no host"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("bad port {port:?} in sentinel address {address:?}"))?;
    Ok((host.to_owned(), port))
}

fn percent_decode(s: &str) -> Option<String> {
    // The crate leaves a bad escape as it is; refuse it instead.
    let malformed = s
        .split('%')
        .skip(1)
        .any(|rest| rest.len() < 2 || !rest.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

/// How long one lookup of the master may take: connecting to a sentinel,
/// asking it, then connecting to the master and checking its role, with the
/// crate's own connection timeouts (1 s) inside.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// The pause between failed lookups while commands wait for a master.
const RETRY: Duration = Duration::from_millis(100);
/// How often the sentinels are asked whether the master in use is still
/// theirs.
const RECHECK: Duration = Duration::from_secs(1);

/// The current master of one Sentinel service, found again after failovers.
#[derive(Clone)]
pub(crate) struct SentinelMaster {
    shared: Arc<Shared>,
}

struct Shared {
    client: Mutex<SentinelClient>,
    state: watch::Sender<Master>,
    /// A background lookup is running.
    resolving: AtomicBool,
    config: AsyncConnectionConfig,
    service: String,
}

#[derive(Clone, Default)]
struct Master {
    /// Bumped for every new connection, so that a failure retires only the
    /// connection it happened on.
    generation: u64,
    conn: Option<MultiplexedConnection>,
    /// The client `conn` was made from, for connections of other kinds
    /// (pub/sub) to the same master.
    client: Option<redis::Client>,
    /// `host:port` of the master `conn` is connected to.
    addr: String,
    /// Why there is no connection (the last failure), for error messages.
    error: Option<String>,
}

impl SentinelMaster {
    /// Sets up the lookups; connects to nothing yet. `timeout` bounds the
    /// connection to the master and each reply on it.
    pub(crate) fn start(url: &SentinelUrl, timeout: Duration) -> Result<Self, String> {
        let addrs = url
            .sentinels
            .iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
        let mut builder =
            SentinelClientBuilder::new(addrs, url.service.clone(), SentinelServerType::Master)
                .map_err(|e| format!("Sentinel client: {e}"))?
                .set_client_to_redis_db(url.db);
        if let Some(user) = &url.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(pass) = &url.password {
            builder = builder.set_client_to_redis_password(pass);
        }
        let client = builder
            .build()
            .map_err(|e| format!("Sentinel client: {e}"))?;
        let shared = Arc::new(Shared {
            client: Mutex::new(client),
            state: watch::Sender::new(Master::default()),
            resolving: AtomicBool::new(false),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout)),
            service: url.service.clone(),
        });
        tokio::spawn(recheck(Arc::downgrade(&shared)));
        Ok(Self { shared })
    }

    pub(crate) fn service(&self) -> &str {
        &self.shared.service
    }

    /// The connection to the current master and its generation, waiting
    /// (without bound: the caller bounds it) for a lookup when there is none.
    pub(crate) async fn connection(&self) -> (u64, MultiplexedConnection) {
        let mut rx = self.shared.state.subscribe();
        loop {
            {
                let master = rx.borrow_and_update();
                if let Some(conn) = &master.conn {
                    return (master.generation, conn.clone());
                }
            }
            self.shared.resolve_in_background();
            // The sender lives in `shared`, which `self` holds: never closed.
            let _ = rx.changed().await;
        }
    }

    /// A client of the current master and the generation of its
    /// connection, waiting as [`connection`](Self::connection) does: for a
    /// connection of another kind (pub/sub) to the master the commands use.
    pub(crate) async fn client(&self) -> (u64, redis::Client) {
        let mut rx = self.shared.state.subscribe();
        loop {
            {
                let master = rx.borrow_and_update();
                if let (Some(_), Some(client)) = (&master.conn, &master.client) {
                    return (master.generation, client.clone());
                }
            }
            self.shared.resolve_in_background();
            let _ = rx.changed().await;
        }
    }

    /// Resolves once the master of `generation` is no longer the one in
    /// use (retired after a failure, or replaced after a failover).
    pub(crate) fn superseded(&self, generation: u64) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shared.state.subscribe();
        async move {
            loop {
                {
                    let master = rx.borrow_and_update();
                    if master.generation != generation || master.conn.is_none() {
                        return;
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
    }

    /// Why there is no master now, if there is none.
    pub(crate) fn unavailable_reason(&self) -> Option<String> {
        let master = self.shared.state.borrow();
        match master.conn {
            Some(_) => None,
            None => Some(
                master
                    .error
                    .clone()
                    .unwrap_or_else(|| "still looking the master up".into()),
            ),
        }
    }

    /// Retires the connection of `generation` after it failed with `why`:
    /// the next command looks the master up again.
    pub(crate) fn retire(&self, generation: u64, why: &str) {
        let service = &self.shared.service;
        self.shared.state.send_if_modified(|master| {
            if master.generation != generation || master.conn.is_none() {
                return false;
            }
            tracing::warn!(
                service = %service,
                master = %master.addr,
                error = %why,
                "Redis master failed; asking the Sentinels for the current one"
            );
            master.conn = None;
            master.error = Some(format!("master {} failed: {why}", master.addr));
            true
        });
    }
}

impl Shared {
    /// Starts the background lookup unless one is running.
    fn resolve_in_background(self: &Arc<Self>) {
        if !self.resolving.swap(true, Ordering::AcqRel) {
            tokio::spawn(Arc::clone(self).resolve_loop());
        }
    }

    /// Looks the master up until there is one, or until no command waits
    /// for it any more.
    async fn resolve_loop(self: Arc<Self>) {
        loop {
            let wanted = self.state.borrow().conn.is_none() && self.state.receiver_count() > 0;
            if !wanted {
                self.resolving.store(false, Ordering::Release);
                // A command may have begun to wait after the check above and
                // seen `resolving` still set: go on for it.
                let wanted = self.state.borrow().conn.is_none() && self.state.receiver_count() > 0;
                if wanted && !self.resolving.swap(true, Ordering::AcqRel) {
                    continue;
                }
                return;
            }
            match self.lookup().await {
                Ok((addr, client, conn)) => self.publish(addr, client, conn, None),
                Err(e) => {
                    self.state.send_modify(|master| {
                        if master.conn.is_none() {
                            master.error = Some(e);
                        }
                    });
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// Installs a new master connection (unless one newer than
    /// `replacing` was installed meanwhile).
    fn publish(
        &self,
        addr: String,
        client: redis::Client,
        conn: MultiplexedConnection,
        replacing: Option<u64>,
    ) {
        self.state.send_if_modified(|master| {
            if replacing.is_some_and(|g| g != master.generation) {
                return false;
            }
            if master.addr != addr {
                tracing::info!(service = %self.service, master = %addr, "Redis master (via Sentinel)");
            }
            master.generation += 1;
            master.conn = Some(conn);
            master.client = Some(client);
            master.addr = addr;
            master.error = None;
            true
        });
    }

    /// The master's address as the sentinels name it now (the crate checks
    /// the role of the node it names).
    async fn master_addr(&self) -> Result<String, String> {
        let mut client = self.client.lock().await;
        let master = client
            .async_get_client()
            .await
            .map_err(|e| format!("no master from the Sentinels: {e}"))?;
        Ok(master.get_connection_info().addr().to_string())
    }

    /// Asks the sentinels for the master, connects to it and checks its
    /// role on that connection: one bounded lookup.
    async fn lookup(&self) -> Result<(String, redis::Client, MultiplexedConnection), String> {
        let found = async {
            let master = {
                let mut client = self.client.lock().await;
                client
                    .async_get_client()
                    .await
                    .map_err(|e| format!("no master from the Sentinels: {e}"))?
            };
            let addr = master.get_connection_info().addr().to_string();
            let mut conn = master
                .get_multiplexed_async_connection_with_config(&self.config)
                .await
                .map_err(|e| format!("cannot connect to master {addr}: {e}"))?;
            let role: Role = redis::cmd("ROLE")
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("master {addr}: ROLE failed: {e}"))?;
            if !matches!(role, Role::Primary { .. }) {
                return Err(format!("{addr}, named master by the Sentinels, is not one"));
            }
            Ok((addr, master, conn))
        };
        tokio::time::timeout(LOOKUP_TIMEOUT, found)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "looking the master up through the Sentinels took over {LOOKUP_TIMEOUT:?}"
                ))
            })
    }
}

/// Every [`RECHECK`], while the service is in use: if the sentinels name
/// another master than the one in use, moves to it.
async fn recheck(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(RECHECK).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let (generation, addr) = {
            let master = shared.state.borrow();
            if master.conn.is_none() {
                continue;
            }
            (master.generation, master.addr.clone())
        };
        // The sentinels unreachable, or in the middle of a failover: keep
        // what works; the commands themselves retire a failing master.
        let Ok(Ok(named)) = tokio::time::timeout(LOOKUP_TIMEOUT, shared.master_addr()).await else {
            continue;
        };
        if named == addr {
            continue;
        }
        tracing::warn!(
            service = %shared.service,
            old = %addr,
            new = %named,
            "the Sentinels name another Redis master; moving to it"
        );
        match shared.lookup().await {
            Ok((addr, client, conn)) => shared.publish(addr, client, conn, Some(generation)),
            Err(e) => {
                // The master in use is not the sentinels' any more: stop
                // using it, and let the commands look the master up again.
                shared.state.send_if_modified(|master| {
                    if master.generation != generation {
                        return false;
                    }
                    master.conn = None;
                    master.error = Some(e);
                    true
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_parse() {
        let u = SentinelUrl::parse(
            "redis+sentinel://10.0.0.11:26379,10.0.0.12:26379,10.0.0.13:26379/sesame",
        )
        .unwrap();
        assert_eq!(
            u.sentinels,
            vec![
                ("10.0.0.11".to_owned(), 26379),
                ("10.0.0.12".to_owned(), 26379),
                ("10.0.0.13".to_owned(), 26379)
            ]
        );
        assert_eq!(u.service, "sesame");
        assert_eq!(u.db, 0);
        assert_eq!((u.username, u.password), (None, None));

        let u = SentinelUrl::parse("redis+sentinel://app:p%40ss:w@[::1]:26379,h:1/main/3").unwrap();
        assert_eq!(
            u.sentinels,
            vec![("::1".to_owned(), 26379), ("h".to_owned(), 1)]
        );
        assert_eq!(u.service, "main");
        assert_eq!(u.db, 3);
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w"));
        assert!(!format!("{u:?}").contains("p@ss"));

        let u = SentinelUrl::parse("redis+sentinel://:secret@h:26379/svc/").unwrap();
        assert_eq!((u.username, u.password.as_deref()), (None, Some("secret")));
        assert_eq!(u.db, 0);
    }

    #[track_caller]
    fn rejected(url: &str, why: &str) {
        let e = SentinelUrl::parse(url).unwrap_err();
        assert!(e.contains(why), "{url}: {e}");
        assert!(e.contains(SYNTAX), "{url}: {e}");
        assert!(!e.contains("secret"), "{url}: the password leaked: {e}");
    }

    #[test]
    fn bad_sentinel_urls_are_rejected_clearly() {
        // No hosts.
        rejected("redis+sentinel:///sesame", "no sentinel HOST:PORT");
        rejected("redis+sentinel://u:secret@/sesame", "no sentinel HOST:PORT");
        rejected("redis+sentinel://h:1,,h:2/sesame", "\"\" has no port");
        // No service name.
        rejected("redis+sentinel://h:26379", "no service name");
        rejected("redis+sentinel://h:26379/", "no service name");
        rejected("redis+sentinel://u:secret@h:26379//0", "no service name");
        // Bad ports.
        rejected("redis+sentinel://h/sesame", "\"h\" has no port");
        rejected("redis+sentinel://h:/sesame", "bad port \"\"");
        rejected("redis+sentinel://h:abc/sesame", "bad port \"abc\"");
        rejected("redis+sentinel://h:0/sesame", "bad port \"0\"");
        rejected("redis+sentinel://h:65536/sesame", "bad port \"65536\"");
        rejected("redis+sentinel://u:secret@h:1,g:x/sesame", "bad port \"x\"");
        rejected("redis+sentinel://:1/sesame", "has no host");
        rejected("redis+sentinel://[::1]/sesame", "has no port");
        // The rest.
        rejected("redis+sentinel://h:1/sesame/x", "bad database number \"x\"");
        rejected("redis+sentinel://h:1/sesame/-1", "bad database number");
        rejected(
            "redis+sentinel://h:1/sesame/0/more",
            "unexpected path segment",
        );
        rejected("redis+sentinel://h:1/sesame?db=1", "query strings");
        rejected("redis+sentinel://u:sec%zzret@h:1/sesame", "%-encoding");
        rejected("redis://h:1/sesame", "does not start with");
    }
}
