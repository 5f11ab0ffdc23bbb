//! The route table: every operation of the API, listed once.
//!
//! A route's path and method are written in one place, its handler's `#[utoipa::path]`
//! annotation. [`endpoints`] reads them from there, and everything else derives from it: the
//! router ([`configure`]), the `Allow` header of each path's 405, the paths of the OpenAPI
//! document (`openapi.rs`), the methods CORS allows, and the route lists of the tests.

use std::sync::LazyLock;

use actix_web::{
    guard,
    http::Method,
    web::{self, ServiceConfig},
};
use utoipa::openapi::{OpenApi, PathItem, path::Operation};

use super::{
    auth, health, method_not_allowed, orders, problems, products, reviews, users, v2, webhooks,
};

/// One operation: a handler and what its annotation says about it.
pub struct Endpoint {
    path: String,
    method: Method,
    version: Option<Version>,
    /// Makes the endpoint's document again when one is wanted: kept for the life of the
    /// process, the documents of all endpoints (each with every schema it refers to) were most
    /// of an idle server's heap.
    document: fn() -> OpenApi,
    route: fn() -> actix_web::Route,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The path template with its version prefix, the same for the router and for OpenAPI
    /// (`/api/v1/orders/{id}`).
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The method. A `GET` also answers `HEAD` (RFC 9110 section 9.1; the server drops the body).
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The version it is served under; `None` outside the versions (`/health`).
    #[must_use]
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The one-operation OpenAPI document of this endpoint, with the schemas it refers to, its
    /// path with the version prefix.
    pub(crate) fn document(&self) -> OpenApi {
        prefixed(self.version, (self.document)())
    }
}

/// A handler with its annotation: `document` is the OpenAPI document of that one operation.
pub(crate) struct Declared {
    document: fn() -> OpenApi,
    route: fn() -> actix_web::Route,
}

/// Declares handlers, in routing order: a path with a literal segment comes before one with a
/// parameter in its place (`/users/me` before `/users/{id}`), as actix tries them in turn. Each
/// resource module lists its own (`pub(crate) fn endpoints()`), and [`all_declared`] lists the
/// modules.
macro_rules! declared {
    ($( $($segment:ident)::+ ),+ $(,)?) => {
        vec![$(
            $crate::routes::table::Declared::new(
                || {
                    // A document of its own per handler: utoipa collects the operation from the
                    // annotation and every schema it refers to, from the path alone.
                    #[derive(utoipa::OpenApi)]
                    #[openapi(paths($($segment)::+))]
                    struct One;
                    <One as utoipa::OpenApi>::openapi()
                },
                || actix_web::web::route().to($($segment)::+),
            ),
        )+]
    };
}
pub(crate) use declared;

impl Declared {
    pub(crate) fn new(document: fn() -> OpenApi, route: fn() -> actix_web::Route) -> Self {
        Self { document, route }
    }
}

