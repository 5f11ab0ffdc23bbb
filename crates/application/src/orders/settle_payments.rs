//! Settles what orders owe their payment provider (`Order::payment_due`): captures held payments
//! of paid orders, voids held payments of cancelled or expired ones, refunds captured payments of
//! cancelled ones, and reconciles the authorizations whose answer was lost (asks again with the
//! same idempotent request, then releases what it finds).
//!
//! Each settlement is first recorded as owed (in the transaction that moved the order), then
//! asked of the provider, then recorded as done. A provider call that fails leaves the work
//! owed, and the background job ([`SettlePayments::execute`]) asks again; every call carries an
//! idempotency key derived from the order, so asking twice never moves money twice.

use std::sync::Arc;

use orderly_domain::{Order, Payment, PaymentDue, time::TimeDelta};

use crate::{
    StoreError,
    ports::{Clock, OrderRepository, OrderWriteError, PaymentError, PaymentGateway},
};

/// How many times a settlement re-reads the order when a concurrent change moved its version
/// between the provider's answer and the record of it.
const RECORD_ATTEMPTS: usize = 3;

/// How long a settlement is left to the request that owes it before the job takes it over.
pub const SETTLEMENT_GRACE: TimeDelta = TimeDelta::seconds(30);

/// What became of one settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Nothing was owed.
    NothingOwed,
    /// The provider did the work and it is recorded.
    Done(PaymentDue),
    /// The provider refused to capture; the payment is recorded as failed.
    CaptureDeclined,
    /// The provider could not be reached or refused; the work stays owed for the job.
    Deferred(PaymentDue),
}

/// What the provider answered to one settlement call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Done,
    CaptureDeclined,
    CapturedInsteadOfVoid,
    /// Asked again, the provider holds the lost authorization (`Some` reference) or nothing.
    Reconciled(Option<String>),
}

/// Where one settlement call leaves the order.
enum Step {
    Final(Settled),
    /// A refund is owed now, instead of the void that was: settle again.
    Again,
}

/// Asks the provider for what an order owes and records the outcome.
#[derive(Clone)]
pub struct Settlement {
    orders: Arc<dyn OrderRepository>,
    payments: Arc<dyn PaymentGateway>,
    clock: Arc<dyn Clock>,
    /// Whether a failure is counted on the payment (the job's settlements; a request's own
    /// settlement right after its move leaves the counting to the job, adding no write).
    counts_failures: bool,
}

impl Settlement {
    #[must_use]
    pub fn new(
        orders: Arc<dyn OrderRepository>,
        payments: Arc<dyn PaymentGateway>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { orders, payments, clock, counts_failures: false }
    }

    /// The same, counting every failure on the payment (what the background job does).
    #[must_use]
    pub fn counting_failures(mut self) -> Self {
        self.counts_failures = true;
        self
    }

    /// Settles what `order` owes, updating it to what is stored. Never fails: a failure is
    /// logged, and the work stays owed for the background job.
    ///
    /// A void the provider refuses because the money was already taken (a capture whose answer
    /// was lost) is recorded as a refund owed, and the refund is asked for at once; an
    /// authorization whose answer was lost, once found, is released at once.
    pub async fn settle(&self, order: &mut Order) -> Settled {
        let mut result = self.try_settle(order).await;
        if let Ok(Step::Again) = result {
            result = self.try_settle(order).await;
        }
        match result {
            Ok(Step::Final(settled)) => settled,
            // A second `Again` would mean the work owed after the first was again one that
            // leads to more: a refund or a void never does.
            Ok(Step::Again) | Err(_) => {
                let due = order.payment_due();
                let error = result.err().map_or_else(String::new, |error| format!("{error:#}"));
                tracing::warn!(
                    order_id = %order.id(),
                    due = due.map_or("nothing", |due| due.as_str()),
                    error = %error,
                    "payment settlement deferred to the background job"
                );
                due.map_or(Settled::NothingOwed, Settled::Deferred)
            }
        }
    }

