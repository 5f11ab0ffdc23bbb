//! Money in v2: `{"amount": "19.99", "currency": "EUR"}`, the amount a decimal string in the
//! currency's major unit with its ISO 4217 exponent (`"1999"` for JPY, `"1.999"` for KWD), where
//! v1 sends integer minor units. The domain value is the same (`orderly_domain::Money`, minor
//! units); only its spelling differs, so the conversion lives here.
//!
//! Answers always carry exactly the exponent's decimals (`"19.90"`, `"1999"`, `"0.500"`).
//! Requests may leave trailing decimals out (`"19.9"` and `"19"` are 19.90 EUR: a decimal number
//! means what it says), but never carry more than the currency has (`"19.990"` for EUR is a 400
//! field error with the code [`DECIMALS`], even with zeros: a client that sends them has the
//! currency's exponent wrong). The amount is plain ASCII digits with an optional point and
//! decimals: no sign, exponent, leading zero, group separator or white space; a negative amount
//! is refused as out of range, as in v1, and so is one above `MAX_AMOUNT_MINOR`.

use std::{borrow::Cow, fmt};

use orderly_domain::{Currency, Money, RuleError, money::MAX_AMOUNT_MINOR, rule};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{ObjectBuilder, OneOfBuilder, RefOr, Schema, Type, schema::AdditionalProperties},
};

use crate::{
    dto::schema,
    validation::{FieldErrors, parsed_by},
};

/// The code of a field error for an amount with more decimals than its currency has. The
/// decimal spelling is this version's representation, not a domain rule, hence its code here.
pub const DECIMALS: &str = "decimals";

/// Why an amount string is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidAmount {
    /// Not digits with an optional point and decimals.
    Malformed,
    /// Below zero.
    Negative,
    /// More decimals than the currency's exponent.
    TooManyDecimals {
        /// The currency of the amount.
        currency: Currency,
        /// The decimals sent.
        found: usize,
    },
    /// Above [`MAX_AMOUNT_MINOR`].
    TooLarge {
        /// The currency of the amount.
        currency: Currency,
    },
}

impl fmt::Display for InvalidAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str(
                "amount must be a decimal string such as \"19.99\": digits, optionally a point \
                 and decimals; no sign, exponent, leading zeros or spaces",
            ),
            Self::Negative => f.write_str("amount must not be negative"),
            Self::TooManyDecimals { currency, found } => write!(
                f,
                "{currency} amounts have at most {} decimals, not {found}",
                currency.minor_unit_digits()
            ),
            Self::TooLarge { currency } => {
                let limit = Money::new(MAX_AMOUNT_MINOR, *currency).map_err(|_| fmt::Error)?;
                write!(f, "amount must be at most {}", amount_of(limit))
            }
        }
    }
}

impl std::error::Error for InvalidAmount {}

impl RuleError for InvalidAmount {
    fn code(&self) -> &'static str {
        match self {
            Self::Malformed => rule::PATTERN,
            Self::Negative | Self::TooLarge { .. } => rule::RANGE,
            Self::TooManyDecimals { .. } => DECIMALS,
        }
    }
}

/// An amount as sent, split at its point: the integer digits and the decimals (possibly none).
/// Whatever the currency, this is the shape every amount must have.
fn split(raw: &str) -> Result<(&str, &str), InvalidAmount> {
    let (sign, unsigned) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let (units, decimals) = match unsigned.split_once('.') {
        Some((units, decimals)) if !decimals.is_empty() => (units, decimals),
        Some(_) => return Err(InvalidAmount::Malformed),
        None => (unsigned, ""),
    };
    let digits = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    let canonical = !units.is_empty() && (units == "0" || !units.starts_with('0'));
    if !(canonical && digits(units) && digits(decimals)) {
        return Err(InvalidAmount::Malformed);
    }
    if sign {
        return Err(InvalidAmount::Negative);
    }
    Ok((units, decimals))
}

/// Checks the shape of an amount without its currency (for the body's garde rules; the
/// currency's exponent and the bound are checked by [`to_money`] once the currency is known).
///
/// # Errors
/// [`InvalidAmount::Malformed`] or [`InvalidAmount::Negative`].
pub fn amount_shape(raw: &str) -> Result<(), InvalidAmount> {
    split(raw).map(drop)
}

