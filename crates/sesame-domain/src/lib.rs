//! The sesame domain: what a user, a credential, a session and a login *are*,
//! and the login flow that ties them together. Storage and transport are
//! reached only through the traits in [`store`], so this crate knows nothing of
//! HTTP or SQL.

pub mod clock;
pub mod denylist;
pub mod event;
pub mod hashing;
pub mod login;
pub mod password;
pub mod pool;
pub mod ratelimit;
pub mod session;
pub mod store;
pub mod username;

pub use clock::{Clock, ManualClock, SystemClock};
pub use denylist::{DenyList, DenyListError, SharedDenyList};
pub use hashing::{HashParams, PasswordHasher};
pub use login::{AuthError, Issued, LoginOutcome, LoginService, LoginSettings, StageTimings};
pub use password::{Password, PasswordError, PasswordPolicy};
pub use pool::{HashPool, PoolError, PoolStats};
pub use ratelimit::{
    InFlight, InMemoryLimits, LimitScope, LimitSettings, LimitStore, Limited, LoginChecks,
    LoginLimiter, Rate, Remember,
};
pub use session::{Session, SessionToken, TokenHash};
pub use store::{
    DbRole, LoginRoundTrips, NewUser, SessionStore, StoreError, UserRecord, UserStore, WriteMark,
};
pub use username::{Username, UsernameError};
