//! The deprecation lifecycle of an API version, as the operator dates it (`API_V1_DEPRECATED_AT`,
//! `API_V1_SUNSET_AT`; ADR 0031).
//!
//! From the deprecation date, every response under the version's prefix, success or problem,
//! carries:
//! - `Deprecation: @<unix seconds>` (RFC 9745: a structured-field date);
//! - `Sunset: <IMF-fixdate>` when a sunset is set (RFC 8594);
//! - `Link` (appended to any link the response already has, such as a list's `rel="next"`):
//!   `<guide>; rel="deprecation"` for the migration guide, and `<path>; rel="successor-version"`
//!   with the same resource in the next version when the route table has it for this method.
//!
//! From the sunset, when enforced, every route of the version answers `410 API_VERSION_SUNSET`
//! (with the same headers) instead. Each deprecated request is counted in
//! `orderly_api_deprecated_requests_total{version, route}`, and the first one of each caller
//! (user, or client address when anonymous) each day is logged, so that operators see who still
//! has to move. Before the deprecation date nothing of this happens.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
};

use actix_web::{
    Error, HttpMessage as _, HttpRequest,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    error::InternalError,
    http::{
        Method,
        header::{self, HeaderMap, HeaderName, HeaderValue},
    },
    middleware::Next,
    web,
};
use orderly_domain::time::Timestamp;

use crate::{
    auth::AuthenticatedUser,
    metrics::UNMATCHED,
    problem::{ApiError, ErrorCode},
    routes::table::{Version, endpoints},
    state::{ApiSettings, ApiState},
};

/// `Deprecation` (RFC 9745).
pub const DEPRECATION: HeaderName = HeaderName::from_static("deprecation");

/// `Sunset` (RFC 8594).
pub const SUNSET: HeaderName = HeaderName::from_static("sunset");

/// Callers remembered per day for the log line; beyond, further callers that day are counted
/// but not logged (one line says so).
pub const LOGGED_CALLERS_PER_DAY: usize = 10_000;

/// The dates of a deprecated version, from the operator's settings (checked there: a sunset
/// never comes before the deprecation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    /// From this instant the version is deprecated.
    pub deprecated_at: Timestamp,
    /// From this instant the version is gone (410), if enforced; `None`: no date yet.
    pub sunset_at: Option<Timestamp>,
    /// Whether the version answers 410 after its sunset; `false` keeps serving it, headers
    /// included, for operators whose clients need more time.
    pub enforce_sunset: bool,
    /// Where clients read how to move to the next version (`docs/api-versions.md`, as the
    /// operator publishes it).
    pub migration_guide_url: String,
}

impl Lifecycle {
    /// Whether the version is deprecated at `now`.
    #[must_use]
    pub fn is_deprecated(&self, now: Timestamp) -> bool {
        now >= self.deprecated_at
    }

    /// Whether the version answers 410 at `now`.
    #[must_use]
    pub fn is_sunset(&self, now: Timestamp) -> bool {
        self.enforce_sunset && self.sunset_at.is_some_and(|sunset| now >= sunset)
    }

    /// The `Deprecation` value: `@` and the deprecation's Unix time in seconds.
    #[must_use]
    pub fn deprecation_value(&self) -> String {
        format!("@{}", self.deprecated_at.timestamp())
    }

