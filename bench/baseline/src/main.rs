//! The baseline of `make bench` (issue 11): the smallest reasonable actix-web 4 + SeaORM 2
//! server that serves the four benchmarked paths of Orderly, with the same SQL on the same
//! database (the one `orderly migrate` made and the benchmark seeded). No layers: handlers talk
//! to SeaORM directly. It exists to be measured against, not to be used.
//!
//! - `GET /api/v1/products/{id}`: one `SELECT` by primary key.
//! - `GET /api/v1/products?limit=N[&cursor=..]`: one keyset `SELECT` of non-archived products by
//!   id (Orderly's default sort, `created_at`, which is the UUIDv7 id), `limit + 1` rows.
//! - `POST /api/v1/orders` (bearer JWT): one transaction (`BEGIN IMMEDIATE` on SQLite) on one
//!   connection: the products' `SELECT`, one conditional stock `UPDATE` per line, `INSERT` the
//!   order, the items (one multi-row statement) and the history row.
//! - `POST /api/v1/auth/token` (form, `grant_type=password`): `SELECT` the user by e-mail, verify
//!   the Argon2 hash (its parameters come from the stored hash, which Orderly made), sign an
//!   HS256 JWT, `INSERT` a refresh token.
//!
//! Configured by environment: `DATABASE_URL`, `JWT_SECRET` (required), `HOST` (127.0.0.1),
//! `PORT` (3001), `DATABASE_MAX_CONNECTIONS` (10, Orderly's default), `WORKERS` (0: one per
//! core), `JWT_ISSUER` (orderly), `JWT_AUDIENCE` (orderly-api), `ACCESS_TOKEN_TTL` (900).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer, ResponseError,
    http::{StatusCode, header},
    web,
};
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::rand_core::{OsRng, RngCore as _},
};
use chrono::{DateTime, SubsecRound as _, TimeDelta, Utc};
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait as _, ConnectOptions, DatabaseConnection, DbErr, EntityTrait as _,
    IntoActiveModel as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
    SqliteTransactionMode, TransactionOptions, TransactionTrait as _,
    sea_query::{Expr, ExprTrait as _},
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// The tables, as Orderly's entities declare them (crates/infrastructure/src/entity).
mod entity {
    pub mod product {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "products")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            pub sku: String,
            pub name: String,
            pub description: Option<String>,
            pub price_amount: i64,
            pub price_currency: String,
            pub stock: i64,
            pub archived: bool,
            pub search_text: String,
            pub version: i64,
            pub created_at: DateTimeUtc,
            pub updated_at: DateTimeUtc,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod order {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "orders")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            pub user_id: Uuid,
            pub status: String,
            pub total_amount: i64,
            pub currency: String,
            pub payment_due_at: DateTimeUtc,
            pub payment_reference: Option<String>,
            pub payment_status: Option<String>,
            pub payment_amount: Option<i64>,
            pub payment_created_at: Option<DateTimeUtc>,
            pub payment_updated_at: Option<DateTimeUtc>,
            pub version: i64,
            pub created_at: DateTimeUtc,
            pub updated_at: DateTimeUtc,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod order_item {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "order_items")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub order_id: Uuid,
            #[sea_orm(primary_key, auto_increment = false)]
            pub product_id: Uuid,
            pub sku: String,
            pub name: String,
            pub unit_price_amount: i64,
            pub currency: String,
            pub quantity: i32,
            pub line_total_amount: i64,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod order_transition {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "order_transitions")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub order_id: Uuid,
            pub from_status: Option<String>,
            pub to_status: String,
            pub action: String,
            pub actor_id: Option<Uuid>,
            pub reason: Option<String>,
            pub request_id: Option<String>,
            pub at: DateTimeUtc,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod user {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "users")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            pub email: String,
            pub name: String,
            pub role: String,
            pub password_hash: String,
            pub session_epoch: i64,
            pub version: i64,
            pub created_at: DateTimeUtc,
            pub updated_at: DateTimeUtc,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    pub mod refresh_token {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "refresh_tokens")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            pub family_id: Uuid,
            pub user_id: Uuid,
            pub token_hash: String,
            pub expires_at: DateTimeUtc,
            pub created_at: DateTimeUtc,
            pub used_at: Option<DateTimeUtc>,
            pub revoked_at: Option<DateTimeUtc>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

use entity::{order, order_item, order_transition, product, refresh_token, user};

/// Orderly's defaults (ORDER_PAYMENT_TIMEOUT, REFRESH_TOKEN_TTL), and its list scope.
const PAYMENT_TIMEOUT_SECONDS: i64 = 1800;
const REFRESH_TOKEN_TTL_SECONDS: i64 = 1_209_600;
const LIST_SCOPE: &str = "products:created_at";
const DEFAULT_LIMIT: u64 = 20;
const MAX_LIMIT: u64 = 100;
const MAX_ORDER_LINES: usize = 50;

struct State {
    db: DatabaseConnection,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: i64,
    /// Argon2 runs on the blocking pool, at most one hash per core at a time (Orderly bounds
    /// it the same way, with a queue the benchmark makes large enough never to refuse).
    hashing: Arc<Semaphore>,
}

/// Every failure, as a small problem+json body.
#[derive(Debug)]
enum Failure {
    BadRequest(&'static str),
    Unauthenticated,
    NotFound,
    Conflict(&'static str),
    InvalidGrant,
    Database(DbErr),
    Internal(String),
}

impl From<DbErr> for Failure {
    fn from(error: DbErr) -> Self {
        Self::Database(error)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::InvalidGrant => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = match self {
            Self::BadRequest(detail) | Self::Conflict(detail) => (*detail).to_owned(),
            Self::Unauthenticated => "a valid bearer token is required".to_owned(),
            Self::NotFound => "not found".to_owned(),
            Self::InvalidGrant => "invalid e-mail or password".to_owned(),
            Self::Database(error) => {
                eprintln!("database error: {error}");
                "database error".to_owned()
            }
            Self::Internal(error) => {
                eprintln!("internal error: {error}");
                "internal error".to_owned()
            }
        };
        let status = self.status_code();
        HttpResponse::build(status)
            .content_type("application/problem+json")
            .json(serde_json::json!({"status": status.as_u16(), "detail": detail}))
    }
}

#[derive(Serialize)]
struct Money {
    amount: i64,
    currency: String,
}

#[derive(Serialize)]
struct ProductResponse {
    id: Uuid,
    sku: String,
    name: String,
    description: Option<String>,
    price: Money,
    stock: i64,
    archived: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<product::Model> for ProductResponse {
    fn from(row: product::Model) -> Self {
        Self {
            id: row.id,
            sku: row.sku,
            name: row.name,
            description: row.description,
            price: Money { amount: row.price_amount, currency: row.price_currency },
            stock: row.stock,
            archived: row.archived,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

fn etag(version: i64) -> String {
    format!("\"v{version}\"")
}

async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"status": "ok"}))
}

async fn get_product(
    state: web::Data<State>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, Failure> {
    let row = product::Entity::find_by_id(*id).one(&state.db).await?.ok_or(Failure::NotFound)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag(row.version)))
        .json(ProductResponse::from(row)))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct ProductPage {
    data: Vec<ProductResponse>,
    next_cursor: Option<String>,
}

/// Orderly's cursor format: hex of `1|scope|id|n` (the default sort carries no key value).
fn encode_cursor(id: Uuid) -> String {
    hex::encode(format!("1|{LIST_SCOPE}|{id}|n"))
}

fn decode_cursor(cursor: &str) -> Option<Uuid> {
    let plain = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
    let mut parts = plain.splitn(4, '|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("1"), Some(LIST_SCOPE), Some(id), Some("n")) => Uuid::parse_str(id).ok(),
        _ => None,
    }
}

async fn list_products(
    state: web::Data<State>,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Failure> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Failure::BadRequest("limit must be from 1 to 100"));
    }
    let mut select = product::Entity::find().filter(product::Column::Archived.eq(false));
    if let Some(cursor) = query.cursor.as_deref().filter(|cursor| !cursor.is_empty()) {
        let after = decode_cursor(cursor).ok_or(Failure::BadRequest("invalid cursor"))?;
        select = select.filter(product::Column::Id.gt(after));
    }
    let mut rows = select.order_by_asc(product::Column::Id).limit(limit + 1).all(&state.db).await?;
    let next_cursor = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|row| encode_cursor(row.id))
    } else {
        None
    };
    let mut response = HttpResponse::Ok();
    if let Some(cursor) = &next_cursor {
        response.insert_header((
            header::LINK,
            format!("<{}?limit={limit}&cursor={cursor}>; rel=\"next\"", request.path()),
        ));
    }
    Ok(response.json(ProductPage {
        data: rows.into_iter().map(ProductResponse::from).collect(),
        next_cursor,
    }))
}

