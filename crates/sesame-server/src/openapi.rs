//! `/openapi.json`, generated from the handlers' annotations.

use crate::error::{ErrorBody, ErrorDetail};
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

/// The document a server answers with: the session cookie under the name
/// it uses (`__Host-` prefixed when cookies are Secure).
pub fn document(cookie_secure: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    cookie_scheme(&mut doc, crate::cookies::session_name(cookie_secure));
    doc
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        cookie_scheme(openapi, crate::cookies::LEGACY_SESSION);
    }
}

fn cookie_scheme(openapi: &mut utoipa::openapi::OpenApi, name: &str) {
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(name))),
    );
}
