//! Product reviews, in one module: the routes, their bodies and schemas, and how the use cases'
//! refusals become problems. Anyone reads the visible reviews; a customer who received a product
//! reviews it once; the author edits or deletes theirs; an admin hides (or deletes) any.
//!
//! The fields' rules are the domain's (`orderly_domain::review`): the parsers check them and the
//! schemas below are built from the same constants.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use orderly_application::reviews::{
    delete_review::DeleteReviewError,
    get_review::GetReviewError,
    list_reviews::ListReviewsError,
    ports::{ReviewFilter, ReviewSort},
    update_review::{Moderation, UpdateReviewError, UpdateReviewInput},
    write_review::WriteReviewError,
};
use orderly_domain::{
    ProductId, Rating, Reason, Review, ReviewBody, ReviewDraft, ReviewId, ReviewTitle, Uuid,
    order::REASON_MAX_LEN,
    review::{MAX_RATING, MIN_RATING, REVIEW_BODY_MAX_LEN, REVIEW_TITLE_MAX_LEN},
};
use serde::{Deserialize, Serialize};
use utoipa::{
    IntoParams, ToSchema,
    openapi::{KnownFormat, Object},
};

use crate::{
    auth::{Authenticated, MaybeAuthenticated},
    dto::{
        PageQuery, integer,
        schema::{self, Lines},
    },
    errors::{concurrent, forbidden, not_found, stale},
    etag::if_match,
    problem::{ApiError, ErrorCode, Problem},
    routes::{created, list_request, page_response, resource},
    state::ApiState,
    validation::FieldErrors,
};

// ---- Schemas, from the domain's bounds ----

fn rating(nullable: bool) -> Object {
    let description = "Stars, 1 to 5.";
    schema::integer(nullable, KnownFormat::Int32, MIN_RATING.into(), MAX_RATING.into(), description)
}
fn new_rating() -> Object {
    rating(false)
}
fn changed_rating() -> Object {
    rating(true)
}
fn rating_filter() -> Object {
    let mut filter = rating(false);
    filter.description =
        Some(format!("Only reviews with this many stars, {MIN_RATING} to {MAX_RATING}."));
    filter
}
const LINES: &str = "Trimmed; not blank; line breaks allowed, no other control characters.";
fn new_title() -> Object {
    schema::name_text(false, REVIEW_TITLE_MAX_LEN)
}
fn changed_title() -> Object {
    schema::name_text(true, REVIEW_TITLE_MAX_LEN)
}
fn new_body() -> Object {
    schema::bounded_text(false, REVIEW_BODY_MAX_LEN, Lines::Many, LINES)
}
fn changed_body() -> Object {
    schema::bounded_text(true, REVIEW_BODY_MAX_LEN, Lines::Many, LINES)
}
fn hidden_reason() -> Object {
    schema::bounded_text(true, REASON_MAX_LEN, Lines::Many, LINES)
}
fn review_sort() -> Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(ReviewSort::ALL.iter().map(ReviewSort::as_str)))
        .description(Some(
            "The order: newest first (`-created_at`, the default), oldest first, or by rating \
             (`-rating`: most stars first).",
        ))
        .build()
}

// ---- Bodies ----

/// `POST /products/{id}/reviews`: your review of a product you received.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rating": 5, "title": "Quiet and solid", "body": "Typing all day, no complaints."}))]
pub struct WriteReviewRequest {
    #[serde(deserialize_with = "integer::required")]
    #[schema(schema_with = new_rating)]
    pub rating: i64,
    #[schema(schema_with = new_title)]
    pub title: String,
    #[schema(schema_with = new_body)]
    pub body: String,
}

impl TryFrom<WriteReviewRequest> for ReviewDraft {
    type Error = FieldErrors;

    fn try_from(body: WriteReviewRequest) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::default();
        let rating = fields.parse("rating", Rating::new(body.rating));
        let title = fields.parse("title", ReviewTitle::parse(&body.title));
        let text = fields.parse("body", ReviewBody::parse(&body.body));
        fields.into_result(|| Some(ReviewDraft { rating: rating?, title: title?, body: text? }))
    }
}

/// `PATCH /reviews/{id}`: the author changes `rating`, `title` or `body`; an admin sets
/// `hidden`, with an optional `hidden_reason` (a reason alone hides the review too; showing it,
/// `"hidden": false`, clears any reason). Absent or `null` fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hidden": true, "hidden_reason": "Off-topic"}))]
pub struct UpdateReviewRequest {
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(schema_with = changed_rating)]
    pub rating: Option<i64>,
    #[schema(schema_with = changed_title)]
    pub title: Option<String>,
    #[schema(schema_with = changed_body)]
    pub body: Option<String>,
    /// Hide the review from everyone but its author and admins (`true`), or show it (`false`).
    /// Admins only.
    pub hidden: Option<bool>,
    #[schema(schema_with = hidden_reason)]
    pub hidden_reason: Option<String>,
}

impl TryFrom<UpdateReviewRequest> for UpdateReviewInput {
    type Error = FieldErrors;