    async fn try_settle(&self, order: &mut Order) -> anyhow::Result<Step> {
        let Some(due) = order.payment_due() else { return Ok(Step::Final(Settled::NothingOwed)) };
        let Some(payment) = order.payment() else { return Ok(Step::Final(Settled::NothingOwed)) };
        let (id, amount) = (order.id(), payment.amount());
        let reference = payment.reference().map(str::to_owned);
        let held = || {
            reference.clone().ok_or_else(|| {
                anyhow::anyhow!("a payment that holds money has no provider reference")
            })
        };
        let answer = match due {
            PaymentDue::Capture => self.payments.capture(id, &held()?, amount).await,
            PaymentDue::Void => self.payments.void(id, &held()?).await,
            PaymentDue::Refund => self.payments.refund(id, &held()?, amount).await,
            PaymentDue::Reconcile => return self.reconcile(order).await,
        };
        let reference = reference.unwrap_or_default();
        let answer = match answer {
            Ok(()) => Answer::Done,
            Err(PaymentError::Declined(reason)) if due == PaymentDue::Capture => {
                tracing::error!(order_id = %id, %reference, %reason,
                    "the provider refused to capture a held payment; a person must follow up");
                Answer::CaptureDeclined
            }
            Err(PaymentError::AlreadyCaptured) if due == PaymentDue::Void => {
                tracing::warn!(order_id = %id, %reference,
                    "the provider had captured the hold this order was to release; refunding it");
                Answer::CapturedInsteadOfVoid
            }
            Err(error) => return Ok(Step::Final(self.deferred(order, due, &error).await)),
        };
        self.record(order, due, answer).await
    }

    /// Asks the provider again for the authorization whose answer was lost, with the same
    /// idempotent request: it answers what it did then (or does it now), and what it holds is
    /// released next.
    async fn reconcile(&self, order: &mut Order) -> anyhow::Result<Step> {
        let due = PaymentDue::Reconcile;
        let (id, payment) = match order.payment() {
            Some(payment) => (order.id(), payment),
            None => return Ok(Step::Final(Settled::NothingOwed)),
        };
        let amount = payment.amount();
        let attempt = payment.attempt().ok_or_else(|| {
            anyhow::anyhow!("a pending authorization has no attempt to ask again with")
        })?;
        let answer = match self.payments.authorize(id, attempt, amount).await {
            Ok(reference) => {
                tracing::warn!(order_id = %id, %reference,
                    "found the authorization whose answer was lost; releasing it");
                Answer::Reconciled(Some(reference))
            }
            Err(PaymentError::Declined(_)) => Answer::Reconciled(None),
            Err(error) => return Ok(Step::Final(self.deferred(order, due, &error).await)),
        };
        self.record(order, due, answer).await
    }

    /// Records the provider's `answer` to `due` on `order`, re-reading it when a concurrent
    /// change moved its version.
    async fn record(
        &self,
        order: &mut Order,
        due: PaymentDue,
        answer: Answer,
    ) -> anyhow::Result<Step> {
        let id = order.id();
        // Changes are made on a copy and kept only once stored, so that `order` always shows
        // what the store holds, even when recording fails.
        let mut current = order.clone();
        for _ in 0..RECORD_ATTEMPTS {
            let loaded = current.version();
            let now = self.clock.now();
            let mut changed = current.clone();
            let recorded = match &answer {
                Answer::Done => changed.record_payment_done(due, now),
                Answer::CaptureDeclined => changed.record_capture_declined(now),
                Answer::CapturedInsteadOfVoid => changed.record_captured_instead_of_void(now),
                Answer::Reconciled(found) => {
                    changed.record_reconciled_authorization(found.clone(), now)
                }
            };
            if let Err(error) = recorded {
                // Another request or instance recorded it first.
                tracing::debug!(order_id = %id, %error, "settlement already recorded");
                *order = current;
                return Ok(Step::Final(Settled::NothingOwed));
            }
            match self.orders.save_payment(&changed, loaded).await {
                Ok(()) => {
                    *order = changed;
                    return Ok(match answer {
                        Answer::Done | Answer::Reconciled(None) => Step::Final(Settled::Done(due)),
                        Answer::CaptureDeclined => Step::Final(Settled::CaptureDeclined),
                        Answer::CapturedInsteadOfVoid | Answer::Reconciled(Some(_)) => Step::Again,
                    });
                }
                Err(OrderWriteError::Stale) => {
                    current = self
                        .orders
                        .find_by_id(id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("the order vanished while settling"))?;
                    *order = current.clone();
                }
                Err(other) => return Err(anyhow::Error::new(other).context("recording a payment")),
            }
        }
        anyhow::bail!("the order kept changing while its payment was recorded")
    }

