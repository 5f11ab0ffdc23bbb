//! Swagger UI, from the vendored assets, set up for Orderly.
//!
//! - A selector offers each version's document (`/api-docs/v2/openapi.json` first).
//! - Authorization persists across reloads (`persistAuthorization`: the browser's local storage).
//! - The Authorize dialog asks only for what the OAuth2 password flow needs, the username (an
//!   e-mail address) and the password: Orderly has no OAuth clients, so the `client_id` and
//!   `client_secret` fields and the "client credentials location" choice are hidden. Swagger UI
//!   has no option for that, so the stylesheet `index.css` it loads is served with one more rule.

use std::sync::Arc;

use actix_web::{HttpResponse, http::header};
use utoipa_swagger_ui::{Config, SwaggerUi, Url};

use crate::{openapi::document_path, routes::table::Version};

/// The mount point of Swagger UI.
pub const PATH: &str = "/swagger-ui/";

/// Hides the parts of the password flow's form that Orderly does not use, logged in or not.
const PASSWORD_FLOW_ONLY: &str = "
/* Orderly: the password flow needs a username and a password; there are no OAuth clients. */
.auth-container .wrapper:has(> label[for=\"password_type\"]),
.auth-container .wrapper:has(> label[for=\"client_id_password\"]),
.auth-container .wrapper:has(> label[for=\"client_secret_password\"]) {
    display: none;
}
";

/// The documents the version selector offers, newest first (and shown first).
fn documents() -> Vec<Url<'static>> {
    Version::ALL
        .into_iter()
        .rev()
        .enumerate()
        .map(|(i, version)| Url::with_primary(version.name(), document_path(version), i == 0))
        .collect()
}

/// The Swagger UI service.
#[must_use]
pub fn service() -> SwaggerUi {
    SwaggerUi::new(format!("{PATH}{{_:.*}}"))
        .config(Config::new(documents()).persist_authorization(true))
}

/// `GET /swagger-ui/index.css`: Swagger UI's page stylesheet, plus [`PASSWORD_FLOW_ONLY`].
pub async fn stylesheet() -> HttpResponse {
    let vendored = utoipa_swagger_ui::serve("index.css", Arc::new(Config::default()))
        .ok()
        .flatten()
        .filter(|file| !file.gzpipped)
        .map(|file| String::from_utf8_lossy(&file.bytes).into_owned())
        .unwrap_or_default();
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .body(format!("{vendored}\n{PASSWORD_FLOW_ONLY}"))
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;

    use super::*;

    #[actix_web::test]
    async fn the_stylesheet_keeps_swagger_uis_rules_and_hides_the_client_fields() {
        let response = stylesheet().await;
        let body = to_bytes(response.into_body()).await.expect("a body");
        let css = String::from_utf8_lossy(&body);
        assert!(css.contains("box-sizing"), "the vendored rules: {css}");
        assert!(css.contains("client_id_password") && css.contains("display: none"), "{css}");
    }
}
