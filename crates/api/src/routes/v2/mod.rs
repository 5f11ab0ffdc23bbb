//! `/api/v2`: the representations v2 changes, on the same use cases as v1 (ADR 0030). Each
//! module here is a resource whose shape changed; its `endpoints()` lists its own handlers and
//! the v1 handlers of the operations that did not change, so that v2 serves every resource.
//!
//! What differs from v1 (the migration guide is `docs/api-versions.md`):
//! - money is a decimal string in the currency's exponent (`money`);
//! - lists are `{"data", "has_more", "next"}` with an absolute `next` URL (`page`), and order
//!   lists are summaries unless `include=items` (`orders`);
//! - a transition answers with the order and its `ETag` (`orders`).
//!
//! Everything else (problems, `ETag` and preconditions, rate limits, authentication,
//! idempotency) is v1's, through the same helpers and the same `From<UseCaseError> for
//! ApiError` mappings.

pub mod money;
pub mod orders;
pub(crate) mod page;
pub mod products;
pub mod reviews;
pub mod users;
pub mod webhooks;

#[cfg(test)]
mod tests {
    use crate::{openapi::document, routes::table::Version};

    fn schemas(version: Version) -> serde_json::Map<String, serde_json::Value> {
        let document = serde_json::to_value(document(version)).expect("serializes");
        document["components"]["schemas"].as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_schema_name_means_one_shape_in_every_version() {
        let v1 = schemas(Version::V1);
        for (name, schema) in schemas(Version::V2) {
            if let Some(old) = v1.get(&name) {
                assert_eq!(old, &schema, "`{name}` differs between v1 and v2: name v2's otherwise");
            }
        }
    }

    /// The schemas v2's operations refer to, directly or through other schemas (not the
    /// `webhooks` section: events carry v1 representations in every document, ADR 0032).
    fn reachable_from_paths(version: Version) -> serde_json::Map<String, serde_json::Value> {
        let document = serde_json::to_value(document(version)).expect("serializes");
        let all = schemas(version);
        let mut found = serde_json::Map::new();
        let mut pending = vec![document["paths"].to_string()];
        while let Some(text) = pending.pop() {
            for (name, schema) in &all {
                let reference = format!("\"#/components/schemas/{name}\"");
                if !found.contains_key(name) && text.contains(&reference) {
                    found.insert(name.clone(), schema.clone());
                    pending.push(schema.to_string());
                }
            }
        }
        found
    }

    #[test]
    fn no_v2_operation_carries_v1_money_or_cursors() {
        let v2 = reachable_from_paths(Version::V2);
        assert!(v2.contains_key("Order"), "the walk finds the operations' schemas");
        assert!(!v2.contains_key("MoneyDto"), "every amount of v2 is a decimal string");
        let text = serde_json::Value::Object(v2).to_string();
        assert!(!text.contains("\"next_cursor\""), "v2 lists link their next page");
    }
}
