//! Money as an integer count of minor units plus an ISO 4217 currency (ADR 0003). No floats
//! anywhere: arithmetic is checked, and mixing currencies is an error, never a conversion.

use std::fmt;

/// The largest amount, in minor units, that a price or a total may reach (10^12, i.e. ten
/// billion of a two-decimal currency). Far below `i64::MAX`, so sums of a few lines cannot wrap
/// before the check catches them.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000;

/// Active ISO 4217 codes, sorted, with the number of decimals of their minor unit.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWL", 2),
];

/// A string that is not an active ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ISO 4217 currency code")]
pub struct InvalidCurrency(String);

impl crate::RuleError for InvalidCurrency {
    fn code(&self) -> &'static str {
        crate::rule::CURRENCY
    }
}

/// An ISO 4217 currency, such as `EUR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(usize);

impl Currency {
    /// Parses an upper-case, three-letter ISO 4217 code.
    ///
    /// # Errors
    /// [`InvalidCurrency`] when the code is not in the list of active currencies.
    pub fn parse(code: &str) -> Result<Self, InvalidCurrency> {
        CURRENCIES
            .binary_search_by(|(known, _)| (*known).cmp(code))
            .map(Self)
            .map_err(|_| InvalidCurrency(code.to_owned()))
    }

    /// Every active ISO 4217 code, sorted: the values [`Currency::parse`] accepts.
    pub fn codes() -> impl ExactSizeIterator<Item = &'static str> {
        CURRENCIES.iter().map(|(code, _)| *code)
    }

    /// The three-letter code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        CURRENCIES[self.0].0
    }

    /// How many decimals the minor unit has (2 for EUR, 0 for JPY, 3 for KWD).
    #[must_use]
    pub fn minor_unit_digits(&self) -> u8 {
        CURRENCIES[self.0].1
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why an amount of money could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Prices and totals are never negative.
    #[error("amount must not be negative")]
    Negative,
    /// Above [`MAX_AMOUNT_MINOR`].
    #[error("amount must be at most {MAX_AMOUNT_MINOR} minor units")]
    TooLarge,
    /// Two amounts in different currencies were combined.
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch {
        /// The currency of the left operand.
        left: Currency,
        /// The currency of the right operand.
        right: Currency,
    },
}

impl crate::RuleError for MoneyError {
    fn code(&self) -> &'static str {
        match self {
            Self::Negative | Self::TooLarge => crate::rule::RANGE,
            Self::CurrencyMismatch { .. } => crate::rule::CURRENCY,
        }
    }
}

/// A non-negative amount of money in minor units (cents for EUR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    /// Makes an amount from minor units.
    ///
    /// # Errors
    /// [`MoneyError::Negative`] below zero, [`MoneyError::TooLarge`] above [`MAX_AMOUNT_MINOR`].
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount_minor < 0 {
            Err(MoneyError::Negative)
        } else if amount_minor > MAX_AMOUNT_MINOR {
            Err(MoneyError::TooLarge)
        } else {
            Ok(Self { amount_minor, currency })
        }
    }

    /// Nothing, in `currency`.
    #[must_use]
    pub const fn zero(currency: Currency) -> Self {
        Self { amount_minor: 0, currency }
    }

    /// The amount in minor units.
    #[must_use]
    pub const fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    /// The currency.
    #[must_use]
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// `self + other`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] across currencies, [`MoneyError::TooLarge`] past the limit.
    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            });
        }
        let sum = self.amount_minor.checked_add(other.amount_minor).ok_or(MoneyError::TooLarge)?;
        Self::new(sum, self.currency)
    }

    /// `self * factor`, for a unit price times a quantity.
    ///
    /// # Errors
    /// [`MoneyError::TooLarge`] past the limit.
    pub fn checked_mul(self, factor: u32) -> Result<Self, MoneyError> {
        let product =
            self.amount_minor.checked_mul(i64::from(factor)).ok_or(MoneyError::TooLarge)?;
        Self::new(product, self.currency)
    }
}

