//! The SeaORM webhook adapter (`SeaOrmWebhooks`, migration 16) against real, migrated databases,
//! on SQLite and (when `TEST_DATABASE_URL` is set) PostgreSQL, held to the contract of the ports
//! `WebhookStore` and `DeliveryQueue`:
//!
//! - endpoints: every field round-trips; the list pages newest first; a write is conditional on
//!   the version it read; disabling fails the pending deliveries in the same write; deleting takes
//!   the deliveries with it.
//! - the queue: `fan_out` schedules each outbox event once for every endpoint that wants it,
//!   with its CloudEvents envelope, and marks it so that the outbox may purge it; `claim_due`
//!   leases the due pending deliveries of enabled endpoints, never one twice at a time;
//!   `purge_finished` keeps what is still pending or recent.
//!
//! Events are written through the real repositories (registering a user, creating a product), as
//! the server writes them. The outbox is read through a second connection of its own. Timestamps
//! carry microseconds (never nanoseconds), the finest precision PostgreSQL keeps, so round-tripped
//! values compare exactly on both engines.

use std::collections::BTreeSet;

use orderly_application::{
    events::Outbox as _,
    pagination::{Cursor, PageLimit, PageRequest},
    ports::{ProductRepository as _, UserRepository as _},
    webhooks::ports::{DeliveryQueue as _, DueDelivery, WebhookStore as _, WebhookWriteError},
};
use orderly_domain::{
    AttemptOutcome, Currency, DeliveryStatus, DisabledReason, Email, EventFilter, EventType, Money,
    PasswordHash, Product, ProductDraft, ProductName, Role, Sku, User, UserName, Uuid,
    WebhookDelivery, WebhookDeliveryId, WebhookEndpoint, WebhookEndpointDraft, WebhookEndpointId,
    WebhookSecret, WebhookUrl,
    event::EVENT_SOURCE,
    time::{TimeDelta, Timestamp},
    webhook::{PREVIOUS_SECRET_GRACE, SCHEDULED_ATTEMPTS},
};
use orderly_infrastructure::{
    SeaOrmOutbox, SeaOrmProductRepository, SeaOrmUserRepository, SeaOrmWebhooks,
    testing::TestDatabase,
};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, Statement};
use serde_json::{Value, json};

use EventType::{OrderPaid, ProductCreated, UserDeleted, UserRegistered};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A fixed instant plus `seconds`, with a microsecond fraction so that sub-second precision is
/// part of every round trip.
fn at(seconds: i64) -> Timestamp {
    Timestamp::from_timestamp(1_800_000_000 + seconds, 123_456_000).expect("a valid instant")
}

fn url(raw: &str) -> WebhookUrl {
    WebhookUrl::parse(raw).expect("a valid webhook URL")
}

fn secret(raw: &str) -> WebhookSecret {
    WebhookSecret::new(raw.to_owned())
}

fn user(login: &str, now: Timestamp) -> User {
    User::register(
        Email::parse(&format!("{login}@example.com")).expect("a valid e-mail address"),
        UserName::parse(login).expect("a valid name"),
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash".into()),
        Role::Customer,
        now,
    )
}

fn product(sku: &str, now: Timestamp) -> Product {
    let draft = ProductDraft {
        sku: Sku::parse(sku).expect("a valid SKU"),
        name: ProductName::parse(&format!("Product {sku}")).expect("a valid name"),
        description: None,
        price: Money::new(1000, Currency::parse("EUR").expect("EUR")).expect("an amount"),
        stock: 10,
    };
    Product::create(draft, now).expect("a valid product")
}

fn page_of(limit: u32, after: Option<Cursor>) -> PageRequest {
    PageRequest { limit: PageLimit::new(limit).expect("a valid limit"), after }
}

fn answered(status: u16) -> AttemptOutcome {
    AttemptOutcome::Answered { status, retry_after: None }
}

type EndpointFields = (
    WebhookEndpointId,
    String,
    Vec<EventType>,
    Option<DisabledReason>,
    String,
    Option<(String, Timestamp)>,
    Option<Timestamp>,
    u64,
    u64,
    Timestamp,
    Timestamp,
);

/// Every field of an endpoint, for comparisons with a readable diff (no `PartialEq`): id, URL,
/// event types, disabled reason, secret, previous secret and until when, failing since,
/// version, stored version, created, updated.
fn endpoint_fields(endpoint: &WebhookEndpoint) -> EndpointFields {
    (
        endpoint.id(),
        endpoint.url().as_str().to_owned(),
        endpoint.event_types().types().to_vec(),
        endpoint.disabled_reason(),
        endpoint.secret().expose().to_owned(),
        endpoint.previous_secret().map(|(secret, until)| (secret.expose().to_owned(), *until)),
        endpoint.failing_since(),
        endpoint.version(),
        endpoint.stored_version(),
        endpoint.created_at(),
        endpoint.updated_at(),
    )
}

type DeliveryFields = (
    WebhookDeliveryId,
    WebhookEndpointId,
    Uuid,
    String,
    String,
    (DeliveryStatus, u32, u32),
    Option<Timestamp>,
    Option<Timestamp>,
    Option<u16>,
    Option<String>,
    Timestamp,
);

/// Every field of a delivery, for comparisons with a readable diff (no `PartialEq`): id,
/// endpoint, event id, event type, payload, (status, attempts, attempts allowed), next attempt,
/// last attempt, response status, last error, created. The seventh (index 6) is the next attempt.
fn delivery_fields(delivery: &WebhookDelivery) -> DeliveryFields {
    let parts = delivery.parts();
    (
        parts.id,
        parts.endpoint_id,
        parts.event_id,
        parts.event_type.clone(),
        parts.payload.clone(),
        (parts.status, parts.attempts, parts.max_attempts),
        parts.next_attempt_at,
        parts.last_attempt_at,
        parts.response_status,
        parts.last_error.clone(),
        parts.created_at,
    )
}

fn delivery_ids(deliveries: &[WebhookDelivery]) -> Vec<WebhookDeliveryId> {
    deliveries.iter().map(WebhookDelivery::id).collect()
}

fn claimed_ids(due: &[DueDelivery]) -> BTreeSet<WebhookDeliveryId> {
    due.iter().map(|due| due.delivery.id()).collect()
}

fn id_set(ids: impl IntoIterator<Item = WebhookDeliveryId>) -> BTreeSet<WebhookDeliveryId> {
    ids.into_iter().collect()
}

/// One row of `outbox_events`, as far as webhooks are concerned.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    id: Uuid,
    event_type: String,
    aggregate_id: Uuid,
    occurred_at: Timestamp,
    webhooks_scheduled_at: Option<Timestamp>,
}

/// The adapter under test, the repositories that write events, the relay's side of the outbox,
/// and a connection of its own to read `outbox_events` with.
struct Scene {
    webhooks: SeaOrmWebhooks,
    users: SeaOrmUserRepository,
    products: SeaOrmProductRepository,
    outbox: SeaOrmOutbox,
    raw: DatabaseConnection,
}