    fn try_from(body: UpdateReviewRequest) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::default();
        let rating = body.rating.map(|raw| fields.parse("rating", Rating::new(raw)));
        let title = body.title.as_deref().map(|raw| fields.parse("title", ReviewTitle::parse(raw)));
        let text = body.body.as_deref().map(|raw| fields.parse("body", ReviewBody::parse(raw)));
        let reason = body
            .hidden_reason
            .as_deref()
            .map(|raw| fields.parse("hidden_reason", Reason::parse(raw)));
        // A reason hides the review (with or without `"hidden": true`); showing it drops any
        // reason, so every body the schema allows has one meaning.
        let moderation = match (body.hidden, reason) {
            (Some(false), _) => Some(Moderation::Show),
            (Some(true), reason) => Some(Moderation::Hide(reason.flatten())),
            (None, Some(reason)) => Some(Moderation::Hide(reason)),
            (None, None) => None,
        };
        fields.into_result(|| {
            Some(UpdateReviewInput {
                expected_version: None,
                rating: rating.map_or(Some(None), |rating| rating.map(Some))?,
                title: title.map_or(Some(None), |title| title.map(Some))?,
                body: text.map_or(Some(None), |text| text.map(Some))?,
                moderation,
            })
        })
    }
}

/// Who wrote a review: never their e-mail address.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewAuthorResponse {
    pub id: Uuid,
    /// The author's display name.
    pub name: String,
}

/// A review as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5e", "product_id": "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d",
    "author": {"id": "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5f", "name": "Ada"}, "rating": 5,
    "title": "Quiet and solid", "body": "Typing all day, no complaints.", "verified_purchase": true,
    "hidden": false, "hidden_reason": null,
    "created_at": "2026-12-04T10:00:00Z", "updated_at": "2026-12-04T10:00:00Z"
}))]
pub struct ReviewResponse {
    pub id: Uuid,
    pub product_id: Uuid,
    /// `null` when the author's account was deleted: the review stays, from a deleted account.
    #[schema(required = true)]
    pub author: Option<ReviewAuthorResponse>,
    #[schema(minimum = 1, maximum = 5)]
    pub rating: u8,
    pub title: String,
    pub body: String,
    /// The author had a delivered order of the product when writing it.
    pub verified_purchase: bool,
    /// Hidden by an administrator: only its author and admins see it, and it does not count in
    /// the product's rating.
    pub hidden: bool,
    /// Why it was hidden (`null` while visible or when no reason was given).
    #[schema(required = true)]
    pub hidden_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Review> for ReviewResponse {
    fn from(review: &Review) -> Self {
        Self {
            id: review.id().into_uuid(),
            product_id: review.product_id().into_uuid(),
            author: review.author().map(|author| ReviewAuthorResponse {
                id: author.id.into_uuid(),
                name: author.name.as_str().to_owned(),
            }),
            rating: review.rating().stars(),
            title: review.title().as_str().to_owned(),
            body: review.body().as_str().to_owned(),
            verified_purchase: review.is_verified_purchase(),
            hidden: review.is_hidden(),
            hidden_reason: review.hidden_reason().map(|reason| reason.as_str().to_owned()),
            created_at: review.created_at(),
            updated_at: review.updated_at(),
        }
    }
}

/// One page of reviews.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewPage {
    pub data: Vec<ReviewResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Filters of a product's review list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewListQuery {
    /// Only reviews with this many stars.
    #[serde(default, deserialize_with = "integer::optional_in_query")]
    #[param(schema_with = rating_filter)]
    pub rating: Option<i64>,
    /// The order.
    #[param(schema_with = review_sort)]
    pub sort: Option<String>,
}

impl ReviewListQuery {
    /// The filter these parameters ask for.
    ///
    /// # Errors
    /// The field errors of `rating` and `sort` when out of their values.
    pub(crate) fn filter(self) -> Result<ReviewFilter, FieldErrors> {
        let mut fields = FieldErrors::default();
        let rating = self.rating.map(|raw| fields.parse("rating", Rating::new(raw)));
        let sort = match self.sort.as_deref() {
            None => Some(ReviewSort::default()),
            Some(raw) => fields.parse("sort", ReviewSort::parse(raw)),
        };
        fields.into_result(|| {
            Some(ReviewFilter { rating: rating.map_or(Some(None), |r| r.map(Some))?, sort: sort? })
        })
    }
}

// ---- Refusals ----

impl From<WriteReviewError> for ApiError {
    fn from(error: WriteReviewError) -> Self {
        match error {
            WriteReviewError::ProductNotFound => not_found("product"),
            WriteReviewError::RequiresPurchase => ApiError::new(
                ErrorCode::ReviewRequiresPurchase,
                "Only a customer with a delivered order of this product may review it.",
            ),
            WriteReviewError::AlreadyReviewed => ApiError::new(
                ErrorCode::ReviewExists,
                "You already reviewed this product; change that review instead.",
            ),
            WriteReviewError::UnknownAuthor => ApiError::unauthenticated(
                "The account this access token belongs to no longer exists.",
                true,
            ),
            WriteReviewError::Store(store) => store.into(),
        }
    }
}

