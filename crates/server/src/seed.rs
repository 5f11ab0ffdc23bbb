//! `orderly seed`: demo data for a first run, made through the use cases (never SQL): a demo
//! administrator and about twenty products. Idempotent: an e-mail, or a product's SKU or id, that
//! exists is left as it is, so a second run changes nothing and says so. The products' ids are
//! derived from their SKUs ([`demo_product_id`]), the same on every seeded database, so that the
//! API's examples can name one that exists.

use anyhow::Context as _;
use orderly_application::{
    products::{create_product::CreateProductError, get_product::GetProductError},
    users::register_user::{RegisterUserError, RegisterUserInput},
};
use orderly_domain::{
    Actor, Currency, Email, Money, Password, ProductDescription, ProductDraft, ProductId,
    ProductName, Role, Sku, UserName,
};
use sha2::{Digest as _, Sha256};

use crate::startup::Wiring;

/// The currency of every demo price.
pub const DEMO_CURRENCY: &str = "EUR";

/// One demo product: what `POST /api/v1/products` would be sent.
#[derive(Debug, Clone, Copy)]
pub struct DemoProduct {
    pub sku: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// In cents.
    pub price: i64,
    pub stock: u32,
}

const fn product(
    sku: &'static str,
    name: &'static str,
    description: &'static str,
    price: i64,
    stock: u32,
) -> DemoProduct {
    DemoProduct { sku, name, description, price, stock }
}

/// The demo catalogue: a small coffee-and-kitchen shop. Two products show the unhappy paths:
/// one is out of stock (`INSUFFICIENT_STOCK`), one costs more than the simulated gateway
/// approves by default (`PAYMENT_DECLINED`).
pub const DEMO_PRODUCTS: &[DemoProduct] = &[
    product(
        "COF-ESP-1KG",
        "Espresso beans, 1 kg",
        "Dark roast, chocolate and hazelnut notes. Whole beans from Brazil and India.",
        2490,
        120,
    ),
    product(
        "COF-FLT-250",
        "Filter coffee, 250 g",
        "Light roast Ethiopian Yirgacheffe, floral and citrus. Ground for pour-over.",
        1150,
        200,
    ),
    product(
        "COF-DECAF-500",
        "Decaf beans, 500 g",
        "Swiss-water decaffeinated Colombian, caramel sweetness.",
        1390,
        60,
    ),
    product(
        "TEA-SENCHA-100",
        "Sencha green tea, 100 g",
        "Loose-leaf Japanese green tea, first flush.",
        890,
        80,
    ),
    product(
        "TEA-CHAI-200",
        "Masala chai, 200 g",
        "Assam black tea with cardamom, cinnamon, ginger and clove.",
        790,
        75,
    ),
    product(
        "MUG-STONE-350",
        "Stoneware mug, 350 ml",
        "Hand-glazed, dishwasher safe. Colour varies slightly from mug to mug.",
        1400,
        150,
    ),
    product("CUP-ESP-2PK", "Espresso cups, set of 2", "Double-walled glass, 80 ml each.", 1900, 90),
    product(
        "GRN-HAND-01",
        "Hand grinder",
        "Ceramic conical burrs, 40 click settings, for espresso to French press.",
        4900,
        35,
    ),
    product(
        "GRN-ELEC-02",
        "Electric burr grinder",
        "Flat 64 mm burrs, stepless adjustment, 250 g hopper.",
        22900,
        12,
    ),
    product(
        "DRP-V60-02",
        "Pour-over dripper, size 02",
        "Ceramic cone dripper for 1 to 4 cups.",
        2500,
        50,
    ),
    product(
        "FLT-PAPER-100",
        "Paper filters, 100 pack",
        "Unbleached filters for size 02 drippers.",
        650,
        400,
    ),
    product(
        "PRS-FRENCH-1L",
        "French press, 1 l",
        "Borosilicate glass and stainless steel, four-layer filter.",
        3490,
        40,
    ),
    product(
        "KTL-GOOSE-08",
        "Gooseneck kettle, 0.8 l",
        "Electric, temperature control from 40 to 100 C, keeps warm for 60 minutes.",
        6990,
        25,
    ),
    product(
        "SCL-BREW-01",
        "Brewing scale",
        "0.1 g resolution, built-in timer, USB-C charging.",
        3990,
        45,
    ),
    product("MLK-JUG-600", "Milk jug, 600 ml", "Stainless steel with a latte-art spout.", 1790, 70),
    product("TMP-58-01", "Tamper, 58 mm", "Stainless steel base, walnut handle.", 2990, 30),
    product(
        "BAG-TOTE-01",
        "Canvas tote bag",
        "Heavy cotton canvas, printed with the shop's logo.",
        1200,
        300,
    ),
    product(
        "CHO-DARK-100",
        "Dark chocolate, 100 g",
        "70% cacao from Peru, a good match for espresso.",
        450,
        250,
    ),
    product("GFT-CARD-50", "Gift card, 50 EUR", "Delivered by e-mail. Never expires.", 5000, 1000),
    product(
        "MCH-LEVER-01",
        "Lever espresso machine",
        "Restored 1961 lever machine. Out of stock until the next one is restored.",
        189_000,
        0,
    ),
    product(
        "MCH-ROASTER-PRO",
        "Commercial drum roaster, 15 kg",
        "For cafés that roast their own. Costs more than the simulated gateway approves by default, so paying for it is declined.",
        150_000_000,
        3,
    ),
];

