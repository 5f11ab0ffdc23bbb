//! The OpenAPI 3.1 document, generated from the handlers' annotations, plus what applies to
//! every operation (security schemes, the problem responses any route may give).

use utoipa::{
    Modify, OpenApi,
    openapi::{
        ContentBuilder, ObjectBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder, Schema,
        Type,
        example::ExampleBuilder,
        header::Header,
        path::{Operation, Parameter, ParameterBuilder, ParameterIn},
        schema::SchemaType,
        security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme},
    },
};

use crate::{
    dto::schema,
    problem::{ErrorCode, FieldError, Problem},
    routes::table::{Version, endpoints},
};

/// Where the first version's document was served before there were two, kept for existing links.
pub const DOCUMENT_PATH: &str = "/api-docs/openapi.json";

/// Where the document of `version` is served: `/api-docs/v1/openapi.json`.
#[must_use]
pub const fn document_path(version: Version) -> &'static str {
    match version {
        Version::V1 => "/api-docs/v1/openapi.json",
        Version::V2 => "/api-docs/v2/openapi.json",
    }
}

/// What the document of `version` says first.
fn description(version: Version) -> String {
    let prefix = version.prefix();
    let lists = match version {
        Version::V1 => "Lists use cursor pagination: pass `next_cursor` back as `cursor`.",
        Version::V2 => {
            "Lists carry their page links in the body: follow `next` while `has_more` is true."
        }
    };
    format!(
        "Users, a product catalogue, and orders that move through an explicit state machine.\n\n\
        Authenticate with the OAuth2 password flow (`POST {prefix}/auth/token`; the Authorize button \
        does it for you), then send `Authorization: Bearer <access_token>`. Every error is an RFC 9457 \
        `application/problem+json` body with a stable `code`; `GET` its `type` for a description.\n\n\
        {lists} Single resources carry an \
        `ETag`; send it back as `If-Match` on changes, or `If-None-Match` on reads."
    )
}

/// What every version's document shares; [`document`] adds the version's operations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Orderly API", license(name = "MIT OR Apache-2.0")),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "users", description = "Registration and accounts"),
        (name = "auth", description = "OAuth2 tokens"),
        (name = "products", description = "The catalogue"),
        (name = "orders", description = "Orders and their state machine"),
        (name = "reviews", description = "Product reviews by customers who received the product"),
        (name = "webhooks", description = "Endpoints that receive the events, signed per Standard Webhooks (admins)"),
        (name = "operations", description = "Health and problem descriptions"),
    )
)]
struct Shared;

/// The OpenAPI document of `version`: its operations from the route table, with the schemas
/// they refer to, and the operations outside the versions (`/health`).
#[must_use]
pub fn document(version: Version) -> Document {
    let mut openapi = Shared::openapi();
    openapi.info.version = match version {
        Version::V1 => "1.0.0",
        Version::V2 => "2.0.0",
    }
    .to_owned();
    openapi.info.description = Some(description(version));
    for endpoint in endpoints() {
        if endpoint.version().is_none_or(|served| served == version) {
            openapi.merge(endpoint.document());
        }
    }
    SecuritySchemes(version).modify(&mut openapi);
    CommonResponses.modify(&mut openapi);
    crate::events::Webhooks.modify(&mut openapi);
    openapi
}

struct SecuritySchemes(Version);

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let token_url = format!("{}/auth/token", self.0.prefix());
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
                    token_url.clone(),
                    Scopes::new(),
                    token_url,
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

/// The rate-limit response headers (draft-ietf-httpapi-ratelimit-headers, and `Retry-After` on
/// a 429), described once in `components/headers` and referred to from each response.
const RATE_LIMIT_HEADERS: &[(&str, &str)] = &[
    (
        "RateLimit-Policy",
        "The policies that applied, e.g. `\"anonymous\";q=300;w=60` (quota q per window w seconds)",
    ),
    (
        "RateLimit",
        "What is left of each policy, e.g. `\"anonymous\";r=299;t=1` (r requests left; t seconds until the quota is whole again)",
    ),
    ("Retry-After", "Seconds until one request is allowed again"),
];

/// A reference to the shared header `name` (`components/headers`).
fn shared_header(name: &str) -> RefOr<Header> {
    RefOr::Ref(Ref::new(format!("#/components/headers/{name}")))
}

