//! Bearer authentication: the extractor that turns `Authorization: Bearer <jwt>` into the
//! domain's `Actor`, as the account is now (the `authorize` use case checks the token against
//! the account: deleted, demoted, new password), and how its refusals become 401s. Authorization
//! decisions are the use cases'; this only says who is asking.

use actix_web::{FromRequest, HttpMessage as _, HttpRequest, dev::Payload, http::header, web};
use futures_util::future::LocalBoxFuture;
use orderly_application::auth::authorize::AuthorizeError;
use orderly_domain::{Actor, UserId};

use crate::{problem::ApiError, state::ApiState};

/// The user id of an authenticated request, kept in the request's extensions for the log line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthenticatedUser(pub(crate) UserId);

/// A request with a valid access token.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Actor);

/// A request with a valid access token, or none at all (a present but invalid token is a 401).
#[derive(Debug, Clone, Copy)]
pub struct MaybeAuthenticated(pub Option<Actor>);

fn bearer(request: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| {
        ApiError::unauthenticated("The Authorization header is not valid text.", true)
    })?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthenticated("Use `Authorization: Bearer <access token>`.", true)),
    }
}

impl From<AuthorizeError> for ApiError {
    fn from(error: AuthorizeError) -> Self {
        match error {
            AuthorizeError::InvalidToken => {
                ApiError::unauthenticated("The access token is invalid or expired.", true)
            }
            AuthorizeError::AccountGone => ApiError::unauthenticated(
                "The account this access token belongs to no longer exists.",
                true,
            ),
            AuthorizeError::SessionEnded => ApiError::unauthenticated(
                "The password was changed since this access token was issued; log in again.",
                true,
            ),
            AuthorizeError::Store(store) => store.into(),
        }
    }
}

async fn authenticate(request: &HttpRequest) -> Result<Option<Actor>, ApiError> {
    let Some(token) = bearer(request)? else { return Ok(None) };
    let state = request
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ApiState is not registered")))?;
    let actor = state.use_cases.authorize.execute(token).await?;
    if let Some(id) = actor.user_id() {
        request.extensions_mut().insert(AuthenticatedUser(id));
    }
    Ok(Some(actor))
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            authenticate(&request).await.and_then(|actor| {
                actor.map(Self).ok_or_else(|| {
                    ApiError::unauthenticated("This route needs an access token.", false)
                })
            })
        })
    }
}

impl FromRequest for MaybeAuthenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move { authenticate(&request).await.map(Self) })
    }
}