/// The instant the demo catalogue's ids are dated at: 2026-01-01T00:00:00Z, in milliseconds.
const DEMO_IDS_DATED_AT_MS: u64 = 1_767_225_600_000;

/// The id of the demo product `sku`: a UUIDv7 like every id, dated at one fixed instant (so the
/// demo products sort before anything made since), its other 74 bits from SHA-256 of the SKU.
/// The same SKU has the same id on every database `orderly seed` fills.
#[must_use]
pub fn demo_product_id(sku: &str) -> ProductId {
    let digest = Sha256::digest(format!("orderly demo product {sku}"));
    let mut bits = [0_u8; 10];
    bits.copy_from_slice(&digest[..10]);
    ProductId::from_uuid(
        uuid::Builder::from_unix_timestamp_millis(DEMO_IDS_DATED_AT_MS, &bits).into_uuid(),
    )
}

/// The demo administrator to make.
#[derive(Debug)]
pub struct DemoAdmin {
    pub email: Email,
    pub name: UserName,
    /// `None`: generate one (and report it, once).
    pub password: Option<Password>,
}

/// What happened to the demo administrator.
#[derive(Debug)]
pub enum AdminOutcome {
    /// Created now; the password when it was generated (to print once).
    Created { generated_password: Option<Password> },
    /// An administrator with this e-mail existed: left unchanged.
    Existed,
}

/// What a run did.
#[derive(Debug)]
pub struct SeedReport {
    pub admin_email: Email,
    pub admin: AdminOutcome,
    pub products_created: usize,
    pub products_existing: usize,
}

impl SeedReport {
    /// True when the run changed nothing.
    #[must_use]
    pub fn unchanged(&self) -> bool {
        matches!(self.admin, AdminOutcome::Existed) && self.products_created == 0
    }
}

/// A random password of 96 bits, as `xxxxxx-xxxxxx-xxxxxx-xxxxxx` (hex).
///
/// # Errors
/// When the system's random source fails.
pub fn generate_password() -> anyhow::Result<Password> {
    let mut bytes = [0_u8; 12];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("random source: {error}"))?;
    let groups: Vec<String> = bytes.chunks(3).map(hex::encode).collect();
    Password::parse(groups.join("-")).context("a generated password")
}