/// The money `raw` (a decimal string) is in `currency`.
///
/// # Errors
/// [`InvalidAmount`]: malformed, more decimals than the currency has, negative or too large.
pub fn to_money(raw: &str, currency: Currency) -> Result<Money, InvalidAmount> {
    let (units, decimals) = split(raw)?;
    let digits = usize::from(currency.minor_unit_digits());
    if decimals.len() > digits {
        return Err(InvalidAmount::TooManyDecimals { currency, found: decimals.len() });
    }
    let too_large = || InvalidAmount::TooLarge { currency };
    // Every digit string here is canonical: 19 digits and more are past any bound (and past
    // what an i64 holds), so they are too large, not malformed.
    let units: i64 = units.parse().map_err(|_| too_large())?;
    let padded = format!("{decimals:0<digits$}");
    let fraction: i64 =
        if padded.is_empty() { 0 } else { padded.parse().map_err(|_| too_large())? };
    let minor = 10_i64
        .checked_pow(u32::from(currency.minor_unit_digits()))
        .and_then(|scale| units.checked_mul(scale))
        .and_then(|scaled| scaled.checked_add(fraction))
        .ok_or_else(too_large)?;
    // Digits are never negative: the one refusal left is the bound.
    Money::new(minor, currency).map_err(|_| too_large())
}

/// The decimal string of `money`, with exactly its currency's decimals.
#[must_use]
pub fn amount_of(money: Money) -> String {
    let digits = u32::from(money.currency().minor_unit_digits());
    let minor = money.amount_minor();
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10_i64.pow(digits);
    format!("{}.{:0width$}", minor / scale, minor % scale, width = digits as usize)
}

/// An amount of money: a decimal string in the currency's major unit, and an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct DecimalMoney {
    /// `"19.99"`: see the module's documentation.
    #[garde(custom(parsed_by(amount_shape)))]
    #[serde(deserialize_with = "decimal_string")]
    pub amount: String,
    /// ISO 4217 code, upper case.
    #[garde(custom(parsed_by(Currency::parse)))]
    pub currency: String,
}

impl From<Money> for DecimalMoney {
    fn from(money: Money) -> Self {
        Self { amount: amount_of(money), currency: money.currency().code().to_owned() }
    }
}

impl DecimalMoney {
    /// The domain value, or the refusals of its parts under `field` (`price.amount`).
    pub(crate) fn parse(&self, fields: &mut FieldErrors, field: &str) -> Option<Money> {
        let currency =
            fields.parse(format!("{field}.currency"), Currency::parse(&self.currency))?;
        fields.parse(format!("{field}.amount"), to_money(&self.amount, currency))
    }
}

/// Reads the amount as a string, and tells a client that sends v1's integer minor units so.
fn decimal_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Decimal;
    impl serde::de::Visitor<'_> for Decimal {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a decimal string such as \"19.99\" (v2 amounts are strings in the currency's \
                 major unit, not numbers of minor units)",
            )
        }

        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<String, E> {
            Ok(value.to_owned())
        }
    }
    deserializer.deserialize_str(Decimal)
}

// ---- Schema ----

/// The amounts a currency with `digits` decimals accepts, as `to_money` does: a canonical
/// integer part, at most `digits` decimals, at most `MAX_AMOUNT_MINOR` minor units (a power of
/// ten: the bound's own spelling, with zero decimals only, is the one amount of its length).
pub(crate) fn amount_pattern(digits: u8) -> String {
    let limit = MAX_AMOUNT_MINOR.to_string();
    // The number of integer digits of the bound in major units: 10^(log10(max) - digits).
    let length = limit.len() - 1 - usize::from(digits);
    let bound = format!("1{}", "0".repeat(length));
    let below = match length {
        0 => "0".to_owned(),
        _ => format!("0|[1-9][0-9]{{0,{}}}", length - 1),
    };
    if digits == 0 {
        format!("^(?:{below}|{bound})$")
    } else {
        format!("^(?:(?:{below})(?:\\.[0-9]{{1,{digits}}})?|{bound}(?:\\.0{{1,{digits}}})?)$")
    }
}

/// 1999 minor units with `digits` decimals, for the schema's examples: 19.99 EUR, 1999 JPY,
/// 1.999 KWD.
fn example_amount(digits: u8) -> String {
    let scale = 10_i64.pow(u32::from(digits));
    match digits {
        0 => "1999".to_owned(),
        digits => format!("{}.{:0width$}", 1999 / scale, 1999 % scale, width = usize::from(digits)),
    }
}

