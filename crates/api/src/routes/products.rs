//! `/api/v1/products`: the catalogue. Anyone reads; admins write.

use actix_web::{HttpRequest, HttpResponse, web};
use orderly_application::{
    ports::{ProductFilter, ProductSort},
    products::update_product::UpdateProductInput,
};
use orderly_domain::{ProductDraft, ProductId, Uuid};

use crate::{
    auth::{Authenticated, MaybeAuthenticated},
    dto::{
        PageQuery,
        products::{
            CreateProductRequest, ProductListQuery, ProductPage, ProductResponse,
            UpdateProductRequest,
        },
    },
    etag::if_match,
    problem::{ApiError, Problem},
    routes::{created, list_request, page_response, resource},
    state::ApiState,
    validation::FieldErrors,
};

/// List products, filtered and sorted.
#[utoipa::path(
    get, path = "/api/v1/products", operation_id = "listProducts", tag = "products",
    params(PageQuery, ProductListQuery),
    security((), ("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of products", body = ProductPage,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` when there is a next page"))),
        (status = 400, description = "VALIDATION_FAILED (limit, sort) or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "UNAUTHENTICATED: include_archived without an access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: include_archived without being an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: MaybeAuthenticated,
    page: web::Query<PageQuery>,
    query: web::Query<ProductListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut fields = FieldErrors::default();
    let sort = match query.sort.as_deref() {
        None => Some(ProductSort::default()),
        Some(raw) => fields.parse("sort", ProductSort::parse(raw)),
    };
    let sort = fields.into_result(|| sort)?;
    let filter = ProductFilter {
        q: query.q,
        include_archived: query.include_archived.unwrap_or(false),
        sort,
    };
    let listed = state
        .use_cases
        .list_products
        .execute(auth.0.as_ref(), filter, list_request(&page)?)
        .await?;
    let body = ProductPage {
        data: listed.items.iter().map(ProductResponse::from).collect(),
        next_cursor: listed.next_cursor,
    };
    Ok(page_response(&request, &body, body.next_cursor.as_deref()))
}

/// One product, archived or not.
#[utoipa::path(
    get, path = "/api/v1/products/{id}", operation_id = "getProduct", tag = "products",
    params(("id" = Uuid, Path, description = "The product's id")),
    responses(
        (status = 200, description = "The product", body = ProductResponse, headers(("ETag" = String))),
        (status = 304, description = "The copy named by If-None-Match is current"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<ApiState>,
    request: HttpRequest,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let product = state.use_cases.get_product.execute(ProductId::from_uuid(*id)).await?;
    Ok(resource(&request, product.version(), &ProductResponse::from(&product)))
}

/// Add a product (admins).
#[utoipa::path(
    post, path = "/api/v1/products", operation_id = "createProduct", tag = "products",
    request_body = CreateProductRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The new product", body = ProductResponse,
            headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "SKU_TAKEN", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<ApiState>,
    auth: Authenticated,
    body: web::Json<CreateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let draft = ProductDraft::try_from(body.into_inner())?;
    let product = state.use_cases.create_product.execute(&auth.0, draft).await?;
    Ok(created(
        format!("/api/v1/products/{}", product.id()),
        product.version(),
        &ProductResponse::from(&product),
    ))
}

/// Change a product (admins). Send `If-Match` to avoid overwriting a concurrent change (412 when
/// the product changed since you read it). Without it, your change is applied to the current
/// product, even while orders reserve its stock.
#[utoipa::path(
    patch, path = "/api/v1/products/{id}", operation_id = "updateProduct", tag = "products",
    params(("id" = Uuid, Path, description = "The product's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you last read")),
    request_body = UpdateProductRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The product as stored", body = ProductResponse, headers(("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "SKU_TAKEN, or CONCURRENT_MODIFICATION when, without If-Match, the product kept changing under repeated attempts", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "PRECONDITION_FAILED: If-Match is stale", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<UpdateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut input = UpdateProductInput::try_from(body.into_inner())?;
    // Preconditions are evaluated once the request itself is known to be valid (RFC 9110
    // section 13.2.1): a malformed body is a 400 whatever If-Match says.
    input.expected_version = if_match(&request)?;
    let product =
        state.use_cases.update_product.execute(&auth.0, ProductId::from_uuid(*id), input).await?;
    Ok(resource(&request, product.version(), &ProductResponse::from(&product)))
}

/// Archive a product (admins): it leaves the catalogue, orders keep referring to it.
#[utoipa::path(
    delete, path = "/api/v1/products/{id}", operation_id = "archiveProduct", tag = "products",
    params(("id" = Uuid, Path, description = "The product's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Archived (also when it already was)"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "CONCURRENT_MODIFICATION: the product kept changing under repeated attempts", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn archive(
    state: web::Data<ApiState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.use_cases.archive_product.execute(&auth.0, ProductId::from_uuid(*id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// This module's operations, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<super::table::Declared> {
    super::table::declared![list, create, get, update, archive]
}
