//! Integers as JSON Schema sees them. OpenAPI 3.1 uses JSON Schema 2020-12, where `1.0` is an
//! integer (a number with a zero fractional part), so every integer field of the API accepts it
//! as `1`; `1.5` is refused. serde alone refuses both (`invalid type: floating point`).
//!
//! Use with `#[serde(deserialize_with = "integer::required")]`, or `integer::optional` together
//! with `#[serde(default)]`; in query strings (`?limit=20.0`), where every value is text,
//! `integer::optional_in_query`.

use std::{fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{self, Unexpected, Visitor},
};

/// An integer of type `T` written as any number with no fractional part; in a query string
/// (`TEXT`), as the text of one.
struct Integral<T, const TEXT: bool>(T);

struct IntegralVisitor<T, const TEXT: bool>(PhantomData<T>);

impl<T: TryFrom<i128>, const TEXT: bool> IntegralVisitor<T, TEXT> {
    fn fit<E: de::Error>(value: i128, unexpected: Unexpected<'_>) -> Result<T, E> {
        T::try_from(value)
            .map_err(|_| E::invalid_value(unexpected, &"an integer within the field's bounds"))
    }

    fn float<E: de::Error>(value: f64) -> Result<T, E> {
        // Beyond 2^53 a float cannot name every integer: such values are refused rather than
        // silently rounded.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if value.is_finite() && value.fract() == 0.0 && value.abs() <= EXACT {
            #[allow(clippy::cast_possible_truncation)]
            Self::fit(value as i128, Unexpected::Float(value))
        } else {
            Err(E::invalid_type(Unexpected::Float(value), &"an integer"))
        }
    }
}

impl<T: TryFrom<i128>, const TEXT: bool> Visitor<'_> for IntegralVisitor<T, TEXT> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        Self::fit(value.into(), Unexpected::Signed(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        Self::fit(value.into(), Unexpected::Unsigned(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        Self::float(value)
    }

    /// A query-string value; in JSON a string is never a number.
    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        if !TEXT {
            return Err(E::invalid_type(Unexpected::Str(value), &"an integer"));
        }
        if let Ok(integer) = value.parse::<i128>() {
            return Self::fit(integer, Unexpected::Str(value));
        }
        match value.parse::<f64>() {
            Ok(float) if value.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) => {
                Self::float(float)
            }
            _ => Err(E::invalid_type(Unexpected::Str(value), &"an integer")),
        }
    }
}

impl<'de, T: TryFrom<i128>, const TEXT: bool> Deserialize<'de> for Integral<T, TEXT> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IntegralVisitor::<T, TEXT>(PhantomData)).map(Integral)
    }
}

/// A required integer field.
///
/// # Errors
/// Anything but an integral number that fits in `T`.
pub(crate) fn required<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
    deserializer: D,
) -> Result<T, D::Error> {
    Integral::<T, false>::deserialize(deserializer).map(|Integral(value)| value)
}

/// An optional integer field (`null` is absent); pair it with `#[serde(default)]`.
///
/// # Errors
/// Anything but `null` or an integral number that fits in `T`.
pub(crate) fn optional<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<Integral<T, false>>::deserialize(deserializer).map(|value| value.map(|Integral(v)| v))
}

/// An optional integer parameter of a query string; pair it with `#[serde(default)]`.
///
/// # Errors
/// Anything but the text of an integral number that fits in `T`.
pub(crate) fn optional_in_query<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<Integral<T, true>>::deserialize(deserializer).map(|value| value.map(|Integral(v)| v))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "super::required")]
        quantity: u32,
        #[serde(default, deserialize_with = "super::optional")]
        amount: Option<i64>,
    }

    fn parse(value: serde_json::Value) -> Result<Body, String> {
        serde_json::from_value(value).map_err(|error| error.to_string())
    }

    #[test]
    fn integral_numbers_written_with_a_fraction_are_integers() {
        assert_eq!(
            parse(json!({"quantity": 2.0, "amount": 1999.0})),
            Ok(Body { quantity: 2, amount: Some(1999) })
        );
        assert_eq!(
            parse(json!({"quantity": 2, "amount": null})),
            Ok(Body { quantity: 2, amount: None })
        );
        assert_eq!(parse(json!({"quantity": 2})), Ok(Body { quantity: 2, amount: None }));
        let from_text: Body =
            serde_json::from_str(r#"{"quantity": 1e2, "amount": -0.0}"#).expect("integral");
        assert_eq!(from_text, Body { quantity: 100, amount: Some(0) });
    }

    #[test]
    fn fractions_other_types_and_values_out_of_range_are_refused() {
        for body in [
            json!({"quantity": 1.5}),
            json!({"quantity": -1}),
            json!({"quantity": -1.0}),
            json!({"quantity": 4_294_967_296_u64}),
            json!({"quantity": "2"}),
            json!({"quantity": true}),
            json!({"quantity": 1, "amount": 0.5}),
            json!({"quantity": 1, "amount": 1e300}),
        ] {
            assert!(parse(body.clone()).is_err(), "{body} is refused");
        }
    }

    #[test]
    fn query_strings_are_read_the_same_way() {
        #[derive(Debug, Deserialize, PartialEq)]
        struct Query {
            #[serde(default, deserialize_with = "super::optional_in_query")]
            limit: Option<u32>,
        }
        let read = |query: &str| serde_urlencoded::from_str::<Query>(query).map(|q| q.limit).ok();
        assert_eq!(read("limit=20"), Some(Some(20)));
        assert_eq!(read("limit=20.0"), Some(Some(20)));
        assert_eq!(read(""), Some(None));
        assert_eq!(read("limit=2.5"), None);
        assert_eq!(read("limit=abc"), None);
        assert_eq!(read("limit=inf"), None);
        assert_eq!(read("limit=-3"), None);
    }
}
