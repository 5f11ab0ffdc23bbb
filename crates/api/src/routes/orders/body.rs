//! Orders on the wire: the bodies of `/api/v1/orders` and their schemas, built from the
//! domain's bounds (`orderly_domain::order`).

use chrono::{DateTime, Utc};
use orderly_application::orders::{moves::MoveRequest, place_order::PlaceOrderInput};
use orderly_domain::{
    Actor, Order, OrderAction, OrderId, OrderStatus, OrderTransition, Payment, PaymentStatus,
    ProductId, Quantity, Reason,
    order::{MAX_ORDER_LINES, MAX_QUANTITY, REASON_MAX_LEN},
};
use serde::{Deserialize, Serialize};
use utoipa::{
    IntoParams, PartialSchema as _, ToSchema,
    openapi::{Array, ArrayBuilder, KnownFormat, Object},
};

use crate::{
    dto::{
        MoneyDto, integer,
        schema::{self, Lines},
    },
    validation::{FieldErrors, chars, elements, parsed_by, within},
};

// ---- Schemas, from the domain's bounds ----

/// `quantity` of an order line.
fn quantity() -> Object {
    schema::integer(
        false,
        KnownFormat::Int32,
        1,
        MAX_QUANTITY.into(),
        "Units of the product; lines for the same product are added up, to the same maximum.",
    )
}

/// `items` of a new order: 1 to `MAX_ORDER_LINES` lines.
fn order_lines() -> Array {
    ArrayBuilder::new()
        .items(OrderLineRequest::schema())
        .min_items(Some(1))
        .max_items(Some(MAX_ORDER_LINES))
        .build()
}

/// `reason` of a transition.
pub(crate) fn reason() -> Object {
    schema::bounded_text(
        true,
        REASON_MAX_LEN,
        Lines::Many,
        "Why, for the history. Trimmed; not blank; line breaks allowed, no other control characters.",
    )
}

// ---- Bodies ----

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatusDto {
    PendingPayment,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Expired,
}

impl From<OrderStatus> for OrderStatusDto {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::PendingPayment => Self::PendingPayment,
            OrderStatus::Paid => Self::Paid,
            OrderStatus::Shipped => Self::Shipped,
            OrderStatus::Delivered => Self::Delivered,
            OrderStatus::Cancelled => Self::Cancelled,
            OrderStatus::Expired => Self::Expired,
        }
    }
}

impl From<OrderStatusDto> for OrderStatus {
    fn from(status: OrderStatusDto) -> Self {
        match status {
            OrderStatusDto::PendingPayment => Self::PendingPayment,
            OrderStatusDto::Paid => Self::Paid,
            OrderStatusDto::Shipped => Self::Shipped,
            OrderStatusDto::Delivered => Self::Delivered,
            OrderStatusDto::Cancelled => Self::Cancelled,
            OrderStatusDto::Expired => Self::Expired,
        }
    }
}

/// An action in an order's history; `place` and `expire` appear in history only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderActionDto {
    Place,
    Pay,
    Cancel,
    Ship,
    Deliver,
    Expire,
}

impl From<OrderAction> for OrderActionDto {
    fn from(action: OrderAction) -> Self {
        match action {
            OrderAction::Place => Self::Place,
            OrderAction::Pay => Self::Pay,
            OrderAction::Cancel => Self::Cancel,
            OrderAction::Ship => Self::Ship,
            OrderAction::Deliver => Self::Deliver,
            OrderAction::Expire => Self::Expire,
        }
    }
}

/// What a user may ask of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestedActionDto {
    /// Pay (the owner, or an admin): authorizes the total with the payment provider, then
    /// captures it.
    Pay,
    /// Cancel (the owner while unpaid; an admin also once paid, which refunds the payment).
    Cancel,
    /// Ship (admins).
    Ship,
    /// Confirm delivery (admins).
    Deliver,
}

impl From<RequestedActionDto> for OrderAction {
    fn from(action: RequestedActionDto) -> Self {
        match action {
            RequestedActionDto::Pay => Self::Pay,
            RequestedActionDto::Cancel => Self::Cancel,
            RequestedActionDto::Ship => Self::Ship,
            RequestedActionDto::Deliver => Self::Deliver,
        }
    }
}

