//! Lists the catalogue, filtered and sorted, one page at a time.

use std::sync::Arc;

use orderly_domain::{Actor, Product};

use crate::{
    StoreError,
    auth::admin_check::AdminCheck,
    pagination::{InvalidCursor, KeyKind, ListRequest, Listed},
    ports::{ProductFilter, ProductQueries, ProductSort},
};

/// Why the list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ListProductsError {
    /// Archived products were asked for without credentials (only admins see them), or by an
    /// account deleted since its token was checked.
    #[error("listing archived products needs an administrator's access token")]
    Unauthenticated,
    /// Only admins see archived products (as the database has them now: a demoted admin does
    /// not).
    #[error("only administrators may list archived products")]
    Forbidden,
    /// The search text is longer than [`MAX_QUERY_LEN`] or holds control characters.
    #[error("q {0}")]
    InvalidQuery(orderly_domain::TextError),
    /// The cursor is not one this list (with this sort order) handed out.
    #[error(transparent)]
    InvalidCursor(#[from] InvalidCursor),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest search text, in characters.
pub const MAX_QUERY_LEN: usize = 200;

/// The cursor scope for a sort order: a cursor is valid only for the order it was made in.
#[must_use]
pub fn scope(filter: &ProductFilter) -> String {
    format!("products:{}", filter.sort.as_str())
}

/// The use case.
#[derive(Clone)]
pub struct ListProducts {
    queries: Arc<dyn ProductQueries>,
    admins: AdminCheck,
}

impl ListProducts {
    #[must_use]
    pub fn new(queries: Arc<dyn ProductQueries>, admins: AdminCheck) -> Self {
        Self { queries, admins }
    }

    /// One page of products matching `filter`. `actor` is `None` for anonymous callers; archived
    /// products are listed for admins only, as the database has them now (ADR 0027).
    ///
    /// # Errors
    /// See [`ListProductsError`].
    pub async fn execute(
        &self,
        actor: Option<&Actor>,
        mut filter: ProductFilter,
        request: ListRequest,
    ) -> Result<Listed<Product>, ListProductsError> {
        if filter.include_archived {
            let Some(actor) = actor else { return Err(ListProductsError::Unauthenticated) };
            let actor =
                self.admins.recheck(actor).await?.ok_or(ListProductsError::Unauthenticated)?;
            if !actor.is_admin() {
                return Err(ListProductsError::Forbidden);
            }
        }
        filter.q = filter.q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
        if let Some(q) = &filter.q {
            if q.chars().count() > MAX_QUERY_LEN {
                let too_long = orderly_domain::TextError::TooLong { max: MAX_QUERY_LEN };
                return Err(ListProductsError::InvalidQuery(too_long));
            }
            if q.chars().any(char::is_control) {
                let control = orderly_domain::TextError::ControlCharacter;
                return Err(ListProductsError::InvalidQuery(control));
            }
        }
        let scope = scope(&filter);
        let kind = match filter.sort {
            ProductSort::CreatedAsc | ProductSort::CreatedDesc => KeyKind::Id,
            ProductSort::NameAsc | ProductSort::NameDesc => KeyKind::Text,
            ProductSort::PriceAsc | ProductSort::PriceDesc => KeyKind::Int,
        };
        let page = self.queries.list(filter, request.into_page_request_for(&scope, kind)?).await?;
        Ok(page.into_listed(&scope))
    }
}
