//! The one rule set for bounded, human-entered text, shared by names, descriptions and reasons.
//!
//! Every text is trimmed, bounded and free of control characters (`bounded`). One-line names
//! (of users and products, `name`) must also hold no invisible formatting character
//! ([`FORMAT_CHARACTER_RANGES`]): a name is shown inline, beside other text and other names (an
//! order's lines, a review's author, an admin's user list), where a RIGHT-TO-LEFT OVERRIDE turns
//! `"\u{202e}nimda"` into what reads as "admin" and reorders whatever follows it, and a ZERO
//! WIDTH SPACE makes two different names look the same.
//!
//! Descriptions, review bodies and reasons keep these characters: they are prose, shown as a
//! block of their own and never used to tell one account or product from another, and prose
//! needs them (a soft hyphen, the ZERO WIDTH JOINER of an emoji sequence, the ZERO WIDTH
//! NON-JOINER of Persian words, the direction marks of a text mixing Hebrew and English).
//! Showing them safely (isolating user content) is the client's task there.

use std::ops::RangeInclusive;

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
    /// Contains an invisible formatting character (see [`FORMAT_CHARACTER_RANGES`]), where
    /// the text is a name.
    #[error("must not contain invisible formatting characters (such as U+200B or U+202E)")]
    FormatCharacter,
}

impl crate::RuleError for TextError {
    fn code(&self) -> &'static str {
        match self {
            Self::Empty | Self::TooLong { .. } => crate::rule::LENGTH,
            Self::ControlCharacter => crate::rule::CONTROL_CHARACTERS,
            Self::FormatCharacter => crate::rule::FORMAT_CHARACTERS,
        }
    }
}

/// The characters of Unicode general category `Cf` ("Other, format") in the Basic Multilingual
/// Plane, as of Unicode 15.1: the characters names refuse. They are invisible, or
/// change how the text around them is laid out, or both.
///
/// `Cf` characters outside the BMP (Kaithi number signs, Egyptian hieroglyph and shorthand
/// format controls, musical beams and phrases, the tag characters U+E0001 and U+E0020 to
/// U+E007F) are not listed: the OpenAPI document states this rule as an ECMA-262 pattern, which
/// can only name BMP characters (`\uXXXX`) in every regular-expression dialect that reads it,
/// and the document must not accept less than the server.
pub const FORMAT_CHARACTER_RANGES: &[RangeInclusive<char>] = &[
    '\u{00ad}'..='\u{00ad}', // SOFT HYPHEN
    '\u{0600}'..='\u{0605}', // ARABIC NUMBER SIGN .. ARABIC NUMBER MARK ABOVE
    '\u{061c}'..='\u{061c}', // ARABIC LETTER MARK
    '\u{06dd}'..='\u{06dd}', // ARABIC END OF AYAH
    '\u{070f}'..='\u{070f}', // SYRIAC ABBREVIATION MARK
    '\u{0890}'..='\u{0891}', // ARABIC POUND MARK ABOVE, ARABIC PIASTRE MARK ABOVE
    '\u{08e2}'..='\u{08e2}', // ARABIC DISPUTED END OF AYAH
    '\u{180e}'..='\u{180e}', // MONGOLIAN VOWEL SEPARATOR
    '\u{200b}'..='\u{200f}', // ZERO WIDTH SPACE, (NON-)JOINER, LEFT-TO-RIGHT and RIGHT-TO-LEFT MARK
    '\u{202a}'..='\u{202e}', // bidirectional embeddings and overrides, POP DIRECTIONAL FORMATTING
    '\u{2060}'..='\u{2064}', // WORD JOINER, invisible operators
    '\u{2066}'..='\u{206f}', // bidirectional isolates, deprecated shaping controls
    '\u{feff}'..='\u{feff}', // ZERO WIDTH NO-BREAK SPACE (the byte-order mark)
    '\u{fff9}'..='\u{fffb}', // INTERLINEAR ANNOTATION ANCHOR, SEPARATOR, TERMINATOR
];

