//! What events carry (`orderly_application::ports::EventData`): the resource as the v1 API
//! represents it (the schemas of the v1 document), with its `version`, so that an event's
//! `data` is what `GET /api/v1/...` answered at that version. An order is shown as its customer
//! sees it (`allowed_actions` are the customer's, when the change was made). A type's `.v1` is
//! bound to these shapes: a change a consumer could trip on is a `.v2` type (`orderly_domain::
//! event`).

use orderly_application::ports::EventData;
use orderly_domain::{
    Actor, Aggregate, EventType, Order, Product, Role, User, UserId, event::EVENT_SOURCE,
};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{
    Modify, OpenApi as _,
    openapi::{
        AllOfBuilder, ContentBuilder, HttpMethod, KnownFormat, ObjectBuilder,
        OpenApi as OpenApiDocument, Paths, Ref, Required, ResponseBuilder, Type,
        path::{OperationBuilder, ParameterBuilder, ParameterIn},
        request_body::RequestBodyBuilder,
        schema::SchemaFormat,
    },
};

use crate::routes::{orders::OrderResponse, products::ProductResponse, users::UserResponse};

/// The v1 representations, for the store to write into events.
#[derive(Debug, Default, Clone, Copy)]
pub struct V1EventData;

/// `representation` with a `version` member.
fn versioned(representation: impl Serialize, version: u64) -> String {
    let mut value = serde_json::to_value(representation).unwrap_or(Value::Null);
    if let Value::Object(members) = &mut value {
        members.insert("version".to_owned(), json!(version));
    }
    value.to_string()
}

impl EventData for V1EventData {
    fn order(&self, order: &Order) -> String {
        let customer = Actor::User { id: order.user_id(), role: Role::Customer };
        let representation = OrderResponse::new(order, &customer, order.updated_at());
        versioned(representation, order.version())
    }

    fn product(&self, product: &Product) -> String {
        versioned(ProductResponse::from(product), product.version())
    }

    fn user(&self, user: &User) -> String {
        versioned(UserResponse::from(user), user.version())
    }

    fn deleted_user(&self, id: UserId) -> String {
        json!({ "id": id.into_uuid() }).to_string()
    }
}

/// The document's `webhooks` section (OpenAPI 3.1): one entry per event type, the request an
/// endpoint receives for it. The body is the CloudEvents envelope with `data` the v1
/// representation and its `version`, the same in every version's document (event types are
/// versioned by their own `.v1`).
pub(crate) struct Webhooks;

/// The Standard Webhooks headers of every delivery.
const DELIVERY_HEADERS: &[(&str, &str)] = &[
    ("webhook-id", "The event's id: the same for every attempt; deduplicate by it."),
    ("webhook-timestamp", "When this attempt was signed, in Unix seconds; refuse old ones."),
    (
        "webhook-signature",
        "Space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one per secret (two \
         for a day after a rotation); the key is the base64 after `whsec_` in the secret.",
    ),
];

/// The name of the component that describes the events of `event_type`'s kind.
fn envelope_name(event_type: EventType) -> &'static str {
    match event_type.aggregate() {
        Aggregate::Order => "OrderEvent",
        Aggregate::Product => "ProductEvent",
        Aggregate::User if event_type == EventType::UserDeleted => "UserDeletedEvent",
        Aggregate::User => "UserEvent",
    }
}

/// The CloudEvents envelope of the events named `envelope_name`: their types, and `data` as
/// the representation `data_schema` names (with its `version`), or only the id.
fn envelope_schema(envelope: &str, data_schema: Option<&str>) -> utoipa::openapi::Schema {
    let types = EventType::ALL.into_iter().filter(|t| envelope_name(*t) == envelope);
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let uuid = || string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
    let data: utoipa::openapi::RefOr<utoipa::openapi::Schema> = match data_schema {
        Some(name) => AllOfBuilder::new()
            .item(Ref::from_schema_name(name))
            .item(
                ObjectBuilder::new()
                    .property(
                        "version",
                        ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)),
                    )
                    .required("version"),
            )
            .description(Some("The resource as `GET /api/v1/...` answered it at `version`."))
            .into(),
        None => ObjectBuilder::new()
            .property("id", uuid())
            .required("id")
            .description(Some("Only the id of the deleted user is left to tell."))
            .into(),
    };
    let mut envelope = ObjectBuilder::new()
        .description(Some("A CloudEvents 1.0 event in structured JSON mode."))
        .property("specversion", string().enum_values(Some(["1.0"])))
        .property("id", uuid().description(Some("The event's id (UUIDv7), as `webhook-id`.")))
        .property("source", string().enum_values(Some([EVENT_SOURCE])))
        .property("type", string().enum_values(Some(types.map(EventType::name))))
        .property("subject", uuid().description(Some("The resource's id.")))
        .property("time", string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .property("datacontenttype", string().enum_values(Some(["application/json"])))
        .property("data", data);
    for member in
        ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"]
    {
        envelope = envelope.required(member);
    }
    envelope.into()
}

