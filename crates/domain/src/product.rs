//! Products: the catalogue that orders draw from.

use std::fmt;

use crate::{
    Money, ProductId, ProductRating,
    event::{Changes, EventType},
    text,
    text::TextError,
    time::Timestamp,
};

/// Longest SKU.
pub const SKU_MAX_LEN: usize = 64;
/// Longest product name, in characters.
pub const PRODUCT_NAME_MAX_LEN: usize = 200;
/// Longest product description, in characters.
pub const DESCRIPTION_MAX_LEN: usize = 2000;
/// Most units a product can hold in stock.
pub const MAX_STOCK: u32 = 1_000_000_000;

/// Why a SKU was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSku {
    /// Empty after trimming.
    #[error("SKU must not be empty")]
    Empty,
    /// Longer than [`SKU_MAX_LEN`].
    #[error("SKU must be at most {SKU_MAX_LEN} characters long")]
    TooLong,
    /// Uses a character other than `A-Z`, `0-9`, `-`, `_`, or does not start with a letter or digit.
    #[error("SKU may contain only letters, digits, `-` and `_`, starting with a letter or digit")]
    Malformed,
}

impl crate::RuleError for InvalidSku {
    fn code(&self) -> &'static str {
        match self {
            Self::Empty | Self::TooLong => crate::rule::LENGTH,
            Self::Malformed => crate::rule::PATTERN,
        }
    }
}

/// A stock-keeping unit: upper-cased letters, digits, `-` and `_`, unique across the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sku(String);

impl Sku {
    /// Parses and upper-cases a SKU.
    ///
    /// # Errors
    /// [`InvalidSku`] when empty, too long or containing other characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidSku> {
        let sku = raw.trim().to_ascii_uppercase();
        if sku.is_empty() {
            return Err(InvalidSku::Empty);
        }
        if sku.len() > SKU_MAX_LEN {
            return Err(InvalidSku::TooLong);
        }
        let mut chars = sku.chars();
        let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        if starts_well && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            Ok(Self(sku))
        } else {
            Err(InvalidSku::Malformed)
        }
    }

    /// The SKU.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a product name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("name {0}")]
pub struct InvalidProductName(#[from] pub TextError);

impl crate::RuleError for InvalidProductName {
    fn code(&self) -> &'static str {
        self.0.code()
    }
}

/// A product's name: 1 to [`PRODUCT_NAME_MAX_LEN`] characters, trimmed, no control characters
/// and no invisible formatting characters ([`crate::text::FORMAT_CHARACTER_RANGES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    /// Parses a product name.
    ///
    /// # Errors
    /// [`InvalidProductName`] when empty, too long, or containing control or invisible
    /// formatting characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidProductName> {
        Ok(Self(text::name(raw, PRODUCT_NAME_MAX_LEN)?))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("description {0}")]
pub struct InvalidDescription(#[from] pub TextError);

impl crate::RuleError for InvalidDescription {
    fn code(&self) -> &'static str {
        self.0.code()
    }
}

/// A product's description: up to [`DESCRIPTION_MAX_LEN`] characters, line breaks allowed; an
/// empty description is simply absent (`Option<ProductDescription>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDescription(String);

impl ProductDescription {
    /// Parses a description.
    ///
    /// # Errors
    /// [`InvalidDescription`] when empty, too long or containing control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidDescription> {
        Ok(Self(text::bounded(raw, DESCRIPTION_MAX_LEN, true)?))
    }

    /// The description.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What it takes to create a product.
#[derive(Debug, Clone)]
pub struct ProductDraft {
    pub sku: Sku,
    pub name: ProductName,
    pub description: Option<ProductDescription>,
    pub price: Money,
    pub stock: u32,
}

/// Everything a stored product consists of, for repositories that rebuild a [`Product`].
#[derive(Debug, Clone)]
pub struct ProductParts {
    pub id: ProductId,
    pub sku: Sku,
    pub name: ProductName,
    pub description: Option<ProductDescription>,
    pub price: Money,
    pub stock: u32,
    pub archived: bool,
    /// What its visible reviews add up to.
    pub rating: ProductRating,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Why a product change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    /// Stock above [`MAX_STOCK`].
    #[error("stock must be at most {MAX_STOCK}")]
    StockTooLarge,
}

impl crate::RuleError for ProductError {
    fn code(&self) -> &'static str {
        match self {
            Self::StockTooLarge => crate::rule::RANGE,
        }
    }
}