impl Scene {
    async fn open(test_db: &TestDatabase) -> Self {
        let db = test_db.database();
        let raw = sea_orm::Database::connect(test_db.url()).await.expect("a second connection");
        Self {
            webhooks: SeaOrmWebhooks::new(db.clone()),
            users: SeaOrmUserRepository::new(db.clone()),
            products: SeaOrmProductRepository::new(db.clone()),
            outbox: SeaOrmOutbox::new(db.clone()),
            raw,
        }
    }

    /// Registers and stores an endpoint created at `now`, signing with `whsec_<name>`, and
    /// returns it as stored.
    async fn endpoint(
        &self,
        name: &str,
        event_types: EventFilter,
        enabled: bool,
        now: Timestamp,
    ) -> WebhookEndpoint {
        let draft = WebhookEndpointDraft {
            url: url(&format!("https://hooks.example.com/{name}")),
            event_types,
            enabled,
        };
        let endpoint = WebhookEndpoint::register(draft, secret(&format!("whsec_{name}")), now);
        self.webhooks.insert(&endpoint).await.expect("inserting an endpoint");
        self.load(endpoint.id()).await
    }

    async fn load(&self, id: WebhookEndpointId) -> WebhookEndpoint {
        self.webhooks.find(id).await.expect("reading an endpoint").expect("the endpoint exists")
    }

    /// Registers a user at `now`: one `orderly.user.registered.v1` event.
    async fn register(&self, login: &str, now: Timestamp) -> User {
        let user = user(login, now);
        self.users.insert(&user).await.expect("registering a user");
        user
    }

    /// Creates a product at `now`: one `orderly.product.created.v1` event.
    async fn create_product(&self, sku: &str, now: Timestamp) -> Product {
        let product = product(sku, now);
        self.products.insert(&product).await.expect("creating a product");
        product
    }

    async fn fan_out(&self, limit: u32, now: Timestamp) -> u32 {
        self.webhooks.fan_out(limit, now).await.expect("scheduling deliveries")
    }

    async fn claim(&self, limit: u32, now: Timestamp, lease_until: Timestamp) -> Vec<DueDelivery> {
        self.webhooks.claim_due(limit, now, lease_until).await.expect("claiming deliveries")
    }

    async fn delivery(&self, id: WebhookDeliveryId) -> WebhookDelivery {
        self.webhooks
            .find_delivery(id)
            .await
            .expect("reading a delivery")
            .expect("the delivery exists")
    }

    async fn save(&self, delivery: &WebhookDelivery) {
        self.webhooks.save_delivery(delivery).await.expect("saving a delivery");
    }

    /// Every delivery of `endpoint` (of `status` if given), newest first, in one page.
    async fn deliveries(
        &self,
        endpoint: WebhookEndpointId,
        status: Option<DeliveryStatus>,
    ) -> Vec<WebhookDelivery> {
        let page = self
            .webhooks
            .deliveries(endpoint, status, page_of(100, None))
            .await
            .expect("listing deliveries");
        assert!(page.next.is_none(), "fewer than 100 deliveries fit in one page");
        page.items
    }

    /// The deliveries of `endpoint`, oldest first (ids are time-ordered).
    async fn deliveries_oldest_first(&self, endpoint: WebhookEndpointId) -> Vec<WebhookDelivery> {
        let mut deliveries = self.deliveries(endpoint, None).await;
        deliveries.reverse();
        deliveries
    }

    /// The committed events, in the order they were written.
    async fn events(&self) -> Vec<Event> {
        let sql = "SELECT id, event_type, aggregate_id, occurred_at, webhooks_scheduled_at \
                   FROM outbox_events ORDER BY position";
        let rows = self
            .raw
            .query_all_raw(Statement::from_string(self.raw.get_database_backend(), sql))
            .await
            .expect("reading the outbox");
        rows.iter()
            .map(|row| Event {
                id: row.try_get("", "id").expect("outbox_events.id"),
                event_type: row.try_get("", "event_type").expect("outbox_events.event_type"),
                aggregate_id: row.try_get("", "aggregate_id").expect("outbox_events.aggregate_id"),
                occurred_at: row.try_get("", "occurred_at").expect("outbox_events.occurred_at"),
                webhooks_scheduled_at: row
                    .try_get("", "webhooks_scheduled_at")
                    .expect("outbox_events.webhooks_scheduled_at"),
            })
            .collect()
    }

    /// The endpoint of each delivery row left in `webhook_deliveries`.
    async fn delivery_rows(&self) -> Vec<Uuid> {
        let sql = "SELECT endpoint_id FROM webhook_deliveries";
        let rows = self
            .raw
            .query_all_raw(Statement::from_string(self.raw.get_database_backend(), sql))
            .await
            .expect("reading webhook_deliveries");
        rows.iter()
            .map(|row| row.try_get("", "endpoint_id").expect("webhook_deliveries.endpoint_id"))
            .collect()
    }
}

