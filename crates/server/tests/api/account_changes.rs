//! Account changes reach every instance (ADR 0027), through real HTTP on two instances that share
//! one database and, for most tests, one Redis: a demotion, a deletion or a new password made
//! through A takes effect on B's access-token check within the time a pub/sub message takes
//! (asserted with 1 s), and admin-only work through B is refused at once, whatever B's cache
//! still says, because it checks the acting account in the database. Without Redis, B follows
//! within `AUTH_CACHE_TTL`.
//!
//! What B's cache holds is observed through routes that use the cached check alone: `GET
//! /users/me` (401 for a deleted account or an ended session; 404 when the cache still passes a
//! deleted account's token and the user is then not found) and `GET /users/{id}/orders` of
//! another user (200 for an admin, 404 for a customer). A change "behind B's back" is one made
//! through a silent writer: an instance with no account cache and no Redis, which tells no one.
//!
//! Instances that share invalidations use a Redis key prefix of their own per test, so parallel
//! tests never hear each other's messages; Redis at `TEST_REDIS_URL` is required (the tests fail
//! when it does not answer).

use std::time::{Duration, Instant};

use orderly_server::settings::Settings;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, api_tests, assert_problem, json_body, test_redis_url};

/// How often a test looks again.
const POLL: Duration = Duration::from_millis(20);
/// The bound on B's check following a change made through A while Redis is up: the time one
/// pub/sub message takes, asserted generously.
const PUBSUB_BOUND: Duration = Duration::from_secs(1);
/// How long an instance may take to subscribe at start before Redis is taken for down.
const SUBSCRIBE_DEADLINE: Duration = Duration::from_secs(5);
/// An `AUTH_CACHE_TTL` that no test outlives: only an invalidation can explain a fresh answer.
const LONG_TTL: u64 = 60;

// --- helpers of this file ---

/// A key prefix (and so an invalidation channel) of its own, so parallel tests never meet.
fn redis_prefix() -> String {
    format!("orderly-test-{}", orderly_domain::Uuid::now_v7().simple())
}

/// An instance whose account cache lives `ttl` seconds and hears invalidations on `prefix`'s
/// channel.
fn shared_cache(settings: &mut Settings, prefix: &str, ttl: u64) {
    settings.redis.redis_url = Some(test_redis_url());
    settings.redis.redis_key_prefix = prefix.to_owned();
    settings.auth.auth_cache_ttl = ttl;
}

/// An instance without Redis whose account cache lives `ttl` seconds (0: no cache).
fn local_cache(settings: &mut Settings, ttl: u64) {
    settings.redis.redis_url = None;
    settings.auth.auth_cache_ttl = ttl;
}

/// An instance on the same database that caches no account and tells no other instance about
/// its changes.
async fn silent_writer(app: &TestApp) -> TestApp {
    app.another_instance(|settings| local_cache(settings, 0)).await
}

/// Two instances on one database sharing account invalidations through one fresh channel,
/// with caches that outlive the test; B is serving from its cache when this returns.
async fn two_shared_instances(app: &TestApp) -> (TestApp, TestApp) {
    let prefix = redis_prefix();
    let a = app.another_instance(|settings| shared_cache(settings, &prefix, LONG_TTL)).await;
    let b = app.another_instance(|settings| shared_cache(settings, &prefix, LONG_TTL)).await;
    require_redis(&a).await;
    wait_until_serving(app, &b).await;
    (a, b)
}

/// Fails (never skips) when the Redis of `TEST_REDIS_URL` does not answer.
async fn require_redis(app: &TestApp) {
    let ready = json_body(app.ready().await, StatusCode::OK).await;
    assert_eq!(
        ready["checks"]["redis"],
        json!("ok"),
        "Redis at {} is required by the account change tests: {ready}",
        test_redis_url()
    );
}

