//! The JSON Schemas of request fields, built from the domain's constants and rules so that the
//! OpenAPI document says exactly what the server accepts: a value the schema allows passes
//! validation, and a value it refuses is a 400. utoipa's attributes take literals only, hence
//! functions (`#[schema(schema_with = ...)]`): here the machinery and the fields every resource
//! shares (money, paging, `Idempotency-Key`); a resource's own fields beside its bodies, in its
//! module under `routes/`.
//!
//! Text rules are those of the domain's parsers: surrounding white space (`char::is_whitespace`)
//! is trimmed, what is left must not be blank and must hold no control character (`char::
//! is_control`; descriptions and reasons may break lines); names (of users and products) hold no
//! invisible formatting character either (`orderly_domain::text::FORMAT_CHARACTER_RANGES`). The
//! patterns state the same rules; the tests below check them against the parsers.

use orderly_application::{
    pagination::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT},
    ports::IDEMPOTENCY_KEY_MAX_LEN,
};
use orderly_domain::{
    Currency,
    money::MAX_AMOUNT_MINOR,
    product::SKU_MAX_LEN,
    text::FORMAT_CHARACTER_RANGES,
    user::{EMAIL_LOCAL_MAX_LEN, EMAIL_MAX_LEN},
};
use utoipa::openapi::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type, schema::SchemaType};

/// `char::is_whitespace` (Unicode `White_Space`): what `str::trim` removes.
const WHITE_SPACE: &str =
    r"\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// `char::is_control` (general category `Cc`).
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";
/// `char::is_control` but `\t`, `\n` and `\r`: where line breaks are allowed.
const CONTROL_BUT_LINE_BREAKS: &str = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f";

/// Whether a text may break lines inside.
#[derive(Clone, Copy)]
pub(crate) enum Lines {
    One,
    Many,
}

/// The invisible formatting characters that names refuse (Unicode `Cf` in the BMP), from the
/// domain's list, as the body of a character class: `\u00ad\u0600-\u0605...`.
fn format_characters() -> String {
    FORMAT_CHARACTER_RANGES
        .iter()
        .map(|range| match (u32::from(*range.start()), u32::from(*range.end())) {
            (start, end) if start == end => format!(r"\u{start:04x}"),
            (start, end) => format!(r"\u{start:04x}-\u{end:04x}"),
        })
        .collect()
}

/// What a text may be once trimmed: `core` characters, first and last neither space nor control.
fn trimmed(core: &str) -> String {
    format!("^[{WHITE_SPACE}]*{core}[{WHITE_SPACE}]*$")
}

/// A text that is not blank once trimmed, at most `max` characters then, and holds no control
/// character (but line breaks when `lines` allows them).
fn text_pattern(lines: Lines, max: usize) -> String {
    trimmed(&text_core(lines, Some(max)))
}

/// A one-line name: not blank once trimmed, at most `max` characters then, no control
/// character and no invisible formatting character (`UserName::parse`, `ProductName::parse`).
fn name_pattern(max: usize) -> String {
    trimmed(&core_without(Lines::One, &format_characters(), Some(max)))
}

/// A text that may be blank (meaning none); otherwise a text as `text_pattern` has it, at
/// most `max` characters once trimmed when given.
pub(crate) fn blank_or_text_pattern(lines: Lines, max: Option<usize>) -> String {
    trimmed(&format!("(?:{})?", text_core(lines, max)))
}

/// The trimmed text itself; at most `max` characters when given.
fn text_core(lines: Lines, max: Option<usize>) -> String {
    core_without(lines, "", max)
}

/// The trimmed text itself, none of its characters in `refused` (the body of a character
/// class) nor control characters; at most `max` characters when given.
fn core_without(lines: Lines, refused: &str, max: Option<usize>) -> String {
    let visible = format!("[^{CONTROL}{WHITE_SPACE}{refused}]");
    let inner = match lines {
        Lines::One => format!("[^{CONTROL}{refused}]"),
        Lines::Many => format!("[^{CONTROL_BUT_LINE_BREAKS}{refused}]"),
    };
    let repeat =
        max.map_or_else(|| "*".to_owned(), |max| format!("{{0,{}}}", max.saturating_sub(2)));
    format!("{visible}(?:{inner}{repeat}{visible})?")
}

/// A SKU as `Sku::parse` accepts it: letters, digits, `-` and `_`, first a letter or digit, at
/// most `SKU_MAX_LEN` characters once trimmed.
pub(crate) fn sku_pattern() -> String {
    trimmed(&format!("[A-Za-z0-9][A-Za-z0-9_-]{{0,{}}}", SKU_MAX_LEN - 1))
}