/// Runs each named test body, an `async fn(&TestDatabase)`, on SQLite and, when configured, on
/// PostgreSQL, as `sqlite::<name>` and `postgres::<name>` (`on_both_engines!` with the test
/// database, whose URL the outbox is read through).
macro_rules! on_both_engines_with_url {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = orderly_infrastructure::testing::TestDatabase::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = orderly_infrastructure::testing::TestDatabase::postgres().await
                    else {
                        eprintln!(
                            "{} is not set: PostgreSQL not tested",
                            orderly_infrastructure::testing::TEST_DATABASE_URL
                        );
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

async fn an_endpoint_round_trips_every_field_through_insert_update_and_find(
    test_db: &TestDatabase,
) {
    let scene = Scene::open(test_db).await;
    let draft = WebhookEndpointDraft {
        url: url("https://hooks.example.com/orderly?tenant=7"),
        event_types: EventFilter::of([UserDeleted, OrderPaid]),
        enabled: true,
    };
    let endpoint = WebhookEndpoint::register(draft, secret("whsec_first"), at(10));
    let id = endpoint.id();
    scene.webhooks.insert(&endpoint).await.expect("inserting");

    let stored = scene.load(id).await;
    assert_eq!(
        endpoint_fields(&stored),
        (
            id,
            "https://hooks.example.com/orderly?tenant=7".to_owned(),
            vec![OrderPaid, UserDeleted],
            None,
            "whsec_first".to_owned(),
            None,
            None,
            1,
            1,
            at(10),
            at(10),
        ),
        "as inserted, its stored version the one it was inserted at"
    );
    assert!(stored.is_enabled());

    // Rotated, failing, moved and subscribed to every type (the empty filter) in one write.
    let mut changed = stored.clone();
    changed.rotate(secret("whsec_second"), at(20));
    assert!(!changed.failed(false, at(30)), "failing once does not disable");
    changed.move_to(url("http://127.0.0.1:8080/hook"), at(30));
    changed.subscribe(EventFilter::all(), at(30));
    scene.webhooks.update(&changed).await.expect("updating");
    let grace_end = at(20) + TimeDelta::from_std(PREVIOUS_SECRET_GRACE).expect("a day");
    assert_eq!(grace_end, at(20 + 86_400));
    let stored = scene.load(id).await;
    assert_eq!(
        endpoint_fields(&stored),
        (
            id,
            "http://127.0.0.1:8080/hook".to_owned(),
            vec![],
            None,
            "whsec_second".to_owned(),
            Some(("whsec_first".to_owned(), grace_end)),
            Some(at(30)),
            2,
            2,
            at(10),
            at(30),
        )
    );
    assert_eq!(stored.event_types(), &EventFilter::all());
    let signing: Vec<String> =
        stored.signing_secrets(at(40)).iter().map(|s| s.expose().to_owned()).collect();
    assert_eq!(signing, ["whsec_second", "whsec_first"], "the previous secret still signs");

    // Disabled because the receiver answered 410.
    let mut gone = stored.clone();
    assert!(gone.failed(true, at(40)), "a 410 disables");
    scene.webhooks.update(&gone).await.expect("disabling");
    let stored = scene.load(id).await;
    assert_eq!(
        endpoint_fields(&stored),
        (
            id,
            "http://127.0.0.1:8080/hook".to_owned(),
            vec![],
            Some(DisabledReason::Gone),
            "whsec_second".to_owned(),
            Some(("whsec_first".to_owned(), grace_end)),
            Some(at(30)),
            3,
            3,
            at(10),
            at(40),
        )
    );

    // Disabled for failing too long, and one registered disabled: each reason reads back.
    let mut failing = scene.endpoint("failing", EventFilter::all(), true, at(50)).await;
    assert!(!failing.failed(false, at(60)));
    assert!(failing.failed(false, at(60 + 5 * 86_400)), "five days of failures disable");
    scene.webhooks.update(&failing).await.expect("disabling");
    let stored = scene.load(failing.id()).await;
    assert_eq!(stored.disabled_reason(), Some(DisabledReason::Failing));
    assert_eq!((stored.failing_since(), stored.version()), (Some(at(60)), 2));

    let manual = scene.endpoint("manual", EventFilter::of([ProductCreated]), false, at(70)).await;
    assert_eq!(manual.disabled_reason(), Some(DisabledReason::Manual));
    assert_eq!(manual.event_types().types(), [ProductCreated]);
    let mut enabled = manual.clone();
    enabled.set_enabled(true, at(80));
    scene.webhooks.update(&enabled).await.expect("enabling");
    let stored = scene.load(manual.id()).await;
    assert_eq!(
        (stored.disabled_reason(), stored.version(), stored.updated_at()),
        (None, 2, at(80))
    );

    assert!(
        scene.webhooks.find(WebhookEndpointId::new()).await.expect("reading").is_none(),
        "an unknown id is none"
    );
}

async fn endpoints_are_listed_newest_first_in_keyset_pages_without_duplicates_or_gaps(
    test_db: &TestDatabase,
) {
    let scene = Scene::open(test_db).await;
    let first = scene.webhooks.list(page_of(2, None)).await.expect("listing nothing");
    assert!(first.items.is_empty() && first.next.is_none(), "no endpoint yet");

    let mut stored = Vec::new();
    for (n, name) in ["one", "two", "three", "four", "five"].into_iter().enumerate() {
        let seconds = i64::try_from(n).expect("small");
        let types = if n % 2 == 0 { EventFilter::all() } else { EventFilter::of([OrderPaid]) };
        stored.push(scene.endpoint(name, types, n != 3, at(seconds)).await);
    }
    stored.sort_by_key(|endpoint| std::cmp::Reverse(endpoint.id()));
    let expected: Vec<EndpointFields> = stored.iter().map(endpoint_fields).collect();

    let mut listed = Vec::new();
    let mut sizes = Vec::new();
    let mut after = None;
    loop {
        let page = scene.webhooks.list(page_of(2, after)).await.expect("listing");
        sizes.push(page.items.len());
        listed.extend(page.items.iter().map(endpoint_fields));
        match page.next {
            Some(next) => {
                assert_eq!(
                    next.id,
                    page.items.last().expect("a page with a next has items").id().into_uuid(),
                    "the cursor names the last item of its page"
                );
                after = Some(next);
            }
            None => break,
        }
        assert!(sizes.len() <= 5, "the pages end");
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(listed, expected, "newest first, each once, every field as stored");

    let whole = scene.webhooks.list(page_of(5, None)).await.expect("listing");
    assert_eq!(whole.items.len(), 5);
    assert!(whole.next.is_none(), "a page that holds the rest exactly has no next");
    let short = scene.webhooks.list(page_of(4, None)).await.expect("listing");
    assert_eq!(short.items.len(), 4);
    assert!(short.next.is_some(), "one more is left");
}

async fn an_update_from_a_stale_copy_is_stale_and_one_of_a_missing_endpoint_is_not_found(
    test_db: &TestDatabase,
) {
    let scene = Scene::open(test_db).await;
    let stored = scene.endpoint("hook", EventFilter::all(), true, at(0)).await;
    let mut mine = stored.clone();
    let mut theirs = stored.clone();

    mine.rotate(secret("whsec_mine"), at(10));
    scene.webhooks.update(&mine).await.expect("the first update from version 1");

    // The same copy again: it still says it replaces version 1.
    mine.move_to(url("https://hooks.example.com/moved"), at(20));
    let result = scene.webhooks.update(&mine).await;
    assert!(matches!(result, Err(WebhookWriteError::Stale)), "{result:?}");

    // Another copy read at version 1.
    theirs.set_enabled(false, at(30));
    let result = scene.webhooks.update(&theirs).await;
    assert!(matches!(result, Err(WebhookWriteError::Stale)), "{result:?}");

    let now = scene.load(stored.id()).await;
    assert_eq!(
        endpoint_fields(&now),
        (
            stored.id(),
            "https://hooks.example.com/hook".to_owned(),
            vec![],
            None,
            "whsec_mine".to_owned(),
            Some(("whsec_hook".to_owned(), at(10 + 86_400))),
            None,
            2,
            2,
            at(0),
            at(10),
        ),
        "only the first update was written"
    );

    // Read again, it writes.
    let mut fresh = now.clone();
    fresh.move_to(url("https://hooks.example.com/moved"), at(40));
    scene.webhooks.update(&fresh).await.expect("an update from the current version");
    assert_eq!(scene.load(stored.id()).await.url().as_str(), "https://hooks.example.com/moved");

    // Never stored: there is nothing to update.
    let draft = WebhookEndpointDraft {
        url: url("https://hooks.example.com/ghost"),
        event_types: EventFilter::all(),
        enabled: true,
    };
    let ghost = WebhookEndpoint::register(draft, secret("whsec_ghost"), at(50));
    let result = scene.webhooks.update(&ghost).await;
    assert!(matches!(result, Err(WebhookWriteError::NotFound)), "{result:?}");
    assert!(scene.webhooks.find(ghost.id()).await.expect("reading").is_none(), "not created");

    // Deleted: its last copy is not found, stale or not.
    let mut last = scene.load(stored.id()).await;
    scene.webhooks.delete(stored.id()).await.expect("deleting");
    last.set_enabled(false, at(60));
    let result = scene.webhooks.update(&last).await;
    assert!(matches!(result, Err(WebhookWriteError::NotFound)), "{result:?}");
    let result = scene.webhooks.update(&mine).await;
    assert!(matches!(result, Err(WebhookWriteError::NotFound)), "{result:?}");
}

async fn disabling_an_endpoint_fails_its_pending_deliveries_and_nothing_else(
    test_db: &TestDatabase,
) {
    let scene = Scene::open(test_db).await;
    let manual = scene.endpoint("manual", EventFilter::all(), true, at(0)).await;
    let gone = scene.endpoint("gone", EventFilter::all(), true, at(0)).await;
    let other = scene.endpoint("other", EventFilter::all(), true, at(0)).await;
    for (n, login) in ["ada", "bob", "cy"].into_iter().enumerate() {
        scene.register(login, at(10 + i64::try_from(n).expect("small"))).await;
    }
    assert_eq!(scene.fan_out(10, at(100)).await, 3);

    // Of `manual`'s: one succeeded, one failed once and waits for its retry, one never tried.
    let listed = scene.deliveries_oldest_first(manual.id()).await;
    assert_eq!(listed.len(), 3);
    let mut succeeded = listed[0].clone();
    succeeded.attempted(&answered(204), false, at(110));
    scene.save(&succeeded).await;
    let mut retrying = listed[1].clone();
    retrying.attempted(&answered(500), false, at(110));
    scene.save(&retrying).await;
    let untried = listed[2].clone();
    let before: Vec<DeliveryFields> =
        scene.deliveries(manual.id(), None).await.iter().map(delivery_fields).collect();

    // A write that leaves it enabled fails nothing.
    let mut rotated = manual.clone();
    rotated.rotate(secret("whsec_rotated"), at(115));
    scene.webhooks.update(&rotated).await.expect("rotating");
    let after: Vec<DeliveryFields> =
        scene.deliveries(manual.id(), None).await.iter().map(delivery_fields).collect();
    assert_eq!(after, before, "a write that does not disable leaves the deliveries alone");

    // A refused disabling write fails nothing either.
    let mut stale = manual.clone();
    stale.set_enabled(false, at(118));
    let result = scene.webhooks.update(&stale).await;
    assert!(matches!(result, Err(WebhookWriteError::Stale)), "{result:?}");
    let after: Vec<DeliveryFields> =
        scene.deliveries(manual.id(), None).await.iter().map(delivery_fields).collect();
    assert_eq!(after, before, "a stale write is no write");

    // Disabled by an admin.
    let mut disabled = scene.load(manual.id()).await;
    disabled.set_enabled(false, at(120));
    scene.webhooks.update(&disabled).await.expect("disabling");
    assert_eq!(
        delivery_fields(&scene.delivery(succeeded.id()).await),
        delivery_fields(&succeeded),
        "a succeeded delivery stays as it was"
    );
    for pending in [&retrying, &untried] {
        let stored = scene.delivery(pending.id()).await;
        let parts = stored.parts();
        assert_eq!(parts.status, DeliveryStatus::Failed, "{stored:?}");
        assert_eq!(parts.next_attempt_at, None, "{stored:?}");
        assert!(parts.last_error.as_deref().is_some_and(|e| !e.is_empty()), "{stored:?}");
        // What the attempts came to is kept.
        let before = pending.parts();
        assert_eq!(
            (parts.attempts, parts.response_status, parts.last_attempt_at, &parts.payload),
            (before.attempts, before.response_status, before.last_attempt_at, &before.payload),
        );
    }

    // Disabled by a 410.
    let mut answered_gone = gone.clone();
    assert!(answered_gone.failed(true, at(130)));
    scene.webhooks.update(&answered_gone).await.expect("disabling on a 410");
    let gone_deliveries = scene.deliveries(gone.id(), None).await;
    assert_eq!(gone_deliveries.len(), 3);
    for delivery in &gone_deliveries {
        let parts = delivery.parts();
        assert_eq!((parts.status, parts.next_attempt_at), (DeliveryStatus::Failed, None));
        assert!(parts.last_error.is_some(), "{delivery:?}");
    }

    // Another endpoint's deliveries are untouched.
    let others = scene.deliveries(other.id(), None).await;
    assert_eq!(others.len(), 3);
    for delivery in &others {
        let parts = delivery.parts();
        assert_eq!(
            (parts.status, parts.next_attempt_at, parts.last_error.clone()),
            (DeliveryStatus::Pending, Some(at(100)), None),
            "{delivery:?}"
        );
    }
}

async fn deleting_an_endpoint_deletes_its_deliveries_and_deleting_it_again_is_not_found(
    test_db: &TestDatabase,
) {
    let scene = Scene::open(test_db).await;
    let doomed = scene.endpoint("doomed", EventFilter::all(), true, at(0)).await;
    let kept = scene.endpoint("kept", EventFilter::all(), true, at(0)).await;
    scene.register("ada", at(10)).await;
    scene.create_product("KB-1", at(11)).await;
    assert_eq!(scene.fan_out(10, at(100)).await, 2);
    let doomed_deliveries = scene.deliveries(doomed.id(), None).await;
    assert_eq!(doomed_deliveries.len(), 2);
    let mut finished = doomed_deliveries[0].clone();
    finished.attempted(&answered(200), false, at(110));
    scene.save(&finished).await;
    let kept_before: Vec<DeliveryFields> =
        scene.deliveries(kept.id(), None).await.iter().map(delivery_fields).collect();
    assert_eq!(kept_before.len(), 2);

    scene.webhooks.delete(doomed.id()).await.expect("deleting");
    assert!(scene.webhooks.find(doomed.id()).await.expect("reading").is_none());
    for delivery in &doomed_deliveries {
        let found = scene.webhooks.find_delivery(delivery.id()).await.expect("reading");
        assert!(found.is_none(), "a deleted endpoint's delivery is gone: {found:?}");
    }
    assert!(scene.deliveries(doomed.id(), None).await.is_empty());
    let rows = scene.delivery_rows().await;
    assert_eq!(rows, vec![kept.id().into_uuid(); 2], "only the kept endpoint's rows are left");
    let kept_after: Vec<DeliveryFields> =
        scene.deliveries(kept.id(), None).await.iter().map(delivery_fields).collect();
    assert_eq!(kept_after, kept_before, "another endpoint's deliveries stay");

    // A worker that still holds one of its deliveries saves it: no error, and nothing comes back.
    let mut late = doomed_deliveries[1].clone();
    late.attempted(&answered(204), false, at(120));
    scene.webhooks.save_delivery(&late).await.expect("saving a deleted delivery is no error");
    assert!(scene.webhooks.find_delivery(late.id()).await.expect("reading").is_none());

    let result = scene.webhooks.delete(doomed.id()).await;
    assert!(matches!(result, Err(WebhookWriteError::NotFound)), "{result:?}");
    let result = scene.webhooks.delete(WebhookEndpointId::new()).await;
    assert!(matches!(result, Err(WebhookWriteError::NotFound)), "{result:?}");
    assert!(scene.webhooks.find(kept.id()).await.expect("reading").is_some());
}

// ---------------------------------------------------------------------------------------------
// Fan-out
// ---------------------------------------------------------------------------------------------

/// Checks that `delivery` is the first, untried delivery of `event` to `endpoint` scheduled at
/// `now`, its payload the event's CloudEvents envelope with `data`.
fn assert_scheduled(
    delivery: &WebhookDelivery,
    endpoint: &WebhookEndpoint,
    event: &Event,
    data: &Value,
    now: Timestamp,
) {
    let parts = delivery.parts();
    assert_eq!(
        (
            parts.endpoint_id,
            parts.event_id,
            parts.event_type.as_str(),
            parts.status,
            parts.attempts,
            parts.max_attempts,
            parts.next_attempt_at,
            parts.last_attempt_at,
            parts.response_status,
            parts.last_error.as_deref(),
            parts.created_at,
        ),
        (
            endpoint.id(),
            event.id,
            event.event_type.as_str(),
            DeliveryStatus::Pending,
            0,
            SCHEDULED_ATTEMPTS,
            Some(now),
            None,
            None,
            None,
            now,
        ),
        "{delivery:?}"
    );
    let envelope: Value = serde_json::from_str(&parts.payload)
        .unwrap_or_else(|error| panic!("the payload is not JSON ({error}): {}", parts.payload));
    assert_eq!(envelope["specversion"], json!("1.0"), "{envelope}");
    assert_eq!(envelope["id"], json!(event.id.to_string()), "{envelope}");
    assert_eq!(envelope["type"], json!(event.event_type), "{envelope}");
    assert_eq!(envelope["source"], json!(EVENT_SOURCE), "{envelope}");
    assert_eq!(envelope["subject"], json!(event.aggregate_id.to_string()), "{envelope}");
    assert_eq!(envelope["datacontenttype"], json!("application/json"), "{envelope}");
    assert_eq!(&envelope["data"], data, "{envelope}");
    let time: Timestamp = envelope["time"]
        .as_str()
        .and_then(|time| time.parse().ok())
        .unwrap_or_else(|| panic!("no RFC 3339 time: {envelope}"));
    assert_eq!(time, event.occurred_at, "{envelope}");
}

async fn fan_out_schedules_one_delivery_per_event_for_each_endpoint_that_wants_it(
    test_db: &TestDatabase,
) {
    let scene = Scene::open(test_db).await;
    // Before any endpoint exists: delivered to none.
    let early = scene.register("early", at(5)).await;
    let all = scene.endpoint("all", EventFilter::all(), true, at(10)).await;
    let users_only = scene.endpoint("users", EventFilter::of([UserRegistered]), true, at(10)).await;
    let disabled = scene.endpoint("disabled", EventFilter::all(), false, at(10)).await;
    let ada = scene.register("ada", at(20)).await;
    let keyboard = scene.create_product("KB-1", at(30)).await;
    // Registered after `ada` and the keyboard: it gets only what happens from now on.
    let late = scene.endpoint("late", EventFilter::all(), true, at(50)).await;
    let bob = scene.register("bob", at(60)).await;

    let events = scene.events().await;
    assert_eq!(
        events.iter().map(|e| (e.event_type.as_str(), e.aggregate_id)).collect::<Vec<_>>(),
        [
            (UserRegistered.name(), early.id().into_uuid()),
            (UserRegistered.name(), ada.id().into_uuid()),
            (ProductCreated.name(), keyboard.id().into_uuid()),
            (UserRegistered.name(), bob.id().into_uuid()),
        ]
    );
    assert!(events.iter().all(|e| e.webhooks_scheduled_at.is_none()), "nothing scheduled yet");
    let [_, ada_event, keyboard_event, bob_event] = &events[..] else { panic!("four events") };
    let data = |id: Uuid| json!({"id": id.to_string(), "version": 1});

    assert_eq!(scene.fan_out(100, at(100)).await, 4, "every event is taken, wanted or not");
    // Each event with the resource it is about.
    let ada_registered = (ada_event, ada.id().into_uuid());
    let keyboard_created = (keyboard_event, keyboard.id().into_uuid());
    let bob_registered = (bob_event, bob.id().into_uuid());
    let expected = [
        (&all, vec![ada_registered, keyboard_created, bob_registered]),
        (&users_only, vec![ada_registered, bob_registered]),
        (&disabled, vec![]),
        (&late, vec![bob_registered]),
    ];
    for (endpoint, wanted) in expected {
        let deliveries = scene.deliveries_oldest_first(endpoint.id()).await;
        assert_eq!(
            deliveries.iter().map(|d| d.parts().event_id).collect::<Vec<_>>(),
            wanted.iter().map(|(event, _)| event.id).collect::<Vec<_>>(),
            "the deliveries of {}",
            endpoint.url()
        );
        for (delivery, (event, aggregate)) in deliveries.iter().zip(&wanted) {
            assert_scheduled(delivery, endpoint, event, &data(*aggregate), at(100));
        }
    }
    assert_eq!(scene.delivery_rows().await.len(), 6, "2 + 1 + 0 + 0, and bob's to three");
    assert!(
        scene.events().await.iter().all(|e| e.webhooks_scheduled_at == Some(at(100))),
        "every event taken is marked when"
    );

    // Nothing new: nothing taken, nothing scheduled, nothing changed.
    let snapshot: Vec<Vec<DeliveryFields>> = {
        let mut all_fields = Vec::new();
        for endpoint in [&all, &users_only, &disabled, &late] {
            let listed = scene.deliveries(endpoint.id(), None).await;
            all_fields.push(listed.iter().map(delivery_fields).collect());
        }
        all_fields
    };
    assert_eq!(scene.fan_out(100, at(110)).await, 0);
    let mut again = Vec::new();
    for endpoint in [&all, &users_only, &disabled, &late] {
        let listed = scene.deliveries(endpoint.id(), None).await;
        again.push(listed.iter().map(delivery_fields).collect::<Vec<_>>());
    }
    assert_eq!(again, snapshot, "a second fan-out schedules nothing again");
    assert!(scene.events().await.iter().all(|e| e.webhooks_scheduled_at == Some(at(100))));

    // A new event is taken by the next fan-out, and only it.
    let cy = scene.register("cy", at(120)).await;
    assert_eq!(scene.fan_out(100, at(130)).await, 1);
    let cy_event = scene.events().await.pop().expect("cy's event");
    assert_eq!(cy_event.aggregate_id, cy.id().into_uuid());
    assert_eq!(cy_event.webhooks_scheduled_at, Some(at(130)));
    for endpoint in [&all, &users_only, &late] {
        let deliveries = scene.deliveries(endpoint.id(), None).await;
        let newest = deliveries.first().expect("one delivery at least");
        assert_scheduled(newest, endpoint, &cy_event, &data(cy.id().into_uuid()), at(130));
    }
    assert!(scene.deliveries(disabled.id(), None).await.is_empty());
    assert_eq!(scene.delivery_rows().await.len(), 9);
}

async fn fan_out_takes_at_most_limit_events_oldest_first(test_db: &TestDatabase) {
    let scene = Scene::open(test_db).await;
    let endpoint = scene.endpoint("all", EventFilter::all(), true, at(0)).await;
    for (n, login) in ["ada", "bob", "cy"].into_iter().enumerate() {
        scene.register(login, at(10 + i64::try_from(n).expect("small"))).await;
    }
    let events = scene.events().await;
    let event_ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let scheduled = |deliveries: Vec<WebhookDelivery>| -> Vec<Uuid> {
        deliveries.iter().map(|d| d.parts().event_id).collect()
    };

    assert_eq!(scene.fan_out(1, at(100)).await, 1);
    assert_eq!(scheduled(scene.deliveries_oldest_first(endpoint.id()).await), event_ids[..1]);
    let marks: Vec<_> = scene.events().await.iter().map(|e| e.webhooks_scheduled_at).collect();
    assert_eq!(marks, [Some(at(100)), None, None], "only the event taken is marked");

    assert_eq!(scene.fan_out(1, at(110)).await, 1);
    assert_eq!(scheduled(scene.deliveries_oldest_first(endpoint.id()).await), event_ids[..2]);

    assert_eq!(scene.fan_out(5, at(120)).await, 1, "one is left");
    assert_eq!(scheduled(scene.deliveries_oldest_first(endpoint.id()).await), event_ids);
    let marks: Vec<_> = scene.events().await.iter().map(|e| e.webhooks_scheduled_at).collect();
    assert_eq!(marks, [Some(at(100)), Some(at(110)), Some(at(120))]);
    assert_eq!(scene.fan_out(5, at(130)).await, 0);
    assert_eq!(scene.delivery_rows().await.len(), 3);
}

async fn the_outbox_purges_only_the_events_fan_out_has_taken(test_db: &TestDatabase) {
    let scene = Scene::open(test_db).await;
    let endpoint = scene.endpoint("all", EventFilter::all(), true, at(0)).await;
    for (n, login) in ["ada", "bob", "cy"].into_iter().enumerate() {
        scene.register(login, at(10 + i64::try_from(n).expect("small"))).await;
    }
    let ids: Vec<Uuid> = scene.events().await.iter().map(|e| e.id).collect();

    // Published by the relay, but not seen by webhooks yet: kept by both purges.
    let batch = scene.outbox.claim(10).await.expect("claiming");
    assert_eq!(batch.events.len(), 3, "one event per user");
    batch.claim.finish(&ids, at(50)).await.expect("publishing");
    assert_eq!(scene.outbox.purge_published(at(1000)).await.expect("purging"), 0);
    assert_eq!(scene.outbox.purge_written_before(at(1000)).await.expect("purging"), 0);
    assert_eq!(scene.events().await.len(), 3);

    // Two taken by webhooks: those two go.
    assert_eq!(scene.fan_out(2, at(100)).await, 2);
    assert_eq!(scene.outbox.purge_published(at(1000)).await.expect("purging"), 2);
    let left: Vec<Uuid> = scene.events().await.iter().map(|e| e.id).collect();
    assert_eq!(left, ids[2..], "the event webhooks have not taken stays");

    // Taken but not published: `purge_published` keeps it, `purge_written_before` does not;
    // neither takes an event not yet taken.
    let dee = scene.register("dee", at(20)).await;
    let eve = scene.register("eve", at(21)).await;
    assert_eq!(scene.fan_out(2, at(110)).await, 2, "cy's and dee's");
    assert_eq!(scene.outbox.purge_published(at(1000)).await.expect("purging"), 1, "cy's");
    let left: Vec<Uuid> = scene.events().await.iter().map(|e| e.aggregate_id).collect();
    assert_eq!(left, [dee.id().into_uuid(), eve.id().into_uuid()]);
    assert_eq!(scene.outbox.purge_written_before(at(1000)).await.expect("purging"), 1, "dee's");
    let left: Vec<Uuid> = scene.events().await.iter().map(|e| e.aggregate_id).collect();
    assert_eq!(left, [eve.id().into_uuid()], "eve's is not taken yet");
    assert_eq!(scene.fan_out(10, at(120)).await, 1);
    assert_eq!(scene.outbox.purge_written_before(at(1000)).await.expect("purging"), 1);
    assert!(scene.events().await.is_empty());

    // The deliveries keep their bodies after the outbox forgets the events.
    let deliveries = scene.deliveries(endpoint.id(), None).await;
    assert_eq!(deliveries.len(), 5);
    for delivery in &deliveries {
        let envelope: Value = serde_json::from_str(&delivery.parts().payload).expect("JSON");
        assert_eq!(envelope["id"], json!(delivery.parts().event_id.to_string()));
    }
}

// ---------------------------------------------------------------------------------------------
// Claiming
// ---------------------------------------------------------------------------------------------

async fn claim_due_leases_the_due_pending_deliveries_of_enabled_endpoints_oldest_due_first(
    test_db: &TestDatabase,
) {
    let scene = Scene::open(test_db).await;
    let a = scene.endpoint("a", EventFilter::all(), true, at(0)).await;
    let b = scene.endpoint("b", EventFilter::all(), true, at(0)).await;
    let d = scene.endpoint("d", EventFilter::all(), true, at(0)).await;
    for (n, login) in ["ada", "bob", "cy"].into_iter().enumerate() {
        scene.register(login, at(10 + i64::try_from(n).expect("small"))).await;
    }
    assert_eq!(scene.fan_out(10, at(100)).await, 3);
    let [a1, a2, a3]: [WebhookDelivery; 3] =
        scene.deliveries_oldest_first(a.id()).await.try_into().expect("three of a");
    let [b1, b2, b3]: [WebhookDelivery; 3] =
        scene.deliveries_oldest_first(b.id()).await.try_into().expect("three of b");
    let [d1, ..]: [WebhookDelivery; 3] =
        scene.deliveries_oldest_first(d.id()).await.try_into().expect("three of d");

    // a1 due at 100, a2 at 150, a3 at 300; b1 succeeded, b2 failed, b3 due at 100.
    let mut a2 = a2;
    a2.redeliver(at(150));
    scene.save(&a2).await;
    let mut a3 = a3;
    a3.redeliver(at(300));
    scene.save(&a3).await;
    let mut b1 = b1;
    b1.attempted(&answered(204), false, at(90));
    scene.save(&b1).await;
    let mut b2 = b2;
    b2.attempted(&answered(410), false, at(90));
    scene.save(&b2).await;
    // Finished is finished, whatever a stored next attempt says.
    for finished in [&b1, &b2] {
        let mut parts = finished.parts().clone();
        parts.next_attempt_at = Some(at(90));
        scene.save(&WebhookDelivery::restore(parts)).await;
    }
    // `d` disabled (its deliveries fail), then an admin redelivers one: pending, due at 150, of
    // a disabled endpoint.
    let mut disabled = d.clone();
    disabled.set_enabled(false, at(95));
    scene.webhooks.update(&disabled).await.expect("disabling d");
    let mut d1 = scene.delivery(d1.id()).await;
    assert_eq!(d1.status(), DeliveryStatus::Failed);
    d1.redeliver(at(150));
    scene.save(&d1).await;
    assert_eq!(scene.delivery(d1.id()).await.status(), DeliveryStatus::Pending);

    let due = scene.claim(10, at(200), at(260)).await;
    assert_eq!(claimed_ids(&due), id_set([a1.id(), a2.id(), b3.id()]), "{due:?}");
    assert_eq!(due.len(), 3, "each once");
    assert_eq!(due[2].delivery.id(), a2.id(), "oldest due first: 100, 100, then 150");
    for claimed in &due {
        let expected = if claimed.delivery.endpoint_id() == a.id() { &a } else { &b };
        assert_eq!(
            endpoint_fields(&claimed.endpoint),
            endpoint_fields(expected),
            "each comes with its endpoint"
        );
        let stored = scene.delivery(claimed.delivery.id()).await;
        assert_eq!(stored.next_attempt_at(), Some(at(260)), "leased: {stored:?}");
        assert_eq!((stored.status(), stored.attempts()), (DeliveryStatus::Pending, 0));
        let mut claimed_fields = delivery_fields(&claimed.delivery);
        claimed_fields.6 = None;
        let mut stored_fields = delivery_fields(&stored);
        stored_fields.6 = None;
        assert_eq!(claimed_fields, stored_fields, "the delivery as stored");
    }
    let untouched = scene.delivery(a3.id()).await;
    assert_eq!(untouched.next_attempt_at(), Some(at(300)), "not due, not leased");
    assert_eq!(scene.delivery(d1.id()).await.next_attempt_at(), Some(at(150)), "not leased");

    // Leased: a second claim at the same time, or before the lease ends, gets none of them.
    assert!(scene.claim(10, at(200), at(260)).await.is_empty());
    assert!(scene.claim(10, at(259), at(300)).await.is_empty());

    // The lease over: claimable again (the worker that took them died).
    let due = scene.claim(10, at(260), at(320)).await;
    assert_eq!(claimed_ids(&due), id_set([a1.id(), a2.id(), b3.id()]), "{due:?}");

    // `limit`: a3 (due at 300) first, then the three leased until 320.
    let first = scene.claim(2, at(400), at(500)).await;
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0].delivery.id(), a3.id(), "oldest due first");
    let rest = scene.claim(10, at(400), at(500)).await;
    assert_eq!(rest.len(), 2, "{rest:?}");
    let together: BTreeSet<_> = claimed_ids(&first).union(&claimed_ids(&rest)).copied().collect();
    assert_eq!(together, id_set([a1.id(), a2.id(), a3.id(), b3.id()]));
    assert!(scene.claim(10, at(400), at(500)).await.is_empty());

    // Enabled again, `d`'s redelivered delivery is claimable; its failed ones are not.
    let mut enabled = scene.load(d.id()).await;
    enabled.set_enabled(true, at(550));
    scene.webhooks.update(&enabled).await.expect("enabling d");
    let due = scene.claim(10, at(600), at(700)).await;
    assert_eq!(claimed_ids(&due), id_set([a1.id(), a2.id(), a3.id(), b3.id(), d1.id()]));
    let with_d = due.iter().find(|due| due.delivery.id() == d1.id()).expect("d1");
    assert!(with_d.endpoint.is_enabled(), "its endpoint as it is now");
}

async fn concurrent_claims_take_disjoint_deliveries_and_together_all_that_are_due(
    test_db: &TestDatabase,
) {
    let scene = Scene::open(test_db).await;
    let endpoint = scene.endpoint("all", EventFilter::all(), true, at(0)).await;
    for n in 0..6 {
        scene.register(&format!("user{n}"), at(10 + n)).await;
    }
    assert_eq!(scene.fan_out(10, at(100)).await, 6);
    let all = id_set(delivery_ids(&scene.deliveries(endpoint.id(), None).await));
    assert_eq!(all.len(), 6);

    // Each round claims what the round before leased: several rounds, as a race is a matter of
    // timing (the first may also wait for the pool to open a second connection).
    for round in 0..8 {
        let (now, lease_until) = (at(200 + 100 * round), at(300 + 100 * round));
        let other = scene.webhooks.clone();
        let (mine, theirs) = tokio::join!(
            scene.webhooks.claim_due(3, now, lease_until),
            other.claim_due(3, now, lease_until)
        );
        let (mine, theirs) = (mine.expect("claiming"), theirs.expect("claiming"));
        let (mine, theirs) = (claimed_ids(&mine), claimed_ids(&theirs));
        assert!(mine.is_disjoint(&theirs), "claimed twice: {mine:?} and {theirs:?}");
        assert_eq!((mine.len(), theirs.len()), (3, 3), "each takes its limit");
        let together: BTreeSet<_> = mine.union(&theirs).copied().collect();
        assert_eq!(together, all, "together, every due delivery");
        assert!(scene.claim(10, now, lease_until).await.is_empty(), "all leased");
    }
}

// ---------------------------------------------------------------------------------------------
// Saving, listing and purging deliveries
// ---------------------------------------------------------------------------------------------

async fn a_saved_delivery_round_trips_and_the_list_filters_by_status_newest_first(
    test_db: &TestDatabase,
) {
    let scene = Scene::open(test_db).await;
    let endpoint = scene.endpoint("a", EventFilter::all(), true, at(0)).await;
    let other = scene.endpoint("b", EventFilter::all(), true, at(0)).await;
    for (n, login) in ["ada", "bob", "cy", "dee", "eve"].into_iter().enumerate() {
        scene.register(login, at(10 + i64::try_from(n).expect("small"))).await;
    }
    assert_eq!(scene.fan_out(10, at(100)).await, 5);
    let [d1, d2, d3, d4, d5]: [WebhookDelivery; 5] =
        scene.deliveries_oldest_first(endpoint.id()).await.try_into().expect("five");

    // No answer: retried after the schedule's second step, the error kept.
    let mut d1 = d1;
    d1.attempted(&AttemptOutcome::NoAnswer { why: "connection refused".into() }, false, at(200));
    scene.save(&d1).await;
    let stored = scene.delivery(d1.id()).await;
    assert_eq!(delivery_fields(&stored), delivery_fields(&d1));
    assert_eq!(
        (stored.attempts(), stored.status(), stored.next_attempt_at()),
        (1, DeliveryStatus::Pending, Some(at(205)))
    );
    assert_eq!(
        (stored.parts().response_status, stored.parts().last_error.as_deref()),
        (None, Some("connection refused"))
    );
    assert_eq!(stored.parts().last_attempt_at, Some(at(200)));

    // Then a success.
    let mut d1 = stored;
    d1.attempted(&answered(204), false, at(205));
    scene.save(&d1).await;
    let stored = scene.delivery(d1.id()).await;
    assert_eq!(delivery_fields(&stored), delivery_fields(&d1));
    assert_eq!(
        (stored.attempts(), stored.status(), stored.next_attempt_at()),
        (2, DeliveryStatus::Succeeded, None)
    );
    assert_eq!(
        (stored.parts().response_status, stored.parts().last_error.clone()),
        (Some(204), None)
    );

    // A 410 fails it; a redelivery allows one more attempt.
    let mut d2 = d2;
    d2.attempted(&answered(410), false, at(210));
    scene.save(&d2).await;
    let stored = scene.delivery(d2.id()).await;
    assert_eq!(delivery_fields(&stored), delivery_fields(&d2));
    assert_eq!(
        (stored.status(), stored.parts().response_status),
        (DeliveryStatus::Failed, Some(410))
    );
    let mut d3 = d3;
    d3.attempted(&answered(503), false, at(220));
    d3.attempted(&answered(503), false, at(225));
    d3.attempted(&answered(503), false, at(525));
    d3.attempted(&answered(410), false, at(2325));
    d3.redeliver(at(3000));
    scene.save(&d3).await;
    let stored = scene.delivery(d3.id()).await;
    assert_eq!(delivery_fields(&stored), delivery_fields(&d3));
    assert_eq!(
        (stored.status(), stored.attempts(), stored.parts().max_attempts, stored.next_attempt_at()),
        (DeliveryStatus::Pending, 4, 5, Some(at(3000)))
    );

    // Listed newest first (ids are time-ordered), by status, each as stored.
    let expect = |deliveries: &[&WebhookDelivery]| -> Vec<WebhookDeliveryId> {
        let mut ids: Vec<_> = deliveries.iter().map(|d| d.id()).collect();
        ids.sort_by_key(|id| std::cmp::Reverse(*id));
        ids
    };
    let listed = scene.deliveries(endpoint.id(), None).await;
    assert_eq!(delivery_ids(&listed), expect(&[&d1, &d2, &d3, &d4, &d5]));
    for delivery in &listed {
        assert_eq!(
            delivery_fields(delivery),
            delivery_fields(&scene.delivery(delivery.id()).await),
            "listed as found"
        );
    }
    let pending = scene.deliveries(endpoint.id(), Some(DeliveryStatus::Pending)).await;
    assert_eq!(delivery_ids(&pending), expect(&[&d3, &d4, &d5]));
    let succeeded = scene.deliveries(endpoint.id(), Some(DeliveryStatus::Succeeded)).await;
    assert_eq!(delivery_ids(&succeeded), [d1.id()]);
    assert_eq!(delivery_fields(&succeeded[0]), delivery_fields(&d1));
    let failed = scene.deliveries(endpoint.id(), Some(DeliveryStatus::Failed)).await;
    assert_eq!(delivery_ids(&failed), [d2.id()]);
    assert_eq!(delivery_fields(&failed[0]), delivery_fields(&d2));
    let others = scene.deliveries(other.id(), None).await;
    assert_eq!(others.len(), 5, "the other endpoint's own");
    assert!(others.iter().all(|d| d.endpoint_id() == other.id() && d.attempts() == 0));

    // Pages of two: no duplicates, no gaps, no next after the last; the filter holds on every
    // page.
    for (status, expected) in [
        (None, expect(&[&d1, &d2, &d3, &d4, &d5])),
        (Some(DeliveryStatus::Pending), expect(&[&d3, &d4, &d5])),
    ] {
        let mut walked = Vec::new();
        let mut sizes = Vec::new();
        let mut after = None;
        loop {
            let page = scene
                .webhooks
                .deliveries(endpoint.id(), status, page_of(2, after))
                .await
                .expect("listing");
            sizes.push(page.items.len());
            walked.extend(delivery_ids(&page.items));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
            assert!(sizes.len() <= 5, "the pages end");
        }
        assert_eq!(walked, expected, "{status:?}");
        let full_pages = expected.len() / 2;
        let mut expected_sizes = vec![2; full_pages];
        if expected.len() % 2 == 1 {
            expected_sizes.push(1);
        }
        assert_eq!(sizes, expected_sizes, "{status:?}");
    }
}

async fn purge_finished_deletes_finished_deliveries_made_before_the_cutoff_only(
    test_db: &TestDatabase,
) {
    let scene = Scene::open(test_db).await;
    let endpoint = scene.endpoint("a", EventFilter::all(), true, at(0)).await;
    for (n, login) in ["ada", "bob", "cy"].into_iter().enumerate() {
        scene.register(login, at(10 + i64::try_from(n).expect("small"))).await;
    }
    assert_eq!(scene.fan_out(10, at(100)).await, 3);
    for (n, login) in ["dee", "eve", "fay"].into_iter().enumerate() {
        scene.register(login, at(20 + i64::try_from(n).expect("small"))).await;
    }
    assert_eq!(scene.fan_out(10, at(300)).await, 3);
    let [o1, o2, o3, n1, n2, n3]: [WebhookDelivery; 6] =
        scene.deliveries_oldest_first(endpoint.id()).await.try_into().expect("six");
    assert_eq!(o1.parts().created_at, at(100));
    assert_eq!(n1.parts().created_at, at(300));

    // Old and new alike: one succeeded, one failed, one still pending (after a failed attempt).
    for (succeeded, failed, pending) in [(o1.clone(), o2.clone(), o3.clone()), (n1, n2, n3)] {
        let mut succeeded = succeeded;
        succeeded.attempted(&answered(200), false, at(400));
        scene.save(&succeeded).await;
        let mut failed = failed;
        failed.attempted(&answered(410), false, at(400));
        scene.save(&failed).await;
        let mut pending = pending;
        pending.attempted(&answered(500), false, at(400));
        scene.save(&pending).await;
    }
    let all = delivery_ids(&scene.deliveries_oldest_first(endpoint.id()).await);

    assert_eq!(scene.webhooks.purge_finished(at(100)).await.expect("purging"), 0, "none before");
    assert_eq!(scene.webhooks.purge_finished(at(200)).await.expect("purging"), 2);
    let left = delivery_ids(&scene.deliveries_oldest_first(endpoint.id()).await);
    assert_eq!(left, [all[2], all[3], all[4], all[5]], "the old pending one and the new ones");
    assert!(scene.webhooks.find_delivery(o1.id()).await.expect("reading").is_none());
    assert!(scene.webhooks.find_delivery(o2.id()).await.expect("reading").is_none());
    assert_eq!(scene.delivery(o3.id()).await.status(), DeliveryStatus::Pending);

    assert_eq!(
        scene.webhooks.purge_finished(at(300)).await.expect("purging"),
        0,
        "made at the cutoff is not made before it"
    );
    assert_eq!(scene.webhooks.purge_finished(at(301)).await.expect("purging"), 2);
    let left = delivery_ids(&scene.deliveries_oldest_first(endpoint.id()).await);
    assert_eq!(left, [all[2], all[5]], "only the pending ones");
    assert_eq!(scene.webhooks.purge_finished(at(10_000)).await.expect("purging"), 0);
}

on_both_engines_with_url!(
    an_endpoint_round_trips_every_field_through_insert_update_and_find,
    endpoints_are_listed_newest_first_in_keyset_pages_without_duplicates_or_gaps,
    an_update_from_a_stale_copy_is_stale_and_one_of_a_missing_endpoint_is_not_found,
    disabling_an_endpoint_fails_its_pending_deliveries_and_nothing_else,
    deleting_an_endpoint_deletes_its_deliveries_and_deleting_it_again_is_not_found,
    fan_out_schedules_one_delivery_per_event_for_each_endpoint_that_wants_it,
    fan_out_takes_at_most_limit_events_oldest_first,
    the_outbox_purges_only_the_events_fan_out_has_taken,
    claim_due_leases_the_due_pending_deliveries_of_enabled_endpoints_oldest_due_first,
    concurrent_claims_take_disjoint_deliveries_and_together_all_that_are_due,
    a_saved_delivery_round_trips_and_the_list_filters_by_status_newest_first,
    purge_finished_deletes_finished_deliveries_made_before_the_cutoff_only,
);