/// The exponents of the known currencies, ascending, each with its codes.
fn exponents() -> Vec<(u8, Vec<&'static str>)> {
    let mut groups: Vec<(u8, Vec<&'static str>)> = Vec::new();
    for code in Currency::codes() {
        let Ok(currency) = Currency::parse(code) else { continue };
        let digits = currency.minor_unit_digits();
        match groups.iter_mut().find(|(of, _)| *of == digits) {
            Some((_, codes)) => codes.push(code),
            None => groups.push((digits, vec![code])),
        }
    }
    groups.sort_by_key(|(digits, _)| *digits);
    groups
}

/// Money in the currencies with `digits` decimals: the amount's pattern is theirs.
fn money_with(digits: u8, codes: Vec<&'static str>) -> Schema {
    let description = match digits {
        0 => "The amount in whole units: digits, without decimals, sign, exponent, leading \
              zeros or spaces."
            .to_owned(),
        digits => format!(
            "The amount in major units with at most {digits} decimals (answers carry exactly \
             {digits}): digits, a point and decimals, without sign, exponent, leading zeros or \
             spaces."
        ),
    };
    let amount = schema::string(false)
        .pattern(Some(amount_pattern(digits)))
        .description(Some(description))
        .examples([example_amount(digits)]);
    let currency = schema::string(false)
        .enum_values(Some(codes))
        .description(Some("ISO 4217 code, upper case."));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .title(Some(format!("Money with {digits} decimals")))
        .property("amount", amount)
        .required("amount")
        .property("currency", currency)
        .required("currency")
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        .build()
        .into()
}

impl PartialSchema for DecimalMoney {
    /// One object per currency exponent, each with the amounts it accepts, so that the schema
    /// refuses what the server refuses (19.999 EUR) and no client has to know the exponents.
    fn schema() -> RefOr<Schema> {
        let one_of = exponents().into_iter().fold(
            OneOfBuilder::new()
                .description(Some(
                    "An amount of money: a decimal string in the currency's major unit with the \
                     currency's ISO 4217 exponent (`\"19.99\"` EUR, `\"1999\"` JPY, `\"1.999\"` \
                     KWD), and the currency. Requests may leave trailing decimals out (`\"19.9\"` \
                     is 19.90); more decimals than the currency has are refused.",
                ))
                .examples([serde_json::json!({"amount": "19.99", "currency": "EUR"})]),
            |one_of, (digits, codes)| one_of.item(money_with(digits, codes)),
        );
        RefOr::T(Schema::OneOf(one_of.build()))
    }
}

impl ToSchema for DecimalMoney {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Money")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::parse(code).expect("a currency")
    }

    fn minor(raw: &str, code: &str) -> Result<i64, &'static str> {
        to_money(raw, currency(code)).map(|money| money.amount_minor()).map_err(|e| e.code())
    }

    #[test]
    fn amounts_are_read_in_the_currency_s_exponent() {
        assert_eq!(minor("19.99", "EUR"), Ok(1999));
        assert_eq!(minor("19.9", "EUR"), Ok(1990));
        assert_eq!(minor("19", "EUR"), Ok(1900));
        assert_eq!(minor("0.05", "EUR"), Ok(5));
        assert_eq!(minor("0", "EUR"), Ok(0));
        assert_eq!(minor("1999", "JPY"), Ok(1999));
        assert_eq!(minor("1.999", "KWD"), Ok(1999));
        assert_eq!(minor("1.5", "BHD"), Ok(1500));
    }

    #[test]
    fn more_decimals_than_the_currency_has_are_refused_with_their_own_code() {
        assert_eq!(minor("19.999", "EUR"), Err(DECIMALS));
        assert_eq!(minor("19.990", "EUR"), Err(DECIMALS));
        assert_eq!(minor("19.0", "JPY"), Err(DECIMALS));
        assert_eq!(minor("1.9999", "KWD"), Err(DECIMALS));
        let message = to_money("1.234", currency("EUR")).expect_err("refused").to_string();
        assert_eq!(message, "EUR amounts have at most 2 decimals, not 3");
    }

    #[test]
    fn anything_but_plain_digits_is_malformed_and_a_sign_is_out_of_range() {
        for raw in [
            "", " ", " 1", "1 ", "+1", "1e3", "1E3", "0x10", "1,5", "1.", ".5", "01", "00", "00.5",
            "1.2.3", "١٢", "１", "NaN", "Infinity", "1_000", "--1", "-",
        ] {
            assert_eq!(minor(raw, "EUR"), Err(rule::PATTERN), "{raw:?}");
        }
        assert_eq!(minor("-1", "EUR"), Err(rule::RANGE));
        assert_eq!(minor("-0.01", "EUR"), Err(rule::RANGE));
    }

    #[test]
    fn the_bound_is_the_domain_s() {
        assert_eq!(minor("10000000000", "EUR"), Ok(MAX_AMOUNT_MINOR));
        assert_eq!(minor("10000000000.00", "EUR"), Ok(MAX_AMOUNT_MINOR));
        assert_eq!(minor("10000000000.01", "EUR"), Err(rule::RANGE));
        assert_eq!(minor("1000000000000", "JPY"), Ok(MAX_AMOUNT_MINOR));
        assert_eq!(minor("1000000000001", "JPY"), Err(rule::RANGE));
        assert_eq!(minor("1000000000.001", "KWD"), Err(rule::RANGE));
        assert_eq!(minor(&"9".repeat(40), "EUR"), Err(rule::RANGE));
    }

    #[test]
    fn answers_carry_exactly_the_exponent_s_decimals_and_read_back() {
        let money = |amount, code| Money::new(amount, currency(code)).expect("valid");
        assert_eq!(amount_of(money(1999, "EUR")), "19.99");
        assert_eq!(amount_of(money(1990, "EUR")), "19.90");
        assert_eq!(amount_of(money(5, "EUR")), "0.05");
        assert_eq!(amount_of(money(0, "EUR")), "0.00");
        assert_eq!(amount_of(money(1999, "JPY")), "1999");
        assert_eq!(amount_of(money(1999, "KWD")), "1.999");
        assert_eq!(amount_of(money(500, "BHD")), "0.500");
        for (_, codes) in exponents() {
            let code = codes[0];
            for amount in (0..2_000).chain([MAX_AMOUNT_MINOR - 1, MAX_AMOUNT_MINOR]) {
                let written = amount_of(money(amount, code));
                assert_eq!(minor(&written, code), Ok(amount), "{written} {code}");
            }
        }
        let wire = json!(DecimalMoney::from(money(1999, "EUR")));
        assert_eq!(wire, json!({"amount": "19.99", "currency": "EUR"}));
    }

    #[test]
    fn the_pattern_of_each_exponent_accepts_what_the_parser_accepts() {
        let samples = [
            "0",
            "1",
            "19",
            "19.9",
            "19.99",
            "19.999",
            "19.9999",
            "0.5",
            "0.05",
            "0.005",
            "00",
            "01",
            "-1",
            "+1",
            "1e3",
            " 1",
            "1 ",
            "",
            ".5",
            "5.",
            "1,5",
            "1.0",
            "1.00",
            "1.000",
            "999999999",
            "9999999999",
            "9999999999.99",
            "99999999999",
            "10000000000",
            "10000000000.0",
            "10000000000.00",
            "10000000000.000",
            "10000000000.01",
            "10000000000.1",
            "999999999999",
            "1000000000000",
            "1000000000000.0",
            "1000000000001",
            "9999999999999",
            "999999999.999",
            "1000000000",
            "1000000000.000",
            "1000000000.001",
            "1000000000.1",
        ];
        for (digits, codes) in exponents() {
            let pattern = regex::Regex::new(&amount_pattern(digits)).expect("a valid pattern");
            for code in codes {
                for raw in samples {
                    assert_eq!(
                        pattern.is_match(raw),
                        minor(raw, code).is_ok(),
                        "{raw:?} in {code} (pattern {pattern})"
                    );
                }
            }
            assert!(pattern.is_match(&example_amount(digits)), "{digits}");
        }
    }

    #[test]
    fn the_bound_is_a_power_of_ten_as_the_pattern_assumes() {
        let limit = MAX_AMOUNT_MINOR.to_string();
        assert!(limit.starts_with('1') && limit[1..].bytes().all(|b| b == b'0'), "{limit}");
    }

    #[test]
    fn the_schema_has_one_object_per_exponent_covering_every_currency() {
        let schema = serde_json::to_value(DecimalMoney::schema()).expect("serializes");
        let branches = schema["oneOf"].as_array().expect("oneOf");
        assert_eq!(branches.len(), exponents().len());
        let listed: usize = branches
            .iter()
            .map(|branch| branch["properties"]["currency"]["enum"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(listed, Currency::codes().len());
        assert_eq!(schema["examples"][0], json!({"amount": "19.99", "currency": "EUR"}));
    }

    #[test]
    fn a_number_is_refused_with_a_hint_at_the_v2_spelling() {
        let error =
            serde_json::from_value::<DecimalMoney>(json!({"amount": 1999, "currency": "EUR"}))
                .expect_err("a number");
        assert!(error.to_string().contains("decimal string"), "{error}");
    }

    #[test]
    fn a_body_reports_each_part_of_its_money_under_the_field() {
        let money: DecimalMoney =
            serde_json::from_value(json!({"amount": "1.234", "currency": "EUR"})).expect("read");
        let mut fields = FieldErrors::check(&money);
        assert!(money.parse(&mut fields, "price").is_none());
        let codes: Vec<_> =
            fields.errors().iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(codes, [("price.amount", DECIMALS)]);
    }
}