/// One line of a new order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    #[garde(skip)]
    pub product_id: orderly_domain::Uuid,
    /// Units of the product; at most 1000 per product in one order.
    #[garde(custom(within(1, MAX_QUANTITY)))]
    #[serde(deserialize_with = "integer::required")]
    #[schema(schema_with = quantity)]
    pub quantity: u32,
}

/// `POST /orders`: 1 to 50 lines; lines for the same product are merged.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
// The product is one `orderly seed` makes (COF-ESP-1KG, whose id is derived from its SKU), so the
// example works as it is on a seeded database; a test of the seed keeps it so.
#[schema(example = json!({"items": [{"product_id": "019b76da-a800-76e3-a6e2-e7067a38511a", "quantity": 2}]}))]
pub struct CreateOrderRequest {
    #[garde(custom(elements(1, MAX_ORDER_LINES)), dive)]
    #[schema(schema_with = order_lines)]
    pub items: Vec<OrderLineRequest>,
}

/// The lines of the order, without the request id: the handler adds it.
impl TryFrom<CreateOrderRequest> for PlaceOrderInput {
    type Error = FieldErrors;

    fn try_from(body: CreateOrderRequest) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::check(&body);
        let lines: Vec<Option<(ProductId, Quantity)>> = body
            .items
            .iter()
            .enumerate()
            .map(|(index, line)| {
                let quantity =
                    fields.parse(format!("items[{index}].quantity"), Quantity::new(line.quantity));
                quantity.map(|quantity| (ProductId::from_uuid(line.product_id), quantity))
            })
            .collect();
        fields.into_result(|| {
            Some(PlaceOrderInput {
                lines: lines.into_iter().collect::<Option<_>>()?,
                request_id: None,
                idempotency: None,
            })
        })
    }
}

/// `POST /orders/{id}/transitions`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "pay"}))]
pub struct TransitionRequest {
    #[garde(skip)]
    pub action: RequestedActionDto,
    #[garde(inner(custom(chars(1, REASON_MAX_LEN)), custom(parsed_by(Reason::parse))))]
    #[schema(schema_with = reason)]
    pub reason: Option<String>,
}

/// The move a `POST /orders/{id}/transitions` asks for, parsed.
#[derive(Debug)]
pub struct RequestedMove {
    action: OrderAction,
    reason: Option<Reason>,
}

impl RequestedMove {
    /// The action and the use cases' request: this move of order `id`, if it is at
    /// `expected_version`.
    #[must_use]
    pub fn into_request(
        self,
        id: OrderId,
        expected_version: Option<u64>,
        request_id: Option<String>,
    ) -> (OrderAction, MoveRequest) {
        let Self { action, reason } = self;
        (action, MoveRequest { id, reason, expected_version, request_id, idempotency: None })
    }
}

impl TryFrom<TransitionRequest> for RequestedMove {
    type Error = FieldErrors;

    fn try_from(body: TransitionRequest) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::check(&body);
        let reason = body.reason.as_deref().map(|raw| fields.parse("reason", Reason::parse(raw)));
        fields.into_result(|| {
            Some(RequestedMove {
                action: body.action.into(),
                reason: reason.map_or(Some(None), |reason| reason.map(Some))?,
            })
        })
    }
}

/// One line of an order, with the product as it was when ordered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderItemResponse {
    pub product_id: orderly_domain::Uuid,
    pub sku: String,
    pub name: String,
    pub unit_price: MoneyDto,
    pub quantity: u32,
    pub line_total: MoneyDto,
}

/// Where a payment stands with the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatusDto {
    /// Asked of the provider, whose answer was lost: paying again (with the same
    /// `Idempotency-Key`) finds it; if the order is cancelled or expired instead, Orderly asks
    /// the provider and releases whatever it holds.
    Pending,
    /// Held on the card; captured right after the order is paid.
    Authorized,
    /// Taken.
    Captured,
    /// Released without taking anything (the order was cancelled or expired before capture).
    Voided,
    /// Taken and given back.
    Refunded,
    /// Taken and owed back: the refund has not gone through yet and is retried.
    RefundPending,
    /// Declined by the provider; nothing was taken.
    Failed,
}

