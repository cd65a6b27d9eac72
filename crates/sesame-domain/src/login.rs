//! The login flow and the other account operations, over the storage ports.
//! HTTP parsing, rate limiting and event logging happen around it; what
//! happens inside, stage by stage, is timed here.

use crate::clock::Clock;
use crate::denylist::SharedDenyList;
use crate::event::Outcome;
use crate::password::{Password, PasswordError, PasswordPolicy};
use crate::pool::{HashPool, JobTimings, PoolError};
use crate::ratelimit::{
    Decision, InFlight, InMemoryLimits, LimitError, LimitScope, LimitSettings, LimitStore, Limited,
    LoginChecks, LoginLimiter, Remember,
};
use crate::session::{Session, SessionToken};
use crate::store::{
    DbRole, LoginRoundTrips, NewUser, SessionStore, StoreError, UserRecord, UserStore, WriteMark,
};
use crate::username::Username;
use chrono::SubsecRound;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The hash must be done within this share of the latency budget; the rest
/// is kept for storing the session and answering.
const HASH_SHARE_OF_BUDGET: f64 = 0.9;

/// A login lookup slower than the budget divided by this (25 ms of 250) is
/// a slow database, whatever else happened: a point read takes about 1 ms.
const SLOW_LOOKUP_SHARE_OF_BUDGET: u32 = 10;

/// What a blocked address is told to wait.
const BLOCKED_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why an account operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong password: deliberately indistinguishable.
    #[error("invalid user or password")]
    InvalidCredentials,
    #[error("user already exists")]
    UserExists,
    #[error("{0}")]
    WeakPassword(PasswordError),
    #[error("too many attempts; retry after {retry_after:?}")]
    RateLimited {
        scope: LimitScope,
        retry_after: Duration,
    },
    #[error("too many logins in progress; retry after {retry_after:?}")]
    Overloaded { retry_after: Duration },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    /// The outcome a login that failed with this error records: the one
    /// place where errors become outcomes (the HTTP boundary adds only the
    /// malformed-input ones).
    pub fn outcome(&self) -> Outcome {
        match self {
            AuthError::InvalidCredentials => Outcome::InvalidCredentials,
            AuthError::RateLimited { .. } => Outcome::RateLimited,
            AuthError::Overloaded { .. } => Outcome::Overloaded,
            AuthError::Unavailable(_) => Outcome::Unavailable,
            AuthError::UserExists | AuthError::WeakPassword(_) => Outcome::BadRequest,
            AuthError::Internal(_) => Outcome::Error,
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => AuthError::UserExists,
            StoreError::NotFound => AuthError::InvalidCredentials,
            StoreError::Unavailable(m) => AuthError::Unavailable(m),
            StoreError::Other(m) => AuthError::Internal(m),
        }
    }
}

impl From<Limited> for AuthError {
    fn from(l: Limited) -> Self {
        AuthError::RateLimited {
            scope: l.scope,
            retry_after: l.retry_after,
        }
    }
}

impl From<PoolError> for AuthError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Overloaded { retry_after } => AuthError::Overloaded { retry_after },
            PoolError::Expired => AuthError::Overloaded {
                retry_after: Duration::from_secs(1),
            },
            PoolError::Closed => AuthError::Unavailable("shutting down".into()),
        }
    }
}

/// Where the time of one login went.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimings {
    pub queue: Duration,
    pub hash: Duration,
    pub db: Duration,
    pub session: Duration,
}