/// A version of the API, served under its own path prefix (ADR 0030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `/api/v1`.
    V1,
    /// `/api/v2`.
    V2,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Self; 2] = [Self::V1, Self::V2];

    /// The current version, the newest: the one new clients are pointed to (the index at `/`,
    /// the document Swagger UI opens first).
    pub const CURRENT: Self = Self::ALL[Self::ALL.len() - 1];

    /// Its name in paths and documents: `v1`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }

    /// Its path prefix, the one place it is written: a handler's annotation names its path
    /// below the prefix (`/orders/{id}`), and the table puts the prefix in front.
    #[must_use]
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::V1 => "/api/v1",
            Self::V2 => "/api/v2",
        }
    }

    /// The version `path` is under, if any.
    #[must_use]
    pub fn of(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|version| {
            path.strip_prefix(version.prefix())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// The API prefix of `path` (`/api/v1` for `/api/v1/orders`), or `""` outside the versions, for
/// the paths an answer names (`Location`, links) in the version the request came in on.
#[must_use]
pub fn prefix_of(path: &str) -> &'static str {
    Version::of(path).map_or("", Version::prefix)
}

/// Every resource's operations, in routing order, each with the version it is served under
/// (`None`: outside the versions, in every version's document).
fn all_declared() -> impl IntoIterator<Item = (Option<Version>, Declared)> {
    use Version::{V1, V2};
    [
        (None, health::endpoints()),
        (None, problems::endpoints()),
        (Some(V1), users::endpoints()),
        (Some(V1), auth::endpoints()),
        (Some(V1), products::endpoints()),
        (Some(V1), reviews::endpoints()),
        (Some(V1), orders::endpoints()),
        (Some(V1), webhooks::endpoints()),
        (Some(V2), v2::users::endpoints()),
        (Some(V2), auth::endpoints()),
        (Some(V2), v2::products::endpoints()),
        (Some(V2), v2::reviews::endpoints()),
        (Some(V2), v2::orders::endpoints()),
        (Some(V2), v2::webhooks::endpoints()),
    ]
    .into_iter()
    .flat_map(|(version, declared)| declared.into_iter().map(move |one| (version, one)))
}

fn operations(item: &PathItem) -> impl Iterator<Item = (Method, &Operation)> {
    [
        (Method::GET, &item.get),
        (Method::HEAD, &item.head),
        (Method::POST, &item.post),
        (Method::PUT, &item.put),
        (Method::PATCH, &item.patch),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::TRACE, &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_ref().map(|operation| (method, operation)))
}

/// `document` with its paths under `version`'s prefix.
fn prefixed(version: Option<Version>, mut document: OpenApi) -> OpenApi {
    let prefix = version.map_or("", Version::prefix);
    document.paths.paths = std::mem::take(&mut document.paths.paths)
        .into_iter()
        .map(|(path, item)| (format!("{prefix}{path}"), item))
        .collect();
    document
}

static ENDPOINTS: LazyLock<Vec<Endpoint>> = LazyLock::new(|| {
    all_declared()
        .into_iter()
        .map(|(version, declared)| {
            let document = prefixed(version, (declared.document)());
            let found: Vec<(String, Method)> = document
                .paths
                .paths
                .iter()
                .flat_map(|(path, item)| operations(item).map(|(method, _)| (path.clone(), method)))
                .collect();
            let [(path, method)] = <[_; 1]>::try_from(found)
                .expect("an annotation declares one operation: one path and one method");
            Endpoint { path, method, version, document: declared.document, route: declared.route }
        })
        .collect()
});

/// Every operation of the API, in routing order.
#[must_use]
pub fn endpoints() -> &'static [Endpoint] {
    &ENDPOINTS
}