impl From<GetReviewError> for ApiError {
    fn from(error: GetReviewError) -> Self {
        match error {
            GetReviewError::NotFound => not_found("review"),
            GetReviewError::Store(store) => store.into(),
        }
    }
}

impl From<ListReviewsError> for ApiError {
    fn from(error: ListReviewsError) -> Self {
        match error {
            ListReviewsError::ProductNotFound => not_found("product"),
            ListReviewsError::InvalidCursor(cursor) => cursor.into(),
            ListReviewsError::Store(store) => store.into(),
        }
    }
}

impl From<UpdateReviewError> for ApiError {
    fn from(error: UpdateReviewError) -> Self {
        match error {
            UpdateReviewError::NotFound => not_found("review"),
            UpdateReviewError::Forbidden(why) => {
                forbidden(format!("{}{}.", &why[..1].to_uppercase(), &why[1..]))
            }
            UpdateReviewError::VersionMismatch { expected, current } => stale(expected, current),
            UpdateReviewError::Conflict => concurrent(),
            UpdateReviewError::Store(store) => store.into(),
        }
    }
}

impl From<DeleteReviewError> for ApiError {
    fn from(error: DeleteReviewError) -> Self {
        match error {
            DeleteReviewError::NotFound => not_found("review"),
            DeleteReviewError::Forbidden => {
                forbidden("Only its author or an administrator may delete a review.")
            }
            DeleteReviewError::Conflict => concurrent(),
            DeleteReviewError::Store(store) => store.into(),
        }
    }
}

// ---- Routes ----

/// Review a product you received (one review per product).
#[utoipa::path(
    post, path = "/products/{id}/reviews", operation_id = "writeReview", tag = "reviews",
    params(("id" = Uuid, Path, description = "The product's id")),
    request_body = WriteReviewRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The review", body = ReviewResponse,
            headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "REVIEW_REQUIRES_PURCHASE: no delivered order of this product", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: no such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "REVIEW_EXISTS: you already reviewed it", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn write(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<WriteReviewRequest>,
) -> Result<HttpResponse, ApiError> {
    let draft = ReviewDraft::try_from(body.into_inner())?;
    let review =
        state.use_cases.reviews.write.execute(&auth.0, ProductId::from_uuid(*id), draft).await?;
    Ok(created(
        &request,
        format_args!("/reviews/{}", review.id()),
        review.version(),
        &ReviewResponse::from(&review),
    ))
}

/// A product's visible reviews, newest first unless sorted otherwise.
#[utoipa::path(
    get, path = "/products/{id}/reviews", operation_id = "listProductReviews", tag = "reviews",
    params(("id" = Uuid, Path, description = "The product's id"), PageQuery, ReviewListQuery),
    responses(
        (status = 200, description = "One page of reviews", body = ReviewPage,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` when there is a next page"))),
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
    let body = ReviewPage {
        data: listed.items.iter().map(ReviewResponse::from).collect(),
        next_cursor: listed.next_cursor,
    };
    Ok(page_response(&request, &body, body.next_cursor.as_deref()))
}

/// One review: a visible one for anyone, a hidden one for its author and admins.
#[utoipa::path(
    get, path = "/reviews/{id}", operation_id = "getReview", tag = "reviews",
    params(("id" = Uuid, Path, description = "The review's id")),
    security((), ("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The review", body = ReviewResponse, headers(("ETag" = String))),
        (status = 304, description = "The copy named by If-None-Match is current"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: MaybeAuthenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let review =
        state.use_cases.reviews.get.execute(auth.0.as_ref(), ReviewId::from_uuid(*id)).await?;
    Ok(resource(&request, review.version(), &ReviewResponse::from(&review)))
}

/// Change a review: its author changes the rating, title or body; an admin hides or shows it.
/// Send `If-Match` to avoid overwriting a concurrent change.
#[utoipa::path(
    patch, path = "/reviews/{id}", operation_id = "updateReview", tag = "reviews",
    params(("id" = Uuid, Path, description = "The review's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you last read")),
    request_body = UpdateReviewRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The review as stored", body = ReviewResponse, headers(("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: not the author (text), or not an admin (hidden)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "CONCURRENT_MODIFICATION: without If-Match, the review kept changing under repeated attempts", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "PRECONDITION_FAILED: If-Match is stale", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<UpdateReviewRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut input = UpdateReviewInput::try_from(body.into_inner())?;
    input.expected_version = if_match(&request)?;
    let review =
        state.use_cases.reviews.update.execute(&auth.0, ReviewId::from_uuid(*id), input).await?;
    Ok(resource(&request, review.version(), &ReviewResponse::from(&review)))
}

/// Delete a review (its author, or an admin); the product's rating no longer counts it.
#[utoipa::path(
    delete, path = "/reviews/{id}", operation_id = "deleteReview", tag = "reviews",
    params(("id" = Uuid, Path, description = "The review's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "FORBIDDEN: neither its author nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "CONCURRENT_MODIFICATION: the review kept changing under repeated attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    state: web::Data<ApiState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.use_cases.reviews.delete.execute(&auth.0, ReviewId::from_uuid(*id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// This module's operations, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<super::table::Declared> {
    super::table::declared![write, list, get, update, delete]
}
