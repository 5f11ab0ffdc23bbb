//! The OAuth2 token and revocation endpoints (RFC 6749, RFC 7009): form-encoded requests.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `grant_type` of a login with e-mail address and password (RFC 6749 section 4.3).
pub const PASSWORD_GRANT: &str = "password";
/// `grant_type` of a refresh (RFC 6749 section 6).
pub const REFRESH_TOKEN_GRANT: &str = "refresh_token";

/// `POST /api/v1/auth/token` (`application/x-www-form-urlencoded`). Unknown parameters, such
/// as the `client_id` and `scope` that Swagger UI sends, are ignored as RFC 6749 requires.
#[derive(Clone, Deserialize, ToSchema)]
pub struct TokenRequest {
    #[schema(schema_with = super::schema::grant_type)]
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

/// `POST /api/v1/auth/revoke` (`application/x-www-form-urlencoded`, RFC 7009).
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
