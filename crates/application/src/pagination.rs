//! Keyset (cursor) pagination shared by every list.
//!
//! A page request names a limit and, after the first page, the cursor of the last item seen. The
//! cursor is opaque to clients: it encodes the sort key of that item and its id (ids are UUIDv7,
//! so ordering by id alone is ordering by creation), which lets the store continue with
//! `WHERE (key, id) > (last_key, last_id)` instead of an `OFFSET` that grows with every page.

use std::fmt::Write as _;

use orderly_domain::Uuid;

/// Items per page when the client does not say.
pub const DEFAULT_PAGE_LIMIT: u32 = 20;
/// Most items per page.
pub const MAX_PAGE_LIMIT: u32 = 100;

/// A page size outside `1..=MAX_PAGE_LIMIT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit must be between 1 and {MAX_PAGE_LIMIT}")]
pub struct InvalidPageLimit;

impl orderly_domain::RuleError for InvalidPageLimit {
    fn code(&self) -> &'static str {
        orderly_domain::rule::RANGE
    }
}

/// How many items a page holds: 1 to [`MAX_PAGE_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageLimit(u32);

impl PageLimit {
    /// Checks the range.
    ///
    /// # Errors
    /// [`InvalidPageLimit`] outside `1..=MAX_PAGE_LIMIT`.
    pub fn new(limit: u32) -> Result<Self, InvalidPageLimit> {
        if (1..=MAX_PAGE_LIMIT).contains(&limit) { Ok(Self(limit)) } else { Err(InvalidPageLimit) }
    }

    /// The size.
    #[must_use]
    pub const fn get(&self) -> u32 {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(DEFAULT_PAGE_LIMIT)
    }
}

/// The sort key of the last item of a page.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SortValue {
    /// Sorted by id (creation order) alone.
    None,
    /// An integer key, such as a price.
    Int(i64),
    /// A text key, such as a name.
    Text(String),
}

/// The type of a list's sort key, which a cursor's value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Ordered by id alone: the cursor carries no value.
    Id,
    /// An integer key.
    Int,
    /// A text key.
    Text,
}

/// A cursor that was tampered with or belongs to another list or sort order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not valid for this list")]
pub struct InvalidCursor;

/// Where the next page starts: after the item with this sort value and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The sort key of the last item returned.
    pub value: SortValue,
    /// The id of the last item returned.
    pub id: Uuid,
}

impl Cursor {
    /// The opaque form handed to clients (hex of a versioned, `|`-separated record), bound to
    /// `scope`: the list and sort order it belongs to, such as `products:price`.
    #[must_use]
    pub fn encode(&self, scope: &str) -> String {
        let value = match &self.value {
            SortValue::None => "n".to_owned(),
            SortValue::Int(i) => format!("i{i}"),
            SortValue::Text(t) => format!("t{t}"),
        };
        let plain = format!("1|{scope}|{}|{value}", self.id);
        plain.bytes().fold(String::with_capacity(plain.len() * 2), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
    }

    /// Reads a cursor a client sent back, checking that it belongs to `scope`.
    ///
    /// # Errors
    /// [`InvalidCursor`] when it does not decode or was made for another list or sort order.
    pub fn decode(opaque: &str, scope: &str) -> Result<Self, InvalidCursor> {
        if !opaque.len().is_multiple_of(2) || opaque.len() > 2048 {
            return Err(InvalidCursor);
        }
        let bytes = (0..opaque.len())
            .step_by(2)
            .map(|i| opaque.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or(InvalidCursor)?;
        let plain = String::from_utf8(bytes).map_err(|_| InvalidCursor)?;
        let mut parts = plain.splitn(4, '|');
        let (Some("1"), Some(found_scope), Some(id), Some(value)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidCursor);
        };
        if found_scope != scope {
            return Err(InvalidCursor);
        }
        let id = Uuid::parse_str(id).map_err(|_| InvalidCursor)?;
        let value = match value.split_at_checked(1) {
            Some(("n", "")) => SortValue::None,
            Some(("i", int)) => SortValue::Int(int.parse().map_err(|_| InvalidCursor)?),
            // Sort keys are stored text, which never holds control characters: a cursor that does
            // was forged, and some engines refuse such text outright.
            Some(("t", text)) if !text.chars().any(char::is_control) => {
                SortValue::Text(text.to_owned())
            }
            _ => return Err(InvalidCursor),
        };
        Ok(Self { value, id })
    }
}

/// Which page to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PageRequest {
    /// How many items at most.
    pub limit: PageLimit,
    /// Start after this item; `None` for the first page.
    pub after: Option<Cursor>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Transforms the items, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next: self.next }
    }

    /// The page as use cases hand it out, its cursor encoded for `scope`.
    #[must_use]
    pub fn into_listed(self, scope: &str) -> Listed<T> {
        Listed { items: self.items, next_cursor: self.next.map(|cursor| cursor.encode(scope)) }
    }
}

/// A list request as clients make it: a limit and the opaque cursor of the previous page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// How many items at most.
    pub limit: PageLimit,
    /// The `next_cursor` of the previous page; `None` for the first page.
    pub cursor: Option<String>,
}

