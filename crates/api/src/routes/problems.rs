//! `GET /problems/{slug}`: the human description behind each problem `type` URI.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::{
    IntoParams,
    openapi::{
        ObjectBuilder, Required, Type,
        path::{Parameter, ParameterBuilder, ParameterIn},
    },
};

use crate::problem::{ApiError, ErrorCode};

/// The path of a problem description.
#[derive(Debug, Deserialize)]
pub struct ProblemPath {
    /// The end of a problem's `type`, e.g. `insufficient-stock`.
    pub slug: String,
}

/// Written by hand: the derive leaves a parameter whose schema comes from a function
/// (`schema_with`, here the slugs of the catalogue) optional, and a path parameter must be
/// required.
impl IntoParams for ProblemPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("slug")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("The end of a problem's `type`, e.g. `insufficient-stock`."))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.slug()))),
                ))
                .build(),
        ]
    }
}

/// Describes a problem type.
#[utoipa::path(get, path = "/problems/{slug}", operation_id = "describeProblem", tag = "operations",
    params(ProblemPath),
    responses(
        (status = 200, description = "The description", content_type = "text/html"),
        (status = 404, description = "NOT_FOUND: no such problem type", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn describe(path: web::Path<ProblemPath>) -> Result<HttpResponse, ApiError> {
    let slug = &path.slug;
    let code = ErrorCode::from_slug(slug)
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

/// This module's operations, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<super::table::Declared> {
    super::table::declared![describe]
}
