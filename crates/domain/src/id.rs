//! Typed identifiers. Ids are UUIDv7: unique without coordination and ordered by creation time,
//! which makes them usable as the keyset for pagination (ADR 0004).

/// A string that is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid id: expected a UUID")]
pub struct InvalidId;

/// Declares a typed id; aggregates outside this module use it for their own (`review.rs`).
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(::uuid::Uuid);

        impl $name {
            /// A new id, time-ordered (UUIDv7).
            #[must_use]
            pub fn new() -> Self {
                Self(::uuid::Uuid::now_v7())
            }

            /// Wraps an existing UUID, such as one read back from storage.
            #[must_use]
            pub const fn from_uuid(uuid: ::uuid::Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID behind this id.
            #[must_use]
            pub const fn as_uuid(&self) -> &::uuid::Uuid {
                &self.0
            }

            /// Unwraps the UUID.
            #[must_use]
            pub const fn into_uuid(self) -> ::uuid::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                ::uuid::Uuid::parse_str(s).map(Self).map_err(|_| $crate::InvalidId)
            }
        }

        impl From<::uuid::Uuid> for $name {
            fn from(uuid: ::uuid::Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}
pub(crate) use typed_id;

typed_id!(
    /// Identifies a [`crate::User`].
    UserId
);
typed_id!(
    /// Identifies a [`crate::Product`].
    ProductId
);
typed_id!(
    /// Identifies an [`crate::Order`].
    OrderId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_version_7_and_time_ordered() {
        let first = OrderId::new();
        let second = OrderId::new();
        assert_eq!(first.as_uuid().get_version_num(), 7);
        assert!(first < second);
    }

    #[test]
    fn ids_round_trip_through_their_string_form() {
        let id = UserId::new();
        let parsed: UserId = id.to_string().parse().expect("a displayed id parses");
        assert_eq!(parsed, id);
        assert_eq!(ProductId::from_uuid(*id.as_uuid()).into_uuid(), id.into_uuid());
        assert_eq!(UserId::from(id.into_uuid()), id);
    }

    #[test]
    fn a_non_uuid_is_rejected() {
        assert_eq!("not-a-uuid".parse::<ProductId>(), Err(InvalidId));
        assert_ne!(OrderId::default(), OrderId::default());
    }
}
