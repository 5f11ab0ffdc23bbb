//! `/api/v1/auth`: the OAuth2 token endpoint (RFC 6749) and token revocation (RFC 7009).

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use orderly_application::auth::{TokenPair, authenticate::AuthenticateInput};

use crate::{
    dto::auth::{PASSWORD_GRANT, REFRESH_TOKEN_GRANT, RevokeRequest, TokenRequest, TokenResponse},
    errors::oauth_error,
    problem::{ApiError, ErrorCode, Problem},
    rate_limit::{self, Policy},
    state::ApiState,
};

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
    post, path = "/api/v1/auth/token", operation_id = "issueToken", tag = "auth",
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
    post, path = "/api/v1/auth/revoke", operation_id = "revokeToken", tag = "auth",
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
