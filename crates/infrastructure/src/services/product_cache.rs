//! A per-instance cache of products for `GET /products/{id}`, and of list pages for
//! `GET /products`, kept correct by invalidation (ADR 0025, ADR 0043).
//!
//! - Every write that changes a product (an update, a reservation or release of stock) drops the
//!   product's entry once its transaction has ended, on this instance at once and, with Redis,
//!   on every other instance through one `PUBLISH` that the write awaits (at most 300 ms, and
//!   not at all while Redis is unhealthy).
//! - A read that raced a write does not put what it read in the cache: a generation counter,
//!   moved by every invalidation, is read before the database read and checked after the
//!   insertion (the entry is taken out again when it moved).
//! - With Redis, entries are served only while this instance's subscription is up and proved
//!   live by a `PING` answered less than 250 ms ago, and Redis is healthy (ADR 0029: a Redis
//!   that hangs is a Redis that is down); it is emptied whenever the subscription is (re)made,
//!   since messages may have been missed. While it is not served, every read goes to the
//!   database.
//! - A list page may change with any product (a new one, a rename, stock taken by an order), so
//!   a page is served only while no invalidation at all has happened since it was read: it
//!   carries the generation it was read at. Products and pages share one capacity, counted in
//!   products.
//! - Whatever happens to Redis, an entry lives at most the cache's TTL: that is the bound on a
//!   stale read. With Redis up, the bound is the time a message takes (milliseconds).
//!
//! The messages and the subscription are [`Invalidations`], shared with the account cache.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use orderly_application::{
    StoreError,
    pagination::{Page, PageRequest},
    ports::{ProductFilter, ProductQueries},
};
use orderly_domain::{Product, ProductId};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use quick_cache::{Weighter, sync::Cache};
use uuid::Uuid;

use super::invalidation::{Invalidations, Listener, Topic};

/// How the product cache's messages and warnings are named.
const TOPIC: Topic = Topic { name: "product cache", ttl_setting: "PRODUCT_CACHE_TTL" };

/// How big the cache is and how long its entries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductCacheSettings {
    /// How long an entry lives: the bound on a stale read when an invalidation is lost.
    /// Zero turns the cache off.
    pub ttl: Duration,
    /// Products kept at most, alone or in list pages; beyond, the least used entries are dropped.
    pub capacity: u64,
}

/// The cache, cheap to clone. [`ProductCache::disabled`] caches nothing and invalidates nothing.
#[derive(Clone, Default)]
pub struct ProductCache {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for ProductCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductCache")
            .field("enabled", &self.inner.is_some())
            .field("shared", &self.inner.as_ref().is_some_and(|inner| inner.bus.is_some()))
            .finish()
    }
}

struct Inner {
    entries: Cache<Key, Entry, ProductsHeld>,
    /// How long an entry is served after it was stored.
    ttl: Duration,
    metrics: CacheMetrics,
    /// Moved by every invalidation, local or received.
    generation: AtomicU64,
    /// Whether entries may be served and stored: always without Redis; with Redis, while the
    /// subscription is up.
    serving: AtomicBool,
    /// With Redis: where invalidations are published and heard (its subscriber stops with the
    /// cache).
    bus: Option<Invalidations>,
}

/// What an entry is stored under: a product's id, or the list and page a page answers.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Product(ProductId),
    Page(Box<PageKey>),
}

/// Which page of which list.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PageKey {
    filter: ProductFilter,
    page: PageRequest,
}

/// A cached product or page and the instant it stops being served.
#[derive(Clone)]
struct Entry {
    value: Cached,
    expires_at: Instant,
}

#[derive(Clone)]
enum Cached {
    Product(Product),
    /// A page and the generation it was read at: served only while that generation is current,
    /// since any product write may change what a list shows.
    Page {
        page: Arc<Page<Product>>,
        generation: u64,
    },
}

/// Weighs an entry by the products it holds, so that `capacity` bounds products wherever they
/// are kept.
#[derive(Clone)]
struct ProductsHeld;

impl Weighter<Key, Entry> for ProductsHeld {
    fn weight(&self, _key: &Key, entry: &Entry) -> u64 {
        match &entry.value {
            Cached::Product(_) => 1,
            Cached::Page { page, .. } => u64::try_from(page.items.len()).unwrap_or(u64::MAX).max(1),
        }
    }
}

