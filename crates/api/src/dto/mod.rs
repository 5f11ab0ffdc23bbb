//! The shared parts of the wire format: money, paging, the `Idempotency-Key` header, integers
//! as JSON Schema reads them, and the machinery of the request schemas (`schema`). Each
//! resource's own bodies live in its module under `routes/`. Wire types are separate from
//! domain types so that the API's contract never moves with the domain or the database by
//! accident.

pub(crate) mod integer;
pub(crate) mod schema;
pub(crate) mod timestamp;

use orderly_domain::{Currency, Money};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::validation::{FieldErrors, parsed_by, within};

/// An amount of money: integer minor units (cents for EUR) and an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 1999, "currency": "EUR"}))]
pub struct MoneyDto {
    /// Minor units (cents for EUR), never negative.
    #[garde(custom(within(0, orderly_domain::money::MAX_AMOUNT_MINOR)))]
    #[serde(deserialize_with = "integer::required")]
    #[schema(schema_with = schema::amount)]
    pub amount: i64,
    /// ISO 4217 code, upper case.
    #[garde(custom(parsed_by(Currency::parse)))]
    #[schema(schema_with = schema::currency)]
    pub currency: String,
}

impl From<Money> for MoneyDto {
    fn from(money: Money) -> Self {
        Self { amount: money.amount_minor(), currency: money.currency().code().to_owned() }
    }
}

impl MoneyDto {
    /// The domain value, or the refusals of its parts under `field`.
    pub(crate) fn parse(&self, fields: &mut FieldErrors, field: &str) -> Option<Money> {
        let currency =
            fields.parse(format!("{field}.currency"), Currency::parse(&self.currency))?;
        fields.parse(format!("{field}.amount"), Money::new(self.amount, currency))
    }
}

/// Paging parameters of every list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page (the bounds and default: `schema::page_limit`).
    #[serde(default, deserialize_with = "integer::optional_in_query")]
    #[param(schema_with = schema::page_limit)]
    pub limit: Option<u32>,
    /// Where the previous page ended (v1: its `next_cursor`; v2: already in its `next` URL);
    /// empty or absent for the first page. Opaque, and bound to this list and its sort order:
    /// any other is a 400 `INVALID_CURSOR`.
    pub cursor: Option<String>,
}

/// The `Idempotency-Key` request header of the routes that create or move orders (ADR 0023).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    #[serde(rename = "Idempotency-Key")]
    #[param(schema_with = schema::idempotency_key)]
    pub idempotency_key: Option<String>,
}
