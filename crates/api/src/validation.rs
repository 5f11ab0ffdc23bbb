//! Request validation. A request body becomes domain input in one place, the `TryFrom` impl of
//! its DTO (beside its routes, in `routes/`), which reports every invalid field at once in a
//! [`FieldErrors`]:
//!
//! 1. the garde rules of the DTO: the bounds the OpenAPI schema states (lengths, ranges), written
//!    with the domain's constants and checked on the value as sent;
//! 2. then the domain's parsers (`Sku::parse`, `ProductName::parse`...), which own the rules.
//!
//! Each field error's `code` names the rule that failed: for a domain refusal it comes from the
//! error type ([`RuleError::code`]), for a garde refusal from the garde rule that produced it.
//! A field is reported once, by the first check that refuses it.

use std::{borrow::Cow, cell::RefCell, collections::HashMap, fmt::Display};

use garde::{
    Validate,
    i18n::{DefaultI18n, I18n, with_i18n},
};
use orderly_domain::{RuleError, rule};

use crate::problem::{ApiError, FieldError};

/// garde's English messages, each remembered with the code of the rule that produced it, so that
/// the report's errors become field errors without parsing their text.
struct Recording<'a>(&'a RefCell<HashMap<String, &'static str>>);

impl Recording<'_> {
    fn record(&self, code: &'static str, message: Cow<'static, str>) -> Cow<'static, str> {
        self.0.borrow_mut().insert(message.to_string(), code);
        message
    }
}

impl I18n for Recording<'_> {
    fn length_lower_than(&self, min: usize) -> Cow<'static, str> {
        self.record(rule::LENGTH, DefaultI18n.length_lower_than(min))
    }
    fn length_greater_than(&self, max: usize) -> Cow<'static, str> {
        self.record(rule::LENGTH, DefaultI18n.length_greater_than(max))
    }
    fn range_lower_than(&self, min: &dyn Display) -> Cow<'static, str> {
        self.record(rule::RANGE, DefaultI18n.range_lower_than(min))
    }
    fn range_greater_than(&self, max: &dyn Display) -> Cow<'static, str> {
        self.record(rule::RANGE, DefaultI18n.range_greater_than(max))
    }
    fn credit_card_invalid(&self, reason: garde::i18n::InvalidCreditCard) -> Cow<'static, str> {
        self.record("credit_card", DefaultI18n.credit_card_invalid(reason))
    }
    fn url_invalid(&self, reason: garde::i18n::InvalidUrl) -> Cow<'static, str> {
        self.record("url", DefaultI18n.url_invalid(reason))
    }
    fn phone_number_invalid(&self, reason: garde::i18n::InvalidPhoneNumber) -> Cow<'static, str> {
        self.record("phone_number", DefaultI18n.phone_number_invalid(reason))
    }
    fn email_invalid(&self, reason: garde::i18n::InvalidEmail) -> Cow<'static, str> {
        self.record(rule::EMAIL, DefaultI18n.email_invalid(reason))
    }
    fn pattern_no_match(&self, pattern: &dyn Display) -> Cow<'static, str> {
        self.record(rule::PATTERN, DefaultI18n.pattern_no_match(pattern))
    }
    fn contains_missing(&self, pattern: &dyn Display) -> Cow<'static, str> {
        self.record(rule::PATTERN, DefaultI18n.contains_missing(pattern))
    }
    fn prefix_missing(&self, pattern: &dyn Display) -> Cow<'static, str> {
        self.record(rule::PATTERN, DefaultI18n.prefix_missing(pattern))
    }
    fn suffix_missing(&self, pattern: &dyn Display) -> Cow<'static, str> {
        self.record(rule::PATTERN, DefaultI18n.suffix_missing(pattern))
    }
    fn ip_invalid(&self, kind: garde::rules::ip::IpKind) -> Cow<'static, str> {
        self.record("ip", DefaultI18n.ip_invalid(kind))
    }
    fn matches_field_mismatch(&self, field: &dyn Display) -> Cow<'static, str> {
        self.record("matches", DefaultI18n.matches_field_mismatch(field))
    }
    fn ascii_invalid(&self) -> Cow<'static, str> {
        self.record(rule::PATTERN, DefaultI18n.ascii_invalid())
    }
    fn alphanumeric_invalid(&self) -> Cow<'static, str> {
        self.record(rule::PATTERN, DefaultI18n.alphanumeric_invalid())
    }
    fn required_not_set(&self) -> Cow<'static, str> {
        self.record("required", DefaultI18n.required_not_set())
    }
}

