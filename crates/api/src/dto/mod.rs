//! The wire format: request and response bodies, separate from domain types so that the API's
//! contract never moves with the domain or the database by accident.

pub mod auth;
pub mod orders;
pub mod products;
pub mod users;

use orderly_domain::{Currency, Money};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::validation::Fields;

/// An amount of money: integer minor units (cents for EUR) and an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 1999, "currency": "EUR"}))]
pub struct MoneyDto {
    /// Minor units, never negative.
    #[garde(range(min = 0, max = orderly_domain::money::MAX_AMOUNT_MINOR))]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub amount: i64,
    /// ISO 4217 code, upper case.
    #[garde(length(equal = 3))]
    #[schema(min_length = 3, max_length = 3, example = "EUR")]
    pub currency: String,
}

impl From<Money> for MoneyDto {
    fn from(money: Money) -> Self {
        Self { amount: money.amount_minor(), currency: money.currency().code().to_owned() }
    }
}

impl MoneyDto {
    /// The domain value, or a field error under `field`.
    pub(crate) fn parse(&self, fields: &mut Fields, field: &str) -> Option<Money> {
        let currency = fields.parse(
            &format!("{field}.currency"),
            "currency",
            Currency::parse(&self.currency),
        )?;
        fields.parse(&format!("{field}.amount"), "range", Money::new(self.amount, currency))
    }
}

/// Paging parameters of every list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
