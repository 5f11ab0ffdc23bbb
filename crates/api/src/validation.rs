//! Request validation. A request body becomes domain input in one place, the `TryFrom` impl of
//! its DTO (beside its routes, in `routes/`), which reports every invalid field at once in a
//! [`FieldErrors`]:
//!
//! 1. the garde rules of the DTO, each one of the validators below: the bounds the OpenAPI
//!    schema states on the value as sent (the raw length, before trimming: [`chars`],
//!    [`elements`], [`within`]), written with the domain's constants, then the domain's parser
//!    of the field ([`parsed_by`]);
//! 2. then the domain's parsers again, in the `TryFrom` impl, which keep the parsed values.
//!
//! Each field error's `code` names the rule that failed: for a domain refusal it comes from the
//! error type ([`RuleError::code`]), for a bound from the domain's [`rule`] constants. The
//! validators hand it to [`FieldErrors::check`] beside garde's message, so no message is ever
//! read to recover it. A field is reported once, by the first check that refuses it.

use std::fmt::Display;

use garde::{
    Validate,
    i18n::{DefaultI18n, I18n},
};
use orderly_domain::{RuleError, rule};

use crate::problem::{ApiError, FieldError};

/// Which check refused a field: the bounds of a value as sent come before its parser, so that
/// the bounds of every field are listed before the parsers' refusals, as when the parsers ran
/// only after garde.
#[derive(Clone, Copy)]
enum Check {
    Bound,
    Parser,
}

impl Check {
    /// Ends the code of a refusal made by this check, before its message: no code holds it.
    const fn code_end(self) -> char {
        match self {
            Self::Bound => '\u{1e}',
            Self::Parser => '\u{1f}',
        }
    }

    /// A garde error that carries the code of the rule that failed.
    fn refusal(self, code: &'static str, message: impl Display) -> garde::Error {
        garde::Error::new(format!("{code}{}{message}", self.code_end()))
    }

    /// The check, code and message of a refusal made by [`Check::refusal`].
    fn read(message: &str) -> Option<(Self, &str, &str)> {
        [Self::Bound, Self::Parser].into_iter().find_map(|check| {
            let (code, message) = message.split_once(check.code_end())?;
            Some((check, code, message))
        })
    }
}

/// garde custom validator: the field must be accepted by the domain's `parse`, whose error
/// gives the code and the message (`#[garde(custom(parsed_by(Sku::parse)))]`).
pub(crate) fn parsed_by<V, T, E>(
    parse: impl Fn(&str) -> Result<T, E>,
) -> impl Fn(&V, &()) -> garde::Result
where
    V: AsRef<str> + ?Sized,
    E: RuleError,
{
    move |value, ()| parse(value.as_ref()).map(drop).map_err(|e| Check::Parser.refusal(e.code(), e))
}

/// garde custom validator: `min` to `max` characters as sent, before the parser trims.
pub(crate) fn chars<V: AsRef<str> + ?Sized>(
    min: usize,
    max: usize,
) -> impl Fn(&V, &()) -> garde::Result {
    move |value, ()| count(value.as_ref().chars().count(), min, max)
}

/// garde custom validator: a list of `min` to `max` elements.
pub(crate) fn elements<T>(min: usize, max: usize) -> impl Fn(&Vec<T>, &()) -> garde::Result {
    move |value, ()| count(value.len(), min, max)
}

fn count(length: usize, min: usize, max: usize) -> garde::Result {
    if length < min {
        Err(Check::Bound.refusal(rule::LENGTH, DefaultI18n.length_lower_than(min)))
    } else if length > max {
        Err(Check::Bound.refusal(rule::LENGTH, DefaultI18n.length_greater_than(max)))
    } else {
        Ok(())
    }
}

/// garde custom validator: a number from `min` to `max`.
pub(crate) fn within<N: PartialOrd + Display>(min: N, max: N) -> impl Fn(&N, &()) -> garde::Result {
    move |value, ()| {
        if *value < min {
            Err(Check::Bound.refusal(rule::RANGE, DefaultI18n.range_lower_than(&min)))
        } else if *value > max {
            Err(Check::Bound.refusal(rule::RANGE, DefaultI18n.range_greater_than(&max)))
        } else {
            Ok(())
        }
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
        let mut fields = Self::default();
        let mut parsed = Self::default();
        if let Err(report) = value.validate() {
            for (path, error) in report.iter() {
                let (check, code, message) = Check::read(error.message()).unwrap_or((
                    Check::Bound,
                    "invalid",
                    error.message(),
                ));
                let found = match check {
                    Check::Bound => &mut fields,
                    Check::Parser => &mut parsed,
                };
                found.push(FieldError::new(path.to_string(), code, message));
            }
        }
        for error in parsed.errors {
            fields.push(error);
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
        #[garde(custom(chars(1, 3)))]
        name: String,
        #[garde(custom(within(1, 10)))]
        quantity: u32,
    }

    #[derive(garde::Validate)]
    struct Parsed {
        #[garde(custom(chars(0, 80)), custom(parsed_by(Sku::parse)))]
        sku: String,
        #[garde(custom(within(1, 10)))]
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
        assert!(fields.errors().iter().all(|e| !e.message.contains(['\u{1e}', '\u{1f}'])));
        let problem = ApiError::from(fields).problem();
        assert_eq!(problem.status, 400);
        assert_eq!(problem.errors.len(), 2);
    }

    #[test]
    fn a_parser_run_by_garde_reports_its_error_type_after_every_bound() {
        let fields = FieldErrors::check(&Parsed { sku: "no spaces".into(), quantity: 0 });
        assert_eq!(codes(&fields), [("quantity", "range"), ("sku", "pattern")]);
        let refusal = Sku::parse("no spaces").expect_err("invalid").to_string();
        assert_eq!(fields.errors()[1].message, refusal);
        assert_eq!(fields.errors()[0].message, DefaultI18n.range_lower_than(&1));

        let fields = FieldErrors::check(&Parsed { sku: "x".repeat(81), quantity: 1 });
        assert_eq!(codes(&fields), [("sku", "length")], "the bound, once");
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
