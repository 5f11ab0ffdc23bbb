//! The composition root's own series (ADR 0018): the build, and the order-expiry job it runs.
//! The HTTP layer's series are in `orderly_api::metrics`, the adapters' in
//! `orderly_infrastructure`; all of them go to the one registry of the application instance.

use std::time::{SystemTime, UNIX_EPOCH};

use orderly_api::metrics::ApiMetrics;
use orderly_domain::OrderAction;
use prometheus::{Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Registers `orderly_build_info{version}`, always 1.
///
/// # Errors
/// When a series of the same name is already registered.
pub fn register_build_info(registry: &Registry) -> prometheus::Result<()> {
    let info = IntGaugeVec::new(
        Opts::new("orderly_build_info", "Always 1; `version` is the running build's."),
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(info))
}

/// What the expiry job records: its runs by outcome, the time of its last successful run, and
/// the orders it expired (`orderly_order_transitions_total{action="expire"}`).
#[derive(Clone)]
pub struct ExpiryMetrics {
    runs: IntCounterVec,
    last_success: Gauge,
    moves: ApiMetrics,
}

impl ExpiryMetrics {
    /// Registers the job's series in the registry of `moves`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register(registry: &Registry, moves: ApiMetrics) -> prometheus::Result<Self> {
        let runs = IntCounterVec::new(
            Opts::new(
                "orderly_expiry_runs_total",
                "Runs of the order-expiry job on this instance, by outcome: ok or error.",
            ),
            &["outcome"],
        )?;
        for outcome in ["ok", "error"] {
            runs.with_label_values(&[outcome]);
        }
        let last_success = Gauge::new(
            "orderly_expiry_last_success_timestamp_seconds",
            "Unix time of the order-expiry job's last successful run on this instance (0: none yet).",
        )?;
        registry.register(Box::new(runs.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        Ok(Self { runs, last_success, moves })
    }

    /// One run of the job (one tick, all its batches), which expired `expired` orders and
    /// ended well (`ok`) or on an error.
    pub fn ran(&self, expired: usize, ok: bool) {
        // The time first: a scrape between the two never sees a successful run without it.
        if ok {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
        self.moves.orders_moved(OrderAction::Expire, u64::try_from(expired).unwrap_or(u64::MAX));
        self.runs.with_label_values(&[if ok { "ok" } else { "error" }]).inc();
    }
}

/// What the settlement job records: how many orders owe their provider work it failed
/// `SETTLEMENT_ATTEMPTS` times in a row (`payment.needs_attention`), counted in the database at
/// each run, so every instance reports the same number (ADR 0026).
#[derive(Clone)]
pub struct SettlementMetrics {
    needing_attention: IntGauge,
}

impl SettlementMetrics {
    /// Registers `orderly_payments_needing_attention`.
    ///
    /// # Errors
    /// When a series of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let needing_attention = IntGauge::new(
            "orderly_payments_needing_attention",
            "Orders whose payment work (capture, void, refund, reconciliation) the provider failed \
             SETTLEMENT_ATTEMPTS times in a row, as counted at the settlement job's last run. \
             They are still asked for at each run; a person must look.",
        )?;
        registry.register(Box::new(needing_attention.clone()))?;
        Ok(Self { needing_attention })
    }

    /// The count at this run.
    pub fn needing_attention(&self, count: u64) {
        self.needing_attention.set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}
