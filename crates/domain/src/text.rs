//! The one rule set for bounded, human-entered text, shared by names, descriptions and reasons.

/// Why a piece of text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty after trimming, where a value is required.
    #[error("must not be empty")]
    Empty,
    /// Longer than the limit, counted in characters.
    #[error("must be at most {max} characters long")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Contains a control character (line breaks are allowed only where stated).
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl crate::RuleError for TextError {
    fn code(&self) -> &'static str {
        match self {
            Self::Empty | Self::TooLong { .. } => crate::rule::LENGTH,
            Self::ControlCharacter => crate::rule::CONTROL_CHARACTERS,
        }
    }
}

/// Trims `raw` and checks it against `max` characters and the control-character rule.
pub(crate) fn bounded(raw: &str, max: usize, allow_newlines: bool) -> Result<String, TextError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(TextError::Empty);
    }
    if trimmed.chars().count() > max {
        return Err(TextError::TooLong { max });
    }
    let forbidden =
        |c: char| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t'));
    if trimmed.chars().any(forbidden) {
        return Err(TextError::ControlCharacter);
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(bounded("  hi  ", 2, false), Ok("hi".to_owned()));
        assert_eq!(bounded("   ", 2, false), Err(TextError::Empty));
        assert_eq!(bounded("abc", 2, false), Err(TextError::TooLong { max: 2 }));
        assert_eq!(bounded("a\u{0}b", 5, false), Err(TextError::ControlCharacter));
        assert_eq!(bounded("a\nb", 5, false), Err(TextError::ControlCharacter));
        assert_eq!(bounded("a\nb", 5, true), Ok("a\nb".to_owned()));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(bounded("ééé", 3, false), Ok("ééé".to_owned()));
    }
}