/// Waits until `instance` answers access-token checks from its cache (with Redis: once it has
/// subscribed): a probe customer's token is checked there, the probe deletes their account
/// through a silent writer, and the instance still lets the token through (the user is then not
/// found: 404) instead of refusing it (401). Fails after [`SUBSCRIBE_DEADLINE`].
async fn wait_until_serving(app: &TestApp, instance: &TestApp) {
    let writer = silent_writer(app).await;
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let probe = app.customer("Probe").await;
        assert_eq!(instance.me(&probe.access_token).await.status(), StatusCode::OK);
        let deleted = writer.delete_user(&probe.access_token, &probe.id).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        match instance.me(&probe.access_token).await.status() {
            StatusCode::NOT_FOUND => return,
            StatusCode::UNAUTHORIZED => {}
            other => panic!("a deleted probe's token: {other}"),
        }
        assert!(
            started.elapsed() < SUBSCRIBE_DEADLINE,
            "the account cache never served within {SUBSCRIBE_DEADLINE:?} ({attempt} attempts); \
             with REDIS_URL set, is Redis at {} up?",
            test_redis_url()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it answers `wanted`; fails when that takes longer than `bound` after
/// `since` or when it answers anything but `wanted` or `meanwhile`. Returns how long after
/// `since` it answered `wanted`.
async fn wait_for<F, Fut>(
    what: &str,
    since: Instant,
    bound: Duration,
    wanted: StatusCode,
    meanwhile: StatusCode,
    check: F,
) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let started = since;
    loop {
        let status = check().await.status();
        let elapsed = started.elapsed();
        if status == wanted {
            assert!(elapsed <= bound, "{what}: seen after {elapsed:?}, beyond {bound:?}");
            return elapsed;
        }
        assert_eq!(status, meanwhile, "{what}: only the cached answer or the new one");
        assert!(elapsed <= bound, "{what}: still {status} after {elapsed:?} (bound {bound:?})");
        tokio::time::sleep(POLL).await;
    }
}

/// Two admins (`root` stays one, `mallory` is the one whose account changes) and a customer.
async fn cast(app: &TestApp) -> (TestUser, TestUser, TestUser) {
    (app.admin().await, app.admin().await, app.customer("Victim").await)
}

/// `root` makes `user` a customer through `instance`.
async fn demote(instance: &TestApp, root: &TestUser, user: &TestUser) {
    let demoted =
        instance.patch_user(&root.access_token, &user.id, &json!({"role": "customer"}), None).await;
    let body = json_body(demoted, StatusCode::OK).await;
    assert_eq!(body["role"], json!("customer"));
}

fn draft(sku: &str) -> Value {
    json!({"sku": sku, "name": "Crown", "price": {"amount": 100, "currency": "EUR"}, "stock": 1})
}

/// Every admin-only call `mallory` may try through `instance`, each refused as for any
/// non-admin: 403 for the admin-only routes, 404 for another user's account (it does not exist
/// to a customer), and the victim is still a customer afterwards.
async fn every_admin_power_is_refused(
    instance: &TestApp,
    mallory: &TestUser,
    victim: &TestUser,
    product: &str,
) {
    let token = &mallory.access_token;
    let promoted = instance.patch_user(token, &victim.id, &json!({"role": "admin"}), None).await;
    assert_problem(promoted, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_problem(instance.list_users(token, "").await, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    assert_problem(instance.get_user(token, &victim.id).await, StatusCode::NOT_FOUND, "NOT_FOUND")
        .await;
    assert_problem(
        instance.delete_user(token, &victim.id).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    let created = instance.create_product(token, &draft("STOLEN-1")).await;
    assert_problem(created, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let patched = instance.patch_product(token, product, &json!({"stock": 0}), None).await;
    assert_problem(patched, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let archived = instance.archive_product(token, product).await;
    assert_problem(archived, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let listed = instance.list_products(Some(token), "?include_archived=true").await;
    assert_problem(listed, StatusCode::FORBIDDEN, "FORBIDDEN").await;
}

/// `GET /users/{victim}/orders` with `user`'s token through `instance`: 200 while the access
/// check takes `user` for an admin, 404 once it takes them for a customer.
async fn orders_of(instance: &TestApp, user: &TestUser, victim: &TestUser) -> Response {
    instance.user_orders(&user.access_token, &victim.id, "").await
}

// --- the tests ---

async fn a_demotion_through_one_instance_reaches_another_within_a_second(app: TestApp) {
    let (root, mallory, victim) = cast(&app).await;
    let product = app.product(&root, "AC-DEMOTE", 1000, 5).await;
    let product = product["id"].as_str().expect("an id");
    let (a, b) = two_shared_instances(&app).await;
    // B has checked Mallory's token as an admin's, and cached it.
    assert_eq!(orders_of(&b, &mallory, &victim).await.status(), StatusCode::OK);

    demote(&a, &root, &mallory).await;
    let demoted_at = Instant::now();
    // Right away, whether or not B has heard of it yet: Mallory promotes no one through B.
    let promoted =
        b.patch_user(&mallory.access_token, &victim.id, &json!({"role": "admin"}), None).await;
    let refused_after = demoted_at.elapsed();
    assert_problem(promoted, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let took = wait_for(
        "B's access check after a demotion through A",
        demoted_at,
        PUBSUB_BOUND,
        StatusCode::NOT_FOUND,
        StatusCode::OK,
        || orders_of(&b, &mallory, &victim),
    )
    .await;
    eprintln!(
        "after a demotion through A, B refused a promotion by the demoted admin sent \
         {refused_after:?} later, and its access check followed within {took:?}"
    );
    every_admin_power_is_refused(&b, &mallory, &victim, product).await;
    let victim_now =
        json_body(a.get_user(&root.access_token, &victim.id).await, StatusCode::OK).await;
    assert_eq!(victim_now["role"], json!("customer"), "nobody was promoted");
    let me = json_body(b.me(&mallory.access_token).await, StatusCode::OK).await;
    assert_eq!(me["role"], json!("customer"));
}

async fn admin_work_is_refused_at_once_even_where_the_cache_still_says_admin(app: TestApp) {
    let (root, mallory, victim) = cast(&app).await;
    let product = app.product(&root, "AC-STALE", 1000, 5).await;
    let product = product["id"].as_str().expect("an id");
    let writer = silent_writer(&app).await;
    // No Redis: B's cache keeps what it has for a minute, and nothing tells it otherwise.
    let b = app.another_instance(|settings| local_cache(settings, LONG_TTL)).await;
    assert_eq!(orders_of(&b, &mallory, &victim).await.status(), StatusCode::OK);

    demote(&writer, &root, &mallory).await;
    assert_eq!(
        orders_of(&b, &mallory, &victim).await.status(),
        StatusCode::OK,
        "B's cache still takes Mallory for an admin"
    );
    every_admin_power_is_refused(&b, &mallory, &victim, product).await;
    assert_eq!(
        orders_of(&b, &mallory, &victim).await.status(),
        StatusCode::OK,
        "the refusals came from the database, not from B's cache"
    );

    // A deleted admin, likewise: B's cache still passes the token, the admin routes refuse it.
    let gone = app.admin().await;
    assert_eq!(orders_of(&b, &gone, &victim).await.status(), StatusCode::OK);
    let deleted = writer.delete_user(&root.access_token, &gone.id).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        orders_of(&b, &gone, &victim).await.status(),
        StatusCode::OK,
        "B's cache still passes the deleted admin's token"
    );
    let token = &gone.access_token;
    assert_problem(b.list_users(token, "").await, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let created = b.create_product(token, &draft("STOLEN-2")).await;
    assert_problem(created, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let promoted = b.patch_user(token, &victim.id, &json!({"role": "admin"}), None).await;
    assert_problem(promoted, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let listed = b.list_products(Some(token), "?include_archived=true").await;
    assert_problem(listed, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
}

async fn a_deletion_through_one_instance_refuses_the_token_on_another_within_a_second(
    app: TestApp,
) {
    let (root, mallory, _) = cast(&app).await;
    let ada = app.customer("Ada").await;
    let (a, b) = two_shared_instances(&app).await;
    assert_eq!(b.me(&ada.access_token).await.status(), StatusCode::OK);
    assert_eq!(b.me(&mallory.access_token).await.status(), StatusCode::OK);

    // A customer deletes their own account through A.
    let deleted = a.delete_user(&ada.access_token, &ada.id).await;
    let changed_at = Instant::now();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let took = wait_for(
        "B's access check after a deletion through A",
        changed_at,
        PUBSUB_BOUND,
        StatusCode::UNAUTHORIZED,
        StatusCode::NOT_FOUND,
        || b.me(&ada.access_token),
    )
    .await;
    eprintln!("B refused a deleted customer's token {took:?} after the deletion through A");

    // An admin deleted through A: no admin work through B at once, then no token at all.
    let deleted = a.delete_user(&root.access_token, &mallory.id).await;
    let changed_at = Instant::now();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let listed = b.list_users(&mallory.access_token, "").await;
    assert!(
        [StatusCode::FORBIDDEN, StatusCode::UNAUTHORIZED].contains(&listed.status()),
        "a deleted admin lists no users: {}",
        listed.status()
    );
    let took = wait_for(
        "B's access check after an admin's deletion through A",
        changed_at,
        PUBSUB_BOUND,
        StatusCode::UNAUTHORIZED,
        StatusCode::NOT_FOUND,
        || b.me(&mallory.access_token),
    )
    .await;
    eprintln!("B refused a deleted admin's token {took:?} after the deletion through A");
    assert_problem(
        b.list_users(&mallory.access_token, "").await,
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
    )
    .await;
}

async fn a_password_change_through_one_instance_ends_the_sessions_on_another_within_a_second(
    app: TestApp,
) {
    let ada = app.customer("Ada").await;
    let (a, b) = two_shared_instances(&app).await;
    assert_eq!(b.me(&ada.access_token).await.status(), StatusCode::OK);

    let changed = a
        .patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"password": "a brand new passphrase", "current_password": ada.password}),
            None,
        )
        .await;
    let changed_at = Instant::now();
    json_body(changed, StatusCode::OK).await;
    let took = wait_for(
        "B's access check after a new password through A",
        changed_at,
        PUBSUB_BOUND,
        StatusCode::UNAUTHORIZED,
        StatusCode::OK,
        || b.me(&ada.access_token),
    )
    .await;
    eprintln!("B ended the old session {took:?} after the password change through A");
    let tokens =
        json_body(b.login(&ada.email, "a brand new passphrase").await, StatusCode::OK).await;
    let fresh = tokens["access_token"].as_str().expect("a token");
    assert_eq!(a.me(fresh).await.status(), StatusCode::OK, "a new login works everywhere");
    assert_eq!(b.me(fresh).await.status(), StatusCode::OK);
}

async fn an_unreachable_redis_bypasses_the_account_cache_and_fails_no_change(app: TestApp) {
    let (root, mallory, victim) = cast(&app).await;
    let writer = silent_writer(&app).await;
    let cut_off = app
        .another_instance(|settings| {
            settings.redis.redis_url = Some("redis://127.0.0.1:1".to_owned());
            settings.redis.redis_key_prefix = redis_prefix();
            settings.auth.auth_cache_ttl = LONG_TTL;
        })
        .await;

    // Never subscribed, the instance checks every token against the database.
    assert_eq!(orders_of(&cut_off, &mallory, &victim).await.status(), StatusCode::OK);
    demote(&writer, &root, &mallory).await;
    assert_eq!(orders_of(&cut_off, &mallory, &victim).await.status(), StatusCode::NOT_FOUND);
    for round in 0..3 {
        let probe = app.customer("Probe").await;
        assert_eq!(cut_off.me(&probe.access_token).await.status(), StatusCode::OK);
        let deleted = writer.delete_user(&probe.access_token, &probe.id).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let status = cut_off.me(&probe.access_token).await.status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "round {round}: no cache without Redis");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Changes still succeed, whatever becomes of their invalidation message.
    let started = Instant::now();
    let changed = cut_off
        .patch_user(
            &victim.access_token,
            &victim.id,
            &json!({"password": "a brand new passphrase", "current_password": victim.password}),
            None,
        )
        .await;
    json_body(changed, StatusCode::OK).await;
    assert_eq!(cut_off.me(&victim.access_token).await.status(), StatusCode::UNAUTHORIZED);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no change waits long on the dead Redis: {:?}",
        started.elapsed()
    );
}

async fn without_redis_another_instance_follows_within_the_ttl(app: TestApp) {
    const TTL: u64 = 1;
    // The TTL, plus room for the polling and a loaded machine.
    let bound = Duration::from_secs(TTL) + Duration::from_millis(500);
    let (root, mallory, victim) = cast(&app).await;
    let ada = app.customer("Ada").await;
    let a = app.another_instance(|settings| local_cache(settings, TTL)).await;
    let b = app.another_instance(|settings| local_cache(settings, TTL)).await;
    assert_eq!(orders_of(&b, &mallory, &victim).await.status(), StatusCode::OK);

    demote(&a, &root, &mallory).await;
    let demoted_at = Instant::now();
    assert_problem(
        b.list_users(&mallory.access_token, "").await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    let took = wait_for(
        "B's access check after a demotion through A, without Redis",
        demoted_at,
        bound,
        StatusCode::NOT_FOUND,
        StatusCode::OK,
        || orders_of(&b, &mallory, &victim),
    )
    .await;
    eprintln!("without Redis, B followed a demotion in {took:?} (AUTH_CACHE_TTL {TTL} s)");

    // B checks (and caches) Ada's token again just before her password changes through A.
    assert_eq!(b.me(&ada.access_token).await.status(), StatusCode::OK);

    let changed = a
        .patch_user(
            &ada.access_token,
            &ada.id,
            &json!({"password": "a brand new passphrase", "current_password": ada.password}),
            None,
        )
        .await;
    let changed_at = Instant::now();
    json_body(changed, StatusCode::OK).await;
    let took = wait_for(
        "B's access check after a new password through A, without Redis",
        changed_at,
        bound,
        StatusCode::UNAUTHORIZED,
        StatusCode::OK,
        || b.me(&ada.access_token),
    )
    .await;
    eprintln!("without Redis, B ended the old session in {took:?} (AUTH_CACHE_TTL {TTL} s)");
}

api_tests!(
    a_demotion_through_one_instance_reaches_another_within_a_second,
    admin_work_is_refused_at_once_even_where_the_cache_still_says_admin,
    a_deletion_through_one_instance_refuses_the_token_on_another_within_a_second,
    a_password_change_through_one_instance_ends_the_sessions_on_another_within_a_second,
    an_unreachable_redis_bypasses_the_account_cache_and_fails_no_change,
    without_redis_another_instance_follows_within_the_ttl,
);
