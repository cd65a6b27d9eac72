//! The login flow over in-memory stores that misbehave on cue: the
//! password-change races, the outcome of each failure path, the per-address
//! cap, and shedding before any store is asked.
use super::*;
use crate::clock::SystemClock;
use crate::hashing::{HashParams, PasswordHasher};
use crate::session::TokenHash;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Default)]
struct Users {
    rows: Mutex<HashMap<i64, UserRecord>>,
    /// Make `password_unchanged` report a change that landed meanwhile.
    changed_meanwhile: AtomicBool,
    /// Login lookups take this long (a slow or failing-over database).
    lookup_delay: Mutex<Duration>,
    /// Login lookups fail as a database that is down.
    down: AtomicBool,
    /// The marks each password re-check was given (before, after).
    rechecks: Mutex<Vec<(WriteMark, WriteMark)>>,
}

#[async_trait::async_trait]
impl UserStore for Users {
    async fn find_for_login(
        &self,
        username: &Username,
    ) -> Result<(Option<UserRecord>, DbRole), StoreError> {
        let delay = *self.lookup_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("primary down".into()));
        }
        let rows = self.rows.lock().unwrap();
        let user = rows.values().find(|u| &u.username == username).cloned();
        Ok((user, DbRole::Replica))
    }
    async fn create(&self, user: NewUser) -> Result<UserRecord, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        let record = user.into_record(rows.len() as i64 + 1);
        rows.insert(record.id, record.clone());
        Ok(record)
    }
    async fn import(&self, _: &[NewUser]) -> Result<u64, StoreError> {
        unimplemented!()
    }
    async fn set_password_hash(
        &self,
        user_id: i64,
        expected: Option<&str>,
        password_hash: &str,
        changed_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut rows = self.rows.lock().unwrap();
        let user = rows
            .get_mut(&user_id)
            .filter(|u| expected.is_none_or(|e| *u.password_hash == *e))
            .ok_or(StoreError::NotFound)?;
        user.password_hash = password_hash.into();
        user.password_changed_at = changed_at;
        Ok(())
    }
    async fn upgrade_hash(&self, _: i64, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn password_unchanged(&self, _: &UserRecord) -> Result<bool, StoreError> {
        Ok(!self.changed_meanwhile.load(Ordering::SeqCst))
    }
    async fn password_unchanged_between(
        &self,
        user: &UserRecord,
        before: WriteMark,
        after: WriteMark,
    ) -> Result<bool, StoreError> {
        self.rechecks.lock().unwrap().push((before, after));
        // As a store with marks does; without (None), it reads.
        if before == after && before.0.is_some() {
            return Ok(true);
        }
        self.password_unchanged(user).await
    }
    async fn remove(&self, _: &Username) -> Result<(), StoreError> {
        unimplemented!()
    }
    async fn list(&self, _: Option<&Username>, _: u32) -> Result<Vec<UserRecord>, StoreError> {
        unimplemented!()
    }
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[derive(Default)]
struct Sessions {
    live: Mutex<HashMap<TokenHash, Session>>,
    /// The session store is down.
    down: AtomicBool,
}

impl Sessions {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("session store down".into()));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn create(&self, session: &Session) -> Result<(), StoreError> {
        self.check()?;
        let mut live = self.live.lock().unwrap();
        live.insert(session.token_hash, session.clone());
        Ok(())
    }
    async fn find(
        &self,
        hash: &TokenHash,
        _: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        self.check()?;
        Ok(self.live.lock().unwrap().get(hash).cloned())
    }
    async fn revoke(&self, hash: &TokenHash) -> Result<(), StoreError> {
        self.check()?;
        self.live.lock().unwrap().remove(hash);
        Ok(())
    }
    async fn revoke_all(&self, user_id: i64) -> Result<u64, StoreError> {
        self.check()?;
        let mut live = self.live.lock().unwrap();
        let before = live.len();
        live.retain(|_, s| s.user_id != user_id);
        Ok((before - live.len()) as u64)
    }
    async fn ready(&self) -> Result<(), StoreError> {
        self.check()
    }
}

const OLD: &str = "amber-harbor-52";
const NEW: &str = "copper-lantern-93";

async fn service_with(name: &str) -> (LoginService, Arc<Users>, Arc<Sessions>, Username) {
    service_with_settings(
        name,
        LoginSettings {
            limits: LimitSettings::unlimited(),
            latency_budget: Duration::from_secs(30),
            ..LoginSettings::default()
        },
    )
    .await
}