/// The `RateLimit-Policy` and `RateLimit` headers on every response of a limited route, and the
/// 429 problem with `Retry-After`.
fn add_rate_limits(operation: &mut Operation) {
    let responses = &mut operation.responses.responses;
    responses.entry("429".to_owned()).or_insert_with(|| {
        problem("RATE_LIMITED: a rate-limit policy refused the request (see `Retry-After`)")
    });
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        for name in ["RateLimit-Policy", "RateLimit"] {
            response.headers.entry(name.to_owned()).or_insert_with(|| shared_header(name));
        }
        if status == "429" {
            response
                .headers
                .entry("Retry-After".to_owned())
                .or_insert_with(|| shared_header("Retry-After"));
        }
    }
}

/// The conditional request headers (`etag.rs`), from the statuses they cause: a read that
/// answers 304 takes `If-None-Match`, a change that answers 412 takes `If-Match`. Each is
/// described here, once, with its quoting, whatever a route's annotation says of it.
fn add_conditional_headers(operation: &mut Operation) {
    for (status, name, schema) in [
        ("304", "If-None-Match", schema::if_none_match as fn() -> utoipa::openapi::Object),
        ("412", "If-Match", schema::if_match),
    ] {
        if !operation.responses.responses.contains_key(status) {
            continue;
        }
        let header = RefOr::T(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .schema(Some(schema()))
                .build(),
        );
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        let declared = parameters.iter_mut().find(|parameter| {
            matches!(parameter, RefOr::T(parameter)
                if parameter.parameter_in == ParameterIn::Header
                    && parameter.name.eq_ignore_ascii_case(name))
        });
        match declared {
            Some(declared) => *declared = header,
            None => parameters.push(header),
        }
    }
}

/// Gives each parameter its schema's description: utoipa puts a parameter's description on
/// nothing when its schema comes from a function (`schema_with`), and Swagger UI and generated
/// clients show the parameter's own.
fn describe_parameters(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else { continue };
        if parameter.description.is_none()
            && let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut()
        {
            parameter.description = schema.description.take();
        }
    }
}

/// Paths answered without the database (or anything else that could fail).
const SELF_CONTAINED: &[&str] = &["/health", "/problems/{slug}"];

/// The problem codes `description` names, in order (`VALIDATION_FAILED or MALFORMED_REQUEST`).
fn named_codes(description: &str) -> Vec<ErrorCode> {
    let mut codes = Vec::new();
    for word in description.split(|c: char| !(c.is_ascii_uppercase() || c == '_')) {
        if let Some(code) = ErrorCode::ALL.iter().copied().find(|code| code.as_str() == word)
            && !codes.contains(&code)
        {
            codes.push(code);
        }
    }
    codes
}

/// Whether a parameter can fail to parse (a number, a UUID, a boolean, a named enumeration),
/// which is a `MALFORMED_REQUEST`. A string without a format is read as text, and any rule on it
/// (a pattern, a list of values) is checked by the handler, with its own problem.
fn can_be_malformed(parameter: &Parameter) -> bool {
    match &parameter.schema {
        Some(RefOr::T(Schema::Object(object))) => {
            let free_string = match &object.schema_type {
                SchemaType::Type(Type::String) => true,
                SchemaType::Array(types) => {
                    types.iter().all(|t| matches!(t, Type::String | Type::Null))
                }
                _ => false,
            };
            !(free_string && object.format.is_none())
        }
        _ => true,
    }
}

/// Adds a problem response, or names the problem's codes in the one the route documents.
fn add_problem(operation: &mut Operation, status: &str, description: &str) {
    let responses = &mut operation.responses.responses;
    let Some(RefOr::T(existing)) = responses.get_mut(status) else {
        responses.insert(status.to_owned(), problem(description));
        return;
    };
    let named = named_codes(&existing.description);
    if named_codes(description).iter().any(|code| !named.contains(code)) {
        existing.description = format!("{}; {description}", existing.description);
    }
}