impl ProductCache {
    /// A cache that caches nothing.
    #[must_use]
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// A cache for one instance (no Redis): other instances see this one's writes within the
    /// TTL. Disabled when `settings.ttl` is zero.
    #[must_use]
    pub fn local(settings: ProductCacheSettings) -> Self {
        if settings.ttl.is_zero() {
            return Self::disabled();
        }
        Self { inner: Some(Arc::new(Inner::new(settings, None))) }
    }

    /// A cache whose invalidations travel through Redis on `channel`: every instance on the
    /// same Redis and channel drops an entry when any of them writes the product. Redis need
    /// not be up: until the subscription is made (and whenever it is lost) the cache is
    /// bypassed. Disabled when `settings.ttl` is zero.
    ///
    /// # Errors
    /// When `url` is not a valid Redis URL.
    pub fn shared(
        settings: ProductCacheSettings,
        url: &str,
        channel: impl Into<String>,
    ) -> anyhow::Result<Self> {
        if settings.ttl.is_zero() {
            return Ok(Self::disabled());
        }
        let bus = Invalidations::new(TOPIC, url, channel)?;
        let inner = Arc::new(Inner::new(settings, Some(bus)));
        if let Some(bus) = &inner.bus {
            bus.listen(Arc::downgrade(&inner));
        }
        Ok(Self { inner: Some(inner) })
    }

    /// Drops the entries of `ids` here and, with Redis, on the other instances. Call it once
    /// the write's transaction has ended (committed or not): a read that starts later reads
    /// the new state, one that started earlier does not store what it read.
    pub async fn invalidate(&self, ids: &[ProductId]) {
        let Some(inner) = &self.inner else { return };
        if ids.is_empty() {
            return;
        }
        inner.evict(ids, &inner.metrics.local);
        if let Some(bus) = &inner.bus {
            bus.publish(ids.iter().map(|id| id.into_uuid())).await;
        }
    }

    /// Whether entries are served now (for tests and readiness of the cache).
    #[must_use]
    pub fn is_serving(&self) -> bool {
        self.inner.as_ref().is_some_and(|inner| inner.serves())
    }

    /// Registers the cache's series in `registry` (nothing when the cache is off):
    /// `orderly_product_cache_lookups_total{result}`,
    /// `orderly_product_list_cache_lookups_total{result}`, `..._invalidations_total{origin}`,
    /// `orderly_product_cache_serving`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register_metrics(&self, registry: &Registry) -> prometheus::Result<()> {
        let Some(inner) = &self.inner else { return Ok(()) };
        registry.register(Box::new(inner.metrics.products.series.clone()))?;
        registry.register(Box::new(inner.metrics.pages.series.clone()))?;
        registry.register(Box::new(inner.metrics.invalidations.clone()))?;
        registry.register(Box::new(inner.metrics.serving.clone()))
    }

    /// The cached product, when there is one and the cache serves (counted).
    fn get(&self, id: ProductId) -> Option<Product> {
        let inner = self.inner.as_ref()?;
        match inner.lookup(&Key::Product(id), &inner.metrics.products)? {
            Cached::Product(product) => Some(product),
            Cached::Page { .. } => None,
        }
    }

    /// The cached page, when there is one read since the last invalidation and the cache serves
    /// (counted).
    fn page(&self, key: &Key) -> Option<Arc<Page<Product>>> {
        let inner = self.inner.as_ref()?;
        match inner.lookup(key, &inner.metrics.pages)? {
            Cached::Page { page, .. } => Some(page),
            Cached::Product(_) => None,
        }
    }

    /// The generation before a read from the database.
    fn generation(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| inner.generation.load(Ordering::SeqCst))
    }

    /// Stores `product`, read at `generation`, unless an invalidation came in between.
    fn fill(&self, generation: u64, product: &Product) {
        self.store(generation, Key::Product(product.id()), || Cached::Product(product.clone()));
    }

    /// Stores `page` of the list `key` names, read at `generation`, unless an invalidation came
    /// in between.
    fn fill_page(&self, generation: u64, key: Key, page: &Page<Product>) {
        self.store(generation, key, || Cached::Page { page: Arc::new(page.clone()), generation });
    }

    fn store(&self, generation: u64, key: Key, value: impl FnOnce() -> Cached) {
        let Some(inner) = &self.inner else { return };
        if !inner.serves() || inner.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let entry = Entry { value: value(), expires_at: Instant::now() + inner.ttl };
        inner.entries.insert(key.clone(), entry);
        // An invalidation between the check and the insertion moved the generation after its
        // eviction may have run before the insertion: take the entry out again.
        if inner.generation.load(Ordering::SeqCst) != generation {
            inner.entries.remove(&key);
        }
    }
}