async fn service_with_settings(
    name: &str,
    settings: LoginSettings,
) -> (LoginService, Arc<Users>, Arc<Sessions>, Username) {
    let users = Arc::new(Users::default());
    let sessions = Arc::new(Sessions::default());
    let hasher = PasswordHasher::new(HashParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    })
    .unwrap();
    let service = LoginService::new(
        users.clone(),
        sessions.clone(),
        HashPool::start(hasher, 1),
        Arc::new(SystemClock),
        settings,
    )
    .unwrap();
    let name = Username::parse(name).unwrap();
    service.register(&name, pw(OLD), None).await.unwrap();
    (service, users, sessions, name)
}

fn pw(s: &str) -> Password {
    Password::parse(s, &PasswordPolicy::default()).unwrap()
}

fn ip() -> IpAddr {
    IpAddr::from([192, 0, 2, 1])
}

#[tokio::test]
async fn a_login_overtaken_by_a_password_change_leaves_no_session() {
    let (service, users, sessions, name) = service_with("pat").await;
    users.changed_meanwhile.store(true, Ordering::SeqCst);
    let outcome = service.login(&name, pw(OLD), ip(), Instant::now()).await;
    assert!(
        matches!(outcome.result, Err(AuthError::InvalidCredentials)),
        "{:?}",
        outcome.result
    );
    assert!(
        sessions.live.lock().unwrap().is_empty(),
        "its session was revoked"
    );

    users.changed_meanwhile.store(false, Ordering::SeqCst);
    let outcome = service.login(&name, pw(OLD), ip(), Instant::now()).await;
    assert!(outcome.result.is_ok());
    assert_eq!(sessions.live.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_session_store_failure_changes_nothing_but_signs_out() {
    let (service, users, sessions, name) = service_with("quinn").await;
    let before = users.rows.lock().unwrap()[&1].password_hash.clone();
    assert!(service
        .login(&name, pw(OLD), ip(), Instant::now())
        .await
        .result
        .is_ok());

    sessions.down.store(true, Ordering::SeqCst);
    let r = service.change_password(&name, pw(OLD), pw(NEW), ip()).await;
    assert!(matches!(r, Err(AuthError::Unavailable(_))), "{r:?}");
    assert_eq!(
        users.rows.lock().unwrap()[&1].password_hash,
        before,
        "never the new password with the old sessions alive"
    );

    sessions.down.store(false, Ordering::SeqCst);
    service
        .change_password(&name, pw(OLD), pw(NEW), ip())
        .await
        .unwrap();
    assert!(sessions.live.lock().unwrap().is_empty());
    assert!(service
        .login(&name, pw(NEW), ip(), Instant::now())
        .await
        .result
        .is_ok());
}

/// Every way a login can end, and the outcome it records: shed counters,
/// triage and the SLO alerts read these, so a database failure must
/// never be counted as overload.
#[tokio::test]
async fn each_failure_path_records_its_own_outcome() {
    let budget = Duration::from_millis(250);
    let settings = LoginSettings {
        latency_budget: budget,
        limits: LimitSettings {
            per_account_ip_failures: crate::ratelimit::Rate::per_minute(1.0, 1),
            ..LimitSettings::unlimited()
        },
        ..LoginSettings::default()
    };
    let (service, users, sessions, name) = service_with_settings("rue", settings).await;
    let login = |password: &'static str| {
        let (service, name) = (service.clone(), name.clone());
        async move {
            service
                .login(&name, pw(password), ip(), Instant::now())
                .await
                .outcome()
        }
    };
    assert_eq!(login(OLD).await, Outcome::Ok);

    // A database that answers, but after the time the hash needed (a
    // failover, a dead primary tried first): unavailable, not overloaded.
    *users.lookup_delay.lock().unwrap() = budget;
    assert_eq!(login(OLD).await, Outcome::Unavailable);
    *users.lookup_delay.lock().unwrap() = Duration::ZERO;
    // A database that is down, and a session store that is.
    users.down.store(true, Ordering::SeqCst);
    assert_eq!(login(OLD).await, Outcome::Unavailable);
    users.down.store(false, Ordering::SeqCst);
    sessions.down.store(true, Ordering::SeqCst);
    assert_eq!(login(OLD).await, Outcome::Unavailable);
    sessions.down.store(false, Ordering::SeqCst);

    // Admission refuses a login whose arrival leaves no time to hash.
    let late = Instant::now() - budget;
    let shed = service.login(&name, pw(OLD), ip(), late).await;
    assert_eq!(shed.outcome(), Outcome::Overloaded);
    assert!(shed.db_role.is_none(), "shed before the database");
    // A job that expired in the queue is overload too.
    assert_eq!(
        AuthError::from(PoolError::Expired).outcome(),
        Outcome::Overloaded
    );

    assert_eq!(login(NEW).await, Outcome::InvalidCredentials);
    assert_eq!(login(NEW).await, Outcome::RateLimited);
}

/// A burst from one address takes a few places in the hash queue, and
/// the address's next login is refused at once, before any store or
/// hash is touched.
#[tokio::test]
async fn an_address_with_its_logins_in_flight_is_refused_before_any_work() {
    let settings = LoginSettings {
        limits: LimitSettings {
            max_in_flight_per_ip: 1,
            ..LimitSettings::unlimited()
        },
        latency_budget: Duration::from_secs(30),
        ..LoginSettings::default()
    };
    let (service, users, _, name) = service_with_settings("sal", settings).await;
    *users.lookup_delay.lock().unwrap() = Duration::from_millis(300);
    let first = {
        let (service, name) = (service.clone(), name.clone());
        tokio::spawn(async move { service.login(&name, pw(OLD), ip(), Instant::now()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = service.login(&name, pw(OLD), ip(), Instant::now()).await;
    assert_eq!(second.outcome(), Outcome::RateLimited);
    assert!(second.db_role.is_none(), "refused before the database");
    let other = IpAddr::from([192, 0, 2, 2]);
    let elsewhere = service.login(&name, pw(OLD), other, Instant::now()).await;
    assert_eq!(elsewhere.outcome(), Outcome::Ok, "other addresses go on");
    assert_eq!(first.await.unwrap().outcome(), Outcome::Ok);
    let again = service.login(&name, pw(OLD), ip(), Instant::now()).await;
    assert_eq!(again.outcome(), Outcome::Ok, "its place was given back");
}

/// The shared limits, counting the calls they get (each one a network
/// round trip when they live in Redis).
#[derive(Default)]
struct CountedLimits {
    inner: InMemoryLimits,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl LimitStore for CountedLimits {
    async fn check(
        &self,
        key: &str,
        rate: crate::ratelimit::Rate,
        now_ms: i64,
        consume: bool,
    ) -> Result<crate::ratelimit::Decision, crate::ratelimit::LimitError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.check(key, rate, now_ms, consume).await
    }
    async fn charge(
        &self,
        key: &str,
        rate: crate::ratelimit::Rate,
        now_ms: i64,
    ) -> Result<(), crate::ratelimit::LimitError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.charge(key, rate, now_ms).await
    }
    async fn remember(
        &self,
        key: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<(), crate::ratelimit::LimitError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.remember(key, ttl, now_ms).await
    }
    async fn remembers(
        &self,
        key: &str,
        now_ms: i64,
    ) -> Result<bool, crate::ratelimit::LimitError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.remembers(key, now_ms).await
    }
    async fn check_all(
        &self,
        checks: &[crate::ratelimit::LimitCheck<'_>],
        now_ms: i64,
    ) -> Result<Vec<crate::ratelimit::Decision>, crate::ratelimit::LimitError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.check_all(checks, now_ms).await
    }
    async fn charge_all(
        &self,
        charges: &[(&str, crate::ratelimit::Rate)],
        now_ms: i64,
    ) -> Result<(), crate::ratelimit::LimitError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.charge_all(charges, now_ms).await
    }
}

/// A login asks the shared limits twice, whatever it ends in: every limit
/// at once before the hash, its result recorded after (each a round trip
/// when the limits live in Redis).
#[tokio::test]
async fn a_login_asks_the_limits_twice() {
    let (service, _, _, name) = service_with("ula").await;
    let limits = Arc::new(CountedLimits::default());
    let service = service.with_limit_store(limits.clone());
    for (password, outcome) in [
        (OLD, Outcome::Ok),
        ("not-the-password-at-all", Outcome::InvalidCredentials),
    ] {
        limits.calls.store(0, Ordering::SeqCst);
        let login = service
            .login(&name, pw(password), ip(), Instant::now())
            .await;
        assert_eq!(login.outcome(), outcome);
        assert_eq!(limits.calls.load(Ordering::SeqCst), 2, "{outcome:?}");
    }
}

/// An overloaded service refuses before any network call: neither the
/// shared limits nor the database hear of a shed login.
#[tokio::test]
async fn a_shed_login_asks_no_store() {
    let (service, _, _, name) = service_with("tam").await;
    let limits = Arc::new(CountedLimits::default());
    let service = service.with_limit_store(limits.clone());
    let ok = service.login(&name, pw(OLD), ip(), Instant::now()).await;
    assert_eq!(ok.outcome(), Outcome::Ok);
    assert!(
        limits.calls.load(Ordering::SeqCst) > 0,
        "an admitted login is limited"
    );
    limits.calls.store(0, Ordering::SeqCst);
    let late = Instant::now() - Duration::from_secs(60);
    let shed = service.login(&name, pw(OLD), ip(), late).await;
    assert_eq!(shed.outcome(), Outcome::Overloaded);
    assert_eq!(limits.calls.load(Ordering::SeqCst), 0, "no limit was asked");
    assert!(shed.db_role.is_none(), "no database was asked");
}

/// A listed address is refused as a rate-limited one, before any store is
/// asked, even with the right password; taking it off the list lets it in.
#[tokio::test]
async fn a_blocked_address_is_refused_before_any_store() {
    let (service, _, _, name) = service_with("tab").await;
    let limits = Arc::new(CountedLimits::default());
    let blocked = crate::denylist::SharedDenyList::new(
        crate::denylist::DenyList::parse("192.0.2.0/24").unwrap(),
    );
    let service = service
        .with_limit_store(limits.clone())
        .with_deny_list(blocked.clone());
    let refused = service.login(&name, pw(OLD), ip(), Instant::now()).await;
    assert_eq!(refused.outcome(), Outcome::RateLimited);
    assert!(matches!(
        refused.result,
        Err(AuthError::RateLimited {
            scope: LimitScope::DenyList,
            ..
        })
    ));
    assert_eq!(limits.calls.load(Ordering::SeqCst), 0, "no limit was asked");
    assert!(refused.db_role.is_none(), "no database was asked");
    let other = IpAddr::from([198, 51, 100, 1]);
    let elsewhere = service.login(&name, pw(OLD), other, Instant::now()).await;
    assert_eq!(elsewhere.outcome(), Outcome::Ok);
    blocked.replace(crate::denylist::DenyList::default());
    let unblocked = service.login(&name, pw(OLD), ip(), Instant::now()).await;
    assert_eq!(unblocked.outcome(), Outcome::Ok);
}

/// A [`LoginRoundTrips`] that counts its calls and answers the marks it is
/// told to.
struct CountedRoundTrips {
    sessions: Arc<Sessions>,
    calls: std::sync::atomic::AtomicUsize,
    after_mark: Mutex<WriteMark>,
}

#[async_trait::async_trait]
impl LoginRoundTrips for CountedRoundTrips {
    async fn before_hash(
        &self,
        _: &LoginChecks,
        _: &Username,
    ) -> (Result<Vec<Decision>, LimitError>, WriteMark) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (Ok(vec![Decision::Allow; 4]), WriteMark(Some(1)))
    }
    async fn after_success(
        &self,
        session: &Session,
        _: &Remember,
    ) -> Result<WriteMark, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.sessions.create(session).await?;
        Ok(*self.after_mark.lock().unwrap())
    }
}