/// The characters of an e-mail address's local part, besides `.` (RFC 5322 `atext`).
const ATEXT: &str = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-";

/// An address as `Email::parse` accepts it: `local@domain.tld`, the local part dot-separated
/// `atext` of at most 64 characters, the domain two or more labels of letters, digits and inner
/// hyphens, at most 63 characters each; at most `EMAIL_MAX_LEN` characters once trimmed.
pub(crate) fn email_pattern() -> String {
    let label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    trimmed(&format!(
        "(?=[^{WHITE_SPACE}]{{1,{EMAIL_MAX_LEN}}}[{WHITE_SPACE}]*$)(?=[^@]{{1,{EMAIL_LOCAL_MAX_LEN}}}@)\
         [{ATEXT}]+(?:\\.[{ATEXT}]+)*@{label}(?:\\.{label})+"
    ))
}

/// A string schema; with `nullable`, a string or `null`.
pub(crate) fn string(nullable: bool) -> ObjectBuilder {
    if nullable {
        ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
    } else {
        ObjectBuilder::new().schema_type(Type::String)
    }
}

pub(crate) fn integer(
    nullable: bool,
    format: KnownFormat,
    min: i64,
    max: i64,
    description: &str,
) -> Object {
    let builder = if nullable {
        ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
    } else {
        ObjectBuilder::new().schema_type(Type::Integer)
    };
    builder
        .format(Some(SchemaFormat::KnownFormat(format)))
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(description))
        .build()
}

/// A text of at most `max` characters once trimmed. The bound is in the pattern, not in
/// `maxLength`, which counts the white space the server trims away.
pub(crate) fn bounded_text(nullable: bool, max: usize, lines: Lines, description: &str) -> Object {
    string(nullable)
        .min_length(Some(1))
        .pattern(Some(text_pattern(lines, max)))
        .description(Some(format!("At most {max} characters once trimmed. {description}")))
        .build()
}

/// A one-line name of a user or product (or a review's title), at most `max` characters once
/// trimmed (in the pattern, as for [`bounded_text`]).
pub(crate) fn name_text(nullable: bool, max: usize) -> Object {
    string(nullable)
        .min_length(Some(1))
        .pattern(Some(name_pattern(max)))
        .description(Some(format!("At most {max} characters once trimmed. {NAME}")))
        .build()
}

const NAME: &str = "Trimmed; not blank; no control characters and no invisible formatting \
                    characters (Unicode `Cf`: zero-width spaces and joiners, bidirectional \
                    marks, overrides and isolates, the soft hyphen, the byte-order mark).";

/// `amount` of money, in minor units.
pub(crate) fn amount() -> Object {
    integer(false, KnownFormat::Int64, 0, MAX_AMOUNT_MINOR, "Minor units (cents for EUR).")
}

/// `currency`: one of the ISO 4217 codes the domain knows.
pub(crate) fn currency() -> Object {
    string(false)
        .enum_values(Some(Currency::codes()))
        .description(Some("ISO 4217 code, upper case."))
        .examples(["EUR"])
        .build()
}

/// The `limit` of a page.
pub(crate) fn page_limit() -> Object {
    let description = format!(
        "Items per page, 1 to {MAX_PAGE_LIMIT} (default {DEFAULT_PAGE_LIMIT}); more is a 400 \
         `VALIDATION_FAILED`."
    );
    let mut limit = integer(false, KnownFormat::Int32, 1, MAX_PAGE_LIMIT.into(), &description);
    limit.default = Some(DEFAULT_PAGE_LIMIT.into());
    limit
}

/// The `If-Match` header: the entity tag as the server sent it in `ETag` (`"v2"`, quotes
/// included). No pattern: the server also takes `*`, lists and weak tags (which never match).
pub(crate) fn if_match() -> Object {
    string(false)
        .description(Some(
            "The `ETag` you last read, exactly as received, quotes included: `\"v2\"`. The change \
             applies only if the resource is still at that version; otherwise the answer is 412 \
             with the current `ETag`. Without it, the change applies to the current version.",
        ))
        .examples(["\"v2\""])
        .build()
}

/// The `If-None-Match` header of a read: the entity tag of the copy the client has.
pub(crate) fn if_none_match() -> Object {
    string(false)
        .description(Some(
            "The `ETag` of the copy you have, exactly as received, quotes included: `\"v2\"`. \
             While it is current the answer is 304 with no body.",
        ))
        .examples(["\"v2\""])
        .build()
}

