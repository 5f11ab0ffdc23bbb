//! `/api/v2/users`: v1's handlers but for the two lists, the users (page links in the body) and
//! a user's orders (v2 orders: summaries unless `include=items`).

use actix_web::{HttpRequest, HttpResponse, web};
use orderly_domain::{UserId, Uuid};

use super::{
    orders::{IncludeQuery, OrderList, entries},
    page::page,
};
use crate::{
    auth::Authenticated,
    dto::PageQuery,
    problem::{ApiError, Problem},
    routes::{
        list_request,
        orders::UserOrderListQuery,
        users::{self, UserResponse},
    },
    state::ApiState,
};

page! {
    /// One page of users.
    UserList of UserResponse
}

/// List users (admins).
#[utoipa::path(
    get, path = "/users", operation_id = "listUsers", tag = "users",
    params(PageQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of users, oldest first", body = UserList),
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
    let data = listed.items.iter().map(UserResponse::from).collect();
    Ok(HttpResponse::Ok().json(UserList::new(&request, data, listed.next_cursor.as_deref())))
}

/// A user's orders, newest first: yours, or anyone's for an admin. Each is a summary, without
/// its items, unless `include=items`.
#[utoipa::path(
    get, path = "/users/{id}/orders", operation_id = "listUserOrders", tag = "orders",
    params(("id" = Uuid, Path, description = "The user's id"), PageQuery, UserOrderListQuery, IncludeQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of the user's orders", body = OrderList),
        (status = 400, description = "VALIDATION_FAILED (limit, include) or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
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
    include: web::Query<IncludeQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth.0;
    let items = include.items()?;
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
    let data = entries(&listed.items, items, &actor, state.clock.now());
    Ok(HttpResponse::Ok().json(OrderList::new(&request, data, listed.next_cursor.as_deref())))
}

/// This module's operations and v1's unchanged ones, in routing order (`routes::table`):
/// `/users/me` before `/users/{id}`.
pub(crate) fn endpoints() -> Vec<crate::routes::table::Declared> {
    crate::routes::table::declared![
        users::register,
        list,
        users::me,
        users::get,
        users::update,
        users::delete,
        orders,
    ]
}
