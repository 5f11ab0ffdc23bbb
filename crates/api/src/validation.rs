//! Request validation: garde rules (bounds written once, as the domain's constants) run first,
//! then the domain's own parsers; every failure of both is reported in one 400 problem, with a
//! field path, a rule code and a message per field.

use std::{borrow::Cow, fmt::Display};

use garde::{
    Validate,
    i18n::{DefaultI18n, I18n, with_i18n},
};

use crate::problem::{ApiError, FieldError};

/// garde's English messages, each prefixed with the rule's code (`length|...`), so that the
/// problem body can carry a machine-readable `code` per field.
struct Coded;

fn coded(code: &str, message: Cow<'static, str>) -> Cow<'static, str> {
    format!("{code}|{message}").into()
}

impl I18n for Coded {
    fn length_lower_than(&self, min: usize) -> Cow<'static, str> {
        coded("length", DefaultI18n.length_lower_than(min))
    }
    fn length_greater_than(&self, max: usize) -> Cow<'static, str> {
        coded("length", DefaultI18n.length_greater_than(max))
    }
    fn range_lower_than(&self, min: &dyn Display) -> Cow<'static, str> {
        coded("range", DefaultI18n.range_lower_than(min))
    }
    fn range_greater_than(&self, max: &dyn Display) -> Cow<'static, str> {
        coded("range", DefaultI18n.range_greater_than(max))
    }
    fn credit_card_invalid(&self, reason: garde::i18n::InvalidCreditCard) -> Cow<'static, str> {
        coded("credit_card", DefaultI18n.credit_card_invalid(reason))
    }
    fn url_invalid(&self, reason: garde::i18n::InvalidUrl) -> Cow<'static, str> {
        coded("url", DefaultI18n.url_invalid(reason))
    }
    fn phone_number_invalid(&self, reason: garde::i18n::InvalidPhoneNumber) -> Cow<'static, str> {
        coded("phone_number", DefaultI18n.phone_number_invalid(reason))
    }
    fn email_invalid(&self, reason: garde::i18n::InvalidEmail) -> Cow<'static, str> {
        coded("email", DefaultI18n.email_invalid(reason))
    }
    fn pattern_no_match(&self, pattern: &dyn Display) -> Cow<'static, str> {
        coded("pattern", DefaultI18n.pattern_no_match(pattern))
    }
    fn contains_missing(&self, pattern: &dyn Display) -> Cow<'static, str> {
        coded("contains", DefaultI18n.contains_missing(pattern))
    }
    fn prefix_missing(&self, pattern: &dyn Display) -> Cow<'static, str> {
        coded("prefix", DefaultI18n.prefix_missing(pattern))
    }
    fn suffix_missing(&self, pattern: &dyn Display) -> Cow<'static, str> {
        coded("suffix", DefaultI18n.suffix_missing(pattern))
    }
    fn ip_invalid(&self, kind: garde::rules::ip::IpKind) -> Cow<'static, str> {
        coded("ip", DefaultI18n.ip_invalid(kind))
    }
    fn matches_field_mismatch(&self, field: &dyn Display) -> Cow<'static, str> {
        coded("matches", DefaultI18n.matches_field_mismatch(field))
    }
    fn ascii_invalid(&self) -> Cow<'static, str> {
        coded("ascii", DefaultI18n.ascii_invalid())
    }
    fn alphanumeric_invalid(&self) -> Cow<'static, str> {
        coded("alphanumeric", DefaultI18n.alphanumeric_invalid())
    }
    fn required_not_set(&self) -> Cow<'static, str> {
        coded("required", DefaultI18n.required_not_set())
    }
}

/// Collects the field errors of one request.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    /// Runs the garde rules of `value`, keeping every failure.
    pub(crate) fn check<T: Validate<Context = ()>>(value: &T) -> Self {
        let mut fields = Self::default();
        if let Err(report) = with_i18n(Coded, || value.validate()) {
            for (path, error) in report.iter() {
                let (code, message) =
                    error.message().split_once('|').unwrap_or(("invalid", error.message()));
                fields.errors.push(FieldError::new(path.to_string(), code, message));
            }
        }
        fields
    }

    /// Keeps the value of a domain parser, or records its error under `field` with `code`.
    pub(crate) fn parse<T, E: Display>(
        &mut self,
        field: &str,
        code: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                if !self.errors.iter().any(|existing| existing.field == field) {
                    self.errors.push(FieldError::new(field, code, error.to_string()));
                }
                None
            }
        }
    }

    /// `Ok` when nothing failed; otherwise the 400 problem listing every field.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError::validation(self.errors)) }
    }
}

/// The value of a field that passed [`Fields::finish`]: present by construction.
///
/// # Errors
/// A 500 if it is missing, which would be a bug in the handler.
pub(crate) fn validated<T>(value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::internal(anyhow::anyhow!("a validated field is missing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(garde::Validate)]
    struct Sample {
        #[garde(length(chars, min = 1, max = 3))]
        name: String,
        #[garde(range(min = 1, max = 10))]
        quantity: u32,
    }

    #[test]
    fn every_failing_rule_is_reported_with_its_code() {
        let fields = Fields::check(&Sample { name: "long".into(), quantity: 0 });
        let error = fields.finish().expect_err("invalid");
        let problem = error.problem();
        assert_eq!(problem.status, 400);
        let codes: Vec<(&str, &str)> =
            problem.errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert!(codes.contains(&("name", "length")), "{codes:?}");
        assert!(codes.contains(&("quantity", "range")), "{codes:?}");
        assert!(problem.errors.iter().all(|e| !e.message.contains('|')));
    }

    #[test]
    fn domain_parse_errors_join_the_report_once_per_field() {
        let mut fields = Fields::check(&Sample { name: "ok".into(), quantity: 1 });
        let parsed: Option<u8> = fields.parse("email", "email", "x".parse::<u8>());
        assert_eq!(parsed, None);
        let _: Option<u8> = fields.parse("email", "email", "y".parse::<u8>());
        let problem = fields.finish().expect_err("invalid").problem();
        assert_eq!(problem.errors.len(), 1);
    }
}