/// The claims Orderly signs (crates/infrastructure/src/services/tokens.rs).
#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iat: i64,
    exp: i64,
    iss: String,
    aud: String,
    #[serde(default)]
    sep: u64,
}

fn bearer_user(state: &State, request: &HttpRequest) -> Result<Uuid, Failure> {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(Failure::Unauthenticated)?;
    let claims = jsonwebtoken::decode::<Claims>(token, &state.decoding, &state.validation)
        .map_err(|_| Failure::Unauthenticated)?
        .claims;
    Uuid::parse_str(&claims.sub).map_err(|_| Failure::Unauthenticated)
}

#[derive(Deserialize)]
struct OrderLine {
    product_id: Uuid,
    quantity: u32,
}

#[derive(Deserialize)]
struct CreateOrder {
    items: Vec<OrderLine>,
}

#[derive(Serialize)]
struct OrderItemResponse {
    product_id: Uuid,
    sku: String,
    name: String,
    unit_price: Money,
    quantity: i32,
    line_total: Money,
}

#[derive(Serialize)]
struct OrderResponse {
    id: Uuid,
    user_id: Uuid,
    status: &'static str,
    items: Vec<OrderItemResponse>,
    total: Money,
    payment_due_at: DateTime<Utc>,
    payment: Option<()>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    allowed_actions: [&'static str; 2],
}

async fn place_order(
    state: web::Data<State>,
    request: HttpRequest,
    body: web::Json<CreateOrder>,
) -> Result<HttpResponse, Failure> {
    let user_id = bearer_user(&state, &request)?;
    let body = body.into_inner();
    if body.items.is_empty() || body.items.len() > MAX_ORDER_LINES {
        return Err(Failure::BadRequest("an order has 1 to 50 lines"));
    }
    // Lines merged by product and in product-id order: the order in which every writer locks
    // product rows (as Orderly does), so that two orders cannot deadlock.
    let mut lines: BTreeMap<Uuid, i64> = BTreeMap::new();
    for line in &body.items {
        if line.quantity == 0 || line.quantity > 1000 {
            return Err(Failure::BadRequest("quantity must be from 1 to 1000"));
        }
        *lines.entry(line.product_id).or_default() += i64::from(line.quantity);
    }

    let tx = state
        .db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    let products = product::Entity::find()
        .filter(product::Column::Id.is_in(lines.keys().copied()))
        .all(&tx)
        .await?;
    let now = Utc::now().trunc_subsecs(6); // microseconds, as Orderly stores them
    let order_id = Uuid::now_v7();
    let mut items = Vec::with_capacity(lines.len());
    let mut currency = None;
    for (&product_id, &quantity) in &lines {
        let product = products
            .iter()
            .find(|product| product.id == product_id)
            .ok_or(Failure::BadRequest("unknown product"))?;
        if product.archived {
            return Err(Failure::Conflict("product unavailable"));
        }
        if *currency.get_or_insert(product.price_currency.as_str()) != product.price_currency {
            return Err(Failure::BadRequest("one currency per order"));
        }
        items.push(order_item::Model {
            order_id,
            product_id,
            sku: product.sku.clone(),
            name: product.name.clone(),
            unit_price_amount: product.price_amount,
            currency: product.price_currency.clone(),
            quantity: i32::try_from(quantity).unwrap_or(i32::MAX),
            line_total_amount: product.price_amount * quantity,
        });
    }
    for (&product_id, &quantity) in &lines {
        let reserved = product::Entity::update_many()
            .col_expr(product::Column::Stock, Expr::col(product::Column::Stock).sub(quantity))
            .col_expr(product::Column::Version, Expr::col(product::Column::Version).add(1))
            .filter(product::Column::Id.eq(product_id))
            .filter(product::Column::Archived.eq(false))
            .filter(product::Column::Stock.gte(quantity))
            .exec(&tx)
            .await?;
        if reserved.rows_affected != 1 {
            return Err(Failure::Conflict("insufficient stock"));
        }
    }
    let currency = currency.unwrap_or("EUR").to_owned();
    let total: i64 = items.iter().map(|item| item.line_total_amount).sum();
    let payment_due_at = now + TimeDelta::seconds(PAYMENT_TIMEOUT_SECONDS);
    let row = order::Model {
        id: order_id,
        user_id,
        status: "pending_payment".to_owned(),
        total_amount: total,
        currency: currency.clone(),
        payment_due_at,
        payment_reference: None,
        payment_status: None,
        payment_amount: None,
        payment_created_at: None,
        payment_updated_at: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    order::Entity::insert(row.into_active_model()).exec_without_returning(&tx).await?;
    order_item::Entity::insert_many(items.iter().cloned().map(|item| item.into_active_model()))
        .exec_without_returning(&tx)
        .await?;
    order_transition::Entity::insert(order_transition::ActiveModel {
        id: NotSet,
        order_id: Set(order_id),
        from_status: Set(None),
        to_status: Set("pending_payment".to_owned()),
        action: Set("place".to_owned()),
        actor_id: Set(Some(user_id)),
        reason: Set(None),
        // Orderly records its request id here.
        request_id: Set(Some(Uuid::now_v7().to_string())),
        at: Set(now),
    })
    .exec_without_returning(&tx)
    .await?;
    tx.commit().await?;

    let body = OrderResponse {
        id: order_id,
        user_id,
        status: "pending_payment",
        items: items
            .into_iter()
            .map(|item| OrderItemResponse {
                product_id: item.product_id,
                sku: item.sku,
                name: item.name,
                unit_price: Money {
                    amount: item.unit_price_amount,
                    currency: item.currency.clone(),
                },
                quantity: item.quantity,
                line_total: Money { amount: item.line_total_amount, currency: item.currency },
            })
            .collect(),
        total: Money { amount: total, currency },
        payment_due_at,
        payment: None,
        created_at: now,
        updated_at: now,
        allowed_actions: ["pay", "cancel"],
    };
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/orders/{order_id}")))
        .insert_header((header::ETAG, etag(1)))
        .json(body))
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: String,
}

async fn token(
    state: web::Data<State>,
    form: web::Form<TokenRequest>,
) -> Result<HttpResponse, Failure> {
    let form = form.into_inner();
    if form.grant_type != "password" {
        return Err(Failure::BadRequest("unsupported grant type"));
    }
    let (Some(email), Some(password)) = (form.username, form.password) else {
        return Err(Failure::BadRequest("username and password are required"));
    };
    let email = email.trim().to_lowercase();
    let user = user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(&state.db)
        .await?
        .ok_or(Failure::InvalidGrant)?;
    let permit = state
        .hashing
        .clone()
        .acquire_owned()
        .await
        .map_err(|error| Failure::Internal(error.to_string()))?;
    let hash = user.password_hash.clone();
    let matches = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        verify(&password, &hash)
    })
    .await
    .map_err(|error| Failure::Internal(error.to_string()))?
    .map_err(Failure::Internal)?;
    if !matches {
        return Err(Failure::InvalidGrant);
    }

    let now = Utc::now().trunc_subsecs(6); // microseconds, as Orderly stores them
    let claims = Claims {
        sub: user.id.to_string(),
        role: user.role.clone(),
        iat: now.timestamp(),
        exp: now.timestamp() + state.access_ttl,
        iss: state.issuer.clone(),
        aud: state.audience.clone(),
        sep: u64::try_from(user.session_epoch).unwrap_or(0),
    };
    let access_token =
        jsonwebtoken::encode(&Header::new(JwtAlgorithm::HS256), &claims, &state.encoding)
            .map_err(|error| Failure::Internal(error.to_string()))?;
    let mut secret = [0_u8; 32];
    OsRng.fill_bytes(&mut secret);
    let refresh_token = hex::encode(secret);
    refresh_token::Entity::insert(
        refresh_token::Model {
            id: Uuid::now_v7(),
            family_id: Uuid::now_v7(),
            user_id: user.id,
            token_hash: hex::encode(Sha256::digest(refresh_token.as_bytes())),
            expires_at: now + TimeDelta::seconds(REFRESH_TOKEN_TTL_SECONDS),
            created_at: now,
            used_at: None,
            revoked_at: None,
        }
        .into_active_model(),
    )
    .exec_without_returning(&state.db)
    .await?;
    Ok(HttpResponse::Ok().insert_header((header::PRAGMA, "no-cache")).json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.access_ttl,
        refresh_token,
    }))
}

