//! `/api/v1/auth`, in one module: the OAuth2 token endpoint (RFC 6749) and token revocation
//! (RFC 7009), their form-encoded bodies, and how the use cases' refusals become problems (with
//! the OAuth2 `error` members).

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use orderly_application::auth::{
    TokenPair,
    authenticate::{AuthenticateError, AuthenticateInput},
    refresh_session::RefreshSessionError,
};
use serde::{Deserialize, Serialize};
use utoipa::{ToSchema, openapi::Object};

use crate::{
    dto::schema,
    errors::{oauth_error, server_busy},
    problem::{ApiError, ErrorCode, Problem},
    rate_limit::{self, Policy},
    state::ApiState,
};

// ---- Schemas ----

/// `grant_type` of a token request.
fn grant_type() -> Object {
    schema::string(false)
        .enum_values(Some([PASSWORD_GRANT, REFRESH_TOKEN_GRANT]))
        .description(Some("`password` (with `username` and `password`) or `refresh_token` (with `refresh_token`)."))
        .examples(["password"])
        .build()
}

// ---- Bodies ----

/// `grant_type` of a login with e-mail address and password (RFC 6749 section 4.3).
pub const PASSWORD_GRANT: &str = "password";
/// `grant_type` of a refresh (RFC 6749 section 6).
pub const REFRESH_TOKEN_GRANT: &str = "refresh_token";

/// `POST /auth/token` (`application/x-www-form-urlencoded`). Unknown parameters, such
/// as the `client_id` and `scope` that Swagger UI sends, are ignored as RFC 6749 requires.
#[derive(Clone, Deserialize, ToSchema)]
pub struct TokenRequest {
    #[schema(schema_with = grant_type)]
    pub grant_type: String,
    /// The e-mail address (password grant).
    pub username: Option<String>,
    /// The password (password grant).
    #[schema(format = "password")]
    pub password: Option<String>,
    /// The refresh token (refresh_token grant).
    pub refresh_token: Option<String>,
    /// Ignored: Orderly has no scopes.
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest").field("grant_type", &self.grant_type).finish_non_exhaustive()
    }
}

/// The RFC 6749 section 5.1 token response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiJ9...", "token_type": "Bearer", "expires_in": 900, "refresh_token": "5f2c..."}))]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: each refresh returns a new one.
    pub refresh_token: String,
}

/// `POST /auth/revoke` (`application/x-www-form-urlencoded`, RFC 7009).
#[derive(Clone, Deserialize, ToSchema)]
pub struct RevokeRequest {
    /// The refresh token to revoke (with its whole session).
    pub token: String,
    /// Ignored hint (`refresh_token`).
    pub token_type_hint: Option<String>,
}

impl std::fmt::Debug for RevokeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokeRequest").finish_non_exhaustive()
    }
}

// ---- Refusals ----

impl From<AuthenticateError> for ApiError {
    fn from(error: AuthenticateError) -> Self {
        match error {
            AuthenticateError::InvalidCredentials => {
                oauth_error(ErrorCode::InvalidGrant, "invalid_grant", "Invalid e-mail or password.")
            }
            AuthenticateError::Busy => server_busy(),
            AuthenticateError::Store(store) => store.into(),
            AuthenticateError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<RefreshSessionError> for ApiError {
    fn from(error: RefreshSessionError) -> Self {
        match error {
            RefreshSessionError::InvalidGrant => oauth_error(
                ErrorCode::InvalidGrant,
                "invalid_grant",
                "The refresh token is invalid, expired or revoked.",
            ),
            RefreshSessionError::Reused => oauth_error(
                ErrorCode::InvalidGrant,
                "invalid_grant",
                "The refresh token was already used; the session has been revoked. Log in again.",
            ),
            RefreshSessionError::Store(store) => store.into(),
            RefreshSessionError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

// ---- Routes ----

fn token_response(pair: TokenPair) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::PRAGMA, "no-cache")).json(TokenResponse {
        access_token: pair.access.token,
        token_type: "Bearer".to_owned(),
        expires_in: pair.access.expires_in,
        refresh_token: pair.refresh_token,
    })
}

fn missing(parameter: &str) -> ApiError {
    oauth_error(
        ErrorCode::MalformedRequest,
        "invalid_request",
        &format!("`{parameter}` is required for this grant type."),
    )
}

/// Get tokens: log in with e-mail and password, or refresh a session.
///
/// `grant_type=password` with `username` (the e-mail address) and `password`, or
/// `grant_type=refresh_token` with `refresh_token`. Refresh tokens are single use: each refresh
/// returns a new one, and presenting a used one again revokes the whole session.
#[utoipa::path(
    post, path = "/auth/token", operation_id = "issueToken", tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Tokens (RFC 6749 section 5.1)", body = TokenResponse),
        (status = 400, description = "INVALID_GRANT (wrong credentials; invalid, expired or reused refresh token), UNSUPPORTED_GRANT_TYPE or MALFORMED_REQUEST; the body also carries the OAuth2 `error` and `error_description`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "SERVER_BUSY: too many passwords are being checked (with `Retry-After`), or DATABASE_UNAVAILABLE / DATABASE_BUSY", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn token(
    state: web::Data<ApiState>,
    request: HttpRequest,
    form: web::Form<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let form = form.into_inner();
    rate_limit::enforce(&request, Policy::AuthPerIp, None, None).await?;
    let pair = match form.grant_type.as_str() {
        PASSWORD_GRANT => {
            let email = form.username.ok_or_else(|| missing("username"))?;
            let password = form.password.ok_or_else(|| missing("password"))?;
            rate_limit::enforce(&request, Policy::AuthPerAccount, None, Some(&email)).await?;
            state.use_cases.authenticate.execute(AuthenticateInput { email, password }).await?
        }
        REFRESH_TOKEN_GRANT => {
            let token = form.refresh_token.ok_or_else(|| missing("refresh_token"))?;
            state.use_cases.refresh_session.execute(&token).await?
        }
        other => {
            return Err(oauth_error(
                ErrorCode::UnsupportedGrantType,
                "unsupported_grant_type",
                &format!(
                    "grant_type `{other}` is not supported; use `password` or `refresh_token`."
                ),
            ));
        }
    };
    Ok(token_response(pair))
}

/// Log out: revoke a refresh token and every token of its session.
///
/// Always answers 200, also for an unknown token (RFC 7009 section 2.2).
#[utoipa::path(
    post, path = "/auth/revoke", operation_id = "revokeToken", tag = "auth",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked (or unknown)"))
)]
pub async fn revoke(
    state: web::Data<ApiState>,
    form: web::Form<RevokeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.use_cases.revoke_token.execute(&form.token).await?;
    Ok(HttpResponse::Ok().finish())
}

/// This module's operations, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<super::table::Declared> {
    super::table::declared![token, revoke]
}