impl Modify for Webhooks {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in
            EventSchemas::openapi().components.map(|c| c.schemas).unwrap_or_default()
        {
            components.schemas.entry(name).or_insert(schema);
        }
        for (envelope, data) in [
            ("OrderEvent", Some("OrderResponse")),
            ("ProductEvent", Some("ProductResponse")),
            ("UserEvent", Some("UserResponse")),
            ("UserDeletedEvent", None),
        ] {
            components.schemas.insert(envelope.to_owned(), envelope_schema(envelope, data).into());
        }
        let mut webhooks = Paths::new();
        for event_type in EventType::ALL {
            let name = event_type.name();
            let mut operation = OperationBuilder::new()
                .operation_id(Some(format!("receive_{}", name.replace('.', "_"))))
                .tag("webhooks")
                .summary(Some(format!("`{name}`, POSTed to the endpoints that receive it")))
                .description(Some(
                    "Answer 2xx to take the event. Other answers and time-outs (15 s) are \
                     retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (or after \
                     `Retry-After` when longer); 410 Gone disables the endpoint. Verify \
                     `webhook-signature` before trusting the body (Standard Webhooks).",
                ))
                .request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(envelope_name(event_type))))
                                .build(),
                        )
                        .required(Some(Required::True))
                        .build(),
                ))
                .response("200", ResponseBuilder::new().description("Taken (any 2xx)."))
                .response(
                    "410",
                    ResponseBuilder::new().description("The endpoint is gone: it is disabled."),
                );
            for (header, description) in DELIVERY_HEADERS {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(*header)
                        .parameter_in(ParameterIn::Header)
                        .required(Required::True)
                        .description(Some(*description))
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
            webhooks.add_path_operation(name, vec![HttpMethod::Post], operation.build());
        }
        openapi.webhooks = Some(webhooks);
    }
}

/// The v1 representations events carry, for the document's components.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(OrderResponse, ProductResponse, UserResponse)))]
struct EventSchemas;

#[cfg(test)]
mod tests {
    use orderly_domain::{Currency, Money, ProductDraft, ProductName, Sku, time::Timestamp};

    use super::*;

    #[test]
    fn a_product_event_carries_its_v1_representation_and_version() {
        let draft = ProductDraft {
            sku: Sku::parse("KB-001").expect("valid"),
            name: ProductName::parse("Keyboard").expect("valid"),
            description: None,
            price: Money::new(4999, Currency::parse("EUR").expect("EUR")).expect("valid"),
            stock: 3,
        };
        let product = Product::create(draft, Timestamp::default()).expect("valid");
        let data: Value = serde_json::from_str(&V1EventData.product(&product)).expect("JSON");
        let mut expected = serde_json::to_value(ProductResponse::from(&product)).expect("JSON");
        expected["version"] = json!(1);
        assert_eq!(data, expected);
        assert_eq!(data["price"], json!({"amount": 4999, "currency": "EUR"}));
    }

    #[test]
    fn every_event_type_has_a_webhook_entry_whose_references_resolve() {
        use crate::{openapi::document, routes::table::Version};
        for version in Version::ALL {
            let document = serde_json::to_value(document(version)).expect("serializes");
            let webhooks = document["webhooks"].as_object().expect("a webhooks section");
            let names: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
            let mut listed: Vec<&str> = webhooks.keys().map(String::as_str).collect();
            listed.sort_unstable();
            let mut expected = names.clone();
            expected.sort_unstable();
            assert_eq!(listed, expected, "{version:?}");
            let text = document.to_string();
            let schemas = document["components"]["schemas"].as_object().expect("schemas");
            for reference in text.split("\"#/components/schemas/").skip(1) {
                let name = reference.split('"').next().unwrap_or_default();
                assert!(
                    schemas.contains_key(name),
                    "{version:?}: `{name}` is referred to but missing"
                );
            }
            let paid = &webhooks["orderly.order.paid.v1"]["post"]["requestBody"]["content"]["application/json"]
                ["schema"]["$ref"];
            assert_eq!(paid, "#/components/schemas/OrderEvent");
        }
    }
}
