//! The OpenAPI 3.1 document, generated from the handlers' annotations, plus what applies to
//! every operation (security schemes, the problem responses any route may give).

use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, ObjectBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder, Type,
        header::Header,
        path::Operation,
        security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme},
    },
};

use crate::{
    problem::{FieldError, Problem},
    routes::{auth, health, orders, problems, products, users},
};

/// The API's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orderly API",
        version = "1.0.0",
        description = "Users, a product catalogue, and orders that move through an explicit state machine.\n\n\
            Authenticate with the OAuth2 password flow (`POST /api/v1/auth/token`; the Authorize button \
            does it for you), then send `Authorization: Bearer <access_token>`. Every error is an RFC 9457 \
            `application/problem+json` body with a stable `code`; `GET` its `type` for a description.\n\n\
            Lists use cursor pagination: pass `next_cursor` back as `cursor`. Single resources carry an \
            `ETag`; send it back as `If-Match` on changes, or `If-None-Match` on reads.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        users::register, users::me, users::list, users::get, users::update, users::delete, users::orders,
        auth::token, auth::revoke,
        products::list, products::get, products::create, products::update, products::archive,
        orders::place, orders::list, orders::get, orders::transition, orders::history,
        health::health, health::ready, problems::describe,
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&SecuritySchemes, &CommonResponses),
    tags(
        (name = "users", description = "Registration and accounts"),
        (name = "auth", description = "OAuth2 tokens"),
        (name = "products", description = "The catalogue"),
        (name = "orders", description = "Orders and their state machine"),
        (name = "operations", description = "Health and problem descriptions"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::Password(Password::with_refresh_url(
                    "/api/v1/auth/token",
                    Scopes::new(),
                    "/api/v1/auth/token",
                ))],
                "Log in with your e-mail address as the username.",
            )),
        );
    }
}

/// Adds the problem responses that any operation may give, so each route documents only its own.
struct CommonResponses;

fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                crate::problem::PROBLEM_JSON,
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            )
            .build(),
    )
}

fn header(description: &str) -> RefOr<Header> {
    let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
    header.description = Some(description.to_owned());
    RefOr::T(header)
}

/// The `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers) on
/// every response of a limited route, and the 429 problem with `Retry-After`.
fn add_rate_limits(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    responses.entry("429".to_owned()).or_insert_with(|| {
        problem("RATE_LIMITED: a rate-limit policy refused the request (see `Retry-After`)")
    });
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        response.headers.entry("RateLimit-Policy".to_owned()).or_insert_with(|| {
            header("The policies that applied, e.g. `\"anonymous\";q=300;w=60` (quota q per window w seconds)")
        });
        response.headers.entry("RateLimit".to_owned()).or_insert_with(|| {
            header("What is left of each policy, e.g. `\"anonymous\";r=299;t=1` (r requests left; t seconds until the quota is whole again)")
        });
        if status == "429" {
            response
                .headers
                .entry("Retry-After".to_owned())
                .or_insert_with(|| header("Seconds until one request is allowed again"));
        }
    }
}

fn add_common(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| problem(description));
    };
    if operation.security.as_ref().is_some_and(|security| !security.is_empty()) {
        add(
            "401",
            "UNAUTHENTICATED: missing, malformed or expired access token (with `WWW-Authenticate: Bearer`)",
        );
    }
    if operation.parameters.as_ref().is_some_and(|parameters| !parameters.is_empty()) {
        add("400", "MALFORMED_REQUEST: a path or query parameter has the wrong format");
    }
    if operation.request_body.is_some() {
        add("400", "VALIDATION_FAILED or MALFORMED_REQUEST");
        add("413", "PAYLOAD_TOO_LARGE");
        add("415", "UNSUPPORTED_MEDIA_TYPE");
    }
    add("500", "INTERNAL_ERROR: an opaque body; quote `request_id`");
    add("503", "DATABASE_UNAVAILABLE or DATABASE_BUSY (with `Retry-After`)");
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut Document) {
        for (path, item) in &mut openapi.paths.paths {
            let limited = !crate::rate_limit::UNLIMITED.contains(&path.as_str());
            for operation in
                [&mut item.get, &mut item.post, &mut item.patch, &mut item.put, &mut item.delete]
                    .into_iter()
                    .flatten()
            {
                add_common(operation);
                if limited {
                    add_rate_limits(operation);
                }
            }
        }
    }
}

/// The document as pretty JSON, as committed in `docs/openapi.json`.
///
/// # Panics
/// Never: the document is plain data.
#[must_use]
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serializes")
}