    /// The `Sunset` value, an IMF-fixdate (`Sun, 01 Nov 2026 00:00:00 GMT`), when there is one.
    #[must_use]
    pub fn sunset_value(&self) -> Option<String> {
        self.sunset_at.map(|sunset| sunset.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    }

    /// The link to the migration guide: `type="text/markdown"` when the URL names a Markdown
    /// file (the guide is `docs/api-versions.md`); no type hint otherwise.
    fn guide_link(&self) -> String {
        let url = &self.migration_guide_url;
        let path = url.split(['?', '#']).next().unwrap_or(url);
        if path.ends_with(".md") {
            format!("<{url}>; rel=\"deprecation\"; type=\"text/markdown\"")
        } else {
            format!("<{url}>; rel=\"deprecation\"")
        }
    }
}

/// The lifecycle of `version`, when its deprecation is configured.
#[must_use]
pub fn lifecycle_of(settings: &ApiSettings, version: Version) -> Option<&Lifecycle> {
    match version {
        Version::V1 => settings.v1_lifecycle.as_ref(),
        Version::V2 => None,
    }
}

/// Whether `version` is deprecated now, for the document served for it.
#[must_use]
pub fn in_effect(state: &ApiState, version: Version) -> bool {
    lifecycle_of(&state.settings, version).is_some_and(|l| l.is_deprecated(state.clock.now()))
}

/// Shows each version's sunset in the instance's metrics, for the alert on traffic close to it.
pub(crate) fn publish_sunsets(state: &ApiState) {
    let Some(metrics) = &state.metrics else { return };
    for version in Version::ALL {
        if let Some(lifecycle) = lifecycle_of(&state.settings, version) {
            metrics.sunset(version.name(), lifecycle.sunset_at.map(|at| at.timestamp()));
        }
    }
}

/// The version that replaces `version`.
const fn successor(version: Version) -> Option<Version> {
    match version {
        Version::V1 => Some(Version::V2),
        Version::V2 => None,
    }
}

/// The same resource in the version after `version`: the request's path under the successor's
/// prefix, when the route table serves the matched template there for this method (a `GET`
/// route answers `HEAD` too).
fn successor_path(
    version: Version,
    pattern: Option<&str>,
    method: &Method,
    path: &str,
) -> Option<String> {
    let next = successor(version)?;
    let template = format!("{}{}", next.prefix(), pattern?.strip_prefix(version.prefix())?);
    let method = if *method == Method::HEAD { &Method::GET } else { method };
    endpoints()
        .iter()
        .any(|endpoint| {
            endpoint.version() == Some(next)
                && endpoint.path() == template
                && endpoint.method() == method
        })
        .then(|| format!("{}{}", next.prefix(), path.strip_prefix(version.prefix()).unwrap_or("")))
}

/// The headers every response of a deprecated version carries.
#[derive(Debug, Clone)]
struct Notice {
    deprecation: String,
    sunset: Option<String>,
    links: String,
}

impl Notice {
    fn new(lifecycle: &Lifecycle, successor: Option<&str>) -> Self {
        let mut links = lifecycle.guide_link();
        if let Some(successor) = successor {
            links.push_str(&format!(", <{successor}>; rel=\"successor-version\""));
        }
        Self { deprecation: lifecycle.deprecation_value(), sunset: lifecycle.sunset_value(), links }
    }