impl fmt::Display for Money {
    /// `19.99 EUR`: the decimal form for people and logs; the wire format stays minor units.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = u32::from(self.currency.minor_unit_digits());
        if digits == 0 {
            return write!(f, "{} {}", self.amount_minor, self.currency);
        }
        let scale = 10_i64.pow(digits);
        let (units, cents) = (self.amount_minor / scale, self.amount_minor % scale);
        write!(f, "{units}.{cents:0width$} {}", self.currency, width = digits as usize)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR is a currency")
    }

    #[test]
    fn the_currency_table_is_sorted_so_binary_search_works() {
        assert!(CURRENCIES.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }

    #[test]
    fn currencies_are_parsed_from_their_iso_code() {
        assert_eq!(eur().code(), "EUR");
        assert_eq!(Currency::parse("JPY").map(|c| c.minor_unit_digits()), Ok(0));
        assert_eq!(Currency::parse("KWD").map(|c| c.minor_unit_digits()), Ok(3));
        assert_eq!(Currency::parse("eur"), Err(InvalidCurrency("eur".into())));
        assert!(Currency::parse("XYZ").is_err());
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn money_is_never_negative_nor_above_the_limit() {
        assert_eq!(Money::new(-1, eur()), Err(MoneyError::Negative));
        assert_eq!(Money::new(MAX_AMOUNT_MINOR + 1, eur()), Err(MoneyError::TooLarge));
        assert_eq!(
            Money::new(MAX_AMOUNT_MINOR, eur()).map(|m| m.amount_minor()),
            Ok(MAX_AMOUNT_MINOR)
        );
    }

    #[test]
    fn adding_across_currencies_is_an_error() {
        let usd = Currency::parse("USD").expect("USD is a currency");
        let result = Money::zero(eur()).checked_add(Money::zero(usd));
        assert_eq!(result, Err(MoneyError::CurrencyMismatch { left: eur(), right: usd }));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let max = Money::new(MAX_AMOUNT_MINOR, eur()).expect("in range");
        assert_eq!(
            max.checked_add(Money::new(1, eur()).expect("in range")),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(max.checked_mul(u32::MAX), Err(MoneyError::TooLarge));
    }

    #[test]
    fn money_displays_in_major_units() {
        assert_eq!(Money::new(1999, eur()).expect("valid").to_string(), "19.99 EUR");
        assert_eq!(Money::new(5, eur()).expect("valid").to_string(), "0.05 EUR");
        let jpy = Currency::parse("JPY").expect("JPY");
        assert_eq!(Money::new(500, jpy).expect("valid").to_string(), "500 JPY");
    }

    proptest! {
        #[test]
        fn every_listed_code_parses_back_to_itself(index in 0..CURRENCIES.len()) {
            let code = CURRENCIES[index].0;
            prop_assert_eq!(Currency::parse(code).map(|c| c.code()), Ok(code));
        }

        #[test]
        fn checked_add_matches_integer_addition_within_range(
            a in 0..=MAX_AMOUNT_MINOR, b in 0..=MAX_AMOUNT_MINOR,
        ) {
            let sum = Money::new(a, eur()).and_then(|x| x.checked_add(Money::new(b, eur())?));
            if a + b <= MAX_AMOUNT_MINOR {
                prop_assert_eq!(sum.map(|m| m.amount_minor()), Ok(a + b));
            } else {
                prop_assert_eq!(sum, Err(MoneyError::TooLarge));
            }
        }

        #[test]
        fn checked_mul_matches_integer_multiplication_within_range(
            a in 0..=1_000_000_i64, q in 0..=1_000_000_u32,
        ) {
            let expected = a * i64::from(q);
            let product = Money::new(a, eur()).and_then(|m| m.checked_mul(q));
            if expected <= MAX_AMOUNT_MINOR {
                prop_assert_eq!(product.map(|m| m.amount_minor()), Ok(expected));
            } else {
                prop_assert_eq!(product, Err(MoneyError::TooLarge));
            }
        }

        #[test]
        fn any_amount_in_range_is_accepted_and_kept(a in 0..=MAX_AMOUNT_MINOR) {
            prop_assert_eq!(Money::new(a, eur()).map(|m| m.amount_minor()), Ok(a));
        }
    }
}
