//! `spawn_app()` and `TestApp`: one method per endpoint, plus fixtures and problem assertions.

#![allow(dead_code)]

use orderly_application::users::register_user::RegisterUserInput;
use orderly_domain::{Email, Password, Role, UserName};
pub use orderly_infrastructure::testing::http_client;
use orderly_infrastructure::{Database, DatabaseSettings, Pooler, testing::TestDatabase};
use orderly_server::{
    settings::{DatabasePooler, Settings},
    startup::{Application, wire},
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use serde_json::{Value, json};

/// Runs each `async fn name(app: TestApp)` as `sqlite::name` and, when `TEST_DATABASE_URL` is
/// set, `postgres::name` (which fails, never skips, when that server is unreachable).
macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::helpers::spawn_app($crate::helpers::Engine::Sqlite).await;
                    super::$name(app.expect("SQLite is always available")).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_app($crate::helpers::Engine::Postgres).await else {
                        eprintln!("TEST_DATABASE_URL is not set: PostgreSQL not tested");
                        return;
                    };
                    super::$name(app).await;
                }
            )*
        }
    };
}
pub(crate) use api_tests;

/// Which database a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A running application and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub database: Database,
    /// The database's owner: dropped with the first instance (see [`TestApp::another_instance`]).
    _db: Option<TestDatabase>,
}

/// A user with a live session.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// Starts the application on a fresh migrated database, on a random port. `None` for PostgreSQL
/// when `TEST_DATABASE_URL` is not set.
pub async fn spawn_app(engine: Engine) -> Option<TestApp> {
    let db = match engine {
        Engine::Sqlite => TestDatabase::sqlite().await,
        Engine::Postgres => TestDatabase::postgres().await?,
    };
    Some(spawn_app_with(db, |_| {}).await)
}

/// Starts the application with settings adjusted by `configure`.
pub async fn spawn_app_with(db: TestDatabase, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::for_tests(db.url().to_owned());
    reach_like(&mut settings, db.settings());
    configure(&mut settings);
    let mut app = start(settings, db.database().clone()).await;
    app._db = Some(db);
    app
}

/// Settings that reach the database as `adapter` does: through a transaction pooler, with
/// migrations on the direct URL, when `TEST_DATABASE_POOLER_URL` is set.
pub fn reach_like(settings: &mut Settings, adapter: &DatabaseSettings) {
    settings.database.database_url.clone_from(&adapter.url);
    settings.database.database_migration_url.clone_from(&adapter.migration_url);
    settings.database.database_pooler = match adapter.pooler {
        Pooler::None => DatabasePooler::None,
        Pooler::Transaction => DatabasePooler::Transaction,
    };
}

/// `TEST_LOG=1 cargo test ...` prints the application's log lines (with `--nocapture` to see
/// them as they come); without it the tests run quietly.
fn init_test_logs() {
    static LOGS: std::sync::Once = std::sync::Once::new();
    LOGS.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            orderly_server::telemetry::init(orderly_server::settings::LogFormat::Pretty);
        }
    });
}

async fn start(settings: Settings, database: Database) -> TestApp {
    init_test_logs();
    let application =
        Application::build_with(&settings, database.clone()).await.expect("the application builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    let client =
        http_client().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
    TestApp { address, client, settings, database, _db: None }
}

/// The Redis the shared-store tests use (`TEST_REDIS_URL`, default the local one); a Redis
/// that does not answer fails those tests.
pub fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Asserts that `response` is an RFC 9457 problem with `status` and `code`; returns the body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let request_id =
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = response.url().path().to_owned();
    let body: Value = response.json().await.expect("a JSON problem body");
    assert_eq!(body["status"], json!(status.as_u16()), "{body}");
    assert_eq!(body["code"], json!(code), "{body}");
    assert_eq!(body["instance"], json!(path), "{body}");
    assert!(body["type"].as_str().is_some_and(|t| t.starts_with("/problems/")), "{body}");
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    assert_eq!(body["request_id"].as_str(), request_id.as_deref(), "{body}");
    body
}