/// The `Idempotency-Key` header: visible ASCII, no spaces (`IdempotencyKey::parse`).
pub(crate) fn idempotency_key() -> Object {
    string(false)
        .min_length(Some(1))
        .max_length(Some(IDEMPOTENCY_KEY_MAX_LEN))
        .pattern(Some("^[!-~]+$"))
        .description(Some(
            "Makes the request safe to retry: a repeat with the same key and body gets the first \
             response again (with `Idempotent-Replayed: true`) instead of a second effect; the \
             same key with another body is a 422, one still running a 409. Keys are yours alone \
             and kept for 24 hours.",
        ))
        .examples(["order-7f3c2a"])
        .build()
}

#[cfg(test)]
mod tests {
    use orderly_application::{ports::ProductSort, products::list_products::MAX_QUERY_LEN};
    use orderly_domain::{
        Email, ProductDescription, ProductName, Reason, Sku, UserName,
        order::REASON_MAX_LEN,
        product::{DESCRIPTION_MAX_LEN, PRODUCT_NAME_MAX_LEN},
        user::USER_NAME_MAX_LEN,
    };

    use super::*;
    use crate::routes::{
        orders::body::reason,
        products::{
            changed_product_name, description, new_product_name, new_sku, product_query,
            product_sort,
        },
        users::{changed_user_name, new_user_name},
    };

    fn pattern_of(object: &Object) -> regex::Regex {
        let pattern = object.pattern.clone().expect("a pattern");
        regex::Regex::new(&pattern).expect("the pattern is a valid regular expression")
    }

    /// Texts around the edges of the rules: blanks, spaces and line breaks at either end or
    /// inside, control characters, non-ASCII letters and spaces.
    const SAMPLES: &[&str] = &[
        "",
        " ",
        "\t\n",
        "a",
        " a ",
        "\u{a0}a\u{3000}",
        "a b",
        "a\u{a0}b",
        "a\tb",
        "a\nb",
        "a\r\nb",
        "\ta\n",
        "a\u{0}b",
        "a\u{7}",
        "\u{7}a",
        "a\u{7f}b",
        "a\u{85}b",
        "\u{85}a\u{85}",
        "a\u{b}b",
        "\u{b}a",
        "a\u{1c}",
        "\u{1c}a",
        "a\u{feff}",
        " \u{feff} ",
        "\u{202e}admin",
        "ad\u{200b}min",
        "\u{2066}Ada\u{2069}",
        "A\u{ad}da",
        "\u{61c}a",
        "a\u{200d}",
        "a\u{2065}b",
        "a\u{fffc}b",
        "Zoë",
        "李雷",
        "Ωmega",
        "é",
        "Ünïcödé",
        "KB-001",
        "kb_01",
        "-KB",
        "_KB",
        "KB 01",
        " KB-01 ",
        "KB.01",
        "ada@example.com",
        " Ada@Example.COM ",
        "a.b@c.de",
        ".a@c.de",
        "a.@c.de",
        "a..b@c.de",
        "a@c",
        "a@-c.de",
        "a@c-.de",
        "a@c.d-e.fg",
        "a b@c.de",
        "a@@c.de",
        "a+tag@c.de",
        "é@c.de",
    ];

    fn agree<T, E>(name: &str, pattern: &regex::Regex, parse: impl Fn(&str) -> Result<T, E>) {
        for sample in SAMPLES {
            assert_eq!(
                pattern.is_match(sample),
                parse(sample).is_ok(),
                "{name}: the pattern and the parser disagree on {sample:?}"
            );
        }
    }

    #[test]
    fn the_text_patterns_accept_what_the_domain_parsers_accept() {
        agree("product name", &pattern_of(&new_product_name()), ProductName::parse);
        agree("user name", &pattern_of(&new_user_name()), UserName::parse);
        agree("reason", &pattern_of(&reason()), Reason::parse);
        agree("sku", &pattern_of(&new_sku()), Sku::parse);
        // A blank description is no description; anything else must parse.
        agree("description", &pattern_of(&description()), |raw| {
            if raw.trim().is_empty() { Ok(None) } else { ProductDescription::parse(raw).map(Some) }
        });
    }

