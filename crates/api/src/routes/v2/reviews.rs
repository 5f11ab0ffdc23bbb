//! `/api/v2` reviews: v1's handlers but for a product's review list, whose page links are in
//! the body. A review holds no money, so its representation is v1's.

use actix_web::{HttpRequest, HttpResponse, web};
use orderly_domain::{ProductId, Uuid};

use super::page::page;
use crate::{
    dto::PageQuery,
    problem::{ApiError, Problem},
    routes::{
        list_request,
        reviews::{self, ReviewListQuery, ReviewResponse},
    },
    state::ApiState,
};

page! {
    /// One page of reviews.
    ReviewList of ReviewResponse
}

/// A product's visible reviews, newest first unless sorted otherwise.
#[utoipa::path(
    get, path = "/products/{id}/reviews", operation_id = "listProductReviews", tag = "reviews",
    params(("id" = Uuid, Path, description = "The product's id"), PageQuery, ReviewListQuery),
    responses(
        (status = 200, description = "One page of reviews", body = ReviewList),
        (status = 400, description = "VALIDATION_FAILED (limit, rating, sort) or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: no such product", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<ApiState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
    page: web::Query<PageQuery>,
    query: web::Query<ReviewListQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.into_inner().filter()?;
    let listed = state
        .use_cases
        .reviews
        .list
        .execute(ProductId::from_uuid(*id), filter, list_request(&page)?)
        .await?;
    let data = listed.items.iter().map(ReviewResponse::from).collect();
    Ok(HttpResponse::Ok().json(ReviewList::new(&request, data, listed.next_cursor.as_deref())))
}

/// This module's operation and v1's unchanged ones, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<crate::routes::table::Declared> {
    crate::routes::table::declared![
        reviews::write,
        list,
        reviews::get,
        reviews::update,
        reviews::delete,
    ]
}