/// The JSON body of a response that must have `status`.
pub async fn json_body(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("a body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body expected, got {text}"))
}

impl TestApp {
    /// A second instance of the application on the same database (as behind a load balancer),
    /// with the settings of this one adjusted by `configure`. It must not outlive `self`.
    pub async fn another_instance(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings.clone();
        configure(&mut settings);
        start(settings, self.database.clone()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request with an optional bearer token.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send(&self, builder: RequestBuilder) -> Response {
        builder.send().await.expect("the request is sent")
    }

    // --- auth ---

    pub async fn login(&self, email: &str, password: &str) -> Response {
        let form = [("grant_type", "password"), ("username", email), ("password", password)];
        self.send(self.client.post(self.url("/api/v1/auth/token")).form(&form)).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        self.send(self.client.post(self.url("/api/v1/auth/token")).form(&form)).await
    }

    pub async fn revoke(&self, token: &str) -> Response {
        self.send(self.client.post(self.url("/api/v1/auth/revoke")).form(&[("token", token)])).await
    }

    // --- users ---

    pub async fn register(&self, body: &Value) -> Response {
        self.send(self.client.post(self.url("/api/v1/users")).json(body)).await
    }

    pub async fn me(&self, token: &str) -> Response {
        self.send(self.request(Method::GET, "/api/v1/users/me", Some(token))).await
    }

    pub async fn list_users(&self, token: &str, query: &str) -> Response {
        self.send(self.request(Method::GET, &format!("/api/v1/users{query}"), Some(token))).await
    }

    pub async fn get_user(&self, token: &str, id: &str) -> Response {
        self.send(self.request(Method::GET, &format!("/api/v1/users/{id}"), Some(token))).await
    }

    pub async fn patch_user(
        &self,
        token: &str,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Response {
        let mut builder =
            self.request(Method::PATCH, &format!("/api/v1/users/{id}"), Some(token)).json(body);
        if let Some(tag) = if_match {
            builder = builder.header(header::IF_MATCH, tag);
        }
        self.send(builder).await
    }

    pub async fn delete_user(&self, token: &str, id: &str) -> Response {
        self.send(self.request(Method::DELETE, &format!("/api/v1/users/{id}"), Some(token))).await
    }

    pub async fn user_orders(&self, token: &str, id: &str, query: &str) -> Response {
        self.send(self.request(
            Method::GET,
            &format!("/api/v1/users/{id}/orders{query}"),
            Some(token),
        ))
        .await
    }

    // --- products ---

    pub async fn list_products(&self, token: Option<&str>, query: &str) -> Response {
        self.send(self.request(Method::GET, &format!("/api/v1/products{query}"), token)).await
    }

    pub async fn get_product(&self, id: &str, if_none_match: Option<&str>) -> Response {
        let mut builder = self.request(Method::GET, &format!("/api/v1/products/{id}"), None);
        if let Some(tag) = if_none_match {
            builder = builder.header(header::IF_NONE_MATCH, tag);
        }
        self.send(builder).await
    }

    pub async fn create_product(&self, token: &str, body: &Value) -> Response {
        self.send(self.request(Method::POST, "/api/v1/products", Some(token)).json(body)).await
    }

    pub async fn patch_product(
        &self,
        token: &str,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Response {
        let mut builder =
            self.request(Method::PATCH, &format!("/api/v1/products/{id}"), Some(token)).json(body);
        if let Some(tag) = if_match {
            builder = builder.header(header::IF_MATCH, tag);
        }
        self.send(builder).await
    }

    pub async fn archive_product(&self, token: &str, id: &str) -> Response {
        self.send(self.request(Method::DELETE, &format!("/api/v1/products/{id}"), Some(token)))
            .await
    }

    // --- orders ---

    pub async fn place_order(&self, token: &str, body: &Value) -> Response {
        self.send(self.request(Method::POST, "/api/v1/orders", Some(token)).json(body)).await
    }

    pub async fn list_orders(&self, token: &str, query: &str) -> Response {
        self.send(self.request(Method::GET, &format!("/api/v1/orders{query}"), Some(token))).await
    }

    pub async fn get_order(&self, token: &str, id: &str) -> Response {
        self.send(self.request(Method::GET, &format!("/api/v1/orders/{id}"), Some(token))).await
    }

    pub async fn transition(
        &self,
        token: &str,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Response {
        let mut builder = self
            .request(Method::POST, &format!("/api/v1/orders/{id}/transitions"), Some(token))
            .json(body);
        if let Some(tag) = if_match {
            builder = builder.header(header::IF_MATCH, tag);
        }
        self.send(builder).await
    }

    pub async fn history(&self, token: &str, id: &str) -> Response {
        self.send(self.request(
            Method::GET,
            &format!("/api/v1/orders/{id}/transitions"),
            Some(token),
        ))
        .await
    }

    // --- operations ---

    pub async fn health(&self) -> Response {
        self.send(self.request(Method::GET, "/health", None)).await
    }

    pub async fn ready(&self) -> Response {
        self.send(self.request(Method::GET, "/ready", None)).await
    }

    pub async fn openapi(&self) -> Response {
        self.send(self.request(Method::GET, "/api-docs/openapi.json", None)).await
    }

    // --- fixtures ---

    /// Registers a customer through the API and logs them in.
    pub async fn customer(&self, name: &str) -> TestUser {
        let email = format!(
            "{}-{}@example.com",
            name.to_lowercase(),
            orderly_domain::Uuid::now_v7().simple()
        );
        let password = "correct horse battery staple".to_owned();
        let registered = json_body(
            self.register(&json!({"email": email, "password": password, "name": name})).await,
            StatusCode::CREATED,
        )
        .await;
        self.session(registered["id"].as_str().expect("an id").to_owned(), email, password).await
    }

    /// Creates an administrator the way `orderly admin create` does, and logs them in.
    pub async fn admin(&self) -> TestUser {
        let email = format!("admin-{}@example.com", orderly_domain::Uuid::now_v7().simple());
        let password = "admin password 12345".to_owned();
        let wiring = wire(&self.database, &self.settings).expect("wiring");
        let user = wiring
            .use_cases
            .register_user
            .execute(RegisterUserInput {
                email: Email::parse(&email).expect("valid"),
                name: UserName::parse("Admin").expect("valid"),
                password: Password::parse(password.clone()).expect("valid"),
                role: Role::Admin,
            })
            .await
            .expect("an admin is created");
        self.session(user.id().to_string(), email, password).await
    }

    async fn session(&self, id: String, email: String, password: String) -> TestUser {
        let tokens = json_body(self.login(&email, &password).await, StatusCode::OK).await;
        TestUser {
            id,
            email,
            password,
            access_token: tokens["access_token"].as_str().expect("an access token").to_owned(),
            refresh_token: tokens["refresh_token"].as_str().expect("a refresh token").to_owned(),
        }
    }

    /// Creates a product as `admin`; returns its JSON.
    pub async fn product(&self, admin: &TestUser, sku: &str, amount: i64, stock: u32) -> Value {
        let body = json!({"sku": sku, "name": format!("Product {sku}"), "price": {"amount": amount, "currency": "EUR"}, "stock": stock});
        json_body(self.create_product(&admin.access_token, &body).await, StatusCode::CREATED).await
    }

    /// Places an order of `quantity` units of `product_id` as `customer`; returns its JSON.
    pub async fn order(&self, customer: &TestUser, product_id: &str, quantity: u32) -> Value {
        let body = json!({"items": [{"product_id": product_id, "quantity": quantity}]});
        json_body(self.place_order(&customer.access_token, &body).await, StatusCode::CREATED).await
    }
}
