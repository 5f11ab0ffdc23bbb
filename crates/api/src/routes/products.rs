//! `/api/v1/products`: the catalogue, in one module: the routes, their bodies and schemas, and
//! how the use cases' refusals become problems. Anyone reads; admins write.
//!
//! The fields' rules are the domain's (`orderly_domain::product`): the parsers check them and the
//! schemas below are built from the same constants.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use orderly_application::{
    ports::{ProductFilter, ProductSort},
    products::{
        archive_product::ArchiveProductError,
        create_product::CreateProductError,
        get_product::GetProductError,
        list_products::{ListProductsError, MAX_QUERY_LEN},
        update_product::{UpdateProductError, UpdateProductInput},
    },
};
use orderly_domain::{
    InvalidDescription, Product, ProductDescription, ProductDraft, ProductId, ProductName,
    RuleError as _, Sku, Uuid,
    product::{DESCRIPTION_MAX_LEN, MAX_STOCK, PRODUCT_NAME_MAX_LEN, SKU_MAX_LEN},
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{
    IntoParams, ToSchema,
    openapi::{KnownFormat, Object},
};

use crate::{
    auth::{Authenticated, MaybeAuthenticated},
    dto::{
        MoneyDto, PageQuery, integer,
        schema::{self, Lines},
    },
    errors::{concurrent, forbidden, not_found, stale},
    etag::if_match,
    problem::{ApiError, ErrorCode, FieldError, Problem},
    routes::{created, list_request, page_response, resource},
    state::ApiState,
    validation::{FieldErrors, chars, parsed_by, within},
};

// ---- Schemas, from the domain's bounds ----

const STOCK: &str = "Units in stock.";

fn sku(nullable: bool) -> Object {
    schema::string(nullable)
        .min_length(Some(1))
        .pattern(Some(schema::sku_pattern()))
        .description(Some(format!("Letters, digits, `-` and `_`, starting with a letter or digit, at most {SKU_MAX_LEN} once trimmed; stored upper-cased; unique.")))
        .examples(["KB-001"])
        .build()
}

/// `sku` of a new product.
pub(crate) fn new_sku() -> Object {
    sku(false)
}

/// `sku` of a product change.
pub(crate) fn changed_sku() -> Object {
    sku(true)
}

/// `name` of a new product.
pub(crate) fn new_product_name() -> Object {
    schema::name_text(false, PRODUCT_NAME_MAX_LEN)
}

/// `name` of a product change.
pub(crate) fn changed_product_name() -> Object {
    schema::name_text(true, PRODUCT_NAME_MAX_LEN)
}

/// `description` of a product: blank or `null` means none; line breaks allowed.
pub(crate) fn description() -> Object {
    schema::string(true)
        .pattern(Some(schema::blank_or_text_pattern(Lines::Many, Some(DESCRIPTION_MAX_LEN))))
        .description(Some(format!(
            "At most {DESCRIPTION_MAX_LEN} characters once trimmed; blank or `null` for none; \
             line breaks allowed, no other control characters."
        )))
        .build()
}

/// `stock` of a new product.
pub(crate) fn new_stock() -> Object {
    schema::integer(false, KnownFormat::Int32, 0, MAX_STOCK.into(), STOCK)
}

/// `stock` of a product change.
pub(crate) fn changed_stock() -> Object {
    schema::integer(true, KnownFormat::Int32, 0, MAX_STOCK.into(), STOCK)
}

/// The `sort` of the product list.
pub(crate) fn product_sort() -> Object {
    schema::string(false)
        .enum_values(Some(ProductSort::ALL.iter().map(ProductSort::as_str)))
        .default(Some(ProductSort::default().as_str().into()))
        .description(Some(
            "The order: by creation (oldest first), name or price; `-` in front for descending.",
        ))
        .build()
}

/// The `q` of the product list: blank means no filter; trimmed, at most `MAX_QUERY_LEN`
/// characters and no control characters.
pub(crate) fn product_query() -> Object {
    schema::string(false)
        .pattern(Some(schema::blank_or_text_pattern(Lines::One, Some(MAX_QUERY_LEN))))
        .description(Some(format!(
            "Text to find in the name or SKU, case-insensitively: at most {MAX_QUERY_LEN} \
             characters once trimmed, no control characters; blank for none."
        )))
        .build()
}

// ---- Bodies ----

/// `POST /products` (admins).
#[derive(Debug, Clone, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sku": "KB-001", "name": "Mechanical keyboard", "description": "Tactile switches", "price": {"amount": 8999, "currency": "EUR"}, "stock": 25}))]
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
    pub price: MoneyDto,
    #[garde(custom(within(0, MAX_STOCK)))]
    #[serde(deserialize_with = "integer::required")]
    #[schema(schema_with = new_stock)]
    pub stock: u32,
}

/// A description as sent: blank is none.
pub(crate) fn description_text(
    raw: &str,
) -> Result<Option<ProductDescription>, InvalidDescription> {
    if raw.trim().is_empty() { Ok(None) } else { ProductDescription::parse(raw).map(Some) }
}