impl StageTimings {
    fn add_job(&mut self, job: JobTimings) {
        self.queue += job.queue;
        self.hash += job.hash;
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: SessionToken,
    pub session: Session,
}

/// The result of a login attempt with what it cost, for the event log.
#[derive(Debug)]
pub struct LoginOutcome {
    pub result: Result<Issued, AuthError>,
    pub timings: StageTimings,
    pub db_role: Option<DbRole>,
}

impl LoginOutcome {
    pub fn outcome(&self) -> Outcome {
        match &self.result {
            Ok(_) => Outcome::Ok,
            Err(e) => e.outcome(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoginSettings {
    pub session_ttl: chrono::Duration,
    /// The most a login may spend waiting for and doing its hash.
    pub latency_budget: Duration,
    pub policy: PasswordPolicy,
    pub limits: LimitSettings,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            session_ttl: chrono::Duration::hours(12),
            latency_budget: Duration::from_millis(250),
            policy: PasswordPolicy::default(),
            limits: LimitSettings::default(),
        }
    }
}

/// The account operations of sesame.
#[derive(Clone)]
pub struct LoginService {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    pool: HashPool,
    clock: Arc<dyn Clock>,
    limiter: LoginLimiter,
    in_flight: Arc<InFlight>,
    deny_list: SharedDenyList,
    settings: LoginSettings,
    /// Unknown users are verified against this so they cost one hash too.
    dummy_hash: Arc<str>,
    /// The login's shared state in one round trip per step, when the
    /// stores offer it; else each store is asked in turn.
    round_trips: Option<Arc<dyn LoginRoundTrips>>,
}

/// What a login decided before its hash and carries through it.
struct LoginPlan {
    /// When the hash must be done.
    deadline: Instant,
    /// When the lookup must be done.
    lookup_by: Instant,
    /// The user's write mark, read with the limits.
    mark: WriteMark,
    /// What a success remembers.
    known: Remember,
}

impl LoginService {
    pub fn new(
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        pool: HashPool,
        clock: Arc<dyn Clock>,
        settings: LoginSettings,
    ) -> Result<Self, AuthError> {
        let dummy_hash = pool
            .hasher()
            .hash(SessionToken::generate().as_str().as_bytes())
            .map_err(|e| AuthError::Internal(e.to_string()))?
            .into();
        let limiter = LoginLimiter::new(
            Arc::new(InMemoryLimits::default()),
            clock.clone(),
            settings.limits.clone(),
        );
        Ok(Self {
            users,
            sessions,
            pool,
            clock,
            limiter,
            in_flight: Arc::new(InFlight::new(settings.limits.max_in_flight_per_ip)),
            deny_list: SharedDenyList::default(),
            settings,
            dummy_hash,
            round_trips: None,
        })
    }

    /// Keeps rate-limit state in `store` (e.g. Redis, shared by instances)
    /// instead of in this process.
    pub fn with_limit_store(mut self, store: Arc<dyn LimitStore>) -> Self {
        self.limiter = LoginLimiter::new(store, self.clock.clone(), self.settings.limits.clone());
        self
    }

    /// Asks `shared` for a login's limits, write mark and session in one
    /// round trip before the hash and one after (it must hold the same
    /// limits as the limit store, and the user store's marks).
    pub fn with_round_trips(mut self, shared: Arc<dyn LoginRoundTrips>) -> Self {
        self.round_trips = Some(shared);
        self
    }

    /// Refuses logins from the addresses of `list` (replaced by its owner
    /// when the operator's file changes).
    pub fn with_deny_list(mut self, list: SharedDenyList) -> Self {
        self.deny_list = list;
        self
    }

    pub fn settings(&self) -> &LoginSettings {
        &self.settings
    }

    pub fn pool(&self) -> &HashPool {
        &self.pool
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Logs a user in from `ip`. `arrived` is when the request arrived: the
    /// latency budget counts from there.
    pub async fn login(
        &self,
        username: &Username,
        password: Password,
        ip: IpAddr,
        arrived: Instant,
    ) -> LoginOutcome {
        let mut timings = StageTimings::default();
        let mut db_role = None;
        let result = self
            .attempt(username, password, ip, arrived, &mut timings, &mut db_role)
            .await;
        LoginOutcome {
            result,
            timings,
            db_role,
        }
    }

    /// A login's steps, cheapest refusal first: the in-process checks
    /// (the block list, logins in flight from the address, then admission to the hash
    /// queue) before any network call, so that an overloaded service sheds
    /// in microseconds and asks neither the shared limits nor the database
    /// about logins it will refuse; then the shared limits, the lookup, the
    /// hash and the session.
    async fn attempt(
        &self,
        username: &Username,
        password: Password,
        ip: IpAddr,
        arrived: Instant,
        timings: &mut StageTimings,
        db_role: &mut Option<DbRole>,
    ) -> Result<Issued, AuthError> {
        // A blocked address is answered as a rate-limited one: it learns
        // nothing about being listed.
        if self.deny_list.contains(ip) {
            return Err(AuthError::RateLimited {
                scope: LimitScope::DenyList,
                retry_after: BLOCKED_RETRY_AFTER,
            });
        }
        let Some(_in_flight) = self.in_flight.enter(ip) else {
            return Err(AuthError::RateLimited {
                scope: LimitScope::Ip,
                retry_after: Duration::from_secs(1),
            });
        };
        let deadline = arrived + self.settings.latency_budget.mul_f64(HASH_SHARE_OF_BUDGET);
        // Admission keeps room for the lookup as well as the queue and the
        // hash: a login admitted with no time left for its database read
        // would be refused later, slowly, and blamed on the database.
        let lookup_allowance = self.settings.latency_budget / SLOW_LOOKUP_SHARE_OF_BUDGET;
        let lookup_by = self
            .pool
            .admit(deadline.checked_sub(lookup_allowance).unwrap_or(deadline))?
            + lookup_allowance;
        let checks = self.limiter.login_checks(username, ip);
        let (decisions, mark) = self.before_hash(&checks, username).await;
        self.limiter.judge_login(decisions, username, ip).await?;
        let plan = LoginPlan {
            deadline,
            lookup_by,
            mark,
            known: self.limiter.known_address(username, ip),
        };
        let result = self
            .verify(username, password, &plan, timings, db_role)
            .await;
        // A success was recorded with its session (`after_success`); other
        // refusals are not the user's doing: overload or an outage.
        if let Err(AuthError::InvalidCredentials) = &result {
            self.limiter.record_login(username, ip, false).await
        }
        result
    }

    /// The limits and the user's write mark, in one round trip when the
    /// stores offer it.
    async fn before_hash(
        &self,
        checks: &LoginChecks,
        username: &Username,
    ) -> (Result<Vec<Decision>, LimitError>, WriteMark) {
        match &self.round_trips {
            Some(shared) => shared.before_hash(checks, username).await,
            None => (
                self.limiter
                    .store()
                    .check_all(&checks.as_checks(), checks.now_ms)
                    .await,
                self.users.write_mark(username).await,
            ),
        }
    }

    /// Stores the session and remembers the address; answers the user's
    /// write mark read after the session was stored.
    async fn after_success(
        &self,
        user: &UserRecord,
        session: &Session,
        known: &Remember,
    ) -> Result<WriteMark, StoreError> {
        if let Some(shared) = &self.round_trips {
            return shared.after_success(session, known).await;
        }
        self.sessions.create(session).await?;
        let mark = self.users.write_mark(&user.username).await;
        self.limiter.remember(known).await;
        Ok(mark)
    }

    async fn verify(
        &self,
        username: &Username,
        password: Password,
        plan: &LoginPlan,
        timings: &mut StageTimings,
        db_role: &mut Option<DbRole>,
    ) -> Result<Issued, AuthError> {
        let (deadline, lookup_by) = (plan.deadline, plan.lookup_by);
        let started = Instant::now();
        let (user, role) = self
            .users
            .find_for_login_marked(username, plan.mark, lookup_by)
            .await?;
        timings.db = started.elapsed();
        *db_role = Some(role);
        // The lookup took the time the hash needed: the database failed this
        // login, not the queue, so it must not be counted as overload. A
        // lookup of normal speed that only tipped a login admitted on the
        // edge goes on to the queue, which decides.
        let slow_lookup = self.settings.latency_budget / SLOW_LOOKUP_SHARE_OF_BUDGET;
        if Instant::now() > lookup_by && timings.db >= slow_lookup {
            return Err(AuthError::Unavailable(format!(
                "the {} database answered after {} ms, too late for this login's latency budget",
                role.as_str(),
                timings.db.as_millis()
            )));
        }

        let stored = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let (verification, job) = self
            .pool
            .verify(password.clone(), stored.clone(), deadline)
            .await?;
        timings.add_job(job);
        let user = match user {
            Some(user) if verification.matches => user,
            _ => return Err(AuthError::InvalidCredentials),
        };
        if verification.needs_rehash {
            self.upgrade_in_background(user.id, stored, password);
        }

        let started = Instant::now();
        let issued = self.issue_login_session(&user, plan).await;
        timings.session = started.elapsed();
        issued
    }

    /// A session for a login that verified `user`'s password. A password
    /// change that landed while the login was in flight may have revoked
    /// the user's sessions before this one existed, so the password is
    /// checked again once the session is stored: the old password must not
    /// leave a session behind.
    async fn issue_login_session(
        &self,
        user: &UserRecord,
        plan: &LoginPlan,
    ) -> Result<Issued, AuthError> {
        let token = SessionToken::generate();
        // Stores keep milliseconds: so does the session handed out, so that
        // the login and a later check tell the same expiry.
        let now = self.clock.now().trunc_subsecs(3);
        let session = Session {
            token_hash: token.hash(),
            user_id: user.id,
            username: user.username.as_str().to_owned(),
            created_at: now,
            expires_at: now + self.settings.session_ttl,
        };
        let after = self.after_success(user, &session, &plan.known).await?;
        if !self
            .users
            .password_unchanged_between(user, plan.mark, after)
            .await?
        {
            self.sessions.revoke(&session.token_hash).await?;
            return Err(AuthError::InvalidCredentials);
        }
        Ok(Issued { token, session })
    }

    /// Rehashes with the current parameters after a login proved the
    /// password. Off the login's path; if the pool is busy it waits for the
    /// next login.
    fn upgrade_in_background(&self, user_id: i64, old_hash: Arc<str>, password: Password) {
        let this = self.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + this.settings.latency_budget;
            let Ok((Ok(new_hash), _)) = this.pool.hash(password, deadline).await else {
                return;
            };
            match this.users.upgrade_hash(user_id, &old_hash, &new_hash).await {
                Ok(()) => tracing::info!(user_id, "password hash upgraded to current parameters"),
                Err(e) => tracing::warn!(user_id, error = %e, "password hash upgrade failed"),
            }
        });
    }

    /// Registers a new user; `ip` (absent for operators) is rate limited.
    pub async fn register(
        &self,
        username: &Username,
        password: Password,
        ip: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        if let Some(ip) = ip {
            self.limiter.admit_address(ip).await?;
        }
        self.settings
            .policy
            .check_new(&password, username)
            .map_err(AuthError::WeakPassword)?;
        let phc = self.hash_now(password).await?;
        self.users
            .create(NewUser {
                username: username.clone(),
                password_hash: phc,
                created_at: self.clock.now(),
            })
            .await?;
        Ok(())
    }

    /// Changes a password after proving the old one, and revokes every
    /// session of the user: the old password and its sessions stop working
    /// together. A failure part way may sign the user out with the old
    /// password still set; it never leaves old sessions alive with the new.
    pub async fn change_password(
        &self,
        username: &Username,
        old: Password,
        new: Password,
        ip: IpAddr,
    ) -> Result<(), AuthError> {
        let arrived = Instant::now();
        self.limiter.admit_login(username, ip).await?;
        let (user, _) = self.users.find_for_login(username).await?;
        let stored = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let (verification, _) = self
            .pool
            .verify(old, stored, arrived + self.settings.latency_budget)
            .await?;
        let user = match user {
            Some(user) if verification.matches => user,
            _ => {
                self.limiter.record_login(username, ip, false).await;
                return Err(AuthError::InvalidCredentials);
            }
        };
        self.settings
            .policy
            .check_new(&new, username)
            .map_err(AuthError::WeakPassword)?;
        let phc = self.hash_now(new).await?;
        self.replace_password(user.id, Some(&user.password_hash), &phc)
            .await
    }

    /// Sets a password without the old one: the operator's `sesame user passwd`.
    pub async fn reset_password(
        &self,
        username: &Username,
        new: Password,
    ) -> Result<(), AuthError> {
        self.settings
            .policy
            .check_new(&new, username)
            .map_err(AuthError::WeakPassword)?;
        let (user, _) = self.users.find_for_login(username).await?;
        let user = user.ok_or(AuthError::InvalidCredentials)?;
        let phc = self.hash_now(new).await?;
        self.replace_password(user.id, None, &phc).await
    }

    /// Sets a new password hash and revokes every session of the user.
    /// Revokes first: if the session store fails, nothing has changed yet
    /// (never a new password with the old sessions alive). Then again after
    /// the write, for sessions that logins with the old password stored in
    /// between.
    /// `expected`: the hash the old password was proved against, for a
    /// change (a concurrent or late one then fails as a wrong password);
    /// none for the operator's reset.
    async fn replace_password(
        &self,
        user_id: i64,
        expected: Option<&str>,
        phc: &str,
    ) -> Result<(), AuthError> {
        self.sessions.revoke_all(user_id).await?;
        self.users
            .set_password_hash(user_id, expected, phc, self.clock.now())
            .await?;
        self.sessions.revoke_all(user_id).await?;
        Ok(())
    }

    async fn hash_now(&self, password: Password) -> Result<String, AuthError> {
        let deadline = Instant::now() + self.settings.latency_budget;
        let (phc, _) = self.pool.hash(password, deadline).await?;
        phc.map_err(|e| AuthError::Internal(e.to_string()))
    }

    /// The live session a token names, if any.
    pub async fn session(&self, token: &SessionToken) -> Result<Option<Session>, AuthError> {
        Ok(self.sessions.find(&token.hash(), self.clock.now()).await?)
    }

    pub async fn logout(&self, token: &SessionToken) -> Result<(), AuthError> {
        Ok(self.sessions.revoke(&token.hash()).await?)
    }

    /// Whether the stores can serve; `/readyz` asks this.
    pub async fn ready(&self) -> Result<(), AuthError> {
        self.users.ready().await?;
        self.sessions.ready().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