/// The methods a path answers, as its 405 lists them in `Allow`: `GET` brings `HEAD`.
#[must_use]
pub fn allowed_methods(path: &str) -> Vec<Method> {
    let declared: Vec<&Method> =
        endpoints().iter().filter(|e| e.path == path).map(Endpoint::method).collect();
    let order =
        [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    let answers = |method: &Method| {
        declared.contains(&method) || (*method == Method::HEAD && declared.contains(&&Method::GET))
    };
    let mut allowed: Vec<Method> = order.iter().filter(|m| answers(m)).cloned().collect();
    allowed.extend(declared.into_iter().filter(|m| !order.contains(m)).cloned());
    allowed
}

/// Every method some operation declares, for CORS.
#[must_use]
pub fn declared_methods() -> Vec<Method> {
    let mut methods: Vec<Method> = Vec::new();
    for endpoint in endpoints() {
        if !methods.contains(&endpoint.method) {
            methods.push(endpoint.method.clone());
        }
    }
    methods
}

/// The route of `endpoint`, guarded by its method.
fn route(endpoint: &Endpoint) -> actix_web::Route {
    let route = (endpoint.route)();
    if endpoint.method == Method::GET {
        route.guard(guard::Any(guard::Get()).or(guard::Head()))
    } else {
        route.guard(guard::Method(endpoint.method.clone()))
    }
}

/// Registers every path with its operations; any other method answers 405 with `Allow`.
///
/// Paths are registered in scopes of their first segment below the version (`/api/v1/products`
/// holds `/api/v1/products` and `/api/v1/products/{id}`). The router compares a scope's prefix
/// as text, so a request runs the pattern of a path with parameters only for the paths of its
/// own scope, not for every such path registered before its own.
pub(crate) fn configure(config: &mut ServiceConfig) {
    let mut scopes: Vec<(&str, Vec<&str>)> = Vec::new();
    for endpoint in endpoints() {
        let (path, prefix) = (endpoint.path(), scope_of(endpoint.path()));
        match scopes.iter_mut().find(|(scope, _)| *scope == prefix) {
            Some((_, paths)) if paths.contains(&path) => {}
            Some((_, paths)) => paths.push(path),
            None => scopes.push((prefix, vec![path])),
        }
    }
    for (prefix, paths) in scopes {
        let scope = paths.into_iter().fold(web::scope(prefix), |scope, path| {
            let resource = endpoints()
                .iter()
                .filter(|endpoint| endpoint.path == path)
                .fold(web::resource(&path[prefix.len()..]), |resource, endpoint| {
                    resource.route(route(endpoint))
                });
            let allowed = allowed_methods(path);
            let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            scope.service(resource.default_service(web::to(method_not_allowed(allow.join(", ")))))
        });
        config.service(scope);
    }
}

/// The scope `path` is registered in: its version's prefix and the first segment below it.
fn scope_of(path: &str) -> &str {
    let version = prefix_of(path).len();
    let below = &path[version..];
    let segment = below.get(1..).and_then(|rest| rest.find('/')).map_or(below.len(), |at| at + 1);
    &path[..version + segment]
}

#[cfg(test)]
mod tests {
    use actix_web::dev::ResourceDef;

    use super::*;

    /// `path` with each `{parameter}` filled in, as a client would send it.
    fn instance(path: &str) -> String {
        path.replace("{id}", "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d").replace("{slug}", "not-found")
    }

    #[test]
    fn no_path_is_hidden_behind_an_earlier_one() {
        let mut seen: Vec<&str> = Vec::new();
        for endpoint in endpoints() {
            let path = endpoint.path();
            if seen.contains(&path) {
                continue;
            }
            for earlier in &seen {
                assert!(
                    !ResourceDef::new(*earlier).is_match(&instance(path)),
                    "{earlier} is routed before {path} and takes its requests"
                );
            }
            seen.push(path);
        }
    }

    #[test]
    fn a_scope_is_the_version_and_the_first_segment_below_it_and_never_a_pattern() {
        assert_eq!(scope_of("/api/v1/products/{id}"), "/api/v1/products");
        assert_eq!(scope_of("/api/v1/products"), "/api/v1/products");
        assert_eq!(scope_of("/api/v2/users/{id}/orders"), "/api/v2/users");
        assert_eq!(scope_of("/health"), "/health");
        assert_eq!(scope_of("/problems/{slug}"), "/problems");
        for endpoint in endpoints() {
            assert!(
                !scope_of(endpoint.path()).contains('{'),
                "{} scoped by a pattern",
                endpoint.path()
            );
        }
    }

    #[test]
    fn the_prefix_of_a_path_is_its_version_or_nothing() {
        assert_eq!(prefix_of("/api/v1/orders/1"), "/api/v1");
        assert_eq!(prefix_of("/api/v2/orders/1"), "/api/v2");
        assert_eq!(prefix_of("/api/v1"), "/api/v1");
        assert_eq!(prefix_of("/api/v10/orders"), "");
        assert_eq!(prefix_of("/health"), "");
    }

    #[test]
    fn each_method_of_a_path_belongs_to_one_operation() {
        for (i, a) in endpoints().iter().enumerate() {
            for b in &endpoints()[i + 1..] {
                assert!(a.path != b.path || a.method != b.method, "{} {} twice", a.method, a.path);
            }
        }
    }

    #[test]
    fn a_path_allows_its_declared_methods_and_head_with_get() {
        assert_eq!(
            allowed_methods("/api/v1/products/{id}"),
            [Method::GET, Method::HEAD, Method::PATCH, Method::DELETE]
        );
        assert_eq!(allowed_methods("/api/v1/auth/token"), [Method::POST]);
        assert_eq!(allowed_methods("/health"), [Method::GET, Method::HEAD]);
        for endpoint in endpoints() {
            assert!(allowed_methods(endpoint.path()).contains(endpoint.method()));
        }
    }
}