/// The cache's series: counters bumped where things happen, registered by
/// [`ProductCache::register_metrics`].
struct CacheMetrics {
    /// Reads of one product.
    products: Lookups,
    /// Reads of a list page.
    pages: Lookups,
    invalidations: IntCounterVec,
    local: IntCounter,
    remote: IntCounter,
    serving: IntGauge,
}

/// One lookup counter by the cache's answer.
struct Lookups {
    series: IntCounterVec,
    hit: IntCounter,
    miss: IntCounter,
    bypass: IntCounter,
}

impl Lookups {
    fn new(name: &str, what: &str) -> Self {
        let series = IntCounterVec::new(
            Opts::new(
                name,
                format!(
                    "{what} by the cache's answer: hit, miss (read from the database), bypass \
                     (the cache does not serve: its Redis subscription is down)."
                ),
            ),
            &["result"],
        )
        .unwrap_or_else(|error| unreachable!("a valid series: {error}"));
        Self {
            hit: series.with_label_values(&["hit"]),
            miss: series.with_label_values(&["miss"]),
            bypass: series.with_label_values(&["bypass"]),
            series,
        }
    }
}

impl CacheMetrics {
    fn new() -> Self {
        let invalidations = IntCounterVec::new(
            Opts::new(
                "orderly_product_cache_invalidations_total",
                "Product cache invalidations, by origin: a write on this instance (local) or a \
                 message from another one (remote).",
            ),
            &["origin"],
        )
        .unwrap_or_else(|error| unreachable!("a valid series: {error}"));
        let serving = IntGauge::new(
            "orderly_product_cache_serving",
            "1 while the product cache answers reads, 0 while it is bypassed (Redis \
             subscription down or not live, Redis unhealthy).",
        )
        .unwrap_or_else(|error| unreachable!("a valid series: {error}"));
        Self {
            products: Lookups::new("orderly_product_cache_lookups_total", "Product reads"),
            pages: Lookups::new(
                "orderly_product_list_cache_lookups_total",
                "Product list pages read",
            ),
            local: invalidations.with_label_values(&["local"]),
            remote: invalidations.with_label_values(&["remote"]),
            invalidations,
            serving,
        }
    }
}

impl Inner {
    fn new(settings: ProductCacheSettings, bus: Option<Invalidations>) -> Self {
        let metrics = CacheMetrics::new();
        metrics.serving.set(i64::from(bus.is_none()));
        Self {
            metrics,
            entries: Cache::with_weighter(
                usize::try_from(settings.capacity).unwrap_or(usize::MAX),
                settings.capacity,
                ProductsHeld,
            ),
            ttl: settings.ttl,
            generation: AtomicU64::new(0),
            serving: AtomicBool::new(bus.is_none()),
            bus,
        }
    }

    /// Whether entries may be served now: without Redis, always; with Redis, while subscribed
    /// and the subscription is live (its last `PING` answered within
    /// [`super::invalidation::LIVENESS`], Redis healthy). Keeps the serving gauge in step.
    fn serves(&self) -> bool {
        let serves = self.serving.load(Ordering::SeqCst)
            && self.bus.as_ref().is_none_or(Invalidations::is_live);
        self.metrics.serving.set(i64::from(serves));
        serves
    }

    fn evict(&self, ids: &[ProductId], origin: &IntCounter) {
        origin.inc();
        self.generation.fetch_add(1, Ordering::SeqCst);
        for id in ids {
            self.entries.remove(&Key::Product(*id));
        }
    }