    /// Adds the headers; the links join any `Link` already there, in one field value, so that
    /// a client reading one `Link` header sees them all.
    fn apply(&self, headers: &mut HeaderMap) {
        let existing: Vec<String> = headers
            .get_all(header::LINK)
            .filter_map(|value| value.to_str().ok())
            .map(str::to_owned)
            .collect();
        let links = existing.into_iter().chain([self.links.clone()]).collect::<Vec<_>>().join(", ");
        for (name, value) in [
            (DEPRECATION, Some(&self.deprecation)),
            (SUNSET, self.sunset.as_ref()),
            (header::LINK, Some(&links)),
        ] {
            if let Some(value) = value.and_then(|value| HeaderValue::from_str(value).ok()) {
                headers.insert(name, value);
            }
        }
    }
}

/// The callers that used a deprecated version today, shared by the workers of an instance so
/// that each is logged once a day.
#[derive(Debug, Clone, Default)]
pub struct DeprecationLog(Arc<Mutex<Seen>>);

#[derive(Debug, Default)]
struct Seen {
    day: Option<chrono::NaiveDate>,
    callers: HashSet<String>,
    full: bool,
}

/// What to log about a caller.
#[derive(Debug, PartialEq, Eq)]
enum FirstToday {
    /// Its first deprecated request today.
    Yes,
    /// Seen already today.
    No,
    /// Today's memory just filled up: say so, once.
    Full,
}

impl DeprecationLog {
    /// Remembers `caller` for `now`'s day (UTC).
    fn first_today(&self, caller: &str, now: Timestamp) -> FirstToday {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let today = now.date_naive();
        if seen.day != Some(today) {
            *seen = Seen { day: Some(today), ..Seen::default() };
        }
        if seen.callers.contains(caller) {
            FirstToday::No
        } else if seen.callers.len() < LOGGED_CALLERS_PER_DAY {
            seen.callers.insert(caller.to_owned());
            FirstToday::Yes
        } else if seen.full {
            FirstToday::No
        } else {
            seen.full = true;
            FirstToday::Full
        }
    }
}

/// Who made a request, for the log line: the user, or the client address.
fn caller(user: Option<&AuthenticatedUser>, address: Option<&str>) -> String {
    match (user, address) {
        (Some(user), _) => format!("user:{}", user.0),
        (None, Some(address)) => format!("ip:{address}"),
        (None, None) => "unknown".to_owned(),
    }
}

/// Counts and logs one deprecated request.
fn record(state: &ApiState, version: Version, route: &str, caller: &str, now: Timestamp) {
    if let Some(metrics) = &state.metrics {
        metrics.deprecated_request(version.name(), route);
    }
    match state.deprecation_log.first_today(caller, now) {
        FirstToday::Yes => tracing::info!(
            version = version.name(),
            route,
            caller,
            "a client used a deprecated API version (logged once per caller per day)"
        ),
        FirstToday::Full => tracing::info!(
            version = version.name(),
            limit = LOGGED_CALLERS_PER_DAY,
            "more callers of a deprecated API version today than are logged; the rest are only counted"
        ),
        FirstToday::No => {}
    }
}

/// The 410 of a version past its sunset.
fn gone(version: Version, lifecycle: &Lifecycle) -> ApiError {
    let sunset = lifecycle
        .sunset_at
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default();
    let next = successor(version).map_or(String::new(), |next| format!(": use {}", next.prefix()));
    ApiError::new(
        ErrorCode::ApiVersionSunset,
        format!("{} was retired on {sunset}{next}", version.prefix()),
    )
    .with_extension("migration_guide", lifecycle.migration_guide_url.clone().into())
    .with_extension("sunset", sunset.into())
}

/// The middleware (see the module docs): between CORS, which answers preflights itself and
/// puts its headers on the 410, and the limits, whose refusals get the notice too.
///
/// # Errors
/// An error of an inner service, with the notice on its response.
pub async fn lifecycle(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let found = request.app_data::<web::Data<ApiState>>().and_then(|state| {
        let version = Version::of(request.path())?;
        let lifecycle = lifecycle_of(&state.settings, version)?.clone();
        let now = state.clock.now();
        lifecycle.is_deprecated(now).then(|| (state.clone(), version, lifecycle, now))
    });
    let Some((state, version, lifecycle, now)) = found else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let pattern = request.match_pattern();
    let route = pattern.clone().unwrap_or_else(|| UNMATCHED.to_owned());
    let successor = successor_path(version, pattern.as_deref(), request.method(), request.path());
    let notice = Notice::new(&lifecycle, successor.as_deref());
    let address = state.rate_limits.client_ip(request.request()).map(|ip| ip.to_string());

    if lifecycle.is_sunset(now) {
        record(&state, version, &route, &caller(None, address.as_deref()), now);
        let mut response = request.error_response(gone(version, &lifecycle));
        notice.apply(response.headers_mut());
        return Ok(response.map_into_boxed_body());
    }
    match next.call(request).await {
        Ok(response) => {
            let mut response = response.map_into_boxed_body();
            let user = user_of(response.request());
            record(&state, version, &route, &caller(user.as_ref(), address.as_deref()), now);
            notice.apply(response.headers_mut());
            Ok(response)
        }
        Err(error) => {
            record(&state, version, &route, &caller(None, address.as_deref()), now);
            let mut response = error.error_response();
            notice.apply(response.headers_mut());
            Err(InternalError::from_response(error, response).into())
        }
    }
}

fn user_of(request: &HttpRequest) -> Option<AuthenticatedUser> {
    request.extensions().get::<AuthenticatedUser>().copied()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};

    use super::*;

    fn lifecycle(sunset: Option<Timestamp>) -> Lifecycle {
        Lifecycle {
            deprecated_at: Utc.with_ymd_and_hms(2026, 5, 28, 20, 26, 40).unwrap(),
            sunset_at: sunset,
            enforce_sunset: true,
            migration_guide_url: "https://docs.example/api-versions.md".to_owned(),
        }
    }

    #[test]
    fn the_dates_are_written_as_the_rfcs_say() {
        let sunset = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let lifecycle = lifecycle(Some(sunset));
        assert_eq!(lifecycle.deprecation_value(), "@1780000000");
        assert_eq!(lifecycle.sunset_value().as_deref(), Some("Sun, 01 Nov 2026 00:00:00 GMT"));
        assert!(!lifecycle.is_deprecated(lifecycle.deprecated_at - chrono::TimeDelta::seconds(1)));
        assert!(lifecycle.is_deprecated(lifecycle.deprecated_at));
        assert!(!lifecycle.is_sunset(sunset - chrono::TimeDelta::seconds(1)));
        assert!(lifecycle.is_sunset(sunset));
        assert!(!Lifecycle { enforce_sunset: false, ..lifecycle.clone() }.is_sunset(sunset));
        assert_eq!(Lifecycle { sunset_at: None, ..lifecycle }.sunset_value(), None);
    }