/// Makes the demo administrator and products that do not exist yet.
///
/// # Errors
/// When the e-mail belongs to a customer, or a use case fails for another reason than "it
/// exists already".
pub async fn seed(wiring: &Wiring, admin: DemoAdmin) -> anyhow::Result<SeedReport> {
    let DemoAdmin { email, name, password } = admin;
    let (password, generated) = match password {
        Some(password) => (password, false),
        None => (generate_password()?, true),
    };
    let input = RegisterUserInput {
        email: email.clone(),
        name,
        password: password.clone(),
        role: Role::Admin,
    };
    let (admin_id, outcome) = match wiring.use_cases.register_user.execute(input).await {
        Ok(user) => {
            (user.id(), AdminOutcome::Created { generated_password: generated.then_some(password) })
        }
        Err(RegisterUserError::DuplicateEmail) => {
            let user = wiring
                .users
                .find_by_email(&email)
                .await
                .context("looking up the demo administrator")?
                .with_context(|| format!("{email} was taken and then removed; run again"))?;
            if user.role() != Role::Admin {
                anyhow::bail!(
                    "{email} belongs to a customer, not an administrator: choose another address \
                     with --admin-email"
                );
            }
            (user.id(), AdminOutcome::Existed)
        }
        Err(error) => return Err(error).context("creating the demo administrator"),
    };

    let actor = Actor::User { id: admin_id, role: Role::Admin };
    let currency = Currency::parse(DEMO_CURRENCY).context("the demo currency")?;
    let (mut created, mut existing) = (0, 0);
    for demo in DEMO_PRODUCTS {
        let id = demo_product_id(demo.sku);
        // Found by its id even when an administrator has changed its SKU since.
        match wiring.use_cases.get_product.execute(id).await {
            Ok(_) => {
                existing += 1;
                continue;
            }
            Err(GetProductError::NotFound) => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("looking up the demo product {}", demo.sku));
            }
        }
        let draft = ProductDraft {
            sku: Sku::parse(demo.sku).context("a demo SKU")?,
            name: ProductName::parse(demo.name).context("a demo product name")?,
            description: Some(
                ProductDescription::parse(demo.description).context("a demo description")?,
            ),
            price: Money::new(demo.price, currency).context("a demo price")?,
            stock: demo.stock,
        };
        match wiring.use_cases.create_product.execute_with_id(&actor, id, draft).await {
            Ok(_) => created += 1,
            Err(CreateProductError::DuplicateSku) => existing += 1,
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("creating the demo product {}", demo.sku));
            }
        }
    }
    Ok(SeedReport {
        admin_email: email,
        admin: outcome,
        products_created: created,
        products_existing: existing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_product_is_valid_and_its_sku_unique() {
        let currency = Currency::parse(DEMO_CURRENCY).expect("a currency");
        let mut skus = std::collections::HashSet::new();
        for demo in DEMO_PRODUCTS {
            Sku::parse(demo.sku).expect(demo.sku);
            ProductName::parse(demo.name).expect(demo.name);
            ProductDescription::parse(demo.description).expect(demo.description);
            Money::new(demo.price, currency).expect(demo.sku);
            assert!(skus.insert(demo.sku), "{} twice", demo.sku);
        }
        assert!((15..=25).contains(&DEMO_PRODUCTS.len()));
    }

    #[test]
    fn demo_product_ids_are_uuidv7_fixed_by_their_skus() {
        let ids: std::collections::HashSet<_> =
            DEMO_PRODUCTS.iter().map(|demo| demo_product_id(demo.sku)).collect();
        assert_eq!(ids.len(), DEMO_PRODUCTS.len(), "one id per SKU");
        for id in ids {
            assert_eq!(id.as_uuid().get_version_num(), 7, "{}", id.as_uuid());
        }
        // Pinned: documents and examples name these ids, and seeded databases keep them.
        assert_eq!(
            demo_product_id("COF-ESP-1KG").as_uuid().to_string(),
            "019b76da-a800-76e3-a6e2-e7067a38511a"
        );
    }

    #[test]
    fn the_example_order_of_every_api_version_names_a_demo_product() {
        let demo: Vec<String> = DEMO_PRODUCTS
            .iter()
            .map(|demo| demo_product_id(demo.sku).as_uuid().to_string())
            .collect();
        let mut checked = Vec::new();
        for version in orderly_api::routes::table::Version::ALL {
            let document =
                serde_json::to_value(orderly_api::openapi::document(version)).expect("json");
            let path = format!("{}/orders", version.prefix());
            // The body `placeOrder` takes, whatever the version calls it.
            let Some(body) = document["paths"][&path]["post"]["requestBody"]["content"]
                ["application/json"]["schema"]["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            else {
                continue;
            };
            let request = &document["components"]["schemas"][body];
            let example = request.get("example").or_else(|| request["examples"].get(0));
            let example = example.unwrap_or_else(|| panic!("{version:?}: no example order"));
            for line in example["items"].as_array().expect("items") {
                let product = line["product_id"].as_str().unwrap_or_default().to_owned();
                assert!(demo.contains(&product), "{version:?}: {product} is not a demo product");
            }
            checked.push(version);
        }
        assert!(checked.contains(&orderly_api::routes::table::Version::V1), "{checked:?}");
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password().expect("a password");
        let b = generate_password().expect("a password");
        assert_eq!(a.expose().len(), 27);
        assert_ne!(a.expose(), b.expose());
    }
}