/// A product in the catalogue. Archived products stay (orders reference them) but cannot be
/// ordered. Stock is only ever decremented by the repository's conditional update when an order is
/// placed, so it cannot oversell; here it is set by administrators.
#[derive(Debug, Clone)]
pub struct Product {
    id: ProductId,
    sku: Sku,
    name: ProductName,
    description: Option<ProductDescription>,
    price: Money,
    stock: u32,
    archived: bool,
    rating: ProductRating,
    version: u64,
    /// The version in storage when loaded (1 for a new product, as its insert stores it): every
    /// change since moves `version` to this + 1, so one save is one version step however many
    /// fields changed.
    stored_version: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// The events of the changes made since the product was loaded or created.
    changes: Changes,
}

impl Product {
    /// A new product, at version 1.
    ///
    /// # Errors
    /// [`ProductError::StockTooLarge`] above [`MAX_STOCK`].
    pub fn create(draft: ProductDraft, now: Timestamp) -> Result<Self, ProductError> {
        Self::create_with_id(ProductId::new(), draft, now)
    }

    /// A new product with an id the caller chose (the demo catalogue's ids are derived from
    /// their SKUs, so that every seeded database has the same); otherwise as [`Product::create`].
    ///
    /// # Errors
    /// [`ProductError::StockTooLarge`] above [`MAX_STOCK`].
    pub fn create_with_id(
        id: ProductId,
        draft: ProductDraft,
        now: Timestamp,
    ) -> Result<Self, ProductError> {
        let ProductDraft { sku, name, description, price, stock } = draft;
        check_stock(stock)?;
        let mut changes = Changes::default();
        changes.record(EventType::ProductCreated, 1, now);
        Ok(Self {
            id,
            sku,
            name,
            description,
            price,
            stock,
            archived: false,
            rating: ProductRating::default(),
            version: 1,
            stored_version: 1,
            created_at: now,
            updated_at: now,
            changes,
        })
    }

    /// Rebuilds a stored product.
    #[must_use]
    pub fn restore(parts: ProductParts) -> Self {
        let ProductParts {
            id,
            sku,
            name,
            description,
            price,
            stock,
            archived,
            rating,
            version,
            created_at,
            updated_at,
        } = parts;
        Self {
            id,
            sku,
            name,
            description,
            price,
            stock,
            archived,
            rating,
            version,
            stored_version: version,
            created_at,
            updated_at,
            changes: Changes::default(),
        }
    }

    #[must_use]
    pub fn id(&self) -> ProductId {
        self.id
    }
    #[must_use]
    pub fn sku(&self) -> &Sku {
        &self.sku
    }
    #[must_use]
    pub fn name(&self) -> &ProductName {
        &self.name
    }
    #[must_use]
    pub fn description(&self) -> Option<&ProductDescription> {
        self.description.as_ref()
    }
    #[must_use]
    pub fn price(&self) -> Money {
        self.price
    }
    #[must_use]
    pub fn stock(&self) -> u32 {
        self.stock
    }
    #[must_use]
    pub fn is_archived(&self) -> bool {
        self.archived
    }
    /// What its visible reviews add up to (kept by the store with every review change; a
    /// review change moves the product's version too, as its representation changes).
    #[must_use]
    pub fn rating(&self) -> ProductRating {
        self.rating
    }
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }
    #[must_use]
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    #[must_use]
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    /// Changes the SKU (uniqueness is the repository's to enforce).
    pub fn change_sku(&mut self, sku: Sku, now: Timestamp) {
        if self.sku != sku {
            self.sku = sku;
            self.touch(EventType::ProductUpdated, now);
        }
    }

    /// Renames the product.
    pub fn rename(&mut self, name: ProductName, now: Timestamp) {
        if self.name != name {
            self.name = name;
            self.touch(EventType::ProductUpdated, now);
        }
    }

    /// Replaces or removes the description.
    pub fn describe(&mut self, description: Option<ProductDescription>, now: Timestamp) {
        if self.description != description {
            self.description = description;
            self.touch(EventType::ProductUpdated, now);
        }
    }

    /// Changes the price. Orders already placed keep the price they were placed at.
    pub fn reprice(&mut self, price: Money, now: Timestamp) {
        if self.price != price {
            self.price = price;
            self.touch(EventType::ProductUpdated, now);
        }
    }

    /// Sets the stock level after a count or a delivery from a supplier.
    ///
    /// # Errors
    /// [`ProductError::StockTooLarge`] above [`MAX_STOCK`].
    pub fn restock(&mut self, stock: u32, now: Timestamp) -> Result<(), ProductError> {
        check_stock(stock)?;
        if self.stock != stock {
            self.stock = stock;
            self.touch(EventType::ProductStockChanged, now);
        }
        Ok(())
    }

    /// Takes the product out of the catalogue. Archiving twice changes nothing.
    pub fn archive(&mut self, now: Timestamp) {
        if !self.archived {
            self.archived = true;
            self.touch(EventType::ProductArchived, now);
        }
    }

    /// The events of the changes made since the product was loaded or created (one of each
    /// type per save), oldest first.
    #[must_use]
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    fn touch(&mut self, event_type: EventType, now: Timestamp) {
        self.version = self.stored_version + 1;
        self.updated_at = now;
        self.changes.record(event_type, self.version, now);
    }
}

