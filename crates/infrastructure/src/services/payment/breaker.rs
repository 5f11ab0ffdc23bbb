//! The HTTP gateway's circuit breaker (ADR 0022): `failsafe`'s state machine with a
//! consecutive-failures policy and a constant cool-down, plus what it does not give: the
//! state as a value (for `orderly_payment_breaker_state`), the time left before a retry may
//! succeed (for `Retry-After`), and a single probe at a time once the cool-down has passed.

use std::{
    future::Future,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use failsafe::{
    Config, Instrument, StateMachine,
    backoff::{self, Constant},
    failure_policy::{self, ConsecutiveFailures},
    futures::CircuitBreaker as _,
};
use orderly_application::ports::PaymentError;

/// Where a circuit breaker stands, as `orderly_payment_breaker_state` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls reach the provider.
    Closed,
    /// The cool-down has passed: the next call is a probe; its success closes the breaker, its
    /// failure opens it again.
    HalfOpen,
    /// Calls are refused without reaching the provider until the cool-down has passed.
    Open,
}

impl BreakerState {
    /// The gauge's value: 0 closed, 1 half-open, 2 open.
    #[must_use]
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    fn from_gauge(value: u8) -> Self {
        match value {
            2 => Self::Open,
            1 => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

/// What the state machine last reported, written by its [`Instrument`] callbacks.
#[derive(Debug)]
struct Observed {
    state: AtomicU8,
    opened_at: Mutex<Option<Instant>>,
    probing: AtomicBool,
}

/// A read-only view of a circuit breaker, for the metrics.
#[derive(Debug, Clone)]
pub struct BreakerMonitor {
    observed: Arc<Observed>,
    cool_down: Duration,
}

impl BreakerMonitor {
    fn new(cool_down: Duration) -> Self {
        let observed = Observed {
            state: AtomicU8::new(0),
            opened_at: Mutex::new(None),
            probing: AtomicBool::new(false),
        };
        Self { observed: Arc::new(observed), cool_down }
    }

    /// The breaker's state now. An open breaker whose cool-down has passed reads as half-open:
    /// it lets the next call through as a probe.
    #[must_use]
    pub fn state(&self) -> BreakerState {
        match self.recorded() {
            BreakerState::Open if self.remaining().is_zero() => BreakerState::HalfOpen,
            state => state,
        }
    }

    fn recorded(&self) -> BreakerState {
        BreakerState::from_gauge(self.observed.state.load(Ordering::Acquire))
    }

    fn opened_at(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.observed.opened_at.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The time left in the current cool-down (zero when none is running).
    fn remaining(&self) -> Duration {
        self.opened_at().map_or(Duration::ZERO, |at| self.cool_down.saturating_sub(at.elapsed()))
    }

    fn record(&self, state: BreakerState) {
        self.observed
            .state
            .store(u8::try_from(state.as_gauge()).unwrap_or_default(), Ordering::Release);
    }
}

impl Instrument for BreakerMonitor {
    fn on_call_rejected(&self) {}

    fn on_open(&self) {
        *self.opened_at() = Some(Instant::now());
        self.record(BreakerState::Open);
        tracing::warn!(
            cool_down_ms = u64::try_from(self.cool_down.as_millis()).unwrap_or(u64::MAX),
            "the payment provider's circuit breaker opened: calls are refused until the cool-down has passed"
        );
    }

    fn on_half_open(&self) {
        self.record(BreakerState::HalfOpen);
    }

    fn on_closed(&self) {
        let was_open = self.opened_at().take().is_some();
        self.record(BreakerState::Closed);
        if was_open {
            tracing::info!("the payment provider's circuit breaker closed: calls reach it again");
        }
    }
}

/// The right to be the one call that probes a half-open breaker; given back when dropped, so a
/// cancelled probe does not keep the breaker shut.
struct Probe<'a>(&'a AtomicBool);

impl<'a> Probe<'a> {
    fn take(flag: &'a AtomicBool) -> Option<Self> {
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).ok()?;
        Some(Self(flag))
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Opens after `threshold` consecutive failed calls, refuses calls for `cool_down`, then lets
/// one probe through. Only [`PaymentError::Unavailable`] is a failure: a declined card or a
/// refused request is an answer from a provider that works, and counts as a success.
pub(super) struct Breaker {
    machine: StateMachine<ConsecutiveFailures<Constant>, BreakerMonitor>,
    monitor: BreakerMonitor,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cool_down: Duration) -> Self {
        let monitor = BreakerMonitor::new(cool_down);
        let machine = Config::new()
            .failure_policy(failure_policy::consecutive_failures(
                threshold.max(1),
                backoff::constant(cool_down),
            ))
            .instrument(monitor.clone())
            .build();
        Self { machine, monitor }
    }

    pub(super) fn monitor(&self) -> BreakerMonitor {
        self.monitor.clone()
    }

    /// Runs `call` through the breaker, or refuses it at once with
    /// [`PaymentError::Unavailable`] and the time left in the cool-down.
    pub(super) async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, PaymentError>>,
    ) -> Result<T, PaymentError> {
        // A closed breaker lets every call through; otherwise one call at a time may find out
        // whether the cool-down has passed and probe the provider.
        let _probe = match self.monitor.recorded() {
            BreakerState::Closed => None,
            BreakerState::HalfOpen | BreakerState::Open => {
                Some(Probe::take(&self.monitor.observed.probing).ok_or_else(|| self.refusal())?)
            }
        };
        let is_failure = |error: &PaymentError| matches!(error, PaymentError::Unavailable { .. });
        match self.machine.call_with(is_failure, call).await {
            Ok(value) => Ok(value),
            Err(failsafe::Error::Inner(error)) => Err(error),
            Err(failsafe::Error::Rejected) => Err(self.refusal()),
        }
    }

    fn refusal(&self) -> PaymentError {
        let remaining = self.monitor.remaining();
        // Zero: the cool-down has passed and another call is probing; it may open the breaker
        // again for a whole cool-down.
        let retry_after = if remaining.is_zero() { self.monitor.cool_down } else { remaining };
        PaymentError::Unavailable {
            retry_after: Some(retry_after),
            source: anyhow::anyhow!(
                "the payment provider's circuit breaker is open: the call was not sent"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> PaymentError {
        PaymentError::unavailable(anyhow::anyhow!("down"))
    }

    #[tokio::test]
    async fn only_unavailable_answers_count_towards_opening() {
        let breaker = Breaker::new(2, Duration::from_secs(60));
        let monitor = breaker.monitor();
        let failed: Result<(), _> = breaker.call(async { Err(unavailable()) }).await;
        assert!(failed.is_err());
        let declined: Result<(), _> =
            breaker.call(async { Err(PaymentError::Declined("no".into())) }).await;
        assert!(matches!(declined, Err(PaymentError::Declined(_))));
        let failed: Result<(), _> = breaker.call(async { Err(unavailable()) }).await;
        assert!(failed.is_err());
        assert_eq!(monitor.state(), BreakerState::Closed, "a decline breaks the run of failures");
        let failed: Result<(), _> = breaker.call(async { Err(unavailable()) }).await;
        assert!(failed.is_err());
        assert_eq!(monitor.state(), BreakerState::Open);
        assert_eq!(monitor.state().as_gauge(), 2);
    }

    #[tokio::test]
    async fn an_open_breaker_refuses_without_calling_and_says_when_to_retry() {
        let breaker = Breaker::new(1, Duration::from_secs(60));
        let _: Result<(), _> = breaker.call(async { Err(unavailable()) }).await;
        let called = AtomicBool::new(false);
        let refused: Result<(), _> = breaker
            .call(async {
                called.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(!called.load(Ordering::SeqCst), "the call was not made");
        let Err(PaymentError::Unavailable { retry_after: Some(retry_after), .. }) = refused else {
            panic!("refused with a retry-after: {refused:?}");
        };
        assert!(retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60));
    }

    #[tokio::test]
    async fn after_the_cool_down_one_probe_at_a_time_decides() {
        let breaker = Breaker::new(1, Duration::from_millis(20));
        let monitor = breaker.monitor();
        let _: Result<(), _> = breaker.call(async { Err(unavailable()) }).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(monitor.state(), BreakerState::HalfOpen, "the next call is a probe");

        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let probe = breaker.call(async {
            wait.await.ok();
            Ok::<_, PaymentError>("probed")
        });
        let other = async {
            // Polled after the probe has taken its turn.
            tokio::task::yield_now().await;
            let refused: Result<&str, _> = breaker.call(async { Ok("not sent") }).await;
            release.send(()).ok();
            refused
        };
        let (probed, refused) = tokio::join!(probe, other);
        assert_eq!(probed.expect("the probe went through"), "probed");
        assert!(matches!(refused, Err(PaymentError::Unavailable { .. })), "{refused:?}");
        assert_eq!(monitor.state(), BreakerState::Closed, "the probe's success closed it");
        breaker.call(async { Ok::<_, PaymentError>(()) }).await.expect("closed again");
    }
}