impl ListRequest {
    /// Decodes the cursor for a list ordered by id alone.
    ///
    /// # Errors
    /// [`InvalidCursor`] when the cursor does not decode or belongs to another list.
    pub fn into_page_request(self, scope: &str) -> Result<PageRequest, InvalidCursor> {
        self.into_page_request_for(scope, KeyKind::Id)
    }

    /// Decodes the cursor for `scope`, whose sort key is of `kind`, into a page request for a
    /// query port. A cursor whose value has another type is refused: it was not handed out by
    /// this list, and comparing a text column with a number fails on strict engines.
    ///
    /// # Errors
    /// [`InvalidCursor`] when the cursor does not decode, belongs to another list, or carries a
    /// value of another type.
    pub fn into_page_request_for(
        self,
        scope: &str,
        kind: KeyKind,
    ) -> Result<PageRequest, InvalidCursor> {
        let after = self.cursor.map(|raw| Cursor::decode(&raw, scope)).transpose()?;
        let kind_matches = after.as_ref().is_none_or(|cursor| {
            matches!(
                (kind, &cursor.value),
                (KeyKind::Id, SortValue::None)
                    | (KeyKind::Int, SortValue::Int(_))
                    | (KeyKind::Text, SortValue::Text(_))
            )
        });
        if !kind_matches {
            return Err(InvalidCursor);
        }
        Ok(PageRequest { limit: self.limit, after })
    }
}

/// One page of a list as use cases hand it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// The opaque cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn limits_are_bounded_and_default_to_twenty() {
        assert_eq!(PageLimit::default().get(), DEFAULT_PAGE_LIMIT);
        assert_eq!(PageLimit::new(0), Err(InvalidPageLimit));
        assert_eq!(PageLimit::new(MAX_PAGE_LIMIT + 1), Err(InvalidPageLimit));
        assert_eq!(PageLimit::new(MAX_PAGE_LIMIT).map(|l| l.get()), Ok(MAX_PAGE_LIMIT));
    }

    #[test]
    fn a_cursor_is_refused_by_another_list() {
        let cursor = Cursor { value: SortValue::None, id: Uuid::nil() };
        assert_eq!(Cursor::decode(&cursor.encode("users"), "orders"), Err(InvalidCursor));
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        for raw in ["", "zz", "abc", "31", &"31".repeat(2000)] {
            assert_eq!(Cursor::decode(raw, "users"), Err(InvalidCursor), "{raw}");
        }
        let forged = |plain: &str| plain.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        for plain in [
            "2|users|00000000-0000-0000-0000-000000000000|n",
            "1|users|nope|n",
            "1|users|00000000-0000-0000-0000-000000000000|x",
            "1|users|00000000-0000-0000-0000-000000000000|i12a",
            "1|users",
        ] {
            assert_eq!(Cursor::decode(&forged(plain), "users"), Err(InvalidCursor), "{plain}");
        }
        assert_eq!(Cursor::decode("ff", "users"), Err(InvalidCursor));
    }

    #[test]
    fn pages_map_their_items_and_keep_the_cursor() {
        let next = Some(Cursor { value: SortValue::Int(1), id: Uuid::nil() });
        let page = Page { items: vec![1, 2], next: next.clone() }.map(|i| i * 10);
        assert_eq!(page, Page { items: vec![10, 20], next: next.clone() });

        let listed = page.into_listed("s");
        assert_eq!(listed.items, vec![10, 20]);
        let request = ListRequest { limit: PageLimit::default(), cursor: listed.next_cursor };
        assert_eq!(
            request.clone().into_page_request_for("s", KeyKind::Int).map(|r| r.after),
            Ok(next)
        );
        assert_eq!(request.clone().into_page_request_for("s", KeyKind::Text), Err(InvalidCursor));
        assert_eq!(request.into_page_request("s"), Err(InvalidCursor));
    }

    #[test]
    fn a_cursor_with_control_characters_in_its_text_is_forged() {
        let forged = Cursor { value: SortValue::Text("a\u{0}b".into()), id: Uuid::nil() };
        assert_eq!(Cursor::decode(&forged.encode("s"), "s"), Err(InvalidCursor));
    }

    #[test]
    fn a_request_without_cursor_starts_at_the_first_page() {
        let request = ListRequest::default().into_page_request("s").expect("valid");
        assert_eq!(request, PageRequest::default());
        let bad = ListRequest { cursor: Some("zz".into()), ..ListRequest::default() };
        assert_eq!(bad.into_page_request("s"), Err(InvalidCursor));
    }

    fn any_value() -> impl Strategy<Value = SortValue> {
        prop_oneof![
            Just(SortValue::None),
            any::<i64>().prop_map(SortValue::Int),
            "\\PC{0,40}".prop_map(SortValue::Text),
        ]
    }

    proptest! {
        #[test]
        fn cursors_round_trip(value in any_value(), id in any::<u128>(), scope in "[a-z:_]{1,20}") {
            let cursor = Cursor { value, id: Uuid::from_u128(id) };
            prop_assert_eq!(Cursor::decode(&cursor.encode(&scope), &scope), Ok(cursor));
        }

        #[test]
        fn decoding_never_panics(raw in "\\PC{0,100}") {
            let _ = Cursor::decode(&raw, "users");
        }
    }
}