    /// The bounds count characters once trimmed, in the patterns as in the parsers: white space
    /// around the longest text is accepted, one more character is not.
    #[test]
    fn the_patterns_bound_the_trimmed_text_as_the_parsers_do() {
        fn at_the_bound<T, E>(
            name: &str,
            schema: &Object,
            parse: impl Fn(&str) -> Result<T, E>,
            longest: &str,
        ) {
            let pattern = pattern_of(schema);
            let samples =
                [format!("  {longest}\n "), format!("{longest}a"), format!(" a{longest} ")];
            for sample in samples {
                assert_eq!(
                    pattern.is_match(&sample),
                    parse(&sample).is_ok(),
                    "{name}: the pattern and the parser disagree on {sample:?}"
                );
            }
            assert!(pattern.is_match(&format!(" {longest} ")), "{name}: the longest is accepted");
            assert!(schema.max_length.is_none(), "{name}: maxLength would count the white space");
        }
        let long = |max: usize| "é".repeat(max);
        at_the_bound(
            "product name",
            &new_product_name(),
            ProductName::parse,
            &long(PRODUCT_NAME_MAX_LEN),
        );
        at_the_bound("user name", &new_user_name(), UserName::parse, &long(USER_NAME_MAX_LEN));
        at_the_bound("reason", &reason(), Reason::parse, &long(REASON_MAX_LEN));
        at_the_bound("sku", &new_sku(), Sku::parse, &"K".repeat(SKU_MAX_LEN));
        at_the_bound(
            "description",
            &description(),
            ProductDescription::parse,
            &long(DESCRIPTION_MAX_LEN),
        );
    }

    #[test]
    fn the_name_patterns_refuse_every_format_character_the_parsers_refuse() {
        let patterns = [
            ("user name", pattern_of(&changed_user_name())),
            ("product name", pattern_of(&changed_product_name())),
        ];
        for range in FORMAT_CHARACTER_RANGES {
            for c in [*range.start(), *range.end()] {
                for sample in [format!("{c}a"), format!("a{c}b"), format!("a{c}")] {
                    assert!(
                        UserName::parse(&sample).is_err() && ProductName::parse(&sample).is_err()
                    );
                    for (name, pattern) in &patterns {
                        assert!(
                            !pattern.is_match(&sample),
                            "{name}: the pattern accepts {sample:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_email_pattern_accepts_what_the_domain_accepts() {
        // The `regex` crate has no look-ahead: the lengths of the address and of its local part
        // (the two look-aheads) are checked beside it.
        let mut pattern = email_pattern();
        while let Some((before, after)) = pattern.split_once("(?=") {
            let (_, after) = after.split_once(")").expect("its end");
            pattern = format!("{before}{after}");
        }
        let pattern = regex::Regex::new(&pattern).expect("valid");
        let long_local = format!("{}@example.com", "a".repeat(EMAIL_LOCAL_MAX_LEN + 1));
        let mut samples: Vec<String> = SAMPLES.iter().map(|s| (*s).to_owned()).collect();
        samples.push(long_local);
        samples.push(format!("{}@example.com", "a".repeat(EMAIL_LOCAL_MAX_LEN)));
        samples.push(format!("a@{}.com", "b".repeat(64)));
        let label = "b".repeat(63);
        let longest = format!("{}@{label}.{label}.{label}.{}", "a".repeat(54), "c".repeat(7));
        assert_eq!(longest.len(), EMAIL_MAX_LEN);
        samples.push(format!("  {longest} "));
        samples.push(format!("a{longest}"));
        for sample in samples {
            let trimmed = sample.trim();
            let local_fits = trimmed
                .split('@')
                .next()
                .is_some_and(|local| (1..=EMAIL_LOCAL_MAX_LEN).contains(&local.len()));
            let fits = local_fits && trimmed.len() <= EMAIL_MAX_LEN;
            assert_eq!(
                pattern.is_match(&sample) && fits,
                Email::parse(&sample).is_ok(),
                "the pattern and the parser disagree on {sample:?}"
            );
        }
    }

    #[test]
    fn the_query_pattern_bounds_the_trimmed_text() {
        let pattern = pattern_of(&product_query());
        assert!(pattern.is_match(""));
        assert!(pattern.is_match("  "));
        assert!(pattern.is_match(&format!(" {} ", "q".repeat(MAX_QUERY_LEN))));
        assert!(!pattern.is_match(&"q".repeat(MAX_QUERY_LEN + 1)));
        assert!(!pattern.is_match("a\u{7}b"));
    }

    #[test]
    fn enumerations_come_from_the_domain() {
        let currencies = currency().enum_values.expect("an enum");
        assert_eq!(currencies.len(), Currency::codes().len());
        assert!(currencies.contains(&"EUR".into()));
        let sorts = product_sort().enum_values.expect("an enum");
        assert_eq!(sorts.len(), ProductSort::ALL.len());
    }
}