/// Argon2 memory areas (19 MiB each), allocated once and reused, at most one per hash running
/// at once (the `hashing` semaphore), as Orderly does (ADR 0016): allocating one per login
/// costs page faults and, with glibc's per-thread arenas, hundreds of MiB of RSS.
static AREAS: std::sync::Mutex<Vec<Vec<Block>>> = std::sync::Mutex::new(Vec::new());

/// Verifies `password` against a PHC string, with the parameters the string names (Orderly's
/// hashes: Argon2id, 19 MiB, 2 passes, 1 lane).
fn verify(password: &str, phc: &str) -> Result<bool, String> {
    let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    let expected = parsed.hash.ok_or("no hash")?;
    let salt = parsed.salt.ok_or("no salt")?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| e.to_string())?;
    let version = parsed.version.map(Version::try_from).transpose().map_err(|e| e.to_string())?;
    let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
    let mut salt_bytes = [0_u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| e.to_string())?;
    let mut output = vec![0_u8; expected.len()];
    let mut memory = AREAS.lock().ok().and_then(|mut areas| areas.pop()).unwrap_or_default();
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let hashed = Argon2::new(algorithm, version.unwrap_or_default(), params)
        .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut output, &mut memory)
        .map_err(|e| e.to_string());
    if let Ok(mut areas) = AREAS.lock() {
        areas.push(memory);
    }
    hashed?;
    // Output compares in constant time.
    Ok(argon2::password_hash::Output::new(&output).map_err(|e| e.to_string())? == expected)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("{name} is not valid: {value:?}")),
        Err(_) => default,
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL is required");
    let secret = std::env::var("JWT_SECRET").expect("JWT_SECRET is required");
    let host: String = env_or("HOST", "127.0.0.1".to_owned());
    let port: u16 = env_or("PORT", 3001);
    let pool: u32 = env_or("DATABASE_MAX_CONNECTIONS", 10);
    let workers: usize = env_or("WORKERS", 0);
    let issuer: String = env_or("JWT_ISSUER", "orderly".to_owned());
    let audience: String = env_or("JWT_AUDIENCE", "orderly-api".to_owned());
    let access_ttl: i64 = env_or("ACCESS_TOKEN_TTL", 900);

    // Orderly's pool settings (crates/infrastructure/src/persistence/connection.rs): no ping
    // when a connection is lent, SQLite in WAL mode with synchronous=NORMAL, a 5 s busy timeout
    // and foreign keys on.
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(pool)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .sqlx_logging(false);
    options.map_sqlx_sqlite_opts(|sqlite| {
        sqlite
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
    });
    let db = sea_orm::Database::connect(options).await.expect("connecting to the database");

    let mut validation = Validation::new(JwtAlgorithm::HS256);
    validation.set_issuer(&[&issuer]);
    validation.set_audience(&[&audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let state = web::Data::new(State {
        db,
        encoding: EncodingKey::from_secret(secret.as_bytes()),
        decoding: DecodingKey::from_secret(secret.as_bytes()),
        validation,
        issuer,
        audience,
        access_ttl,
        hashing: Arc::new(Semaphore::new(cores)),
    });

    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/health", web::get().to(health))
            .route("/api/v1/products", web::get().to(list_products))
            .route("/api/v1/products/{id}", web::get().to(get_product))
            .route("/api/v1/orders", web::post().to(place_order))
            .route("/api/v1/auth/token", web::post().to(token))
    });
    if workers > 0 {
        server = server.workers(workers);
    }
    eprintln!("baseline listening on http://{host}:{port}");
    server.bind((host.as_str(), port))?.run().await
}