fn add_common(path: &str, operation: &mut Operation) {
    if operation.security.as_ref().is_some_and(|security| !security.is_empty()) {
        add_problem(
            operation,
            "401",
            "UNAUTHENTICATED: missing, malformed or expired access token (with `WWW-Authenticate: Bearer`)",
        );
    }
    let malformed_parameter =
        operation.parameters.iter().flatten().any(|parameter| match parameter {
            RefOr::T(parameter) => can_be_malformed(parameter),
            RefOr::Ref(_) => true,
        });
    if malformed_parameter {
        add_problem(
            operation,
            "400",
            "MALFORMED_REQUEST: a path or query parameter has the wrong format",
        );
    }
    if operation.request_body.is_some() {
        add_problem(operation, "400", "VALIDATION_FAILED or MALFORMED_REQUEST");
        add_problem(operation, "413", "PAYLOAD_TOO_LARGE");
        add_problem(operation, "415", "UNSUPPORTED_MEDIA_TYPE");
    }
    if !SELF_CONTAINED.contains(&path) {
        add_problem(operation, "500", "INTERNAL_ERROR: an opaque body; quote `request_id`");
        add_problem(operation, "503", "DATABASE_UNAVAILABLE or DATABASE_BUSY (with `Retry-After`)");
    }
}

/// The request target of an example: the path with its parameters filled in.
fn example_instance(path: &str) -> String {
    path.replace("{id}", "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d")
        .replace("{slug}", "insufficient-stock")
}

/// An example of the problem `code` as `path` answers it.
fn example(code: ErrorCode, path: &str) -> serde_json::Value {
    let detail = code.description().split(". ").next().unwrap_or_default().replace('`', "");
    let mut problem = serde_json::json!({
        "type": code.type_uri(),
        "title": code.title(),
        "status": code.status().as_u16(),
        "detail": detail.trim_end_matches('.'),
        "instance": example_instance(path),
        "code": code.as_str(),
        "request_id": "0193a0b2-7c4e-7d1a-9f00-000000000001",
    });
    let extensions = match code {
        ErrorCode::ValidationFailed => serde_json::json!({"errors": [
            {"field": "name", "code": "length", "message": "name must be at most 100 characters long"}
        ]}),
        ErrorCode::OrderInvalidTransition => {
            serde_json::json!({"current_status": "shipped", "allowed_actions": ["deliver"]})
        }
        ErrorCode::InsufficientStock => serde_json::json!({
            "product_id": "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d", "requested": 5, "available": 2
        }),
        _ => serde_json::json!({}),
    };
    if let (Some(problem), serde_json::Value::Object(extensions)) =
        (problem.as_object_mut(), extensions)
    {
        problem.extend(extensions);
    }
    problem
}

/// Gives each problem response of `path` one example per code its description names, so that
/// Swagger UI shows what this route answers rather than one problem for all.
fn add_examples(path: &str, operation: &mut Operation) {
    for response in operation.responses.responses.values_mut() {
        let RefOr::T(response) = response else { continue };
        let codes = named_codes(&response.description);
        let Some(RefOr::T(content)) = response.content.get_mut(crate::problem::PROBLEM_JSON) else {
            continue;
        };
        for code in codes {
            let example = ExampleBuilder::new()
                .summary(code.title())
                .value(Some(example(code, path)))
                .build();
            content.examples.insert(code.as_str().to_owned(), RefOr::T(example));
        }
    }
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
                add_conditional_headers(operation);
                describe_parameters(operation);
                add_common(path, operation);
                if limited {
                    add_rate_limits(operation);
                }
                add_examples(path, operation);
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in RATE_LIMIT_HEADERS {
            components.headers.insert((*name).to_owned(), header(description));
        }
    }
}

/// The document of `version` as pretty JSON, as committed in `docs/openapi-<version>.json`.
///
/// # Panics
/// Never: the document is plain data.
#[must_use]
pub fn openapi_json(version: Version) -> &'static str {
    static JSON: std::sync::LazyLock<Vec<(Version, String)>> = std::sync::LazyLock::new(|| {
        Version::ALL
            .into_iter()
            .map(|version| {
                (version, document(version).to_pretty_json().expect("the document serializes"))
            })
            .collect()
    });
    JSON.iter().find(|(of, _)| *of == version).map_or("", |(_, json)| json)
}

