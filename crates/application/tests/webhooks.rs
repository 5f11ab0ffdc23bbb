//! Use-case tests for webhooks: the admin use cases (endpoints, secrets, deliveries) and the
//! delivery worker. Every port is a mockall mock, so each test states exactly what the use case
//! may ask of the store, the outbound guard, the secret generator, the queue and the sender
//! (`never()` where a port must not be reached) and what it must answer for each port outcome.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use mockall::Sequence;
use orderly_application::{
    StoreError, WRITE_ATTEMPTS,
    auth::admin_check::AdminCheck,
    pagination::ListRequest,
    ports::MockUserRepository,
    webhooks::{
        AdminsOnly,
        create_endpoint::{CreateEndpoint, CreateEndpointError},
        delete_endpoint::{DeleteEndpoint, DeleteEndpointError},
        deliver::{Attempted, DELIVERY_BATCH, DeliverWebhooks, DeliveryReport, LEASE},
        get_endpoint::{GetEndpoint, GetEndpointError},
        list_deliveries::{ListDeliveries, ListDeliveriesError},
        list_endpoints::{ListEndpoints, ListEndpointsError},
        ports::{
            DueDelivery, MockDeliveryQueue, MockSecretGenerator, MockUrlGuard, MockWebhookSender,
            MockWebhookStore, SendOutcome, UrlRefused, WebhookMessage, WebhookWriteError,
        },
        retry_delivery::{RetryDelivery, RetryDeliveryError},
        rotate_secret::{RotateSecret, RotateSecretError},
        update_endpoint::{UpdateEndpoint, UpdateEndpointError, UpdateEndpointInput},
    },
};
use orderly_domain::{
    Actor, DeliveryStatus, DisabledReason, Email, EventFilter, EventType, PasswordHash, Role, User,
    UserId, UserName, UserParts, Uuid, WebhookDelivery, WebhookDeliveryId, WebhookDeliveryParts,
    WebhookEndpoint, WebhookEndpointDraft, WebhookEndpointId, WebhookEndpointParts, WebhookSecret,
    WebhookUrl,
    time::TimeDelta,
    webhook::{PREVIOUS_SECRET_GRACE, RETRY_SCHEDULE, SCHEDULED_ATTEMPTS},
};
use support::{
    admin, customer, store_down,
    stored_a_month_ago::{clock, created_at, now},
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The version every stored fixture endpoint is at.
const STORED_VERSION: u64 = 3;

/// Where the stored fixture endpoints deliver.
const STORED_URL: &str = "https://hooks.example.com/orderly";

/// The secret the stored fixture endpoints sign with.
const STORED_SECRET: &str = "whsec_c3RvcmVk";

/// The secret the mocked generator makes.
const GENERATED_SECRET: &str = "whsec_Z2VuZXJhdGVk";

/// The event every fixture delivery carries, and its body.
const EVENT_ID: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
const PAYLOAD: &str = r#"{"specversion":"1.0","type":"orderly.order.paid.v1"}"#;

/// Every call of one mocked method, in order.
type Recorded<T> = Arc<Mutex<Vec<T>>>;

fn recorded<T>(log: &Recorded<T>) -> Vec<T>
where
    T: Clone,
{
    log.lock().expect("the log is not poisoned").clone()
}

fn url(raw: &str) -> WebhookUrl {
    WebhookUrl::parse(raw).expect("a valid webhook URL")
}

fn secret(raw: &str) -> WebhookSecret {
    WebhookSecret::new(raw.to_owned())
}

fn exposed(secrets: &[WebhookSecret]) -> Vec<&str> {
    secrets.iter().map(WebhookSecret::expose).collect()
}

fn seconds(count: i64) -> TimeDelta {
    TimeDelta::seconds(count)
}

/// The parts of an enabled endpoint at [`STORED_VERSION`] that wants paid orders, not failing,
/// never rotated.
fn stored_parts() -> WebhookEndpointParts {
    WebhookEndpointParts {
        id: WebhookEndpointId::new(),
        url: url(STORED_URL),
        event_types: EventFilter::of([EventType::OrderPaid]),
        disabled: None,
        secret: secret(STORED_SECRET),
        previous_secret: None,
        failing_since: None,
        version: STORED_VERSION,
        created_at: created_at(),
        updated_at: created_at(),
    }
}

fn stored_endpoint() -> WebhookEndpoint {
    WebhookEndpoint::restore(stored_parts())
}

/// A delivery of [`EVENT_ID`] to `endpoint` that has not been attempted yet.
fn new_delivery(endpoint: WebhookEndpointId) -> WebhookDelivery {
    WebhookDelivery::schedule(
        endpoint,
        EVENT_ID,
        EventType::OrderPaid.name().to_owned(),
        PAYLOAD.to_owned(),
        now() - seconds(60),
    )
}

/// A delivery to `endpoint` whose every scheduled attempt failed.
fn failed_delivery(endpoint: WebhookEndpointId) -> WebhookDelivery {
    WebhookDelivery::restore(WebhookDeliveryParts {
        id: WebhookDeliveryId::new(),
        endpoint_id: endpoint,
        event_id: EVENT_ID,
        event_type: EventType::OrderPaid.name().to_owned(),
        payload: PAYLOAD.to_owned(),
        status: DeliveryStatus::Failed,
        attempts: SCHEDULED_ATTEMPTS,
        max_attempts: SCHEDULED_ATTEMPTS,
        next_attempt_at: None,
        last_attempt_at: Some(created_at()),
        response_status: Some(503),
        last_error: None,
        created_at: created_at(),
    })
}

/// The account `id` as the database holds it, with `role`.
fn account(id: UserId, role: Role) -> User {
    User::restore(UserParts {
        id,
        email: Email::parse("grace@example.com").expect("a valid e-mail address"),
        name: UserName::parse("Grace").expect("a valid name"),
        role,
        password_hash: PasswordHash::new("$argon2id$v=19$stored".to_owned()),
        session_epoch: 0,
        version: 2,
        created_at: created_at(),
        updated_at: created_at(),
    })
}

/// The check of admins against a database where every admin who acts is still one.
fn admins() -> AdminCheck {
    let mut accounts = MockUserRepository::new();
    accounts.expect_find_by_id().returning(|id| Ok(Some(account(id, Role::Admin))));
    AdminCheck::new(Arc::new(accounts))
}

/// The check over a database whose one read, of `id`, finds `role` (`None`: the account is
/// gone).
fn database_says(id: UserId, role: Option<Role>) -> AdminCheck {
    let mut accounts = MockUserRepository::new();
    accounts
        .expect_find_by_id()
        .withf(move |asked| *asked == id)
        .times(1)
        .returning(move |id| Ok(role.map(|role| account(id, role))));
    AdminCheck::new(Arc::new(accounts))
}

/// The check over a database that must not be read at all.
fn database_unread() -> AdminCheck {
    let mut accounts = MockUserRepository::new();
    accounts.expect_find_by_id().never();
    AdminCheck::new(Arc::new(accounts))
}

/// A store that must not be reached at all.
fn untouched_store() -> MockWebhookStore {
    let mut store = MockWebhookStore::new();
    store.expect_insert().never();
    store.expect_find().never();
    store.expect_list().never();
    store.expect_update().never();
    store.expect_delete().never();
    store.expect_deliveries().never();
    store.expect_find_delivery().never();
    store.expect_save_delivery().never();
    store
}

/// An outbound guard that must not be asked.
fn unasked_guard() -> MockUrlGuard {
    let mut guard = MockUrlGuard::new();
    guard.expect_check().never();
    guard
}

/// An outbound guard that lets `expected` through, asked once.
fn guard_allowing(expected: &str) -> MockUrlGuard {
    let expected = url(expected);
    let mut guard = MockUrlGuard::new();
    guard.expect_check().withf(move |asked| *asked == expected).times(1).returning(|_| Ok(()));
    guard
}

/// A secret generator that must not be asked.
fn unused_secrets() -> MockSecretGenerator {
    let mut secrets = MockSecretGenerator::new();
    secrets.expect_generate().never();
    secrets
}

/// A secret generator making [`GENERATED_SECRET`], once.
fn generating_secret() -> MockSecretGenerator {
    let mut secrets = MockSecretGenerator::new();
    secrets.expect_generate().times(1).returning(|| secret(GENERATED_SECRET));
    secrets
}

/// Makes `store` answer `endpoint` for its id at each of `reads` calls of `find`.
fn expect_finds(store: &mut MockWebhookStore, endpoint: &WebhookEndpoint, reads: usize) {
    let (id, found) = (endpoint.id(), endpoint.clone());
    store
        .expect_find()
        .withf(move |asked| *asked == id)
        .times(reads)
        .returning(move |_| Ok(Some(found.clone())));
}

/// Makes `store` answer the endpoint of `parts` one concurrent change further on at each of its
/// `reads` calls of `find` (version + 1 each time), as another writer would leave it.
fn expect_changing_finds(store: &mut MockWebhookStore, parts: &WebhookEndpointParts, reads: usize) {
    let (id, parts) = (parts.id, parts.clone());
    let mut changes = 0;
    store.expect_find().withf(move |asked| *asked == id).times(reads).returning(move |_| {
        let found = WebhookEndpoint::restore(WebhookEndpointParts {
            version: parts.version + changes,
            ..parts.clone()
        });
        changes += 1;
        Ok(Some(found))
    });
}

/// Expects `update` once per answer (`Stale` for each of `stale`, then `Ok` if `ok`), recording
/// the endpoint each call was given.
fn updates_answering(
    store: &mut MockWebhookStore,
    stale: usize,
    ok: bool,
) -> Recorded<WebhookEndpoint> {
    let updates = Recorded::default();
    let log = Arc::clone(&updates);
    let mut calls = 0;
    store.expect_update().times(stale + usize::from(ok)).returning(move |endpoint| {
        log.lock().expect("the log is not poisoned").push(endpoint.clone());
        calls += 1;
        if calls <= stale { Err(WebhookWriteError::Stale) } else { Ok(()) }
    });
    updates
}

/// Expects `save_delivery` `times` times, recording each delivery saved.
fn saves_recorded(store: &mut MockWebhookStore, times: usize) -> Recorded<WebhookDelivery> {
    let saves = Recorded::default();
    let log = Arc::clone(&saves);
    store.expect_save_delivery().times(times).returning(move |delivery| {
        log.lock().expect("the log is not poisoned").push(delivery.clone());
        Ok(())
    });
    saves
}

// ---------------------------------------------------------------------------------------------
// Only admins, as the database has them now
// ---------------------------------------------------------------------------------------------

mod admins_only {
    use super::*;

    /// Runs every admin use case as `actor`, each with its own check from `admins` and ports
    /// that must not be touched; returns those that did not refuse with `Forbidden`.
    async fn not_refused(actor: &Actor, admins: impl Fn() -> AdminCheck) -> Vec<String> {
        let (endpoint, delivery) = (WebhookEndpointId::new(), WebhookDeliveryId::new());
        let store = || Arc::new(untouched_store());
        let mut wrong = Vec::new();

        let draft = WebhookEndpointDraft {
            url: url(STORED_URL),
            event_types: EventFilter::all(),
            enabled: true,
        };
        let result = CreateEndpoint::new(
            store(),
            admins(),
            Arc::new(unasked_guard()),
            Arc::new(unused_secrets()),
            Arc::new(clock()),
        )
        .execute(actor, draft)
        .await;
        if !matches!(result, Err(CreateEndpointError::Forbidden(AdminsOnly))) {
            wrong.push(format!("create: {result:?}"));
        }

        let result = GetEndpoint::new(store(), admins()).execute(actor, endpoint).await;
        if !matches!(result, Err(GetEndpointError::Forbidden(AdminsOnly))) {
            wrong.push(format!("get: {result:?}"));
        }

        let result =
            ListEndpoints::new(store(), admins()).execute(actor, ListRequest::default()).await;
        if !matches!(result, Err(ListEndpointsError::Forbidden(AdminsOnly))) {
            wrong.push(format!("list: {result:?}"));
        }

        let input = UpdateEndpointInput {
            url: Some(url("https://elsewhere.example.com/hook")),
            enabled: Some(false),
            ..UpdateEndpointInput::default()
        };
        let result =
            UpdateEndpoint::new(store(), admins(), Arc::new(unasked_guard()), Arc::new(clock()))
                .execute(actor, endpoint, input)
                .await;
        if !matches!(result, Err(UpdateEndpointError::Forbidden(AdminsOnly))) {
            wrong.push(format!("update: {result:?}"));
        }

        let result = DeleteEndpoint::new(store(), admins()).execute(actor, endpoint).await;
        if !matches!(result, Err(DeleteEndpointError::Forbidden(AdminsOnly))) {
            wrong.push(format!("delete: {result:?}"));
        }

        let result =
            RotateSecret::new(store(), admins(), Arc::new(unused_secrets()), Arc::new(clock()))
                .execute(actor, endpoint)
                .await;
        if !matches!(result, Err(RotateSecretError::Forbidden(AdminsOnly))) {
            wrong.push(format!("rotate_secret: {result:?}"));
        }

        let result = ListDeliveries::new(store(), admins())
            .execute(actor, endpoint, None, ListRequest::default())
            .await;
        if !matches!(result, Err(ListDeliveriesError::Forbidden(AdminsOnly))) {
            wrong.push(format!("list_deliveries: {result:?}"));
        }

        let result = RetryDelivery::new(store(), admins(), Arc::new(clock()))
            .execute(actor, endpoint, delivery)
            .await;
        if !matches!(result, Err(RetryDeliveryError::Forbidden(AdminsOnly))) {
            wrong.push(format!("retry_delivery: {result:?}"));
        }

        wrong
    }

    #[tokio::test]
    async fn a_customer_is_forbidden_every_webhook_use_case_and_the_store_is_never_reached() {
        let actor = customer(UserId::new());
        let wrong = not_refused(&actor, database_unread).await;
        assert!(wrong.is_empty(), "not refused: {wrong:#?}");
    }

    #[tokio::test]
    async fn an_admin_demoted_since_their_token_was_issued_is_forbidden_every_webhook_use_case() {
        let id = UserId::new();
        let actor = Actor::User { id, role: Role::Admin };
        let wrong = not_refused(&actor, || database_says(id, Some(Role::Customer))).await;
        assert!(wrong.is_empty(), "not refused: {wrong:#?}");
    }

    #[tokio::test]
    async fn an_admin_whose_account_was_deleted_is_forbidden_every_webhook_use_case() {
        let id = UserId::new();
        let actor = Actor::User { id, role: Role::Admin };
        let wrong = not_refused(&actor, || database_says(id, None)).await;
        assert!(wrong.is_empty(), "not refused: {wrong:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// create_endpoint
// ---------------------------------------------------------------------------------------------

mod creating {
    use super::*;

    fn draft(enabled: bool) -> WebhookEndpointDraft {
        WebhookEndpointDraft {
            url: url("https://receiver.example.com/orderly"),
            event_types: EventFilter::of([EventType::OrderPlaced, EventType::OrderPaid]),
            enabled,
        }
    }

    fn use_case(
        store: MockWebhookStore,
        guard: MockUrlGuard,
        secrets: MockSecretGenerator,
    ) -> CreateEndpoint {
        CreateEndpoint::new(
            Arc::new(store),
            admins(),
            Arc::new(guard),
            Arc::new(secrets),
            Arc::new(clock()),
        )
    }

    #[tokio::test]
    async fn the_guard_is_asked_about_the_url_before_anything_is_stored() {
        let mut sequence = Sequence::new();
        let mut guard = MockUrlGuard::new();
        guard.expect_check().times(1).in_sequence(&mut sequence).returning(|_| Ok(()));
        let mut store = MockWebhookStore::new();
        store.expect_insert().times(1).in_sequence(&mut sequence).returning(|_| Ok(()));

        use_case(store, guard, generating_secret())
            .execute(&admin(), draft(true))
            .await
            .expect("a public URL is registered");
    }

    #[tokio::test]
    async fn a_url_the_guard_refuses_is_refused_and_nothing_is_stored() {
        for refusal in [
            UrlRefused::NotPublic("hooks.internal resolves to 10.0.0.7".to_owned()),
            UrlRefused::Unresolvable("no address for hooks.invalid".to_owned()),
        ] {
            let mut guard = MockUrlGuard::new();
            let answer = refusal.clone();
            guard.expect_check().times(1).returning(move |_| Err(answer.clone()));
            let mut secrets = MockSecretGenerator::new();
            secrets.expect_generate().returning(|| secret(GENERATED_SECRET));

            let result =
                use_case(untouched_store(), guard, secrets).execute(&admin(), draft(true)).await;

            match result {
                Err(CreateEndpointError::UrlRefused(refused)) => assert_eq!(refused, refusal),
                other => panic!("{refusal:?}: expected UrlRefused, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_endpoint_stored_has_the_generated_secret_version_one_and_the_drafts_choices() {
        for enabled in [true, false] {
            let inserted = Recorded::default();
            let log = Arc::clone(&inserted);
            let mut store = MockWebhookStore::new();
            store.expect_insert().times(1).returning(move |endpoint| {
                log.lock().expect("the log is not poisoned").push(endpoint.clone());
                Ok(())
            });

            let created = use_case(
                store,
                guard_allowing("https://receiver.example.com/orderly"),
                generating_secret(),
            )
            .execute(&admin(), draft(enabled))
            .await
            .expect("a public URL is registered");

            let inserted = recorded(&inserted);
            let [stored] = inserted.as_slice() else { panic!("one insert, got {inserted:?}") };
            assert_eq!(stored.secret().expose(), GENERATED_SECRET, "enabled: {enabled}");
            assert_eq!(stored.previous_secret(), None);
            assert_eq!(stored.version(), 1);
            assert_eq!(stored.url().as_str(), "https://receiver.example.com/orderly");
            assert_eq!(stored.event_types(), &draft(enabled).event_types);
            assert_eq!(stored.is_enabled(), enabled);
            let reason = (!enabled).then_some(DisabledReason::Manual);
            assert_eq!(stored.disabled_reason(), reason);
            assert_eq!(stored.failing_since(), None);
            assert_eq!((stored.created_at(), stored.updated_at()), (now(), now()));
            assert_eq!(created.id(), stored.id(), "the endpoint returned is the one stored");
            assert_eq!(created.secret().expose(), GENERATED_SECRET, "shown to the admin once");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// get_endpoint, list_deliveries, delete_endpoint
// ---------------------------------------------------------------------------------------------

mod reading_and_deleting {
    use super::*;

    #[tokio::test]
    async fn a_missing_endpoint_is_not_found() {
        let mut store = MockWebhookStore::new();
        store.expect_find().times(1).returning(|_| Ok(None));
        let result = GetEndpoint::new(Arc::new(store), admins())
            .execute(&admin(), WebhookEndpointId::new())
            .await;
        assert!(matches!(result, Err(GetEndpointError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn the_deliveries_of_a_missing_endpoint_are_not_found_and_not_listed() {
        let mut store = MockWebhookStore::new();
        store.expect_find().times(1).returning(|_| Ok(None));
        store.expect_deliveries().never();
        let result = ListDeliveries::new(Arc::new(store), admins())
            .execute(&admin(), WebhookEndpointId::new(), None, ListRequest::default())
            .await;
        assert!(matches!(result, Err(ListDeliveriesError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn deleting_a_missing_endpoint_is_not_found() {
        let mut store = MockWebhookStore::new();
        store.expect_delete().times(1).returning(|_| Err(WebhookWriteError::NotFound));
        let result = DeleteEndpoint::new(Arc::new(store), admins())
            .execute(&admin(), WebhookEndpointId::new())
            .await;
        assert!(matches!(result, Err(DeleteEndpointError::NotFound)), "{result:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// update_endpoint
// ---------------------------------------------------------------------------------------------

mod updating {
    use super::*;

    const NEW_URL: &str = "https://elsewhere.example.com/hook";

    fn use_case(store: MockWebhookStore, guard: MockUrlGuard) -> UpdateEndpoint {
        UpdateEndpoint::new(Arc::new(store), admins(), Arc::new(guard), Arc::new(clock()))
    }

    fn disabling(expected_version: Option<u64>) -> UpdateEndpointInput {
        UpdateEndpointInput { expected_version, enabled: Some(false), ..Default::default() }
    }

    #[tokio::test]
    async fn with_if_match_an_old_version_is_a_mismatch_and_nothing_is_written() {
        let endpoint = stored_endpoint();
        let mut store = MockWebhookStore::new();
        expect_finds(&mut store, &endpoint, 1);
        store.expect_update().never();

        let result = use_case(store, unasked_guard())
            .execute(&admin(), endpoint.id(), disabling(Some(STORED_VERSION - 1)))
            .await;

        assert!(
            matches!(
                result,
                Err(UpdateEndpointError::VersionMismatch { expected, current })
                    if expected == STORED_VERSION - 1 && current == STORED_VERSION
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn with_if_match_a_write_that_lost_the_race_is_a_mismatch_naming_the_new_version() {
        let parts = stored_parts();
        let mut store = MockWebhookStore::new();
        expect_changing_finds(&mut store, &parts, 2);
        let updates = updates_answering(&mut store, 1, false);

        let result = use_case(store, unasked_guard())
            .execute(&admin(), parts.id, disabling(Some(STORED_VERSION)))
            .await;

        assert!(
            matches!(
                result,
                Err(UpdateEndpointError::VersionMismatch { expected, current })
                    if expected == STORED_VERSION && current == STORED_VERSION + 1
            ),
            "{result:?}"
        );
        assert_eq!(recorded(&updates).len(), 1, "not retried over the client's If-Match");
    }

    #[tokio::test]
    async fn without_if_match_a_stale_write_is_reread_reapplied_and_succeeds() {
        let parts = stored_parts();
        let mut store = MockWebhookStore::new();
        expect_changing_finds(&mut store, &parts, 2);
        let updates = updates_answering(&mut store, 1, true);
        let input = UpdateEndpointInput { url: Some(url(NEW_URL)), ..Default::default() };

        let updated = use_case(store, guard_allowing(NEW_URL))
            .execute(&admin(), parts.id, input)
            .await
            .expect("the second try is written");

        let writes: Vec<_> = recorded(&updates)
            .iter()
            .map(|e| (e.stored_version(), e.version(), e.url().as_str().to_owned()))
            .collect();
        assert_eq!(
            writes,
            [
                (STORED_VERSION, STORED_VERSION + 1, NEW_URL.to_owned()),
                (STORED_VERSION + 1, STORED_VERSION + 2, NEW_URL.to_owned()),
            ],
            "each try re-reads the endpoint and applies the change again"
        );
        assert_eq!(updated.version(), STORED_VERSION + 2);
        assert_eq!(updated.url().as_str(), NEW_URL);
        assert_eq!(updated.updated_at(), now());
    }

    #[tokio::test]
    async fn without_if_match_an_endpoint_stale_at_every_try_is_a_conflict() {
        let parts = stored_parts();
        let mut store = MockWebhookStore::new();
        expect_changing_finds(&mut store, &parts, WRITE_ATTEMPTS);
        let updates = updates_answering(&mut store, WRITE_ATTEMPTS, false);

        let result =
            use_case(store, unasked_guard()).execute(&admin(), parts.id, disabling(None)).await;

        assert!(matches!(result, Err(UpdateEndpointError::Conflict)), "{result:?}");
        assert_eq!(recorded(&updates).len(), WRITE_ATTEMPTS);
    }

    #[tokio::test]
    async fn a_missing_endpoint_is_not_found_and_nothing_is_written() {
        let mut store = MockWebhookStore::new();
        store.expect_find().times(1).returning(|_| Ok(None));
        store.expect_update().never();

        let result = use_case(store, unasked_guard())
            .execute(&admin(), WebhookEndpointId::new(), disabling(None))
            .await;

        assert!(matches!(result, Err(UpdateEndpointError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn an_endpoint_deleted_before_the_write_is_not_found() {
        let endpoint = stored_endpoint();
        let mut store = MockWebhookStore::new();
        expect_finds(&mut store, &endpoint, 1);
        store.expect_update().times(1).returning(|_| Err(WebhookWriteError::NotFound));

        let result = use_case(store, unasked_guard())
            .execute(&admin(), endpoint.id(), disabling(None))
            .await;

        assert!(matches!(result, Err(UpdateEndpointError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_new_url_is_checked_by_the_guard_and_written() {
        let endpoint = stored_endpoint();
        let mut store = MockWebhookStore::new();
        expect_finds(&mut store, &endpoint, 1);
        let updates = updates_answering(&mut store, 0, true);
        let input = UpdateEndpointInput { url: Some(url(NEW_URL)), ..Default::default() };

        use_case(store, guard_allowing(NEW_URL))
            .execute(&admin(), endpoint.id(), input)
            .await
            .expect("a public URL is written");

        let urls: Vec<_> = recorded(&updates).iter().map(|e| e.url().as_str().to_owned()).collect();
        assert_eq!(urls, [NEW_URL]);
    }

    #[tokio::test]
    async fn a_new_url_the_guard_refuses_is_refused_and_nothing_is_written() {
        let mut guard = MockUrlGuard::new();
        guard
            .expect_check()
            .times(1)
            .returning(|_| Err(UrlRefused::NotPublic("resolves to 127.0.0.1".to_owned())));
        let input = UpdateEndpointInput { url: Some(url(NEW_URL)), ..Default::default() };

        let result = use_case(untouched_store(), guard)
            .execute(&admin(), WebhookEndpointId::new(), input)
            .await;

        assert!(
            matches!(result, Err(UpdateEndpointError::UrlRefused(UrlRefused::NotPublic(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn changing_only_whether_it_is_enabled_does_not_ask_the_guard() {
        let endpoint = stored_endpoint();
        let mut store = MockWebhookStore::new();
        expect_finds(&mut store, &endpoint, 1);
        let updates = updates_answering(&mut store, 0, true);

        let updated = use_case(store, unasked_guard())
            .execute(&admin(), endpoint.id(), disabling(Some(STORED_VERSION)))
            .await
            .expect("disabled");

        assert_eq!(updated.disabled_reason(), Some(DisabledReason::Manual));
        let written: Vec<_> = recorded(&updates).iter().map(|e| e.disabled_reason()).collect();
        assert_eq!(written, [Some(DisabledReason::Manual)]);
    }

    #[tokio::test]
    async fn a_change_to_what_is_already_stored_writes_nothing() {
        let endpoint = stored_endpoint();
        let mut store = MockWebhookStore::new();
        expect_finds(&mut store, &endpoint, 1);
        store.expect_update().never();
        let input = UpdateEndpointInput {
            expected_version: Some(STORED_VERSION),
            url: None,
            event_types: Some(endpoint.event_types().clone()),
            enabled: Some(true),
        };

        let unchanged = use_case(store, unasked_guard())
            .execute(&admin(), endpoint.id(), input)
            .await
            .expect("nothing to change is not an error");

        assert_eq!(unchanged.version(), STORED_VERSION);
        assert_eq!(unchanged.updated_at(), created_at());
    }
}

// ---------------------------------------------------------------------------------------------
// rotate_secret
// ---------------------------------------------------------------------------------------------

mod rotating {
    use super::*;

    fn use_case(store: MockWebhookStore) -> RotateSecret {
        RotateSecret::new(
            Arc::new(store),
            admins(),
            Arc::new(generating_secret()),
            Arc::new(clock()),
        )
    }

    #[tokio::test]
    async fn the_endpoint_stored_signs_with_the_new_secret_and_the_old_one_for_a_day() {
        let endpoint = stored_endpoint();
        let mut store = MockWebhookStore::new();
        expect_finds(&mut store, &endpoint, 1);
        let updates = updates_answering(&mut store, 0, true);

        let rotated =
            use_case(store).execute(&admin(), endpoint.id()).await.expect("the secret is rotated");

        let updates = recorded(&updates);
        let [stored] = updates.as_slice() else { panic!("one update, got {updates:?}") };
        assert_eq!(exposed(&stored.signing_secrets(now())), [GENERATED_SECRET, STORED_SECRET]);
        let grace = TimeDelta::from_std(PREVIOUS_SECRET_GRACE).expect("in range");
        assert_eq!(
            exposed(&stored.signing_secrets(now() + grace)),
            [GENERATED_SECRET],
            "the old secret stops signing after the grace"
        );
        assert_eq!(stored.version(), STORED_VERSION + 1);
        assert_eq!(rotated.secret().expose(), GENERATED_SECRET, "shown to the admin once");
    }

    #[tokio::test]
    async fn rotating_the_secret_of_a_missing_endpoint_is_not_found() {
        let mut store = MockWebhookStore::new();
        store.expect_find().times(1).returning(|_| Ok(None));
        store.expect_update().never();

        let result = use_case(store).execute(&admin(), WebhookEndpointId::new()).await;

        assert!(matches!(result, Err(RotateSecretError::NotFound)), "{result:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// retry_delivery
// ---------------------------------------------------------------------------------------------

mod retrying {
    use super::*;

    fn use_case(store: MockWebhookStore) -> RetryDelivery {
        RetryDelivery::new(Arc::new(store), admins(), Arc::new(clock()))
    }

    /// A store holding `endpoint` and `delivery`, each read at most once.
    fn store_holding(endpoint: &WebhookEndpoint, delivery: &WebhookDelivery) -> MockWebhookStore {
        let mut store = MockWebhookStore::new();
        expect_finds(&mut store, endpoint, 1);
        let (id, found) = (delivery.id(), delivery.clone());
        store
            .expect_find_delivery()
            .withf(move |asked| *asked == id)
            .times(0..=1)
            .returning(move |_| Ok(Some(found.clone())));
        store
    }

    #[tokio::test]
    async fn a_delivery_of_another_endpoint_is_not_found_and_nothing_is_saved() {
        let endpoint = stored_endpoint();
        let delivery = failed_delivery(WebhookEndpointId::new());
        let mut store = store_holding(&endpoint, &delivery);
        store.expect_save_delivery().never();

        let result = use_case(store).execute(&admin(), endpoint.id(), delivery.id()).await;

        assert!(matches!(result, Err(RetryDeliveryError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn a_delivery_of_a_disabled_endpoint_is_refused_and_nothing_is_saved() {
        let endpoint = WebhookEndpoint::restore(WebhookEndpointParts {
            disabled: Some(DisabledReason::Gone),
            ..stored_parts()
        });
        let delivery = failed_delivery(endpoint.id());
        let mut store = store_holding(&endpoint, &delivery);
        store.expect_save_delivery().never();

        let result = use_case(store).execute(&admin(), endpoint.id(), delivery.id()).await;

        assert!(matches!(result, Err(RetryDeliveryError::EndpointDisabled)), "{result:?}");
    }

    #[tokio::test]
    async fn a_retried_delivery_is_saved_pending_and_due_now() {
        let endpoint = stored_endpoint();
        let delivery = failed_delivery(endpoint.id());
        let mut store = store_holding(&endpoint, &delivery);
        let saves = saves_recorded(&mut store, 1);

        let retried = use_case(store)
            .execute(&admin(), endpoint.id(), delivery.id())
            .await
            .expect("a failed delivery of an enabled endpoint is retried");

        let saves = recorded(&saves);
        let [saved] = saves.as_slice() else { panic!("one save, got {saves:?}") };
        assert_eq!(saved.id(), delivery.id());
        assert_eq!(saved.status(), DeliveryStatus::Pending);
        assert_eq!(saved.next_attempt_at(), Some(now()));
        assert_eq!(saved.parts().max_attempts, SCHEDULED_ATTEMPTS + 1, "one more attempt");
        assert_eq!(retried.status(), DeliveryStatus::Pending);
        assert_eq!(retried.next_attempt_at(), Some(now()));
    }
}

// ---------------------------------------------------------------------------------------------
// The delivery worker
// ---------------------------------------------------------------------------------------------

mod delivering {
    use super::*;

    /// A queue whose run schedules `scheduled` events and then hands out `due`, each asked once
    /// with the batch size, the clock's time and the lease.
    fn queue_handing_out(scheduled: u32, due: Vec<DueDelivery>) -> MockDeliveryQueue {
        let mut queue = MockDeliveryQueue::new();
        queue
            .expect_fan_out()
            .withf(|limit, at| *limit == DELIVERY_BATCH && *at == now())
            .times(1)
            .returning(move |_, _| Ok(scheduled));
        let lease_until = now() + TimeDelta::from_std(LEASE).expect("in range");
        queue
            .expect_claim_due()
            .withf(move |limit, at, until| {
                *limit == DELIVERY_BATCH && *at == now() && *until == lease_until
            })
            .times(1)
            .return_once(move |_, _, _| Ok(due));
        queue.expect_purge_finished().never();
        queue
    }

    /// A sender answering `outcome` to every message, recording each.
    fn sender_answering(outcome: SendOutcome) -> (MockWebhookSender, Recorded<WebhookMessage>) {
        let messages = Recorded::default();
        let log = Arc::clone(&messages);
        let mut sender = MockWebhookSender::new();
        sender.expect_send().returning(move |message| {
            log.lock().expect("the log is not poisoned").push(message.clone());
            outcome.clone()
        });
        (sender, messages)
    }

    fn answered(status: u16) -> SendOutcome {
        SendOutcome::Answered { status, retry_after: None }
    }

    fn worker(
        queue: MockDeliveryQueue,
        store: MockWebhookStore,
        sender: MockWebhookSender,
    ) -> DeliverWebhooks {
        DeliverWebhooks::new(Arc::new(queue), Arc::new(store), Arc::new(sender), Arc::new(clock()))
    }

    /// One new delivery to `endpoint`, due now.
    fn one_due(endpoint: &WebhookEndpoint) -> (DueDelivery, WebhookDeliveryId) {
        let delivery = new_delivery(endpoint.id());
        let id = delivery.id();
        (DueDelivery { delivery, endpoint: endpoint.clone() }, id)
    }

    #[tokio::test]
    async fn a_2xx_succeeds_the_delivery_and_leaves_an_endpoint_that_was_not_failing_alone() {
        let endpoint = stored_endpoint();
        let (due, delivery) = one_due(&endpoint);
        let mut store = MockWebhookStore::new();
        store.expect_find().never();
        store.expect_update().never();
        let saves = saves_recorded(&mut store, 1);
        let (sender, _) = sender_answering(answered(204));

        let report = worker(queue_handing_out(1, vec![due]), store, sender)
            .execute()
            .await
            .expect("the run completes");

        let saves = recorded(&saves);
        let [saved] = saves.as_slice() else { panic!("one save, got {saves:?}") };
        assert_eq!(saved.id(), delivery);
        assert_eq!(saved.status(), DeliveryStatus::Succeeded);
        assert_eq!(saved.attempts(), 1);
        assert_eq!(saved.next_attempt_at(), None);
        assert_eq!(saved.parts().response_status, Some(204));
        assert_eq!(
            report,
            DeliveryReport {
                scheduled: 1,
                attempts: vec![Attempted::Succeeded],
                disabled: Vec::new(),
                full: false,
            }
        );
    }

    #[tokio::test]
    async fn a_2xx_to_a_failing_endpoint_clears_its_failing_since() {
        let endpoint = WebhookEndpoint::restore(WebhookEndpointParts {
            failing_since: Some(now() - TimeDelta::hours(3)),
            ..stored_parts()
        });
        let (due, _) = one_due(&endpoint);
        let mut store = MockWebhookStore::new();
        expect_finds(&mut store, &endpoint, 1);
        let updates = updates_answering(&mut store, 0, true);
        saves_recorded(&mut store, 1);
        let (sender, _) = sender_answering(answered(200));

        let report = worker(queue_handing_out(0, vec![due]), store, sender)
            .execute()
            .await
            .expect("the run completes");

        let failing: Vec<_> = recorded(&updates).iter().map(|e| e.failing_since()).collect();
        assert_eq!(failing, [None]);
        assert_eq!(report.attempts, [Attempted::Succeeded]);
    }

    #[tokio::test]
    async fn a_500_retries_after_the_schedules_second_step_and_marks_the_endpoint_failing() {
        let endpoint = stored_endpoint();
        let (due, delivery) = one_due(&endpoint);
        let mut store = MockWebhookStore::new();
        expect_finds(&mut store, &endpoint, 1);
        let updates = updates_answering(&mut store, 0, true);
        let saves = saves_recorded(&mut store, 1);
        let (sender, _) = sender_answering(answered(500));

        let report = worker(queue_handing_out(1, vec![due]), store, sender)
            .execute()
            .await
            .expect("the run completes");

        let saves = recorded(&saves);
        let [saved] = saves.as_slice() else { panic!("one save, got {saves:?}") };
        assert_eq!(saved.id(), delivery);
        assert_eq!(saved.status(), DeliveryStatus::Pending);
        assert_eq!(saved.attempts(), 1);
        let step = TimeDelta::from_std(RETRY_SCHEDULE[1]).expect("in range");
        assert_eq!(step, seconds(5));
        assert_eq!(saved.next_attempt_at(), Some(now() + step));
        assert_eq!(saved.parts().response_status, Some(500));

        let updates = recorded(&updates);
        let [written] = updates.as_slice() else { panic!("one update, got {updates:?}") };
        assert_eq!(written.id(), endpoint.id());
        assert_eq!(written.failing_since(), Some(now()));
        assert!(written.is_enabled(), "one failure does not disable an endpoint");
        assert_eq!(written.stored_version(), STORED_VERSION);

        assert_eq!(report.attempts, [Attempted::Retrying]);
        assert!(report.disabled.is_empty());
    }

    #[tokio::test]
    async fn a_410_disables_the_endpoint_as_gone_and_fails_the_delivery() {
        let endpoint = stored_endpoint();
        let (due, delivery) = one_due(&endpoint);
        let mut store = MockWebhookStore::new();
        expect_finds(&mut store, &endpoint, 1);
        let updates = updates_answering(&mut store, 0, true);
        let saves = saves_recorded(&mut store, 1);
        let (sender, _) = sender_answering(answered(410));

        let report = worker(queue_handing_out(1, vec![due]), store, sender)
            .execute()
            .await
            .expect("the run completes");

        let reasons: Vec<_> = recorded(&updates).iter().map(|e| e.disabled_reason()).collect();
        assert_eq!(reasons, [Some(DisabledReason::Gone)]);
        let saves = recorded(&saves);
        let [saved] = saves.as_slice() else { panic!("one save, got {saves:?}") };
        assert_eq!(saved.id(), delivery);
        assert_eq!(saved.status(), DeliveryStatus::Failed);
        assert_eq!(saved.next_attempt_at(), None);
        assert_eq!(report.attempts, [Attempted::Failed]);
        assert_eq!(report.disabled, [(endpoint.id(), DisabledReason::Gone)]);
    }

    #[tokio::test]
    async fn a_retry_after_longer_than_the_step_is_honoured() {
        for (retry_after, expected) in [
            (Duration::from_secs(120), seconds(120)),
            (Duration::from_secs(2), seconds(5)), // shorter: the schedule's step stands
        ] {
            let endpoint = stored_endpoint();
            let (due, _) = one_due(&endpoint);
            let mut store = MockWebhookStore::new();
            expect_finds(&mut store, &endpoint, 1);
            updates_answering(&mut store, 0, true);
            let saves = saves_recorded(&mut store, 1);
            let (sender, _) = sender_answering(SendOutcome::Answered {
                status: 429,
                retry_after: Some(retry_after),
            });

            worker(queue_handing_out(1, vec![due]), store, sender)
                .execute()
                .await
                .expect("the run completes");

            let next: Vec<_> =
                recorded(&saves).iter().map(WebhookDelivery::next_attempt_at).collect();
            assert_eq!(next, [Some(now() + expected)], "Retry-After {retry_after:?}");
        }
    }

    #[tokio::test]
    async fn the_message_carries_the_event_the_url_and_both_secrets_during_a_rotation() {
        let endpoint = WebhookEndpoint::restore(WebhookEndpointParts {
            secret: secret("whsec_bmV3"),
            previous_secret: Some((secret("whsec_b2xk"), now() + TimeDelta::hours(1))),
            ..stored_parts()
        });
        let (due, _) = one_due(&endpoint);
        let mut store = MockWebhookStore::new();
        saves_recorded(&mut store, 1);
        let (sender, messages) = sender_answering(answered(200));

        worker(queue_handing_out(1, vec![due]), store, sender)
            .execute()
            .await
            .expect("the run completes");

        let messages = recorded(&messages);
        let [message] = messages.as_slice() else { panic!("one message, got {messages:?}") };
        assert_eq!(message.id, EVENT_ID, "webhook-id is the event's id");
        assert_eq!(message.body, PAYLOAD);
        assert_eq!(message.url.as_str(), STORED_URL);
        assert_eq!(message.timestamp, now());
        assert_eq!(exposed(&message.secrets), ["whsec_bmV3", "whsec_b2xk"]);
    }

    #[tokio::test]
    async fn a_store_failure_while_scheduling_fails_the_run_and_nothing_is_sent() {
        let mut queue = MockDeliveryQueue::new();
        queue.expect_fan_out().times(1).returning(|_, _| Err(store_down()));
        queue.expect_claim_due().never();
        let mut sender = MockWebhookSender::new();
        sender.expect_send().never();

        let result = worker(queue, untouched_store(), sender).execute().await;

        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_run_is_full_when_either_batch_came_full() {
        let endpoint = stored_endpoint();
        let batch = usize::try_from(DELIVERY_BATCH).expect("small");
        for (scheduled, claimed, full) in
            [(DELIVERY_BATCH, 0, true), (0, batch, true), (DELIVERY_BATCH - 1, batch - 1, false)]
        {
            let due: Vec<_> = (0..claimed).map(|_| one_due(&endpoint).0).collect();
            let mut store = MockWebhookStore::new();
            saves_recorded(&mut store, claimed);
            let (sender, _) = sender_answering(answered(200));

            let report = worker(queue_handing_out(scheduled, due), store, sender)
                .execute()
                .await
                .expect("the run completes");

            assert_eq!(report.full, full, "scheduled {scheduled}, claimed {claimed}");
            assert_eq!(report.scheduled, scheduled);
            assert_eq!(report.attempts.len(), claimed);
        }
    }
}
