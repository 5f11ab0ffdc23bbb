//! `GET /problems/{slug}`: the human description behind each problem `type` URI.

use actix_web::{HttpResponse, web};

use crate::problem::{ApiError, ErrorCode};

/// Describes a problem type.
#[utoipa::path(get, path = "/problems/{slug}", tag = "operations",
    params(("slug" = String, Path, description = "The end of a problem's `type`, e.g. `insufficient-stock`")),
    responses(
        (status = 200, description = "The description", content_type = "text/html"),
        (status = 404, description = "NOT_FOUND: no such problem type", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn describe(slug: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let code = ErrorCode::from_slug(&slug)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no problem type `{slug}`")))?;
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>HTTP status: {status}. Code: <code>{code}</code>.</p><p>{description}</p>\
         <p><a href=\"/swagger-ui/\">API documentation</a></p></body></html>",
        title = code.title(),
        status = code.status().as_u16(),
        code = code.as_str(),
        description = code.description().replace('`', ""),
    );
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(page))
}