    /// The provider failed the work owed: it stays owed for the job, and the failure is counted
    /// on the payment. Once the count reaches
    /// [`orderly_domain::order::SETTLEMENT_ATTEMPTS`] the payment needs a person:
    /// every further failure is an ERROR, and the job's gauge says how many there are.
    async fn deferred(&self, order: &mut Order, due: PaymentDue, error: &PaymentError) -> Settled {
        let loaded = order.version();
        let mut failed = order.clone();
        let counted = self.counts_failures
            && failed.record_settlement_failure(self.clock.now()).is_ok()
            && match self.orders.save_payment(&failed, loaded).await {
                Ok(()) => true,
                Err(write) => {
                    // Another request changed the order meanwhile: it is asked again anyway.
                    tracing::debug!(order_id = %order.id(), error = %format!("{write:#}"),
                        "a settlement failure could not be counted");
                    false
                }
            };
        if counted {
            *order = failed;
        }
        let failures = order.payment().map_or(0, Payment::failures);
        if order.payment().is_some_and(Payment::needs_attention) {
            tracing::error!(
                order_id = %order.id(),
                due = due.as_str(),
                failures,
                error = %format!("{error:#}"),
                "the payment provider keeps failing work this order owes; a person must look \
                 (it stays owed and is asked for on every run)"
            );
        } else {
            tracing::warn!(
                order_id = %order.id(),
                due = due.as_str(),
                failures,
                error = %format!("{error:#}"),
                "the payment provider did not settle; the background job will ask again"
            );
        }
        Settled::Deferred(due)
    }
}

/// What one run of the settlement job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettlementReport {
    /// Captures, voids, refunds and reconciliations done and recorded.
    pub settled: usize,
    /// Settlements still owed (the provider failed); asked again next run.
    pub deferred: usize,
    /// Captures the provider refused (payment recorded as failed).
    pub declined: usize,
}

/// The background job's use case: settles every order that still owes its provider work.
#[derive(Clone)]
pub struct SettlePayments {
    settlement: Settlement,
}

impl SettlePayments {
    #[must_use]
    pub fn new(
        orders: Arc<dyn OrderRepository>,
        payments: Arc<dyn PaymentGateway>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { settlement: Settlement::new(orders, payments, clock).counting_failures() }
    }

    /// How many orders owe their provider work it failed
    /// [`orderly_domain::order::SETTLEMENT_ATTEMPTS`] times in a row: the gauge operators are
    /// alerted on.
    ///
    /// # Errors
    /// [`StoreError`] when the store fails.
    pub async fn payments_needing_attention(&self) -> Result<u64, StoreError> {
        self.settlement.orders.count_payments_needing_attention().await
    }

    /// Settles up to `batch` orders whose settlement has been owed for longer than
    /// [`SETTLEMENT_GRACE`] (younger ones are still being settled by their request).
    ///
    /// # Errors
    /// [`StoreError`] when the orders owing work cannot be read.
    pub async fn execute(&self, batch: u32) -> Result<SettlementReport, StoreError> {
        let Settlement { orders, clock, .. } = &self.settlement;
        let changed_before = clock.now() - SETTLEMENT_GRACE;
        let mut report = SettlementReport::default();
        for mut order in orders.find_payments_due(changed_before, batch).await? {
            match self.settlement.settle(&mut order).await {
                Settled::Done(_) => report.settled += 1,
                Settled::Deferred(_) => report.deferred += 1,
                Settled::CaptureDeclined => report.declined += 1,
                Settled::NothingOwed => {}
            }
        }
        Ok(report)
    }
}
