//! `/api/v1/users`: registration, profiles, and a user's orders.

use actix_web::{HttpRequest, HttpResponse, web};
use orderly_application::users::register_user::RegisterUserInput;
use orderly_domain::{UserId, Uuid};

use crate::{
    auth::Authenticated,
    dto::{
        PageQuery,
        orders::{OrderPage, OrderResponse, UserOrderListQuery},
        users::{RegisterUserRequest, UpdateUserRequest, UserChanges, UserPage, UserResponse},
    },
    etag::if_match,
    problem::{ApiError, Problem},
    rate_limit::{self, Policy},
    routes::{created, list_request, page_response, resource},
    state::ApiState,
};

/// Register a customer account.
///
/// Anyone may register; the account always gets the `customer` role (admins are made with
/// `orderly admin create`). Log in afterwards at `POST /api/v1/auth/token`.
#[utoipa::path(
    post, path = "/api/v1/users", operation_id = "registerUser", tag = "users",
    request_body = RegisterUserRequest,
    responses(
        (status = 201, description = "The new user", body = UserResponse,
            headers(("Location" = String, description = "The user's URL"), ("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "EMAIL_TAKEN", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "SERVER_BUSY: too many passwords are being hashed (with `Retry-After`), or DATABASE_UNAVAILABLE / DATABASE_BUSY", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    state: web::Data<ApiState>,
    request: HttpRequest,
    body: web::Json<RegisterUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    rate_limit::enforce(&request, Policy::AuthPerIp, None, None).await?;
    rate_limit::enforce(&request, Policy::AuthPerAccount, None, Some(&body.email)).await?;
    let input = RegisterUserInput::try_from(body)?;
    let user = state.use_cases.register_user.execute(input).await?;
    Ok(created(format!("/api/v1/users/{}", user.id()), user.version(), &UserResponse::from(&user)))
}

/// The logged-in user.
#[utoipa::path(
    get, path = "/api/v1/users/me", operation_id = "getCurrentUser", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse, headers(("ETag" = String))),
        (status = 304, description = "The copy named by If-None-Match is current"),
        (status = 404, description = "NOT_FOUND: the account was deleted a moment ago (within `AUTH_CACHE_TTL`; afterwards its tokens get 401)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let Authenticated(actor) = auth;
    let id = actor
        .user_id()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a token without a user")))?;
    let user = state.use_cases.get_user.execute(&actor, id).await?;
    Ok(resource(&request, user.version(), &UserResponse::from(&user)))
}

/// List users (admins).
#[utoipa::path(
    get, path = "/api/v1/users", operation_id = "listUsers", tag = "users",
    params(PageQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of users, oldest first", body = UserPage,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` when there is a next page"))),
        (status = 400, description = "VALIDATION_FAILED (limit over 100) or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let listed = state.use_cases.list_users.execute(&auth.0, list_request(&query)?).await?;
    let body = UserPage {
        data: listed.items.iter().map(UserResponse::from).collect(),
        next_cursor: listed.next_cursor,
    };
    Ok(page_response(&request, &body, body.next_cursor.as_deref()))
}

/// One user: yourself, or anyone for an admin.
#[utoipa::path(
    get, path = "/api/v1/users/{id}", operation_id = "getUser", tag = "users",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The user", body = UserResponse, headers(("ETag" = String))),
        (status = 304, description = "The copy named by If-None-Match is current"),
        (status = 404, description = "NOT_FOUND (also for another customer's account)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = state.use_cases.get_user.execute(&auth.0, UserId::from_uuid(*id)).await?;
    Ok(resource(&request, user.version(), &UserResponse::from(&user)))
}

/// Change a user: yourself, or anyone for an admin. Only admins change roles; the last admin
/// cannot be demoted.
///
/// A new `password` or `email` for your own account needs your current password in
/// `current_password` (403 `REAUTHENTICATION_REQUIRED` when it is missing or wrong), admins
/// included; an admin changing another user's needs none. Every request that sends
/// `current_password` also counts against the `auth-account` rate limit of the account.
///
/// Send `If-Match` with the ETag you read to make sure you do not overwrite someone else's change
/// (412 when it did change). Without it, your change is applied to the current user.
#[utoipa::path(
    patch, path = "/api/v1/users/{id}", operation_id = "updateUser", tag = "users",
    params(("id" = Uuid, Path, description = "The user's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you last read")),
    request_body = UpdateUserRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The user as stored", body = UserResponse, headers(("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: a customer changing a role; REAUTHENTICATION_REQUIRED: a new password or e-mail address for your own account without your current password in `current_password`, or with a wrong one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "EMAIL_TAKEN, LAST_ADMIN (demoting the only admin) or CONCURRENT_MODIFICATION (without If-Match, after repeated concurrent changes)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "PRECONDITION_FAILED: If-Match is stale", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "SERVER_BUSY: too many passwords are being hashed (a password change; with `Retry-After`), or DATABASE_UNAVAILABLE / DATABASE_BUSY", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.current_password.is_some() {
        // Each one is a guess at the account's password: bounded per account, like logins.
        let account = format!("user:{}", id.as_ref());
        rate_limit::enforce(&request, Policy::AuthPerAccount, None, Some(&account)).await?;
    }
    let changes = UserChanges::try_from(body)?;
    // Preconditions are evaluated once the request itself is known to be valid (RFC 9110
    // section 13.2.1): a malformed body is a 400 whatever If-Match says.
    let input = changes.into_input(UserId::from_uuid(*id), if_match(&request)?);
    let user = state.use_cases.update_user.execute(&auth.0, input).await?;
    Ok(resource(&request, user.version(), &UserResponse::from(&user)))
}

/// Delete a user without orders: yourself, or anyone for an admin. The last admin cannot be
/// deleted.
#[utoipa::path(
    delete, path = "/api/v1/users/{id}", operation_id = "deleteUser", tag = "users",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Deleted; the user's sessions are revoked"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "USER_HAS_ORDERS or LAST_ADMIN (deleting the only admin)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    state: web::Data<ApiState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.use_cases.delete_user.execute(&auth.0, UserId::from_uuid(*id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A user's orders, newest first: yours, or anyone's for an admin.
#[utoipa::path(
    get, path = "/api/v1/users/{id}/orders", operation_id = "listUserOrders", tag = "orders",
    params(("id" = Uuid, Path, description = "The user's id"), PageQuery, UserOrderListQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of the user's orders", body = OrderPage,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` when there is a next page"))),
        (status = 400, description = "VALIDATION_FAILED or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: another customer's account", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn orders(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    page: web::Query<PageQuery>,
    filter: web::Query<UserOrderListQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth.0;
    let listed = state
        .use_cases
        .list_user_orders
        .execute(
            &actor,
            UserId::from_uuid(*id),
            filter.status.map(Into::into),
            list_request(&page)?,
        )
        .await?;
    let body = OrderPage {
        data: listed
            .items
            .iter()
            .map(|order| OrderResponse::new(order, &actor, state.clock.now()))
            .collect(),
        next_cursor: listed.next_cursor,
    };
    Ok(page_response(&request, &body, body.next_cursor.as_deref()))
}
