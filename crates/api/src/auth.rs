//! Bearer authentication: the extractor that turns `Authorization: Bearer <jwt>` into the
//! domain's `Actor`. Authorization decisions are the use cases'; this only says who is asking.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpMessage as _, HttpRequest, dev::Payload, http::header, web};
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

fn authenticate(request: &HttpRequest) -> Result<Option<Actor>, ApiError> {
    let Some(token) = bearer(request)? else { return Ok(None) };
    let state = request
        .app_data::<web::Data<ApiState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("ApiState is not registered")))?;
    let claims = state
        .access_tokens
        .verify(token, state.clock.now())
        .map_err(|_| ApiError::unauthenticated("The access token is invalid or expired.", true))?;
    request.extensions_mut().insert(AuthenticatedUser(claims.user_id));
    Ok(Some(Actor::User { id: claims.user_id, role: claims.role }))
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request).and_then(|actor| {
            actor.map(Self).ok_or_else(|| {
                ApiError::unauthenticated("This route needs an access token.", false)
            })
        }))
    }
}

impl FromRequest for MaybeAuthenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(request).map(Self))
    }
}