/// With a round-trip port, a successful login asks it twice (before the
/// hash, after the password) and neither the limit nor the session store;
/// a failed one asks it once and charges the limits once. Its marks reach
/// the password re-check: unmoved, nothing more is read; moved over a
/// change that landed meanwhile, the login is refused and its session gone.
#[tokio::test]
async fn a_login_asks_its_round_trip_port_twice_and_rechecks_on_its_marks() {
    let (service, users, sessions, name) = service_with("ursa").await;
    let limits = Arc::new(CountedLimits::default());
    let port = Arc::new(CountedRoundTrips {
        sessions: sessions.clone(),
        calls: Default::default(),
        after_mark: Mutex::new(WriteMark(Some(1))),
    });
    let service = service
        .with_limit_store(limits.clone())
        .with_round_trips(port.clone());
    let created_before = sessions.live.lock().unwrap().len();

    let ok = service.login(&name, pw(OLD), ip(), Instant::now()).await;
    assert_eq!(ok.outcome(), Outcome::Ok);
    assert_eq!(port.calls.load(Ordering::SeqCst), 2);
    assert_eq!(limits.calls.load(Ordering::SeqCst), 0);
    assert_eq!(sessions.live.lock().unwrap().len(), created_before + 1);
    assert_eq!(
        users.rechecks.lock().unwrap().last(),
        Some(&(WriteMark(Some(1)), WriteMark(Some(1))))
    );

    port.calls.store(0, Ordering::SeqCst);
    let failed = service
        .login(&name, pw("not-the-password-at-all"), ip(), Instant::now())
        .await;
    assert_eq!(failed.outcome(), Outcome::InvalidCredentials);
    assert_eq!(port.calls.load(Ordering::SeqCst), 1);
    assert_eq!(limits.calls.load(Ordering::SeqCst), 1, "one charge");

    *port.after_mark.lock().unwrap() = WriteMark(Some(2));
    users.changed_meanwhile.store(true, Ordering::SeqCst);
    let raced = service.login(&name, pw(OLD), ip(), Instant::now()).await;
    assert_eq!(raced.outcome(), Outcome::InvalidCredentials);
    assert_eq!(
        users.rechecks.lock().unwrap().last(),
        Some(&(WriteMark(Some(1)), WriteMark(Some(2))))
    );
    assert_eq!(
        sessions.live.lock().unwrap().len(),
        created_before + 1,
        "the raced login's session was revoked"
    );
}