/// Whether `c` is one of the [`FORMAT_CHARACTER_RANGES`].
#[must_use]
pub fn is_format_character(c: char) -> bool {
    FORMAT_CHARACTER_RANGES.iter().any(|range| range.contains(&c))
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

/// A one-line name: [`bounded`] without line breaks, and no invisible formatting character
/// ([`FORMAT_CHARACTER_RANGES`]).
pub(crate) fn name(raw: &str, max: usize) -> Result<String, TextError> {
    let name = bounded(raw, max, false)?;
    if name.chars().any(is_format_character) {
        return Err(TextError::FormatCharacter);
    }
    Ok(name)
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

    /// The first and last character of every range, and every one between them in the bidirectional
    /// and zero-width ranges.
    const REFUSED_IN_NAMES: &[char] = &[
        '\u{00ad}', '\u{0600}', '\u{0605}', '\u{061c}', '\u{06dd}', '\u{070f}', '\u{0890}',
        '\u{0891}', '\u{08e2}', '\u{180e}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}',
        '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2060}',
        '\u{2061}', '\u{2062}', '\u{2063}', '\u{2064}', '\u{2066}', '\u{2067}', '\u{2068}',
        '\u{2069}', '\u{206a}', '\u{206f}', '\u{feff}', '\u{fff9}', '\u{fffa}', '\u{fffb}',
    ];

    #[test]
    fn names_refuse_every_format_character_wherever_it_stands() {
        for &c in REFUSED_IN_NAMES {
            for raw in [format!("{c}admin"), format!("ad{c}min"), format!("admin{c}")] {
                assert_eq!(name(&raw, 20), Err(TextError::FormatCharacter), "{raw:?}");
            }
            // Trimming does not remove them either: they are not white space.
            assert_eq!(name(&format!(" {c} "), 20), Err(TextError::FormatCharacter), "{c:?}");
            assert!(is_format_character(c), "{c:?}");
        }
        let refused = name("\u{202e}admin", 20).expect_err("an override");
        assert_eq!(crate::RuleError::code(&refused), crate::rule::FORMAT_CHARACTERS);
    }

    #[test]
    fn names_keep_the_other_rules_first() {
        assert_eq!(name(" ", 5), Err(TextError::Empty));
        assert_eq!(name("abcdef\u{200b}", 5), Err(TextError::TooLong { max: 5 }));
        assert_eq!(name("a\u{7}\u{200b}", 5), Err(TextError::ControlCharacter));
        assert_eq!(name("a\nb", 5), Err(TextError::ControlCharacter));
    }

    #[test]
    fn names_accept_letters_of_every_script_and_visible_punctuation() {
        for raw in [
            "Zoë",
            "李雷",
            "Ωmega",
            "José Ñúñez",
            "Ærøskøbing",
            "محمد",
            "שרה",
            "Ольга",
            "दीपिका",
            "O'Brien-Smith",
            "Anne\u{a0}Marie",
            "Keyboard «ISO» 75 %",
            "Mug ☕",
        ] {
            assert_eq!(name(raw, 40), Ok(raw.to_owned()), "{raw:?}");
        }
    }

    #[test]
    fn format_characters_are_exactly_the_listed_ranges() {
        // Neighbours of the ranges, and characters that look empty but are not format
        // characters (white space is trimmed or kept by the other rules).
        for c in ['\u{ac}', '\u{ae}', '\u{200a}', '\u{2010}', '\u{2065}', '\u{fefe}', '\u{fffc}'] {
            assert!(!is_format_character(c), "{c:?}");
        }
        for range in FORMAT_CHARACTER_RANGES {
            assert!(range.start() <= range.end());
            assert!(u32::from(*range.end()) <= 0xffff, "only BMP characters: {range:?}");
        }
    }

    #[test]
    fn prose_keeps_format_characters() {
        assert_eq!(bounded("Kühl\u{ad}schrank", 20, true), Ok("Kühl\u{ad}schrank".to_owned()));
        assert_eq!(bounded("a\u{200d}b", 20, false), Ok("a\u{200d}b".to_owned()));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(bounded("ééé", 3, false), Ok("ééé".to_owned()));
    }
}