    /// The entry under `key` when the cache serves and the entry is still good: not expired
    /// and, for a page, read at the current generation. Counted in `lookups`.
    fn lookup(&self, key: &Key, lookups: &Lookups) -> Option<Cached> {
        if !self.serves() {
            lookups.bypass.inc();
            return None;
        }
        // An expired or outdated entry stays until a fresh read replaces it or it is evicted:
        // a miss. Only a page reads the generation: a product hit does not touch it.
        let found = self.entries.get(key).filter(|entry| {
            entry.expires_at > Instant::now()
                && match entry.value {
                    Cached::Product(_) => true,
                    Cached::Page { generation, .. } => {
                        generation == self.generation.load(Ordering::SeqCst)
                    }
                }
        });
        if found.is_some() { &lookups.hit } else { &lookups.miss }.inc();
        found.map(|entry| entry.value)
    }

    /// Stops or starts serving; either way the entries are dropped, since invalidations may
    /// have been missed while the subscription was down.
    fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
        self.metrics.serving.set(i64::from(serving));
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }
}

#[async_trait]
impl Listener for Inner {
    async fn subscribed(&self) {
        self.set_serving(true);
    }

    async fn received(&self, ids: Option<Vec<Uuid>>) {
        match ids {
            Some(ids) => {
                let ids: Vec<ProductId> = ids.into_iter().map(ProductId::from_uuid).collect();
                self.evict(&ids, &self.metrics.remote);
            }
            None => self.set_serving(true),
        }
    }

    async fn lost(&self) {
        self.set_serving(false);
    }
}

/// [`ProductQueries`] that answers from a [`ProductCache`] when it can.
pub struct CachedProducts {
    inner: Arc<dyn ProductQueries>,
    cache: ProductCache,
}

impl std::fmt::Debug for CachedProducts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedProducts").field("cache", &self.cache).finish_non_exhaustive()
    }
}

impl CachedProducts {
    #[must_use]
    pub fn new(inner: Arc<dyn ProductQueries>, cache: ProductCache) -> Self {
        Self { inner, cache }
    }
}

#[async_trait]
impl ProductQueries for CachedProducts {
    async fn find(&self, id: ProductId) -> Result<Option<Product>, StoreError> {
        if let Some(product) = self.cache.get(id) {
            return Ok(Some(product));
        }
        let generation = self.cache.generation();
        let product = self.inner.find(id).await?;
        if let Some(product) = &product {
            self.cache.fill(generation, product);
        }
        Ok(product)
    }

    async fn list(
        &self,
        filter: ProductFilter,
        page: PageRequest,
    ) -> Result<Page<Product>, StoreError> {
        if self.cache.inner.is_none() {
            return self.inner.list(filter, page).await;
        }
        let key = Key::Page(Box::new(PageKey { filter: filter.clone(), page: page.clone() }));
        if let Some(cached) = self.cache.page(&key) {
            return Ok(Page::clone(&cached));
        }
        let generation = self.cache.generation();
        let read = self.inner.list(filter, page).await?;
        self.cache.fill_page(generation, key, &read);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use orderly_application::ports::ProductSort;
    use orderly_domain::{Currency, Money, ProductDraft, ProductName, Sku, time::Timestamp};

    use super::*;

    fn settings() -> ProductCacheSettings {
        ProductCacheSettings { ttl: Duration::from_secs(60), capacity: 100 }
    }

    fn product(name: &str) -> Product {
        let draft = ProductDraft {
            sku: Sku::parse("SKU-1").expect("sku"),
            name: ProductName::parse(name).expect("name"),
            description: None,
            price: Money::new(100, Currency::parse("EUR").expect("currency")).expect("money"),
            stock: 3,
        };
        Product::create(draft, Timestamp::default()).expect("a product")
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_stored() {
        let cache = ProductCache::local(settings());
        let old = product("Old");
        let before = cache.generation();
        let inner = cache.inner.as_ref().expect("enabled");
        inner.evict(&[old.id()], &inner.metrics.local);
        cache.fill(before, &old);
        assert!(cache.get(old.id()).is_none());
        cache.fill(cache.generation(), &old);
        assert_eq!(cache.get(old.id()).map(|p| p.name().as_str().to_owned()), Some("Old".into()));
    }

    #[tokio::test]
    async fn an_invalidation_drops_the_entry() {
        let cache = ProductCache::local(settings());
        let cached = product("Cached");
        cache.fill(cache.generation(), &cached);
        assert!(cache.get(cached.id()).is_some());
        cache.invalidate(&[cached.id()]).await;
        assert!(cache.get(cached.id()).is_none());
    }

    #[test]
    fn an_entry_is_not_served_after_its_ttl() {
        let cache = ProductCache::local(ProductCacheSettings {
            ttl: Duration::from_millis(500),
            capacity: 9,
        });
        let cached = product("Cached");
        cache.fill(cache.generation(), &cached);
        assert!(cache.get(cached.id()).is_some());
        std::thread::sleep(Duration::from_millis(600));
        assert!(cache.get(cached.id()).is_none(), "expired");
        cache.fill(cache.generation(), &cached);
        assert!(cache.get(cached.id()).is_some(), "read again, stored again");
    }

    /// `CachedProducts` over a store that answers `list` with one page of `listed`, as often as
    /// it is asked, and counts how often that is.
    fn listing(
        cache: &ProductCache,
        listed: &Product,
    ) -> (CachedProducts, Arc<std::sync::atomic::AtomicUsize>) {
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&reads);
        let page = Page { items: vec![listed.clone()], next: None };
        let mut store = orderly_application::ports::MockProductQueries::new();
        store.expect_list().returning(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(page.clone())
        });
        (CachedProducts::new(Arc::new(store), cache.clone()), reads)
    }