    #[test]
    fn the_guide_link_names_markdown_only_when_it_is() {
        let markdown = lifecycle(None);
        assert_eq!(
            markdown.guide_link(),
            r#"<https://docs.example/api-versions.md>; rel="deprecation"; type="text/markdown""#
        );
        let page = Lifecycle {
            migration_guide_url: "https://docs.example/api/versions".to_owned(),
            ..markdown
        };
        assert_eq!(page.guide_link(), r#"<https://docs.example/api/versions>; rel="deprecation""#);
    }

    #[test]
    fn the_links_join_those_already_there() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LINK,
            HeaderValue::from_static("</api/v1/orders?cursor=x>; rel=\"next\""),
        );
        Notice::new(&lifecycle(None), Some("/api/v2/orders")).apply(&mut headers);
        assert_eq!(headers.get_all(header::LINK).count(), 1);
        assert_eq!(
            headers.get(header::LINK).and_then(|v| v.to_str().ok()),
            Some(
                "</api/v1/orders?cursor=x>; rel=\"next\", \
                 <https://docs.example/api-versions.md>; rel=\"deprecation\"; type=\"text/markdown\", \
                 </api/v2/orders>; rel=\"successor-version\""
            )
        );
        assert_eq!(headers.get(DEPRECATION).and_then(|v| v.to_str().ok()), Some("@1780000000"));
        assert!(headers.get(SUNSET).is_none());
    }

    #[test]
    fn a_successor_is_the_same_template_and_method_in_the_next_version() {
        let successor = |pattern: Option<&str>, method: Method, path: &str| {
            successor_path(Version::V1, pattern, &method, path)
        };
        // v2 serves auth (ADR 0030); whatever else it serves, a path it lacks has no successor.
        assert_eq!(
            successor(Some("/api/v1/auth/token"), Method::POST, "/api/v1/auth/token").as_deref(),
            Some("/api/v2/auth/token")
        );
        assert_eq!(successor(Some("/api/v1/auth/token"), Method::GET, "/api/v1/auth/token"), None);
        assert_eq!(successor(None, Method::GET, "/api/v1/nowhere"), None);
        assert_eq!(successor(Some("/api/v1/nowhere/{id}"), Method::GET, "/api/v1/nowhere/1"), None);
        assert_eq!(
            successor_path(
                Version::V2,
                Some("/api/v2/auth/token"),
                &Method::POST,
                "/api/v2/auth/token"
            ),
            None
        );
        for endpoint in endpoints().iter().filter(|e| e.version() == Some(Version::V1)) {
            let v2 = endpoint.path().replacen("/api/v1", "/api/v2", 1);
            let served = endpoints().iter().any(|e| {
                e.version() == Some(Version::V2)
                    && e.path() == v2
                    && e.method() == endpoint.method()
            });
            assert_eq!(
                successor(Some(endpoint.path()), endpoint.method().clone(), endpoint.path())
                    .is_some(),
                served,
                "{} {}",
                endpoint.method(),
                endpoint.path()
            );
        }
    }

    #[test]
    fn each_caller_is_logged_once_a_day_and_the_memory_is_bounded() {
        let log = DeprecationLog::default();
        let day = Utc.with_ymd_and_hms(2026, 6, 2, 10, 0, 0).unwrap();
        assert_eq!(log.first_today("user:a", day), FirstToday::Yes);
        assert_eq!(log.first_today("user:a", day), FirstToday::No);
        // A new day (UTC) forgets the day before.
        let next = day + chrono::TimeDelta::hours(14);
        assert_eq!(log.first_today("user:a", next), FirstToday::Yes);
        for n in 1..LOGGED_CALLERS_PER_DAY {
            assert_eq!(log.first_today(&format!("ip:{n}"), next), FirstToday::Yes);
        }
        assert_eq!(log.first_today("ip:one-too-many", next), FirstToday::Full);
        assert_eq!(log.first_today("ip:another", next), FirstToday::No);
        assert_eq!(log.first_today("user:a", next), FirstToday::No);
        assert_eq!(log.0.lock().expect("the memory").callers.len(), LOGGED_CALLERS_PER_DAY);
    }
}