fn check_stock(stock: u32) -> Result<(), ProductError> {
    if stock > MAX_STOCK { Err(ProductError::StockTooLarge) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Currency;

    fn now() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    fn price(amount: i64) -> Money {
        Money::new(amount, Currency::parse("EUR").expect("EUR")).expect("valid")
    }

    fn product() -> Product {
        Product::create(
            ProductDraft {
                sku: Sku::parse("kb-001").expect("valid"),
                name: ProductName::parse("Keyboard").expect("valid"),
                description: None,
                price: price(4999),
                stock: 3,
            },
            now(),
        )
        .expect("valid draft")
    }

    #[test]
    fn skus_are_upper_cased_and_checked() {
        assert_eq!(Sku::parse(" kb-001_a ").map(|s| s.to_string()), Ok("KB-001_A".into()));
        assert_eq!(Sku::parse("  "), Err(InvalidSku::Empty));
        assert_eq!(Sku::parse("-KB"), Err(InvalidSku::Malformed));
        assert_eq!(Sku::parse("KB 1"), Err(InvalidSku::Malformed));
        assert_eq!(Sku::parse("KÉ"), Err(InvalidSku::Malformed));
        assert_eq!(Sku::parse(&"A".repeat(SKU_MAX_LEN + 1)), Err(InvalidSku::TooLong));
    }

    #[test]
    fn names_and_descriptions_follow_the_text_rules() {
        assert!(ProductName::parse("").is_err());
        assert!(ProductName::parse(&"n".repeat(PRODUCT_NAME_MAX_LEN + 1)).is_err());
        let description = ProductDescription::parse("Line one\nLine two").expect("valid");
        assert_eq!(description.as_str(), "Line one\nLine two");
        assert!(ProductDescription::parse(&"d".repeat(DESCRIPTION_MAX_LEN + 1)).is_err());
    }

    #[test]
    fn names_refuse_invisible_formatting_characters_and_descriptions_keep_them() {
        for raw in ["\u{202e}draobyek", "Key\u{200b}board", "Keyboard\u{2069}", "\u{feff}Keyboard"]
        {
            let refused = ProductName::parse(raw).expect_err(raw);
            assert_eq!(refused, InvalidProductName(TextError::FormatCharacter), "{raw:?}");
            assert_eq!(crate::RuleError::code(&refused), crate::rule::FORMAT_CHARACTERS);
        }
        for raw in ["Zoë", "李雷", "Ωmega"] {
            assert_eq!(ProductName::parse(raw).map(|n| n.as_str().to_owned()), Ok(raw.to_owned()));
        }
        let prose = "Kühl\u{ad}schrank, 👩\u{200d}💻 approved";
        assert_eq!(
            ProductDescription::parse(prose).map(|d| d.as_str().to_owned()),
            Ok(prose.into())
        );
    }

    #[test]
    fn a_new_product_is_active_at_version_one() {
        let product = product();
        assert_eq!(product.version(), 1);
        assert!(!product.is_archived());
        assert_eq!(product.sku().as_str(), "KB-001");
        assert_eq!(product.name().as_str(), "Keyboard");
        assert_eq!(product.description(), None);
        assert_eq!(product.price(), price(4999));
        assert_eq!(product.stock(), 3);
        assert_eq!(product.created_at(), product.updated_at());
    }

    #[test]
    fn a_product_created_with_a_chosen_id_keeps_it() {
        let id = ProductId::new();
        let draft = ProductDraft {
            sku: Sku::parse("X").expect("valid"),
            name: ProductName::parse("X").expect("valid"),
            description: None,
            price: price(1),
            stock: 1,
        };
        let product = Product::create_with_id(id, draft, now()).expect("valid draft");
        assert_eq!(product.id(), id);
        assert_eq!(product.version(), 1);
    }

    #[test]
    fn stock_above_the_maximum_is_refused() {
        let mut product = product();
        assert_eq!(product.restock(MAX_STOCK + 1, now()), Err(ProductError::StockTooLarge));
        let draft = ProductDraft {
            sku: Sku::parse("X").expect("valid"),
            name: ProductName::parse("X").expect("valid"),
            description: None,
            price: price(1),
            stock: MAX_STOCK + 1,
        };
        assert!(matches!(Product::create(draft, now()), Err(ProductError::StockTooLarge)));
    }

    #[test]
    fn changes_move_the_version_one_step_and_no_ops_do_not() {
        let original = product();
        let mut product = Product::restore(ProductParts {
            id: original.id(),
            sku: original.sku().clone(),
            name: original.name().clone(),
            description: None,
            price: original.price(),
            stock: original.stock(),
            archived: false,
            rating: ProductRating::default(),
            version: 6,
            created_at: original.created_at(),
            updated_at: original.updated_at(),
        });
        let later = now() + chrono::TimeDelta::minutes(1);
        product.rename(product.name().clone(), later);
        product.reprice(product.price(), later);
        product.describe(None, later);
        product.change_sku(product.sku().clone(), later);
        product.restock(3, later).expect("in range");
        assert_eq!(product.version(), 6);
        assert_eq!(product.changes().after(0).count(), 0, "no change, no event");

        product.rename(ProductName::parse("Mechanical keyboard").expect("valid"), later);
        product.reprice(price(5999), later);
        product.describe(Some(ProductDescription::parse("Clicky").expect("valid")), later);
        product.change_sku(Sku::parse("KB-002").expect("valid"), later);
        product.restock(10, later).expect("in range");
        product.archive(later);
        product.archive(later);
        assert_eq!(product.version(), 7, "one save, one version step, however many changes");
        assert!(product.is_archived());
        assert_eq!(product.updated_at(), later);
        assert_eq!(product.description().map(ProductDescription::as_str), Some("Clicky"));
        let events: Vec<_> =
            product.changes().after(6).map(|r| (r.event_type, r.version)).collect();
        assert_eq!(
            events,
            [
                (EventType::ProductUpdated, 7),
                (EventType::ProductStockChanged, 7),
                (EventType::ProductArchived, 7)
            ],
            "one event of each kind of change"
        );
        let created: Vec<_> = original.changes().after(0).map(|r| r.event_type).collect();
        assert_eq!(created, [EventType::ProductCreated]);
    }

    #[test]
    fn a_restored_product_keeps_every_part() {
        let original = product();
        let restored = Product::restore(ProductParts {
            id: original.id(),
            sku: original.sku().clone(),
            name: original.name().clone(),
            description: None,
            price: original.price(),
            stock: 0,
            archived: true,
            rating: ProductRating::new(3, 13),
            version: 4,
            created_at: original.created_at(),
            updated_at: original.updated_at(),
        });
        assert_eq!(restored.id(), original.id());
        assert_eq!(restored.rating(), ProductRating::new(3, 13));
        assert_eq!(original.rating().count(), 0);
        assert!(restored.is_archived());
        assert_eq!(restored.version(), 4);
    }

    proptest! {
        #[test]
        fn accepted_skus_are_upper_case_and_reparse_to_themselves(raw in "\\PC{0,80}") {
            if let Ok(sku) = Sku::parse(&raw) {
                prop_assert_eq!(sku.as_str(), sku.as_str().to_ascii_uppercase());
                prop_assert!(sku.as_str().len() <= SKU_MAX_LEN);
                prop_assert_eq!(Sku::parse(sku.as_str()), Ok(sku.clone()));
            }
        }

        #[test]
        fn well_formed_skus_are_accepted(raw in "[A-Za-z0-9][A-Za-z0-9_-]{0,63}") {
            prop_assert!(Sku::parse(&raw).is_ok());
        }
    }
}
