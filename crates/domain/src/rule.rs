//! The names of the rules a value can break, shared by every refusal of the value objects.

/// A value refused by one of the domain's rules.
///
/// [`code`](RuleError::code) names the rule that failed, in a stable, machine-readable way that
/// clients can rely on (the HTTP API reports it per field): `length`, `range`, `pattern`,
/// `email`, `currency`, `control_characters`, `format_characters`. The message (`Display`) explains it to a person.
pub trait RuleError: std::error::Error {
    /// The rule that failed.
    fn code(&self) -> &'static str;
}

/// A length bound (characters, or elements of a list) was not met; also an empty text.
pub const LENGTH: &str = "length";
/// A number is outside its bounds.
pub const RANGE: &str = "range";
/// A text does not have the required shape (which characters, where).
pub const PATTERN: &str = "pattern";
/// Not an e-mail address.
pub const EMAIL: &str = "email";
/// Not a known currency, or currencies that do not go together.
pub const CURRENCY: &str = "currency";
/// A text holds a control character.
pub const CONTROL_CHARACTERS: &str = "control_characters";
/// A name holds an invisible formatting character (Unicode `Cf`: a zero-width space, a
/// bidirectional override, ...).
pub const FORMAT_CHARACTERS: &str = "format_characters";
/// Not one of a fixed set of values.
pub const ONE_OF: &str = "one_of";