/// Marks every operation of `version` deprecated, with the 410 it gives after its sunset: the
/// document served while the version is deprecated (`deprecation.rs`). The committed documents
/// are the plain ones.
fn deprecate(openapi: &mut Document, version: Version) {
    let prefix = version.prefix();
    let note = format!(
        "\n\n**This version is deprecated.** Its responses carry `Deprecation`, `Sunset` (the date \
        it is retired) and `Link` headers naming the migration guide (`rel=\"deprecation\"`) and \
        each route's successor (`rel=\"successor-version\"`); after the sunset every route under \
        `{prefix}` answers 410 `API_VERSION_SUNSET`."
    );
    if let Some(description) = openapi.info.description.as_mut() {
        description.push_str(&note);
    }
    for (path, item) in &mut openapi.paths.paths {
        if Version::of(path) != Some(version) {
            continue;
        }
        for operation in
            [&mut item.get, &mut item.post, &mut item.patch, &mut item.put, &mut item.delete]
                .into_iter()
                .flatten()
        {
            operation.deprecated = Some(utoipa::openapi::Deprecated::True);
            add_problem(
                operation,
                "410",
                "API_VERSION_SUNSET: this version is past its sunset date",
            );
            add_examples(path, operation);
        }
    }
}

/// The document served for `version`: [`openapi_json`], or its deprecated form while the
/// version is deprecated. Each is built once per process, never per request.
#[must_use]
pub fn served_json(version: Version, deprecated: bool) -> &'static str {
    static DEPRECATED: std::sync::LazyLock<Vec<(Version, String)>> =
        std::sync::LazyLock::new(|| {
            Version::ALL
                .into_iter()
                .map(|version| {
                    let mut document = document(version);
                    deprecate(&mut document, version);
                    (version, document.to_pretty_json().expect("the document serializes"))
                })
                .collect()
        });
    if !deprecated {
        return openapi_json(version);
    }
    DEPRECATED.iter().find(|(of, _)| *of == version).map_or("", |(_, json)| json)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::routes::table::endpoints;

    /// Every operation of the document, as `(method, path, operation)`.
    fn operations(document: &Document) -> Vec<(&'static str, String, &Operation)> {
        let mut all = Vec::new();
        for (path, item) in &document.paths.paths {
            for (method, operation) in [
                ("get", &item.get),
                ("post", &item.post),
                ("put", &item.put),
                ("patch", &item.patch),
                ("delete", &item.delete),
                ("head", &item.head),
                ("options", &item.options),
                ("trace", &item.trace),
            ] {
                if let Some(operation) = operation {
                    all.push((method, path.clone(), operation));
                }
            }
        }
        all
    }

    #[test]
    fn every_operation_has_its_own_camel_case_operation_id() {
        for version in Version::ALL {
            let document = super::document(version);
            let mut seen: HashMap<String, String> = HashMap::new();
            for (method, path, operation) in operations(&document) {
                let id = operation.operation_id.clone().unwrap_or_default();
                assert!(!id.is_empty(), "{method} {path} has no operationId");
                assert!(
                    id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && id.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{method} {path}: operationId `{id}` is not lowerCamelCase"
                );
                let this = format!("{method} {path}");
                if let Some(other) = seen.insert(id.clone(), this.clone()) {
                    panic!("operationId `{id}` is used by {other} and by {this}");
                }
            }
        }
    }

    #[test]
    fn every_problem_response_shows_examples_of_codes_with_its_status() {
        for version in Version::ALL {
            let document = super::document(version);
            for (method, path, operation) in operations(&document) {
                for (status, response) in &operation.responses.responses {
                    let RefOr::T(response) = response else { continue };
                    let what = format!("{method} {path} {status}");
                    // A typo in a code would silently drop it from the examples. (Names in
                    // backticks are settings and headers, not codes.)
                    let prose: String =
                        response.description.split('`').step_by(2).collect::<Vec<_>>().join(" ");
                    for word in prose.split(|c: char| !(c.is_ascii_uppercase() || c == '_')) {
                        assert!(
                            !(word.contains('_') && word.chars().any(|c| c.is_ascii_uppercase()))
                                || ErrorCode::ALL.iter().any(|c| c.as_str() == word),
                            "{what} names `{word}`, which is not in the catalogue"
                        );
                    }
                    if !status.starts_with('4') && !status.starts_with('5') {
                        continue;
                    }
                    let content = match response.content.get(crate::problem::PROBLEM_JSON) {
                        Some(RefOr::T(content)) => content,
                        _ => panic!("{what} is not a problem response"),
                    };
                    assert!(!content.examples.is_empty(), "{what} has no example");
                    for (name, example) in &content.examples {
                        let RefOr::T(example) = example else { panic!("{what}: inline examples") };
                        let value = example.value.clone().unwrap_or_default();
                        let code = ErrorCode::ALL
                            .iter()
                            .find(|code| code.as_str() == name)
                            .unwrap_or_else(|| panic!("{what}: `{name}` is not a code"));
                        assert_eq!(value["code"], code.as_str(), "{what}");
                        assert_eq!(value["status"].to_string(), *status, "{what}: {name}");
                        assert_eq!(value["type"], code.type_uri(), "{what}");
                        assert_eq!(value["instance"], example_instance(&path), "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_route_documents_only_the_problems_it_can_give() {
        let document = super::document(Version::V1);
        let item = |path: &str| document.paths.paths.get(path).expect(path).clone();
        let health = item("/health").get.expect("GET /health");
        assert!(
            health.responses.responses.keys().all(|status| status == "200"),
            "liveness touches nothing: {:?}",
            health.responses.responses.keys()
        );
        let register = item("/api/v1/users").post.expect("POST /api/v1/users");
        let conflict = register.responses.responses.get("409").expect("409");
        let RefOr::T(conflict) = conflict else { panic!("inline") };
        assert_eq!(named_codes(&conflict.description), [ErrorCode::EmailTaken]);
        let me = item("/api/v1/users/me").get.expect("GET /api/v1/users/me");
        assert!(!me.responses.responses.contains_key("400"), "no parameter, no body");
    }

    #[test]
    fn a_deprecated_version_marks_its_operations_and_documents_the_410() {
        let plain: serde_json::Value =
            serde_json::from_str(served_json(Version::V1, false)).expect("json");
        assert_eq!(served_json(Version::V1, false), openapi_json(Version::V1));
        let deprecated: serde_json::Value =
            serde_json::from_str(served_json(Version::V1, true)).expect("json");
        let mut operations = 0;
        for (path, item) in deprecated["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("an item") {
                let versioned = path.starts_with("/api/v1/");
                assert_eq!(operation["deprecated"] == true, versioned, "{method} {path}");
                assert_eq!(
                    operation["responses"].get("410").is_some(),
                    versioned,
                    "{method} {path}"
                );
                assert!(
                    plain["paths"][path][method].get("deprecated").is_none(),
                    "{method} {path}"
                );
                if versioned {
                    let example = &operation["responses"]["410"]["content"]
                        [crate::problem::PROBLEM_JSON]["examples"]["API_VERSION_SUNSET"]["value"];
                    assert_eq!(example["status"], 410, "{method} {path}");
                    operations += 1;
                }
            }
        }
        assert!(operations > 10, "{operations}");
        assert!(
            deprecated["info"]["description"]
                .as_str()
                .is_some_and(|text| text.contains("This version is deprecated")),
        );
    }

    /// Every document as JSON, for the checks that walk it the way a client generator does.
    fn documents() -> Vec<(Version, serde_json::Value)> {
        Version::ALL
            .into_iter()
            .map(|version| {
                let json = serde_json::to_value(super::document(version)).expect("json");
                (version, json)
            })
            .collect()
    }

    /// `(method path, operation)` of every operation of a document as JSON.
    fn json_operations(document: &serde_json::Value) -> Vec<(String, &serde_json::Value)> {
        let mut all = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                all.push((format!("{method} {path}"), operation));
            }
        }
        all
    }

    #[test]
    fn parameters_are_described_and_path_parameters_required() {
        for (version, document) in documents() {
            for (what, operation) in json_operations(&document) {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let name = &parameter["name"];
                    assert!(
                        parameter["description"].as_str().is_some_and(|text| !text.is_empty()),
                        "{version:?} {what}: parameter {name} has no description"
                    );
                    if parameter["in"] == "path" {
                        assert_eq!(parameter["required"], true, "{version:?} {what}: {name}");
                    }
                }
            }
        }
    }

    #[test]
    fn conditional_headers_are_parameters_of_the_routes_they_apply_to() {
        for (version, document) in documents() {
            for (what, operation) in json_operations(&document) {
                let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
                let header = |name: &str| {
                    parameters.iter().find(|p| p["in"] == "header" && p["name"] == name).cloned()
                };
                for (status, name) in [("304", "If-None-Match"), ("412", "If-Match")] {
                    let answers = operation["responses"].get(status).is_some();
                    let documented = header(name);
                    assert_eq!(answers, documented.is_some(), "{version:?} {what}: {name}");
                    if let Some(documented) = documented {
                        assert_eq!(documented["schema"]["examples"][0], "\"v2\"", "{what}");
                        assert!(
                            documented["description"]
                                .as_str()
                                .is_some_and(|text| text.contains("quotes included")),
                            "{version:?} {what}: {name} says nothing of its quoting"
                        );
                    }
                }
            }
        }
    }

    /// Whether a property's schema allows `null`.
    fn nullable(schema: &serde_json::Value) -> bool {
        schema["type"].as_array().is_some_and(|types| types.iter().any(|t| t == "null"))
            || schema["oneOf"]
                .as_array()
                .is_some_and(|cases| cases.iter().any(|case| case["type"] == "null"))
    }

    /// The component schemas `value` refers to, directly or through other components.
    fn referred(document: &serde_json::Value, value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(object) => {
                if let Some(name) = object
                    .get("$ref")
                    .and_then(|r| r.as_str())
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    && !found.iter().any(|seen| seen == name)
                {
                    found.push(name.to_owned());
                    referred(document, &document["components"]["schemas"][name], found);
                }
                object.values().for_each(|inner| referred(document, inner, found));
            }
            serde_json::Value::Array(values) => {
                values.iter().for_each(|inner| referred(document, inner, found));
            }
            _ => {}
        }
    }

    #[test]
    fn members_always_sent_but_possibly_null_are_required() {
        for (version, document) in documents() {
            let (mut answered, mut sent) = (Vec::new(), Vec::new());
            for (_, operation) in json_operations(&document) {
                referred(&document, &operation["responses"], &mut answered);
                referred(&document, &operation["requestBody"], &mut sent);
                referred(&document, &operation["parameters"], &mut sent);
            }
            assert!(answered.iter().any(|name| name == "Problem"));
            // A schema only ever answered is one the server serializes: an `Option` it always
            // sends is `null` when empty, so the member is required; one it skips is not nullable.
            for name in answered.iter().filter(|name| !sent.contains(name)) {
                let schema = &document["components"]["schemas"][name];
                let required = schema["required"].as_array().cloned().unwrap_or_default();
                for (member, property) in schema["properties"].as_object().into_iter().flatten() {
                    if nullable(property) {
                        assert!(
                            required.iter().any(|r| r == member),
                            "{version:?} {name}.{member} may be null but is not required: add \
                             #[schema(required = true)] (it is always sent)"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_rate_limit_headers_are_described_once() {
        for (version, document) in documents() {
            for name in ["RateLimit", "RateLimit-Policy", "Retry-After"] {
                assert!(
                    document["components"]["headers"][name]["description"].is_string(),
                    "{version:?}: {name}"
                );
            }
            let mut referenced = 0;
            for (what, operation) in json_operations(&document) {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    for (name, header) in response["headers"].as_object().into_iter().flatten() {
                        if name.starts_with("RateLimit") || name == "Retry-After" {
                            assert_eq!(
                                header["$ref"],
                                format!("#/components/headers/{name}"),
                                "{version:?} {what} {status}"
                            );
                            referenced += 1;
                        }
                    }
                }
            }
            assert!(referenced > 0, "{version:?}");
        }
    }

    #[test]
    fn self_contained_paths_are_routes() {
        for path in SELF_CONTAINED {
            assert!(endpoints().iter().any(|e| e.path() == *path), "{path}");
        }
    }

    #[test]
    fn the_document_has_exactly_the_operations_of_the_route_table() {
        for version in Version::ALL {
            let document = super::document(version);
            let mut documented: Vec<String> = operations(&document)
                .into_iter()
                .map(|(method, path, _)| format!("{} {path}", method.to_uppercase()))
                .collect();
            let mut routed: Vec<String> = endpoints()
                .iter()
                .filter(|e| e.version().is_none_or(|served| served == version))
                .map(|e| format!("{} {}", e.method(), e.path()))
                .collect();
            documented.sort();
            routed.sort();
            assert_eq!(documented, routed);
        }
    }
}
