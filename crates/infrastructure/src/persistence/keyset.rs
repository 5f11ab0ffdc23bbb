//! Keyset pagination: `WHERE (key, id) > (last_key, last_id)` in the list's order, reading one
//! row more than the page to know whether there is a next one.

use orderly_application::pagination::{Cursor, Page, PageRequest, SortValue};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Order, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, Select, Value,
};

/// Which way a list runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Ascending,
    Descending,
}

/// Restricts `select` to the rows after `after` and orders it by `(key, id)` in `direction`;
/// `key` is `None` for lists ordered by id alone. Reads `limit + 1` rows.
pub(crate) fn page<E, K, I>(
    select: Select<E>,
    key: Option<K>,
    id: I,
    direction: Direction,
    request: &PageRequest,
) -> Select<E>
where
    E: EntityTrait,
    K: ColumnTrait,
    I: ColumnTrait,
{
    let order = match direction {
        Direction::Ascending => Order::Asc,
        Direction::Descending => Order::Desc,
    };
    let mut select = select;
    if let Some(after) = &request.after {
        let id_after = |column: I| match direction {
            Direction::Ascending => column.gt(after.id),
            Direction::Descending => column.lt(after.id),
        };
        let condition = match (key, sort_value(&after.value)) {
            (Some(key), Some(value)) => {
                let beyond = match direction {
                    Direction::Ascending => key.gt(value.clone()),
                    Direction::Descending => key.lt(value.clone()),
                };
                Condition::any()
                    .add(beyond)
                    .add(Condition::all().add(key.eq(value)).add(id_after(id)))
            }
            _ => Condition::all().add(id_after(id)),
        };
        select = select.filter(condition);
    }
    if let Some(key) = key {
        select = select.order_by(key, order.clone());
    }
    select.order_by(id, order).limit(u64::from(request.limit.get()) + 1)
}

fn sort_value(value: &SortValue) -> Option<Value> {
    match value {
        SortValue::None => None,
        SortValue::Int(int) => Some((*int).into()),
        SortValue::Text(text) => Some(text.clone().into()),
    }
}

/// Cuts the extra row off and makes the cursor of the next page from the last item kept.
pub(crate) fn finish<T>(
    mut rows: Vec<T>,
    request: &PageRequest,
    cursor_of: impl Fn(&T) -> Cursor,
) -> Page<T> {
    let limit = request.limit.get() as usize;
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor_of)
    } else {
        None
    };
    Page { items: rows, next }
}