impl From<PaymentStatus> for PaymentStatusDto {
    fn from(status: PaymentStatus) -> Self {
        match status {
            PaymentStatus::Pending => Self::Pending,
            PaymentStatus::Authorized => Self::Authorized,
            PaymentStatus::Captured => Self::Captured,
            PaymentStatus::Voided => Self::Voided,
            PaymentStatus::Refunded => Self::Refunded,
            PaymentStatus::RefundPending => Self::RefundPending,
            PaymentStatus::Failed => Self::Failed,
        }
    }
}

/// An order's payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentResponse {
    pub status: PaymentStatusDto,
    /// The payment provider's reference (`null` for a declined payment, and while `pending`).
    #[schema(required = true)]
    pub reference: Option<String>,
    pub amount: MoneyDto,
    /// The provider failed the work this payment still owes (a capture, a void, a refund, or
    /// finding an authorization whose answer was lost) many times in a row: it is still asked
    /// for, and operators are alerted to look.
    pub needs_attention: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Payment> for PaymentResponse {
    fn from(payment: &Payment) -> Self {
        Self {
            status: payment.status().into(),
            reference: payment.reference().map(str::to_owned),
            amount: payment.amount().into(),
            needs_attention: payment.needs_attention(),
            created_at: payment.created_at(),
            updated_at: payment.updated_at(),
        }
    }
}

/// An order as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderResponse {
    pub id: orderly_domain::Uuid,
    pub user_id: orderly_domain::Uuid,
    pub status: OrderStatusDto,
    pub items: Vec<OrderItemResponse>,
    /// The sum of the line totals.
    pub total: MoneyDto,
    /// When an unpaid order expires.
    pub payment_due_at: DateTime<Utc>,
    /// The payment, `null` until the order is first paid.
    #[schema(required = true)]
    pub payment: Option<PaymentResponse>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What the caller may do next (`POST .../transitions`).
    pub allowed_actions: Vec<OrderActionDto>,
}

impl OrderResponse {
    /// The order as `viewer` sees it at `now` (the allowed actions depend on who asks, and when).
    #[must_use]
    pub fn new(order: &Order, viewer: &Actor, now: orderly_domain::time::Timestamp) -> Self {
        Self {
            id: order.id().into_uuid(),
            user_id: order.user_id().into_uuid(),
            status: order.status().into(),
            items: order
                .items()
                .iter()
                .map(|item| OrderItemResponse {
                    product_id: item.product_id().into_uuid(),
                    sku: item.sku().as_str().to_owned(),
                    name: item.name().as_str().to_owned(),
                    unit_price: item.unit_price().into(),
                    quantity: item.quantity().get(),
                    line_total: item.line_total().into(),
                })
                .collect(),
            total: order.total().into(),
            payment_due_at: order.payment_due_at(),
            payment: order.payment().map(PaymentResponse::from),
            created_at: order.created_at(),
            updated_at: order.updated_at(),
            allowed_actions: order
                .allowed_actions(viewer, now)
                .into_iter()
                .map(Into::into)
                .collect(),
        }
    }
}

/// One page of orders.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderPage {
    pub data: Vec<OrderResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// One entry of an order's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransitionResponse {
    /// `null` for the placing of the order.
    #[schema(required = true)]
    pub from: Option<OrderStatusDto>,
    pub to: OrderStatusDto,
    pub action: OrderActionDto,
    /// `null` when the system acted (expiry).
    #[schema(required = true)]
    pub actor_id: Option<orderly_domain::Uuid>,
    /// Why, as the actor said it; `null` when no reason was given.
    #[schema(required = true)]
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    /// The `X-Request-Id` of the request that made the move (`null` for the expiry job).
    #[schema(required = true)]
    pub request_id: Option<String>,
}

