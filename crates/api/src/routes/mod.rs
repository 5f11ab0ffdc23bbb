//! The routes: `/api/v1/...` per resource, `/api/v2/...` (the v1 handlers, and `v2/` for the
//! representations v2 changes), plus health, problem descriptions and API docs.

pub mod auth;
pub mod health;
pub mod index;
pub mod orders;
pub mod problems;
pub mod products;
pub mod reviews;
pub mod table;
pub mod users;
pub mod v2;
pub mod webhooks;

use actix_web::{
    HttpRequest, HttpResponse, HttpResponseBuilder,
    http::{StatusCode, header},
};
use orderly_application::pagination::{ListRequest, MAX_PAGE_LIMIT, PageLimit};
use orderly_domain::RuleError as _;
use serde::Serialize;

use crate::{
    dto::PageQuery,
    etag::{etag, not_modified},
    problem::{ApiError, ErrorCode, FieldError},
};

/// The list request of a paging query, or a 400 naming the bad `limit`.
pub(crate) fn list_request(query: &PageQuery) -> Result<ListRequest, ApiError> {
    let limit = match query.limit {
        None => PageLimit::default(),
        Some(limit) => PageLimit::new(limit).map_err(|error| {
            ApiError::validation(vec![FieldError::new(
                "limit",
                error.code(),
                format!("{error} (got {limit}; maximum {MAX_PAGE_LIMIT})"),
            )])
        })?,
    };
    // `cursor=` (empty) is the first page, as an absent cursor is.
    Ok(ListRequest { limit, cursor: query.cursor.clone().filter(|cursor| !cursor.is_empty()) })
}

/// A page response with `Link: <...>; rel="next"` when there is a next page.
pub(crate) fn page_response<T: Serialize>(
    request: &HttpRequest,
    body: &T,
    next_cursor: Option<&str>,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = next_cursor {
        let query = next_query(request, cursor);
        response
            .insert_header((header::LINK, format!("<{}?{query}>; rel=\"next\"", request.path())));
    }
    response.json(body)
}

/// The query string of the page after this one: the request's own, with `cursor` moved on.
pub(crate) fn next_query(request: &HttpRequest, cursor: &str) -> String {
    let mut pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(request.query_string()).unwrap_or_default();
    pairs.retain(|(key, _)| key != "cursor");
    pairs.push(("cursor".to_owned(), cursor.to_owned()));
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

/// A single resource with its `ETag`, or `304 Not Modified` when the client's copy is current.
pub(crate) fn resource<T: Serialize>(
    request: &HttpRequest,
    version: u64,
    body: &T,
) -> HttpResponse {
    if not_modified(request, version) {
        return HttpResponse::NotModified().insert_header((header::ETAG, etag(version))).finish();
    }
    HttpResponse::Ok().insert_header((header::ETAG, etag(version))).json(body)
}

/// `201 Created` with `ETag` and `Location`: `path` below the version `request` came in on.
pub(crate) fn created<T: Serialize>(
    request: &HttpRequest,
    path: std::fmt::Arguments<'_>,
    version: u64,
    body: &T,
) -> HttpResponse {
    HttpResponseBuilder::new(StatusCode::CREATED)
        .insert_header((header::LOCATION, format!("{}{path}", table::prefix_of(request.path()))))
        .insert_header((header::ETAG, etag(version)))
        .json(body)
}

/// The handler for every method a resource does not declare: 405 with `Allow`.
pub(crate) fn method_not_allowed(
    allow: impl Into<String>,
) -> impl Fn(HttpRequest) -> std::future::Ready<Result<HttpResponse, ApiError>> + Clone {
    let allow: String = allow.into();
    move |request: HttpRequest| {
        std::future::ready(Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{} is not allowed here; use {allow}", request.method()),
        )
        .with_header(header::ALLOW, allow.clone())))
    }
}
