//! Products on the wire.

use chrono::{DateTime, Utc};
use orderly_application::products::update_product::UpdateProductInput;
use orderly_domain::{
    Product, ProductDescription, ProductDraft, ProductName, Sku,
    product::{DESCRIPTION_MAX_LEN, MAX_STOCK, PRODUCT_NAME_MAX_LEN, SKU_MAX_LEN},
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{MoneyDto, integer, schema};
use crate::validation::FieldErrors;

/// `POST /api/v1/products` (admins).
#[derive(Debug, Clone, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sku": "KB-001", "name": "Mechanical keyboard", "description": "Tactile switches", "price": {"amount": 8999, "currency": "EUR"}, "stock": 25}))]
pub struct CreateProductRequest {
    #[garde(length(chars, min = 1, max = SKU_MAX_LEN))]
    #[schema(schema_with = schema::new_sku)]
    pub sku: String,
    #[garde(length(chars, min = 1, max = PRODUCT_NAME_MAX_LEN))]
    #[schema(schema_with = schema::new_product_name)]
    pub name: String,
    #[garde(inner(length(chars, max = DESCRIPTION_MAX_LEN)))]
    #[schema(schema_with = schema::description)]
    pub description: Option<String>,
    #[garde(dive)]
    pub price: MoneyDto,
    #[garde(range(max = MAX_STOCK))]
    #[serde(deserialize_with = "integer::required")]
    #[schema(schema_with = schema::new_stock)]
    pub stock: u32,
}

/// A description as sent: blank is none.
fn parse_description(
    fields: &mut FieldErrors,
    raw: Option<&str>,
) -> Option<Option<ProductDescription>> {
    match raw.filter(|raw| !raw.trim().is_empty()) {
        Some(raw) => fields.parse("description", ProductDescription::parse(raw)).map(Some),
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
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH /api/v1/products/{id}` (admins): every field optional (`null` is the same as absent);
/// a blank or `null` `description` removes it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"price": {"amount": 7999, "currency": "EUR"}, "stock": 40}))]
pub struct UpdateProductRequest {
    #[garde(inner(length(chars, min = 1, max = SKU_MAX_LEN)))]
    #[schema(schema_with = schema::changed_sku)]
    pub sku: Option<String>,
    #[garde(inner(length(chars, min = 1, max = PRODUCT_NAME_MAX_LEN)))]
    #[schema(schema_with = schema::changed_product_name)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[garde(inner(inner(length(chars, max = DESCRIPTION_MAX_LEN))))]
    #[schema(schema_with = schema::description)]
    pub description: Option<Option<String>>,
    #[garde(dive)]
    pub price: Option<MoneyDto>,
    #[garde(inner(range(max = MAX_STOCK)))]
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(schema_with = schema::changed_stock)]
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
    pub description: Option<String>,
    pub price: MoneyDto,
    pub stock: u32,
    /// Archived products stay readable (orders refer to them) but cannot be ordered.
    pub archived: bool,
    /// What the product's visible reviews add up to.
    pub rating: RatingResponse,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A product's rating: the mean of its visible reviews' ratings and how many there are.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RatingResponse {
    /// The mean rating, rounded to two decimals; `null` without reviews.
    #[schema(minimum = 1, maximum = 5)]
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
    pub next_cursor: Option<String>,
}

/// Filters of the product list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductListQuery {
    /// Case-insensitive text to find in the name or SKU (trimmed; blank for none).
    #[param(schema_with = schema::product_query)]
    pub q: Option<String>,
    /// The order: by creation (default), name or price; `-` for descending.
    #[param(schema_with = schema::product_sort)]
    pub sort: Option<String>,
    /// Include archived products (admins only).
    pub include_archived: Option<bool>,
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
