//! `/openapi.json`, generated from the handlers' annotations.

use crate::routes;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "sesame", description = "Login service: Argon2id passwords, opaque sessions."),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::users::register,
        routes::users::change_password,
        routes::login::login,
        routes::session::current,
        routes::session::logout,
    ),
    components(schemas(
        routes::LoginRequest,
        routes::LoginResponse,
        routes::RegisterRequest,
        routes::RegisterResponse,
        routes::ChangePasswordRequest,
        routes::SessionResponse,
        ErrorBody,
        ErrorDetail,
    )),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// Every error answer: `{"error":{"code","message"}}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// Machine-readable: `invalid_credentials`, `rate_limited`, `overloaded`, ...
    code: String,
    message: String,
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("sesame_session"))),
        );
    }
}