impl From<&OrderTransition> for TransitionResponse {
    fn from(entry: &OrderTransition) -> Self {
        Self {
            from: entry.from.map(Into::into),
            to: entry.to.into(),
            action: entry.action.into(),
            actor_id: entry.actor_id.map(orderly_domain::UserId::into_uuid),
            reason: entry.reason.as_ref().map(|reason| reason.as_str().to_owned()),
            at: entry.at,
            request_id: entry.request_id.clone(),
        }
    }
}

/// An order's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransitionList {
    pub data: Vec<TransitionResponse>,
}

/// Filters of the order list (admins; a customer always sees their own orders).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderListQuery {
    /// Only orders in this status.
    pub status: Option<OrderStatusDto>,
    /// Admins only: one customer's orders.
    pub user_id: Option<orderly_domain::Uuid>,
}

/// Filter of a user's order list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserOrderListQuery {
    /// Only orders in this status.
    pub status: Option<OrderStatusDto>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PRODUCT: &str = "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d";

    #[test]
    fn statuses_are_written_with_the_domain_s_names() {
        for status in OrderStatus::ALL {
            assert_eq!(json!(OrderStatusDto::from(status)), json!(status.as_str()));
        }
        for status in PaymentStatus::ALL {
            assert_eq!(json!(PaymentStatusDto::from(status)), json!(status.as_str()));
        }
    }

    fn codes(errors: &FieldErrors) -> Vec<(&str, &str)> {
        errors.errors().iter().map(|e| (e.field.as_str(), e.code.as_str())).collect()
    }

    #[test]
    fn an_order_becomes_its_lines_and_integral_quantities_are_integers() {
        let body: CreateOrderRequest = serde_json::from_value(json!({
            "items": [{"product_id": PRODUCT, "quantity": 2.0}, {"product_id": PRODUCT, "quantity": 1}]
        }))
        .expect("well-formed");
        let input = PlaceOrderInput::try_from(body).expect("valid");
        let quantities: Vec<u32> = input.lines.iter().map(|(_, q)| q.get()).collect();
        assert_eq!(quantities, [2, 1]);
        assert_eq!(input.request_id, None);
        let fractional = json!({"items": [{"product_id": PRODUCT, "quantity": 1.5}]});
        assert!(serde_json::from_value::<CreateOrderRequest>(fractional).is_err());
    }

    #[test]
    fn each_bad_line_and_the_number_of_lines_are_reported() {
        let body: CreateOrderRequest = serde_json::from_value(json!({
            "items": [{"product_id": PRODUCT, "quantity": 0}, {"product_id": PRODUCT, "quantity": 1001}]
        }))
        .expect("well-formed");
        let errors = PlaceOrderInput::try_from(body).expect_err("invalid");
        assert_eq!(
            codes(&errors),
            [("items[0].quantity", "range"), ("items[1].quantity", "range")]
        );
        let empty: CreateOrderRequest =
            serde_json::from_value(json!({"items": []})).expect("well-formed");
        let errors = PlaceOrderInput::try_from(empty).expect_err("invalid");
        assert_eq!(codes(&errors), [("items", "length")]);
    }

    #[test]
    fn a_move_keeps_its_reason_trimmed_and_refuses_a_blank_one() {
        let body: TransitionRequest =
            serde_json::from_value(json!({"action": "cancel", "reason": " Wrong size\n"}))
                .expect("well-formed");
        let (action, input) = RequestedMove::try_from(body).expect("valid").into_request(
            OrderId::from_uuid(orderly_domain::Uuid::nil()),
            None,
            Some("req".to_owned()),
        );
        assert_eq!(action, OrderAction::Cancel);
        assert_eq!(input.reason.map(|r| r.as_str().to_owned()).as_deref(), Some("Wrong size"));
        assert_eq!(input.request_id.as_deref(), Some("req"));

        let blank: TransitionRequest =
            serde_json::from_value(json!({"action": "pay", "reason": " "})).expect("well-formed");
        let errors = RequestedMove::try_from(blank).expect_err("invalid");
        assert_eq!(codes(&errors), [("reason", "length")]);
    }
}
