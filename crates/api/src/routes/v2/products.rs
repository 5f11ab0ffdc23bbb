//! `/api/v2/products`: the catalogue with decimal-string prices and lists that carry their page
//! links. Same use cases, rules and refusals as v1 (`routes::products`, whose schemas and
//! parsers of the other fields this module uses); archiving is v1's handler.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use orderly_application::products::update_product::UpdateProductInput;
use orderly_domain::{
    ProductDraft, ProductId, ProductName, Sku, Uuid,
    product::{DESCRIPTION_MAX_LEN, MAX_STOCK, PRODUCT_NAME_MAX_LEN, SKU_MAX_LEN},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{money::DecimalMoney, page::page};
use crate::{
    auth::{Authenticated, MaybeAuthenticated},
    dto::{PageQuery, integer},
    etag::if_match,
    problem::{ApiError, Problem},
    routes::{
        created, list_request,
        products::{
            self, ProductListQuery, RatingResponse, changed_product_name, changed_sku,
            changed_stock, description, description_text, new_product_name, new_sku, new_stock,
            parse_description, present,
        },
        resource,
    },
    state::ApiState,
    validation::{FieldErrors, chars, parsed_by, within},
};

// ---- Bodies ----

/// `POST /api/v2/products` (admins).
#[derive(Debug, Clone, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(as = NewProduct, example = json!({"sku": "KB-001", "name": "Mechanical keyboard", "description": "Tactile switches", "price": {"amount": "89.99", "currency": "EUR"}, "stock": 25}))]
pub struct CreateProductRequest {
    #[garde(custom(chars(1, SKU_MAX_LEN)), custom(parsed_by(Sku::parse)))]
    #[schema(schema_with = new_sku)]
    pub sku: String,
    #[garde(custom(chars(1, PRODUCT_NAME_MAX_LEN)), custom(parsed_by(ProductName::parse)))]
    #[schema(schema_with = new_product_name)]
    pub name: String,
    #[garde(inner(custom(chars(0, DESCRIPTION_MAX_LEN)), custom(parsed_by(description_text))))]
    #[schema(schema_with = description)]
    pub description: Option<String>,
    #[garde(dive)]
    pub price: DecimalMoney,
    #[garde(custom(within(0, MAX_STOCK)))]
    #[serde(deserialize_with = "integer::required")]
    #[schema(schema_with = new_stock)]
    pub stock: u32,
}

impl TryFrom<CreateProductRequest> for ProductDraft {
    type Error = FieldErrors;

    fn try_from(body: CreateProductRequest) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::check(&body);
        let sku = fields.parse("sku", Sku::parse(&body.sku));
        let name = fields.parse("name", ProductName::parse(&body.name));
        let description = parse_description(&mut fields, body.description.as_deref());
        let price = body.price.parse(&mut fields, "price");
        fields.into_result(|| {
            Some(ProductDraft {
                sku: sku?,
                name: name?,
                description: description?,
                price: price?,
                stock: body.stock,
            })
        })
    }
}

/// `PATCH /api/v2/products/{id}` (admins): every field optional (`null` is the same as absent);
/// a blank or `null` `description` removes it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(as = ProductChanges, example = json!({"price": {"amount": "79.99", "currency": "EUR"}, "stock": 40}))]
pub struct UpdateProductRequest {
    #[garde(inner(custom(chars(1, SKU_MAX_LEN)), custom(parsed_by(Sku::parse))))]
    #[schema(schema_with = changed_sku)]
    pub sku: Option<String>,
    #[garde(inner(custom(chars(1, PRODUCT_NAME_MAX_LEN)), custom(parsed_by(ProductName::parse))))]
    #[schema(schema_with = changed_product_name)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[garde(inner(inner(
        custom(chars(0, DESCRIPTION_MAX_LEN)),
        custom(parsed_by(description_text))
    )))]
    #[schema(schema_with = description)]
    pub description: Option<Option<String>>,
    #[garde(dive)]
    pub price: Option<DecimalMoney>,
    #[garde(inner(custom(within(0, MAX_STOCK))))]
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(schema_with = changed_stock)]
    pub stock: Option<u32>,
}

/// The change, without the `If-Match` version: the handler adds it once the body is valid.
impl TryFrom<UpdateProductRequest> for UpdateProductInput {
    type Error = FieldErrors;

    fn try_from(body: UpdateProductRequest) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::check(&body);
        let sku = body.sku.as_deref().map(|raw| fields.parse("sku", Sku::parse(raw)));
        let name = body.name.as_deref().map(|raw| fields.parse("name", ProductName::parse(raw)));
        let description =
            body.description.as_ref().map(|raw| parse_description(&mut fields, raw.as_deref()));
        let price = body.price.as_ref().map(|price| price.parse(&mut fields, "price"));
        fields.into_result(|| {
            Some(UpdateProductInput {
                expected_version: None,
                sku: sku.map_or(Some(None), |sku| sku.map(Some))?,
                name: name.map_or(Some(None), |name| name.map(Some))?,
                description: description.map_or(Some(None), |description| description.map(Some))?,
                price: price.map_or(Some(None), |price| price.map(Some))?,
                stock: body.stock,
            })
        })
    }
}

