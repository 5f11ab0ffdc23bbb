//! Use-case tests for the catalogue: every port is a mockall mock, so each test states exactly
//! what the use case may ask of the store and what it must answer for each port outcome.

mod support;

use std::sync::{Arc, Mutex};

use orderly_application::{
    StoreError, WRITE_ATTEMPTS,
    auth::admin_check::AdminCheck,
    pagination::{Cursor, InvalidCursor, ListRequest, Page, PageLimit, SortValue},
    ports::{
        MockProductQueries, MockProductRepository, MockUserRepository, ProductFilter, ProductSort,
        ProductWriteError,
    },
    products::{
        archive_product::{ArchiveProduct, ArchiveProductError},
        create_product::{CreateProduct, CreateProductError},
        get_product::{GetProduct, GetProductError},
        list_products::{self, ListProducts, ListProductsError},
        update_product::{UpdateProduct, UpdateProductError, UpdateProductInput},
    },
};
use orderly_domain::{
    Actor, Email, PasswordHash, Product, ProductDescription, ProductDraft, ProductError, ProductId,
    ProductName, ProductParts, Role, Sku, User, UserId, UserName, UserParts, product::MAX_STOCK,
};
use support::{
    admin, customer, eur, products_holding, store_down,
    stored_a_month_ago::{clock, created_at, now},
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The version every stored fixture product is at, so a write must expect it.
const STORED_VERSION: u64 = 3;

/// The check of admins against a database where every admin who acts is still one (what
/// happens when they are not is in `tests/privileged.rs`).
fn admins() -> AdminCheck {
    let mut accounts = MockUserRepository::new();
    accounts.expect_find_by_id().returning(|id| {
        Ok(Some(User::restore(UserParts {
            id,
            email: Email::parse("admin@example.com").expect("a valid e-mail address"),
            name: UserName::parse("Admin").expect("a valid name"),
            role: Role::Admin,
            password_hash: PasswordHash::new("$argon2id$v=19$stored".to_owned()),
            session_epoch: 0,
            version: 1,
            created_at: created_at(),
            updated_at: created_at(),
        })))
    });
    AdminCheck::new(Arc::new(accounts))
}

fn sku(raw: &str) -> Sku {
    Sku::parse(raw).expect("a valid SKU")
}

fn name(raw: &str) -> ProductName {
    ProductName::parse(raw).expect("a valid name")
}

fn description(raw: &str) -> ProductDescription {
    ProductDescription::parse(raw).expect("a valid description")
}

fn draft() -> ProductDraft {
    ProductDraft {
        sku: sku("KB-001"),
        name: name("Keyboard"),
        description: Some(description("Mechanical, brown switches")),
        price: eur(4999),
        stock: 12,
    }
}

/// The parts of an active product as the repository would return it.
fn stored_parts() -> ProductParts {
    ProductParts {
        id: ProductId::new(),
        sku: sku("KB-001"),
        name: name("Keyboard"),
        description: Some(description("Mechanical, brown switches")),
        price: eur(4999),
        stock: 12,
        archived: false,
        rating: orderly_domain::ProductRating::default(),
        version: STORED_VERSION,
        created_at: created_at(),
        updated_at: created_at(),
    }
}

/// An active product at [`STORED_VERSION`].
fn stored_product() -> Product {
    Product::restore(stored_parts())
}

/// An archived product at [`STORED_VERSION`].
fn archived_product() -> Product {
    Product::restore(ProductParts { archived: true, ..stored_parts() })
}

/// A repository holding `product` whose `update` answers `outcome` once.
fn repository_updating(
    product: &Product,
    outcome: impl FnOnce() -> Result<(), ProductWriteError> + Send + 'static,
) -> MockProductRepository {
    let mut products = products_holding(product);
    products.expect_update().times(1).return_once(move |_, _| outcome());
    products
}

/// A repository whose `find_by_id` answers the product of `parts` one sale further on at each of
/// its `reads` calls (version + 1 and one unit less each time), as orders reserving stock do.
fn repository_selling(parts: &ProductParts, reads: usize) -> MockProductRepository {
    let mut products = MockProductRepository::new();
    let (id, parts) = (parts.id, parts.clone());
    let mut sold = 0;
    products.expect_find_by_id().withf(move |asked| *asked == id).times(reads).returning(
        move |_| {
            let found = Product::restore(ProductParts {
                version: parts.version + sold,
                stock: parts.stock - u32::try_from(sold).expect("a few sales"),
                ..parts.clone()
            });
            sold += 1;
            Ok(Some(found))
        },
    );
    products
}

/// What each `update` call was given: (expected version, new version, name, stock, archived).
type Writes = Arc<Mutex<Vec<(u64, u64, String, u32, bool)>>>;

/// Expects `update` once per answer (`Err` for each of `stale`, then `Ok` if `ok`), recording
/// what each call was given.
fn updates_answering(products: &mut MockProductRepository, stale: usize, ok: bool) -> Writes {
    let writes = Writes::default();
    let recorded = Arc::clone(&writes);
    let mut calls = 0;
    products.expect_update().times(stale + usize::from(ok)).returning(move |product, expected| {
        recorded.lock().expect("not poisoned").push((
            expected,
            product.version(),
            product.name().as_str().to_owned(),
            product.stock(),
            product.is_archived(),
        ));
        calls += 1;
        if calls <= stale { Err(ProductWriteError::Stale) } else { Ok(()) }
    });
    writes
}

/// A repository that knows no product at all.
fn empty_repository() -> MockProductRepository {
    let mut products = MockProductRepository::new();
    products.expect_find_by_id().times(1).returning(|_| Ok(None));
    products
}

/// A repository whose reads fail.
fn unreachable_repository() -> MockProductRepository {
    let mut products = MockProductRepository::new();
    products.expect_find_by_id().times(1).returning(|_| Err(store_down()));
    products
}

fn create_use_case(products: MockProductRepository) -> CreateProduct {
    CreateProduct::new(Arc::new(products), admins(), Arc::new(clock()))
}

/// The use case over queries whose one `find` answers `found()`.
fn get_use_case(
    found: impl Fn() -> Result<Option<Product>, StoreError> + Send + Sync + 'static,
) -> GetProduct {
    let mut queries = MockProductQueries::new();
    queries.expect_find().times(1).returning(move |_| found());
    GetProduct::new(Arc::new(queries))
}

fn list_use_case(queries: MockProductQueries) -> ListProducts {
    ListProducts::new(Arc::new(queries), admins())
}

fn update_use_case(products: MockProductRepository) -> UpdateProduct {
    UpdateProduct::new(Arc::new(products), admins(), Arc::new(clock()))
}

fn archive_use_case(products: MockProductRepository) -> ArchiveProduct {
    ArchiveProduct::new(Arc::new(products), admins(), Arc::new(clock()))
}

// ---------------------------------------------------------------------------------------------
// create_product
// ---------------------------------------------------------------------------------------------

mod creating {
    use super::*;

    #[tokio::test]
    async fn an_admin_stores_a_new_product_at_version_one_with_the_clocks_time() {
        let inserted = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&inserted);
        let mut products = MockProductRepository::new();
        products
            .expect_insert()
            .withf(|product: &Product| {
                product.version() == 1
                    && product.created_at() == now()
                    && product.updated_at() == now()
                    && !product.is_archived()
                    && product.sku().as_str() == "KB-001"
                    && product.name().as_str() == "Keyboard"
                    && product.description().map(ProductDescription::as_str)
                        == Some("Mechanical, brown switches")
                    && product.price() == eur(4999)
                    && product.stock() == 12
            })
            .times(1)
            .returning(move |product| {
                *seen.lock().expect("the lock is not poisoned") = Some(product.id());
                Ok(())
            });

        let created =
            create_use_case(products).execute(&admin(), draft()).await.expect("an admin creates");

        assert_eq!(created.version(), 1);
        assert_eq!(created.created_at(), now());
        assert_eq!(
            *inserted.lock().expect("the lock is not poisoned"),
            Some(created.id()),
            "the product returned is the one stored"
        );
    }

    #[tokio::test]
    async fn a_product_created_under_a_chosen_id_is_stored_with_it() {
        let id = ProductId::new();
        let mut products = MockProductRepository::new();
        products
            .expect_insert()
            .withf(move |product: &Product| product.id() == id && product.version() == 1)
            .times(1)
            .returning(|_| Ok(()));

        let created = create_use_case(products)
            .execute_with_id(&admin(), id, draft())
            .await
            .expect("an admin creates");

        assert_eq!(created.id(), id);
    }

    #[tokio::test]
    async fn a_customer_may_not_create_products_under_a_chosen_id_either() {
        let mut products = MockProductRepository::new();
        products.expect_insert().never();

        let result = create_use_case(products)
            .execute_with_id(&customer(UserId::new()), ProductId::new(), draft())
            .await;

        assert!(matches!(result, Err(CreateProductError::Forbidden)), "{result:?}");
    }

    #[tokio::test]
    async fn stock_of_exactly_the_maximum_is_accepted() {
        let mut products = MockProductRepository::new();
        products
            .expect_insert()
            .withf(|product: &Product| product.stock() == MAX_STOCK)
            .times(1)
            .returning(|_| Ok(()));

        let created = create_use_case(products)
            .execute(&admin(), ProductDraft { stock: MAX_STOCK, ..draft() })
            .await
            .expect("the maximum itself is allowed");

        assert_eq!(created.stock(), MAX_STOCK);
    }

    #[tokio::test]
    async fn a_customer_may_not_create_products() {
        let mut products = MockProductRepository::new();
        products.expect_insert().never();

        let result = create_use_case(products).execute(&customer(UserId::new()), draft()).await;

        assert!(matches!(result, Err(CreateProductError::Forbidden)), "{result:?}");
    }

    #[tokio::test]
    async fn the_system_actor_may_not_create_products() {
        let mut products = MockProductRepository::new();
        products.expect_insert().never();

        let result = create_use_case(products).execute(&Actor::System, draft()).await;

        assert!(matches!(result, Err(CreateProductError::Forbidden)), "{result:?}");
    }

    #[tokio::test]
    async fn stock_above_the_maximum_is_invalid_and_nothing_is_stored() {
        let mut products = MockProductRepository::new();
        products.expect_insert().never();

        let result = create_use_case(products)
            .execute(&admin(), ProductDraft { stock: MAX_STOCK + 1, ..draft() })
            .await;

        assert!(
            matches!(result, Err(CreateProductError::Invalid(ProductError::StockTooLarge))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_sku_that_is_already_taken_is_a_duplicate_sku() {
        let mut products = MockProductRepository::new();
        products.expect_insert().times(1).returning(|_| Err(ProductWriteError::SkuTaken));

        let result = create_use_case(products).execute(&admin(), draft()).await;

        assert!(matches!(result, Err(CreateProductError::DuplicateSku)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_is_reported_as_a_store_error() {
        let mut products = MockProductRepository::new();
        products
            .expect_insert()
            .times(1)
            .returning(|_| Err(ProductWriteError::Store(store_down())));

        let result = create_use_case(products).execute(&admin(), draft()).await;

        assert!(
            matches!(result, Err(CreateProductError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_insert_answering_not_found_breaks_the_port_contract_and_is_unexpected() {
        let mut products = MockProductRepository::new();
        products.expect_insert().times(1).returning(|_| Err(ProductWriteError::NotFound));

        let result = create_use_case(products).execute(&admin(), draft()).await;

        assert!(matches!(result, Err(CreateProductError::Unexpected(_))), "{result:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// get_product
// ---------------------------------------------------------------------------------------------

mod getting {
    use super::*;

    #[tokio::test]
    async fn a_stored_product_is_returned() {
        let stored = stored_product();

        let held = stored.clone();
        let found = get_use_case(move || Ok(Some(held.clone())))
            .execute(stored.id())
            .await
            .expect("the product exists");

        assert_eq!(found.id(), stored.id());
        assert_eq!(found.sku(), stored.sku());
        assert_eq!(found.version(), STORED_VERSION);
    }

    #[tokio::test]
    async fn an_archived_product_is_still_returned_flagged_as_archived() {
        let stored = archived_product();

        let held = stored.clone();
        let found = get_use_case(move || Ok(Some(held.clone())))
            .execute(stored.id())
            .await
            .expect("archived products are still served");

        assert!(found.is_archived());
    }

    #[tokio::test]
    async fn a_missing_product_is_not_found() {
        let result = get_use_case(|| Ok(None)).execute(ProductId::new()).await;

        assert!(matches!(result, Err(GetProductError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_is_reported_as_a_store_error() {
        let result = get_use_case(|| Err(store_down())).execute(ProductId::new()).await;

        assert!(
            matches!(result, Err(GetProductError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// list_products
// ---------------------------------------------------------------------------------------------

mod listing {
    use super::*;

    fn by_price() -> ProductFilter {
        ProductFilter { sort: ProductSort::PriceAsc, ..ProductFilter::default() }
    }

    /// Query port that expects exactly `filter` once and answers one page of `items`.
    fn queries_expecting(filter: ProductFilter, page: Page<Product>) -> MockProductQueries {
        let mut queries = MockProductQueries::new();
        queries
            .expect_list()
            .withf(move |received, _| *received == filter)
            .times(1)
            .return_once(move |_, _| Ok(page));
        queries
    }

    #[tokio::test]
    async fn an_anonymous_visitor_gets_the_page_from_the_query_port() {
        let first = stored_product();
        let second = Product::restore(ProductParts { sku: sku("MS-001"), ..stored_parts() });
        let ids = vec![first.id(), second.id()];
        let mut queries = MockProductQueries::new();
        queries
            .expect_list()
            .withf(|filter, page| {
                *filter == ProductFilter::default()
                    && page.after.is_none()
                    && page.limit == PageLimit::default()
            })
            .times(1)
            .return_once(move |_, _| Ok(Page { items: vec![first, second], next: None }));

        let listed = list_use_case(queries)
            .execute(None, ProductFilter::default(), ListRequest::default())
            .await
            .expect("anyone may browse the catalogue");

        assert_eq!(listed.items.iter().map(Product::id).collect::<Vec<_>>(), ids);
        assert_eq!(listed.next_cursor, None, "the last page has no next cursor");
    }

    #[tokio::test]
    async fn the_search_text_reaches_the_query_port_trimmed() {
        let queries = queries_expecting(
            ProductFilter { q: Some("keyboard".into()), ..ProductFilter::default() },
            Page { items: Vec::new(), next: None },
        );

        let result = list_use_case(queries)
            .execute(
                None,
                ProductFilter { q: Some("  keyboard \t".into()), ..ProductFilter::default() },
                ListRequest::default(),
            )
            .await;

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn an_empty_or_blank_search_text_is_no_search_at_all() {
        for blank in ["", "   ", "\t\n"] {
            let queries = queries_expecting(
                ProductFilter { q: None, ..ProductFilter::default() },
                Page { items: Vec::new(), next: None },
            );

            let result = list_use_case(queries)
                .execute(
                    None,
                    ProductFilter { q: Some(blank.into()), ..ProductFilter::default() },
                    ListRequest::default(),
                )
                .await;

            assert!(result.is_ok(), "{blank:?}: {result:?}");
        }
    }

    #[tokio::test]
    async fn the_next_cursor_is_bound_to_the_sort_order() {
        let last = stored_product();
        let next = Cursor { value: SortValue::Int(4999), id: last.id().into_uuid() };
        let queries =
            queries_expecting(by_price(), Page { items: vec![last], next: Some(next.clone()) });

        let listed = list_use_case(queries)
            .execute(None, by_price(), ListRequest::default())
            .await
            .expect("a page");

        assert_eq!(list_products::scope(&by_price()), "products:price");
        let cursor = listed.next_cursor.expect("more pages follow");
        assert_eq!(cursor, next.encode("products:price"));
        assert_eq!(Cursor::decode(&cursor, "products:price"), Ok(next.clone()));
        assert_eq!(Cursor::decode(&cursor, "products:name"), Err(InvalidCursor));
    }

    #[tokio::test]
    async fn a_cursor_from_the_previous_page_continues_after_its_last_item() {
        let after = Cursor { value: SortValue::Int(4999), id: ProductId::new().into_uuid() };
        let expected_after = after.clone();
        let limit = PageLimit::new(5).expect("a valid limit");
        let mut queries = MockProductQueries::new();
        queries
            .expect_list()
            .withf(move |filter, page| {
                *filter == by_price()
                    && page.after.as_ref() == Some(&expected_after)
                    && page.limit == limit
            })
            .times(1)
            .returning(|_, _| Ok(Page { items: Vec::new(), next: None }));

        let result = list_use_case(queries)
            .execute(
                None,
                by_price(),
                ListRequest { limit, cursor: Some(after.encode("products:price")) },
            )
            .await;

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn a_cursor_made_for_another_sort_order_is_refused_without_asking_the_store() {
        let mut queries = MockProductQueries::new();
        queries.expect_list().never();
        let by_name =
            Cursor { value: SortValue::Text("Keyboard".into()), id: ProductId::new().into_uuid() }
                .encode("products:name");

        let result = list_use_case(queries)
            .execute(
                None,
                by_price(),
                ListRequest { cursor: Some(by_name), ..ListRequest::default() },
            )
            .await;

        assert!(
            matches!(result, Err(ListProductsError::InvalidCursor(InvalidCursor))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_customer_may_not_list_archived_products() {
        let mut queries = MockProductQueries::new();
        queries.expect_list().never();

        let result = list_use_case(queries)
            .execute(
                Some(&customer(UserId::new())),
                ProductFilter { include_archived: true, ..ProductFilter::default() },
                ListRequest::default(),
            )
            .await;

        assert!(matches!(result, Err(ListProductsError::Forbidden)), "{result:?}");
    }

    #[tokio::test]
    async fn an_anonymous_visitor_must_authenticate_to_list_archived_products() {
        let mut queries = MockProductQueries::new();
        queries.expect_list().never();

        let result = list_use_case(queries)
            .execute(
                None,
                ProductFilter { include_archived: true, ..ProductFilter::default() },
                ListRequest::default(),
            )
            .await;

        assert!(matches!(result, Err(ListProductsError::Unauthenticated)), "{result:?}");
    }

    #[tokio::test]
    async fn an_admin_lists_archived_products_too() {
        let archived = archived_product();
        let archived_id = archived.id();
        let with_archived = ProductFilter { include_archived: true, ..ProductFilter::default() };
        let queries =
            queries_expecting(with_archived.clone(), Page { items: vec![archived], next: None });

        let listed = list_use_case(queries)
            .execute(Some(&admin()), with_archived, ListRequest::default())
            .await
            .expect("admins see the whole catalogue");

        assert_eq!(listed.items.iter().map(Product::id).collect::<Vec<_>>(), vec![archived_id]);
        assert!(listed.items.iter().all(Product::is_archived));
    }

    #[tokio::test]
    async fn a_store_failure_is_reported_as_a_store_error() {
        let mut queries = MockProductQueries::new();
        queries.expect_list().times(1).returning(|_, _| Err(store_down()));

        let result = list_use_case(queries)
            .execute(None, ProductFilter::default(), ListRequest::default())
            .await;

        assert!(
            matches!(result, Err(ListProductsError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// update_product
// ---------------------------------------------------------------------------------------------

mod updating {
    use super::*;

    fn rename_to_mouse() -> UpdateProductInput {
        UpdateProductInput { name: Some(name("Mouse")), ..UpdateProductInput::default() }
    }

    #[tokio::test]
    async fn an_admin_changes_every_field_and_the_write_expects_the_loaded_version() {
        let stored = stored_product();
        let id = stored.id();
        let mut products = products_holding(&stored);
        products
            .expect_update()
            .withf(move |product: &Product, expected_version: &u64| {
                *expected_version == STORED_VERSION
                    && product.id() == id
                    && product.version() > STORED_VERSION
                    && product.updated_at() == now()
                    && product.created_at() == created_at()
                    && product.sku().as_str() == "MS-002"
                    && product.name().as_str() == "Mouse"
                    && product.description().is_none()
                    && product.price() == eur(1999)
                    && product.stock() == 40
            })
            .times(1)
            .returning(|_, _| Ok(()));

        let updated = update_use_case(products)
            .execute(
                &admin(),
                id,
                UpdateProductInput {
                    expected_version: Some(STORED_VERSION),
                    sku: Some(sku("ms-002")),
                    name: Some(name("Mouse")),
                    description: Some(None),
                    price: Some(eur(1999)),
                    stock: Some(40),
                },
            )
            .await
            .expect("an admin updates");

        assert_eq!(updated.name().as_str(), "Mouse");
        assert_eq!(updated.description(), None, "Some(None) removes the description");
        assert!(updated.version() > STORED_VERSION);
        assert_eq!(updated.updated_at(), now());
    }

    #[tokio::test]
    async fn one_change_increments_the_version_by_one() {
        let stored = stored_product();
        let mut products = products_holding(&stored);
        products
            .expect_update()
            .withf(|product: &Product, expected_version: &u64| {
                *expected_version == STORED_VERSION && product.version() == STORED_VERSION + 1
            })
            .times(1)
            .returning(|_, _| Ok(()));

        let updated = update_use_case(products)
            .execute(&admin(), stored.id(), rename_to_mouse())
            .await
            .expect("an admin renames");

        assert_eq!(updated.version(), STORED_VERSION + 1);
    }

    #[tokio::test]
    async fn a_description_can_be_replaced() {
        let stored = stored_product();
        let mut products = products_holding(&stored);
        products
            .expect_update()
            .withf(|product: &Product, _| {
                product.description().map(ProductDescription::as_str) == Some("Wireless")
            })
            .times(1)
            .returning(|_, _| Ok(()));

        let updated = update_use_case(products)
            .execute(
                &admin(),
                stored.id(),
                UpdateProductInput {
                    description: Some(Some(description("Wireless"))),
                    ..UpdateProductInput::default()
                },
            )
            .await
            .expect("an admin describes");

        assert_eq!(updated.description().map(ProductDescription::as_str), Some("Wireless"));
    }

    #[tokio::test]
    async fn an_update_that_changes_nothing_is_not_written() {
        let stored = stored_product();
        let mut products = products_holding(&stored);
        products.expect_update().never();

        let unchanged = update_use_case(products)
            .execute(
                &admin(),
                stored.id(),
                UpdateProductInput {
                    expected_version: Some(STORED_VERSION),
                    sku: Some(stored.sku().clone()),
                    name: Some(stored.name().clone()),
                    description: Some(stored.description().cloned()),
                    price: Some(stored.price()),
                    stock: Some(stored.stock()),
                },
            )
            .await
            .expect("a no-op update succeeds");

        assert_eq!(unchanged.id(), stored.id());
        assert_eq!(unchanged.version(), STORED_VERSION);
        assert_eq!(unchanged.updated_at(), created_at());
    }

    #[tokio::test]
    async fn an_empty_update_returns_the_product_without_writing() {
        let stored = stored_product();
        let mut products = products_holding(&stored);
        products.expect_update().never();

        let unchanged = update_use_case(products)
            .execute(&admin(), stored.id(), UpdateProductInput::default())
            .await
            .expect("an empty update succeeds");

        assert_eq!(unchanged.version(), STORED_VERSION);
    }

    #[tokio::test]
    async fn a_customer_may_not_update_products_and_nothing_is_loaded() {
        let mut products = MockProductRepository::new();
        products.expect_find_by_id().never();
        products.expect_update().never();

        let result = update_use_case(products)
            .execute(&customer(UserId::new()), ProductId::new(), rename_to_mouse())
            .await;

        assert!(matches!(result, Err(UpdateProductError::Forbidden)), "{result:?}");
    }

    #[tokio::test]
    async fn updating_a_missing_product_is_not_found() {
        let mut products = empty_repository();
        products.expect_update().never();

        let result =
            update_use_case(products).execute(&admin(), ProductId::new(), rename_to_mouse()).await;

        assert!(matches!(result, Err(UpdateProductError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn an_outdated_expected_version_is_a_version_mismatch_and_nothing_is_written() {
        let stored = stored_product();
        let mut products = products_holding(&stored);
        products.expect_update().never();

        let result = update_use_case(products)
            .execute(
                &admin(),
                stored.id(),
                UpdateProductInput {
                    expected_version: Some(STORED_VERSION - 1),
                    ..rename_to_mouse()
                },
            )
            .await;

        assert!(
            matches!(
                result,
                Err(UpdateProductError::VersionMismatch { expected, current })
                    if expected == STORED_VERSION - 1 && current == STORED_VERSION
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn stock_above_the_maximum_is_invalid_and_nothing_is_written() {
        let stored = stored_product();
        let mut products = products_holding(&stored);
        products.expect_update().never();

        let result = update_use_case(products)
            .execute(
                &admin(),
                stored.id(),
                UpdateProductInput { stock: Some(MAX_STOCK + 1), ..rename_to_mouse() },
            )
            .await;

        assert!(
            matches!(result, Err(UpdateProductError::Invalid(ProductError::StockTooLarge))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn without_if_match_a_sale_in_between_makes_the_update_re_read_and_re_apply() {
        let parts = stored_parts();
        let mut products = repository_selling(&parts, 2);
        let writes = updates_answering(&mut products, 1, true);

        let updated = update_use_case(products)
            .execute(&admin(), parts.id, rename_to_mouse())
            .await
            .expect("the second attempt wins");

        assert_eq!(
            *writes.lock().expect("not poisoned"),
            [
                (STORED_VERSION, STORED_VERSION + 1, "Mouse".to_owned(), 12, false),
                (STORED_VERSION + 1, STORED_VERSION + 2, "Mouse".to_owned(), 11, false),
            ],
            "the second write keeps the sale it re-read"
        );
        assert_eq!((updated.version(), updated.stock()), (STORED_VERSION + 2, 11));
    }

    #[tokio::test]
    async fn without_if_match_an_update_gives_up_with_a_conflict_after_the_bounded_attempts() {
        let parts = stored_parts();
        let mut products = repository_selling(&parts, WRITE_ATTEMPTS);
        let writes = updates_answering(&mut products, WRITE_ATTEMPTS, false);

        let result = update_use_case(products).execute(&admin(), parts.id, rename_to_mouse()).await;

        assert!(matches!(result, Err(UpdateProductError::Conflict)), "{result:?}");
        assert_eq!(writes.lock().expect("not poisoned").len(), WRITE_ATTEMPTS);
    }

    #[tokio::test]
    async fn with_if_match_a_write_that_loses_the_race_is_a_version_mismatch_naming_the_current_version()
     {
        let parts = stored_parts();
        // Read at the client's version, then (after the lost write) at the winner's.
        let mut products = repository_selling(&parts, 2);
        let writes = updates_answering(&mut products, 1, false);

        let result = update_use_case(products)
            .execute(
                &admin(),
                parts.id,
                UpdateProductInput { expected_version: Some(STORED_VERSION), ..rename_to_mouse() },
            )
            .await;

        assert!(
            matches!(
                result,
                Err(UpdateProductError::VersionMismatch { expected, current })
                    if expected == STORED_VERSION && current == STORED_VERSION + 1
            ),
            "{result:?}"
        );
        assert_eq!(writes.lock().expect("not poisoned").len(), 1, "never retried");
    }

    #[tokio::test]
    async fn with_if_match_a_product_deleted_after_the_lost_race_is_not_found() {
        let stored = stored_product();
        let mut products = MockProductRepository::new();
        let found = stored.clone();
        let mut reads = 0;
        products.expect_find_by_id().times(2).returning(move |_| {
            reads += 1;
            Ok((reads == 1).then(|| found.clone()))
        });
        products.expect_update().times(1).returning(|_, _| Err(ProductWriteError::Stale));

        let result = update_use_case(products)
            .execute(
                &admin(),
                stored.id(),
                UpdateProductInput { expected_version: Some(STORED_VERSION), ..rename_to_mouse() },
            )
            .await;

        assert!(matches!(result, Err(UpdateProductError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_sku_taken_by_another_product_is_a_duplicate_sku() {
        let stored = stored_product();
        let products = repository_updating(&stored, || Err(ProductWriteError::SkuTaken));

        let result = update_use_case(products)
            .execute(
                &admin(),
                stored.id(),
                UpdateProductInput { sku: Some(sku("MS-001")), ..UpdateProductInput::default() },
            )
            .await;

        assert!(matches!(result, Err(UpdateProductError::DuplicateSku)), "{result:?}");
    }

    #[tokio::test]
    async fn a_product_deleted_before_the_write_is_not_found() {
        let stored = stored_product();
        let products = repository_updating(&stored, || Err(ProductWriteError::NotFound));

        let result =
            update_use_case(products).execute(&admin(), stored.id(), rename_to_mouse()).await;

        assert!(matches!(result, Err(UpdateProductError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_loading_is_a_store_error() {
        let mut products = unreachable_repository();
        products.expect_update().never();

        let result =
            update_use_case(products).execute(&admin(), ProductId::new(), rename_to_mouse()).await;

        assert!(
            matches!(result, Err(UpdateProductError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_store_failure_while_writing_is_a_store_error() {
        let stored = stored_product();
        let products = repository_updating(&stored, || Err(ProductWriteError::Store(store_down())));

        let result =
            update_use_case(products).execute(&admin(), stored.id(), rename_to_mouse()).await;

        assert!(
            matches!(result, Err(UpdateProductError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// archive_product
// ---------------------------------------------------------------------------------------------

mod archiving {
    use super::*;

    #[tokio::test]
    async fn an_admin_archives_a_product_at_the_next_version() {
        let stored = stored_product();
        let id = stored.id();
        let mut products = products_holding(&stored);
        products
            .expect_update()
            .withf(move |product: &Product, expected_version: &u64| {
                *expected_version == STORED_VERSION
                    && product.id() == id
                    && product.is_archived()
                    && product.version() == STORED_VERSION + 1
                    && product.updated_at() == now()
            })
            .times(1)
            .returning(|_, _| Ok(()));

        let result = archive_use_case(products).execute(&admin(), id).await;

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn archiving_an_archived_product_succeeds_without_writing() {
        let stored = archived_product();
        let mut products = products_holding(&stored);
        products.expect_update().never();

        let result = archive_use_case(products).execute(&admin(), stored.id()).await;

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn a_customer_may_not_archive_products() {
        let mut products = MockProductRepository::new();
        products.expect_find_by_id().never();
        products.expect_update().never();

        let result =
            archive_use_case(products).execute(&customer(UserId::new()), ProductId::new()).await;

        assert!(matches!(result, Err(ArchiveProductError::Forbidden)), "{result:?}");
    }

    #[tokio::test]
    async fn archiving_a_missing_product_is_not_found() {
        let mut products = empty_repository();
        products.expect_update().never();

        let result = archive_use_case(products).execute(&admin(), ProductId::new()).await;

        assert!(matches!(result, Err(ArchiveProductError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_sale_in_between_makes_archiving_re_read_and_archive_again() {
        let parts = stored_parts();
        let mut products = repository_selling(&parts, 2);
        let writes = updates_answering(&mut products, 1, true);

        let result = archive_use_case(products).execute(&admin(), parts.id).await;

        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            *writes.lock().expect("not poisoned"),
            [
                (STORED_VERSION, STORED_VERSION + 1, "Keyboard".to_owned(), 12, true),
                (STORED_VERSION + 1, STORED_VERSION + 2, "Keyboard".to_owned(), 11, true),
            ]
        );
    }

    #[tokio::test]
    async fn archiving_gives_up_with_a_conflict_after_the_bounded_attempts() {
        let parts = stored_parts();
        let mut products = repository_selling(&parts, WRITE_ATTEMPTS);
        let writes = updates_answering(&mut products, WRITE_ATTEMPTS, false);

        let result = archive_use_case(products).execute(&admin(), parts.id).await;

        assert!(matches!(result, Err(ArchiveProductError::Conflict)), "{result:?}");
        assert_eq!(writes.lock().expect("not poisoned").len(), WRITE_ATTEMPTS);
    }

    #[tokio::test]
    async fn a_product_deleted_before_the_write_is_not_found() {
        let stored = stored_product();
        let products = repository_updating(&stored, || Err(ProductWriteError::NotFound));

        let result = archive_use_case(products).execute(&admin(), stored.id()).await;

        assert!(matches!(result, Err(ArchiveProductError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_store_failure_while_loading_is_a_store_error() {
        let mut products = unreachable_repository();
        products.expect_update().never();

        let result = archive_use_case(products).execute(&admin(), ProductId::new()).await;

        assert!(
            matches!(result, Err(ArchiveProductError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_store_failure_while_writing_is_a_store_error() {
        let stored = stored_product();
        let products = repository_updating(&stored, || Err(ProductWriteError::Store(store_down())));

        let result = archive_use_case(products).execute(&admin(), stored.id()).await;

        assert!(
            matches!(result, Err(ArchiveProductError::Store(StoreError::Unavailable(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn an_update_answering_duplicate_breaks_the_port_contract_and_is_unexpected() {
        let stored = stored_product();
        let products = repository_updating(&stored, || Err(ProductWriteError::SkuTaken));

        let result = archive_use_case(products).execute(&admin(), stored.id()).await;

        assert!(matches!(result, Err(ArchiveProductError::Unexpected(_))), "{result:?}");
    }
}
