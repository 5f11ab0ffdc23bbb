//! Products on the wire.

use chrono::{DateTime, Utc};
use orderly_domain::{
    Product,
    product::{DESCRIPTION_MAX_LEN, MAX_STOCK, PRODUCT_NAME_MAX_LEN, SKU_MAX_LEN},
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::MoneyDto;

/// `POST /api/v1/products` (admins).
#[derive(Debug, Clone, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sku": "KB-001", "name": "Mechanical keyboard", "description": "Tactile switches", "price": {"amount": 8999, "currency": "EUR"}, "stock": 25}))]
pub struct CreateProductRequest {
    /// Letters, digits, `-` and `_`; stored upper-cased; unique.
    #[garde(length(min = 1, max = SKU_MAX_LEN))]
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9_-]*$")]
    pub sku: String,
    #[garde(length(chars, min = 1, max = PRODUCT_NAME_MAX_LEN))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[garde(inner(length(chars, max = DESCRIPTION_MAX_LEN)))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[garde(dive)]
    pub price: MoneyDto,
    #[garde(range(max = MAX_STOCK))]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: u32,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH /api/v1/products/{id}` (admins): every field optional; `"description": null` removes it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"price": {"amount": 7999, "currency": "EUR"}, "stock": 40}))]
pub struct UpdateProductRequest {
    #[garde(inner(length(min = 1, max = SKU_MAX_LEN)))]
    #[schema(min_length = 1, max_length = 64)]
    pub sku: Option<String>,
    #[garde(inner(length(chars, min = 1, max = PRODUCT_NAME_MAX_LEN)))]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[garde(inner(inner(length(chars, max = DESCRIPTION_MAX_LEN))))]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<Option<String>>,
    #[garde(dive)]
    pub price: Option<MoneyDto>,
    #[garde(inner(range(max = MAX_STOCK)))]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: Option<u32>,
}

/// A product as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d", "sku": "KB-001", "name": "Mechanical keyboard",
    "description": "Tactile switches", "price": {"amount": 8999, "currency": "EUR"}, "stock": 25,
    "archived": false, "created_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:00Z"
}))]
pub struct ProductResponse {
    pub id: orderly_domain::Uuid,
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub price: MoneyDto,
    pub stock: u32,
    /// Archived products stay readable (orders refer to them) but cannot be ordered.
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
    pub next_cursor: Option<String>,
}

/// Filters of the product list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// Case-insensitive text to find in the name or SKU.
    pub q: Option<String>,
    /// `created_at` (default), `-created_at`, `name`, `-name`, `price`, `-price`.
    pub sort: Option<String>,
    /// Include archived products (admins only).
    pub include_archived: Option<bool>,
}