    #[tokio::test]
    async fn a_page_is_served_until_any_product_is_invalidated() {
        let cache = ProductCache::local(settings());
        let listed = product("Listed");
        let (products, reads) = listing(&cache, &listed);
        let first = PageRequest::default();
        let read = products.list(ProductFilter::default(), first.clone()).await.expect("a page");
        let again = products.list(ProductFilter::default(), first.clone()).await.expect("a page");
        for page in [read, again] {
            let ids: Vec<ProductId> = page.items.iter().map(Product::id).collect();
            assert_eq!(ids, vec![listed.id()]);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "the second read came from the cache");

        // Another list is another entry.
        let by_name = ProductFilter { sort: ProductSort::NameAsc, ..ProductFilter::default() };
        products.list(by_name, first.clone()).await.expect("a page");
        assert_eq!(reads.load(Ordering::SeqCst), 2);

        // A product the page does not hold may now belong in it: any invalidation outdates it.
        cache.invalidate(&[product("Elsewhere").id()]).await;
        products.list(ProductFilter::default(), first.clone()).await.expect("a page");
        assert_eq!(reads.load(Ordering::SeqCst), 3, "read again after the invalidation");
        products.list(ProductFilter::default(), first).await.expect("a page");
        assert_eq!(reads.load(Ordering::SeqCst), 3, "and cached again");
    }

    #[test]
    fn a_page_read_before_an_invalidation_is_not_served() {
        let cache = ProductCache::local(settings());
        let key = Key::Page(Box::new(PageKey {
            filter: ProductFilter::default(),
            page: PageRequest::default(),
        }));
        let page = Page { items: vec![product("Old")], next: None };
        let before = cache.generation();
        let inner = cache.inner.as_ref().expect("enabled");
        inner.evict(&[product("Other").id()], &inner.metrics.local);
        cache.fill_page(before, key.clone(), &page);
        assert!(cache.page(&key).is_none());
        cache.fill_page(cache.generation(), key.clone(), &page);
        assert_eq!(cache.page(&key).map(|cached| cached.items.len()), Some(1));
    }

    #[tokio::test]
    async fn without_a_cache_every_list_is_read() {
        let cache = ProductCache::disabled();
        let (products, reads) = listing(&cache, &product("Listed"));
        for _ in 0..2 {
            products.list(ProductFilter::default(), PageRequest::default()).await.expect("a page");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = ProductCache::local(ProductCacheSettings { ttl: Duration::ZERO, capacity: 9 });
        let cached = product("Cached");
        cache.fill(cache.generation(), &cached);
        assert!(cache.get(cached.id()).is_none());
        assert!(!cache.is_serving());
    }
}