/// The invalid fields of one request: the `errors` of its `VALIDATION_FAILED` problem.
#[derive(Debug, Default)]
pub struct FieldErrors {
    errors: Vec<FieldError>,
}

impl FieldErrors {
    /// Runs the garde rules of `value`, keeping every failure with the code of its rule.
    pub(crate) fn check<T: Validate<Context = ()>>(value: &T) -> Self {
        let codes = RefCell::new(HashMap::new());
        let mut fields = Self::default();
        if let Err(report) = with_i18n(Recording(&codes), || value.validate()) {
            let codes = codes.borrow();
            for (path, error) in report.iter() {
                let code = codes.get(error.message()).copied().unwrap_or("invalid");
                fields.push(FieldError::new(path.to_string(), code, error.message()));
            }
        }
        fields
    }

    /// Keeps the value of a domain parser, or records its refusal under `field` (once per
    /// field), with the code of the rule that failed.
    pub(crate) fn parse<T, E: RuleError>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(FieldError::new(field, error.code(), error.to_string()));
                None
            }
        }
    }

    fn push(&mut self, error: FieldError) {
        if !self.errors.iter().any(|existing| existing.field == error.field) {
            self.errors.push(error);
        }
    }

    /// The field errors, in the order they were found.
    #[must_use]
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// The input `build` makes from the parsed fields when none failed; otherwise every failure.
    ///
    /// `build` gets the values that [`FieldErrors::parse`] kept, which are all present when no
    /// field failed: it returns `None` only through a bug, answered as this (empty) list.
    pub(crate) fn into_result<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, Self> {
        if !self.errors.is_empty() {
            return Err(self);
        }
        build().ok_or(self)
    }
}

impl From<FieldErrors> for ApiError {
    fn from(fields: FieldErrors) -> Self {
        ApiError::validation(fields.errors)
    }
}

#[cfg(test)]
mod tests {
    use orderly_domain::{ProductName, Sku};

    use super::*;

    #[derive(garde::Validate)]
    struct Sample {
        #[garde(length(chars, min = 1, max = 3))]
        name: String,
        #[garde(range(min = 1, max = 10))]
        quantity: u32,
    }

    fn codes(fields: &FieldErrors) -> Vec<(&str, &str)> {
        fields.errors().iter().map(|e| (e.field.as_str(), e.code.as_str())).collect()
    }

    #[test]
    fn every_failing_garde_rule_is_reported_with_the_code_of_its_rule() {
        let fields = FieldErrors::check(&Sample { name: "long".into(), quantity: 0 });
        let codes = codes(&fields);
        assert!(codes.contains(&("name", "length")), "{codes:?}");
        assert!(codes.contains(&("quantity", "range")), "{codes:?}");
        assert!(fields.errors().iter().all(|e| !e.message.contains('|')));
        let problem = ApiError::from(fields).problem();
        assert_eq!(problem.status, 400);
        assert_eq!(problem.errors.len(), 2);
    }

    #[test]
    fn a_domain_refusal_carries_the_code_of_its_error_type() {
        let mut fields = FieldErrors::default();
        assert!(fields.parse("name", ProductName::parse("a\u{7}b")).is_none());
        assert!(fields.parse("sku", Sku::parse("no spaces")).is_none());
        assert!(fields.parse("other", Sku::parse(&"A".repeat(65))).is_none());
        assert_eq!(
            codes(&fields),
            [("name", "control_characters"), ("sku", "pattern"), ("other", "length")]
        );
    }

    #[test]
    fn a_field_is_reported_once_by_the_first_check_that_refuses_it() {
        let mut fields = FieldErrors::check(&Sample { name: String::new(), quantity: 1 });
        assert!(fields.parse("name", ProductName::parse("")).is_none());
        assert_eq!(codes(&fields), [("name", "length")]);
        assert!(fields.into_result(|| Some(())).is_err());
    }

    #[test]
    fn without_failures_the_input_is_built() {
        let mut fields = FieldErrors::check(&Sample { name: "ok".into(), quantity: 1 });
        let name = fields.parse("name", ProductName::parse(" Keyboard "));
        let built = fields.into_result(|| Some(name?.as_str().to_owned()));
        assert_eq!(built.ok().as_deref(), Some("Keyboard"));
    }
}