/// A description as sent, or none when absent.
pub(crate) fn parse_description(
    fields: &mut FieldErrors,
    raw: Option<&str>,
) -> Option<Option<ProductDescription>> {
    match raw {
        Some(raw) => fields.parse("description", description_text(raw)),
        None => Some(None),
    }
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

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH /products/{id}` (admins): every field optional (`null` is the same as absent);
/// a blank or `null` `description` removes it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"price": {"amount": 7999, "currency": "EUR"}, "stock": 40}))]
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
    pub price: Option<MoneyDto>,
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
#[schema(example = json!({
    "id": "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d", "sku": "KB-001", "name": "Mechanical keyboard",
    "description": "Tactile switches", "price": {"amount": 8999, "currency": "EUR"}, "stock": 25,
    "archived": false, "rating": {"average": 4.33, "count": 3},
    "created_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:00Z"
}))]
pub struct ProductResponse {
    pub id: orderly_domain::Uuid,
    pub sku: String,
    pub name: String,
    #[schema(required = true)]
    pub description: Option<String>,
    pub price: MoneyDto,
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

/// A product's rating: the mean of its visible reviews' ratings and how many there are.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RatingResponse {
    /// The mean rating, rounded to two decimals; `null` without reviews.
    #[schema(required = true, minimum = 1, maximum = 5)]
    pub average: Option<f64>,
    /// How many visible reviews there are.
    pub count: u32,
}

impl From<&Product> for ProductResponse {
    fn from(product: &Product) -> Self {
        Self {
            id: product.id().into_uuid(),
            sku: product.sku().as_str().to_owned(),
            name: product.name().as_str().to_owned(),
            description: product.description().map(|d| d.as_str().to_owned()),
            price: product.price().into(),
            stock: product.stock(),
            archived: product.is_archived(),
            rating: RatingResponse {
                average: product.rating().average(),
                count: product.rating().count(),
            },
            created_at: product.created_at(),
            updated_at: product.updated_at(),
        }
    }
}

/// One page of products.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductPage {
    pub data: Vec<ProductResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Filters of the product list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// Case-insensitive text to find in the name or SKU (trimmed; blank for none).
    #[param(schema_with = product_query)]
    pub q: Option<String>,
    /// The order: by creation (default), name or price; `-` for descending.
    #[param(schema_with = product_sort)]
    pub sort: Option<String>,
    /// Include archived products (admins only).
    pub include_archived: Option<bool>,
}

impl ProductListQuery {
    /// The filter these parameters ask for.
    ///
    /// # Errors
    /// A 400 `VALIDATION_FAILED` naming `sort` when it is not one of the sorts.
    pub(crate) fn filter(self) -> Result<ProductFilter, ApiError> {
        let mut fields = FieldErrors::default();
        let sort = match self.sort.as_deref() {
            None => Some(ProductSort::default()),
            Some(raw) => fields.parse("sort", ProductSort::parse(raw)),
        };
        let sort = fields.into_result(|| sort)?;
        Ok(ProductFilter {
            q: self.q,
            include_archived: self.include_archived.unwrap_or(false),
            sort,
        })
    }
}

// ---- Refusals ----

fn sku_taken() -> ApiError {
    ApiError::new(ErrorCode::SkuTaken, "A product with this SKU already exists.")
}

/// The one product rule a draft or change can break after validation: the stock bound.
fn invalid_stock(invalid: &orderly_domain::ProductError) -> ApiError {
    ApiError::validation(vec![FieldError::new("stock", invalid.code(), invalid.to_string())])
}

impl From<CreateProductError> for ApiError {
    fn from(error: CreateProductError) -> Self {
        match error {
            CreateProductError::Forbidden => forbidden("Only administrators may create products."),
            CreateProductError::Invalid(invalid) => invalid_stock(&invalid),
            CreateProductError::DuplicateSku => sku_taken(),
            CreateProductError::Store(store) => store.into(),
            CreateProductError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<GetProductError> for ApiError {
    fn from(error: GetProductError) -> Self {
        match error {
            GetProductError::NotFound => not_found("product"),
            GetProductError::Store(store) => store.into(),
        }
    }
}

impl From<ListProductsError> for ApiError {
    fn from(error: ListProductsError) -> Self {
        match error {
            ListProductsError::Unauthenticated => ApiError::unauthenticated(
                "Listing archived products needs an administrator's access token.",
                false,
            ),
            ListProductsError::Forbidden => {
                forbidden("Only administrators may list archived products.")
            }
            ListProductsError::InvalidQuery(ref invalid) => {
                ApiError::validation(vec![FieldError::new("q", invalid.code(), error.to_string())])
            }
            ListProductsError::InvalidCursor(cursor) => cursor.into(),
            ListProductsError::Store(store) => store.into(),
        }
    }
}

impl From<UpdateProductError> for ApiError {
    fn from(error: UpdateProductError) -> Self {
        match error {
            UpdateProductError::Forbidden => forbidden("Only administrators may change products."),
            UpdateProductError::NotFound => not_found("product"),
            UpdateProductError::Invalid(invalid) => invalid_stock(&invalid),
            UpdateProductError::VersionMismatch { expected, current } => stale(expected, current),
            UpdateProductError::Conflict => concurrent(),
            UpdateProductError::DuplicateSku => sku_taken(),
            UpdateProductError::Store(store) => store.into(),
            UpdateProductError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<ArchiveProductError> for ApiError {
    fn from(error: ArchiveProductError) -> Self {
        match error {
            ArchiveProductError::Forbidden => {
                forbidden("Only administrators may archive products.")
            }
            ArchiveProductError::NotFound => not_found("product"),
            ArchiveProductError::Conflict => concurrent(),
            ArchiveProductError::Store(store) => store.into(),
            ArchiveProductError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

// ---- Routes ----

/// List products, filtered and sorted.
#[utoipa::path(
    get, path = "/products", operation_id = "listProducts", tag = "products",
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
    let filter = query.into_inner().filter()?;
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
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
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
    delete, path = "/products/{id}", operation_id = "archiveProduct", tag = "products",
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The `(field, code)` pairs reported, in field order.
    fn codes(errors: &FieldErrors) -> Vec<(String, String)> {
        let mut codes: Vec<_> =
            errors.errors().iter().map(|e| (e.field.clone(), e.code.clone())).collect();
        codes.sort();
        codes
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut pairs: Vec<_> =
            expected.iter().map(|(f, c)| ((*f).to_owned(), (*c).to_owned())).collect();
        pairs.sort();
        pairs
    }

    fn create(body: serde_json::Value) -> CreateProductRequest {
        serde_json::from_value(body).expect("a well-formed body")
    }

    #[test]
    fn a_valid_creation_becomes_a_draft_with_trimmed_values() {
        let draft = ProductDraft::try_from(create(json!({
            "sku": " kb-001 ", "name": " Keyboard ", "description": "  ",
            "price": {"amount": 8999.0, "currency": "EUR"}, "stock": 25.0
        })))
        .expect("valid");
        assert_eq!(draft.sku.as_str(), "KB-001");
        assert_eq!(draft.name.as_str(), "Keyboard");
        assert_eq!(draft.description, None);
        assert_eq!(draft.price.amount_minor(), 8999);
        assert_eq!(draft.stock, 25);
    }

    #[test]
    fn every_invalid_field_is_reported_with_the_code_of_the_rule_it_breaks() {
        let errors = ProductDraft::try_from(create(json!({
            "sku": "KB 001", "name": "Key\u{7}board", "description": "a\u{0}b",
            "price": {"amount": 100, "currency": "XYZ"}, "stock": 1_000_000_001
        })))
        .expect_err("invalid");
        assert_eq!(
            codes(&errors),
            pairs(&[
                ("stock", "range"),
                ("sku", "pattern"),
                ("name", "control_characters"),
                ("description", "control_characters"),
                ("price.currency", "currency"),
            ])
        );
    }

    #[test]
    fn a_bound_is_reported_once_whichever_check_finds_it() {
        let errors = ProductDraft::try_from(create(json!({
            "sku": "A".repeat(65), "name": "  ", "price": {"amount": -1, "currency": "EUR"},
            "stock": 1
        })))
        .expect_err("invalid");
        assert_eq!(
            codes(&errors),
            pairs(&[("sku", "length"), ("price.amount", "range"), ("name", "length")])
        );
    }

    #[test]
    fn a_change_keeps_absent_fields_absent_and_a_blank_description_removes_it() {
        let body: UpdateProductRequest =
            serde_json::from_value(json!({"name": "Mouse", "description": "", "sku": null}))
                .expect("well-formed");
        let input = UpdateProductInput::try_from(body).expect("valid");
        assert_eq!(input.name.map(|n| n.as_str().to_owned()).as_deref(), Some("Mouse"));
        assert_eq!(input.description, Some(None));
        assert!(input.sku.is_none() && input.price.is_none() && input.stock.is_none());
        assert_eq!(input.expected_version, None);

        let body: UpdateProductRequest =
            serde_json::from_value(json!({"sku": "-x"})).expect("well-formed");
        let errors = UpdateProductInput::try_from(body).expect_err("invalid");
        assert_eq!(codes(&errors), pairs(&[("sku", "pattern")]));
    }

    #[test]
    fn a_fractional_stock_is_not_an_integer() {
        let refused = serde_json::from_value::<UpdateProductRequest>(json!({"stock": 2.5}));
        assert!(refused.is_err());
        let accepted = serde_json::from_value::<UpdateProductRequest>(json!({"stock": 2.0}));
        assert_eq!(accepted.ok().and_then(|body| body.stock), Some(2));
    }
}
