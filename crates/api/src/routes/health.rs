//! Liveness and readiness, outside `/api/v1`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use actix_web::{HttpResponse, http::header, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    errors::RETRY_AFTER_DATABASE,
    problem::{ApiError, ErrorCode},
    state::{ApiState, DependencyStatus},
};

/// The longest `/ready` takes, whatever its dependencies do: under the 1 s time-out readiness
/// probes commonly have, so a hanging database reads as 503, never as a probe time-out.
const READY_BUDGET: Duration = Duration::from_millis(800);

/// The service's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Each check: `database` and, when configured, `redis` (`ok` or `unavailable`), and
    /// `migrations` (`ok`: the schema is current).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<&'static str, &'static str>,
}

/// Liveness: the process serves requests. Touches nothing else.
#[utoipa::path(get, path = "/health", operation_id = "checkLiveness", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthResponse)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(HealthResponse { status: "ok", checks: BTreeMap::new() })
}

/// Readiness: the database answers and its schema is as current as this binary (no pending
/// migrations). Redis, when configured, is reported in `checks`; without it the service still
/// serves (rate limits fall back to per-instance limits), so it does not make the instance
/// unready.
#[utoipa::path(get, path = "/ready", operation_id = "checkReadiness", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = HealthResponse),
        (status = 503, description = "DATABASE_UNAVAILABLE: a dependency is down; `checks` says which. MIGRATIONS_PENDING: the database schema is behind this binary; `pending_migrations` lists the migrations to apply (`orderly migrate up`)", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn ready(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    // Within `READY_BUDGET` whatever the checks do: checks that take longer count as a database
    // that does not answer. While the database health gate is open its ping fails at once.
    let started = Instant::now();
    let dependencies = actix_web::rt::time::timeout(READY_BUDGET, state.readiness.check())
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(
                budget_ms = READY_BUDGET.as_millis(),
                "readiness: the checks took too long"
            );
            vec![DependencyStatus { name: "database", healthy: false, required: true }]
        });
    let mut checks: BTreeMap<&'static str, &'static str> = dependencies
        .iter()
        .map(|dependency| (dependency.name, if dependency.healthy { "ok" } else { "unavailable" }))
        .collect();
    let down: Vec<&str> = dependencies
        .iter()
        .filter(|dependency| dependency.required && !dependency.healthy)
        .map(|dependency| dependency.name)
        .collect();
    if !down.is_empty() {
        return Err(ApiError::new(
            ErrorCode::DatabaseUnavailable,
            format!("not ready: {} unavailable", down.join(", ")),
        )
        .with_header(header::RETRY_AFTER, RETRY_AFTER_DATABASE.to_string())
        .with_extension("checks", serde_json::json!(checks)));
    }
    // Asked only of a reachable database: an unreachable one is reported above.
    let left = READY_BUDGET.saturating_sub(started.elapsed());
    let Ok(pending) =
        actix_web::rt::time::timeout(left, state.readiness.pending_migrations()).await
    else {
        tracing::warn!("readiness: the applied migrations could not be read in time");
        checks.insert("database", "unavailable");
        return Err(ApiError::new(
            ErrorCode::DatabaseUnavailable,
            "not ready: database unavailable".to_owned(),
        )
        .with_header(header::RETRY_AFTER, RETRY_AFTER_DATABASE.to_string())
        .with_extension("checks", serde_json::json!(checks)));
    };
    if !pending.is_empty() {
        checks.insert("migrations", "pending");
        return Err(ApiError::new(
            ErrorCode::MigrationsPending,
            format!(
                "not ready: the database schema is behind this binary ({} migration{} pending); \
                 apply {} with `orderly migrate up`",
                pending.len(),
                if pending.len() == 1 { "" } else { "s" },
                if pending.len() == 1 { "it" } else { "them" },
            ),
        )
        .with_header(header::RETRY_AFTER, "5")
        .with_extension("checks", serde_json::json!(checks))
        .with_extension("pending_migrations", serde_json::json!(pending)));
    }
    checks.insert("migrations", "ok");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(HealthResponse { status: "ok", checks }))
}

/// This module's operations, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<super::table::Declared> {
    super::table::declared![health, ready]
}
