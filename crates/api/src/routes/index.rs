//! The front door, `/`: Swagger UI when it is served, otherwise a small JSON index of links, so
//! that whoever opens the bare address finds their way. Not part of the API contract (it depends
//! on `ENABLE_SWAGGER_UI`), so it is not in the OpenAPI document.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, http::header, web};
use serde::Serialize;

use crate::{routes::table::Version, state::ApiState};

/// The version the index points to.
const LATEST: Version = Version::CURRENT;

/// Where the JSON index points.
#[derive(Debug, Serialize)]
pub struct IndexResponse {
    /// `orderly`.
    pub service: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// Named links, relative to this server.
    pub links: BTreeMap<&'static str, String>,
}

/// `GET /`: a temporary redirect to `/swagger-ui/` when Swagger UI is enabled (temporary,
/// because turning it off must not leave browsers with a cached redirect to a 404), otherwise
/// the JSON index.
pub async fn index(state: web::Data<ApiState>) -> HttpResponse {
    if state.settings.enable_swagger_ui {
        return HttpResponse::TemporaryRedirect()
            .insert_header((header::LOCATION, "/swagger-ui/"))
            .finish();
    }
    let links = BTreeMap::from([
        ("openapi", crate::openapi::document_path(LATEST).to_owned()),
        ("health", "/health".to_owned()),
        ("ready", "/ready".to_owned()),
        ("products", format!("{}/products", LATEST.prefix())),
        ("register", format!("{}/users", LATEST.prefix())),
        ("token", format!("{}/auth/token", LATEST.prefix())),
    ]);
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(IndexResponse {
        service: "orderly",
        version: env!("CARGO_PKG_VERSION"),
        links,
    })
}
