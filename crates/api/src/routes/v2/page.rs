//! Lists in v2 carry their page links in the body: `{"data": [...], "has_more": true, "next":
//! "https://shop.example/api/v2/products?limit=20&cursor=..."}`, where v1 sends `next_cursor`
//! and a `Link` header. `next` is this request's absolute URL (scheme and host as the client
//! reached the server, `ConnectionInfo`) with its query kept and `cursor` moved on, so a client
//! follows it as it is; `null` on the last page.

use actix_web::HttpRequest;

use crate::routes::next_query;

/// The absolute URL of the page after this one, when there is one.
pub(crate) fn next_url(request: &HttpRequest, next_cursor: Option<&str>) -> Option<String> {
    next_cursor.map(|cursor| {
        let connection = request.connection_info();
        format!(
            "{}://{}{}?{}",
            connection.scheme(),
            connection.host(),
            request.path(),
            next_query(request, cursor)
        )
    })
}

/// Declares a list body: `data`, `has_more` and `next`, and `new(request, data, next_cursor)`
/// to make it from a page of the use case.
macro_rules! page {
    ($(#[$meta:meta])* $name:ident of $item:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
        pub struct $name {
            pub data: Vec<$item>,
            /// Whether a next page exists (then `next` is its URL).
            pub has_more: bool,
            /// The absolute URL of the next page (this request, `cursor` moved on); `null` on the last.
            #[schema(required = true)]
            pub next: Option<String>,
        }

        impl $name {
            /// The page of `data`, followed by the page at `next_cursor`, if any.
            pub(crate) fn new(
                request: &actix_web::HttpRequest,
                data: Vec<$item>,
                next_cursor: Option<&str>,
            ) -> Self {
                Self {
                    data,
                    has_more: next_cursor.is_some(),
                    next: $crate::routes::v2::page::next_url(request, next_cursor),
                }
            }
        }
    };
}
pub(crate) use page;

#[cfg(test)]
mod tests {
    use actix_web::{http::header, test::TestRequest};

    use super::*;

    #[test]
    fn the_next_page_is_this_request_with_its_cursor_moved_on() {
        let request = TestRequest::get()
            .uri("/api/v2/products?q=key&cursor=old&limit=2")
            .insert_header((header::HOST, "shop.example:8080"))
            .to_http_request();
        assert_eq!(
            next_url(&request, Some("abc")).as_deref(),
            Some("http://shop.example:8080/api/v2/products?q=key&limit=2&cursor=abc")
        );
        assert_eq!(next_url(&request, None), None);
    }
}
