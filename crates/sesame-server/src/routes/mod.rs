//! The JSON API's handlers: parse the request, call the flow, answer JSON.

pub(crate) mod health;
pub(crate) mod login;
pub(crate) mod session;
pub(crate) mod users;

pub use login::{LoginRequest, LoginResponse};
pub use session::SessionResponse;
pub use users::{ChangePasswordRequest, RegisterRequest, RegisterResponse};