/// A product as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Product, example = json!({
    "id": "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d", "sku": "KB-001", "name": "Mechanical keyboard",
    "description": "Tactile switches", "price": {"amount": "89.99", "currency": "EUR"}, "stock": 25,
    "archived": false, "rating": {"average": 4.33, "count": 3},
    "created_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:00Z"
}))]
pub struct ProductResponse {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    /// `null` without a description.
    #[schema(required = true)]
    pub description: Option<String>,
    pub price: DecimalMoney,
    pub stock: u32,
    /// Archived products stay readable (orders refer to them) but cannot be ordered.
    pub archived: bool,
    /// What the product's visible reviews add up to.
    pub rating: RatingResponse,
    #[serde(serialize_with = "crate::dto::timestamp::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamp::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&orderly_domain::Product> for ProductResponse {
    fn from(product: &orderly_domain::Product) -> Self {
        let v1 = products::ProductResponse::from(product);
        Self {
            id: v1.id,
            sku: v1.sku,
            name: v1.name,
            description: v1.description,
            price: product.price().into(),
            stock: v1.stock,
            archived: v1.archived,
            rating: v1.rating,
            created_at: v1.created_at,
            updated_at: v1.updated_at,
        }
    }
}

page! {
    /// One page of products.
    ProductList of ProductResponse
}

// ---- Routes ----

/// List products, filtered and sorted.
#[utoipa::path(
    get, path = "/products", operation_id = "listProducts", tag = "products",
    params(PageQuery, ProductListQuery),
    security((), ("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of products", body = ProductList),
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
    let filter = query.into_inner().filter()?;
    let listed = state
        .use_cases
        .list_products
        .execute(auth.0.as_ref(), filter, list_request(&page)?)
        .await?;
    let data = listed.items.iter().map(ProductResponse::from).collect();
    Ok(HttpResponse::Ok().json(ProductList::new(&request, data, listed.next_cursor.as_deref())))
}

/// One product, archived or not.
#[utoipa::path(
    get, path = "/products/{id}", operation_id = "getProduct", tag = "products",
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
    post, path = "/products", operation_id = "createProduct", tag = "products",
    request_body = CreateProductRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 201, description = "The new product", body = ProductResponse,
            headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED (`price.amount` with code `decimals` when it has more decimals than its currency) or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "SKU_TAKEN", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    body: web::Json<CreateProductRequest>,
) -> Result<HttpResponse, ApiError> {
    let draft = ProductDraft::try_from(body.into_inner())?;
    let product = state.use_cases.create_product.execute(&auth.0, draft).await?;
    Ok(created(
        &request,
        format_args!("/products/{}", product.id()),
        product.version(),
        &ProductResponse::from(&product),
    ))
}

/// Change a product (admins). Send `If-Match` to avoid overwriting a concurrent change (412 when
/// the product changed since you read it). Without it, your change is applied to the current
/// product, even while orders reserve its stock.
#[utoipa::path(
    patch, path = "/products/{id}", operation_id = "updateProduct", tag = "products",
    params(("id" = Uuid, Path, description = "The product's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you last read")),
    request_body = UpdateProductRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The product as stored", body = ProductResponse, headers(("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED (`price.amount` with code `decimals` when it has more decimals than its currency) or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
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

/// This module's operations and v1's archiving, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<crate::routes::table::Declared> {
    crate::routes::table::declared![list, create, get, update, products::archive]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::routes::v2::money::DECIMALS;

    fn codes(errors: &FieldErrors) -> Vec<(&str, &str)> {
        errors.errors().iter().map(|e| (e.field.as_str(), e.code.as_str())).collect()
    }

    #[test]
    fn a_creation_reads_its_price_in_the_currency_s_exponent() {
        let body: CreateProductRequest = serde_json::from_value(json!({
            "sku": "kb-1", "name": "Keyboard", "price": {"amount": "89.9", "currency": "EUR"},
            "stock": 1
        }))
        .expect("well-formed");
        let draft = ProductDraft::try_from(body).expect("valid");
        assert_eq!(draft.price.amount_minor(), 8990);
    }

    #[test]
    fn a_price_with_too_many_decimals_is_reported_beside_the_other_fields() {
        let body: CreateProductRequest = serde_json::from_value(json!({
            "sku": "KB 1", "name": "Keyboard", "price": {"amount": "89.999", "currency": "EUR"},
            "stock": 1
        }))
        .expect("well-formed");
        let errors = ProductDraft::try_from(body).expect_err("invalid");
        assert_eq!(codes(&errors), [("sku", "pattern"), ("price.amount", DECIMALS)]);

        let body: UpdateProductRequest =
            serde_json::from_value(json!({"price": {"amount": "1.5", "currency": "JPY"}}))
                .expect("well-formed");
        let errors = UpdateProductInput::try_from(body).expect_err("invalid");
        assert_eq!(codes(&errors), [("price.amount", DECIMALS)]);
    }

    #[test]
    fn a_malformed_amount_is_a_pattern_error_even_with_an_unknown_currency() {
        let body: UpdateProductRequest =
            serde_json::from_value(json!({"price": {"amount": "1e3", "currency": "XYZ"}}))
                .expect("well-formed");
        let errors = UpdateProductInput::try_from(body).expect_err("invalid");
        let mut found = codes(&errors);
        found.sort_unstable();
        assert_eq!(found, [("price.amount", "pattern"), ("price.currency", "currency")]);
    }
}
