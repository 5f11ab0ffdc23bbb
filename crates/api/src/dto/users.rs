//! Users on the wire. No response type has a password or hash field, so none can leak.

use chrono::{DateTime, Utc};
use orderly_domain::{
    User,
    user::{EMAIL_MAX_LEN, PASSWORD_MAX_LEN, PASSWORD_MIN_LEN, USER_NAME_MAX_LEN},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleDto {
    /// Orders for themselves.
    Customer,
    /// Manages everything.
    Admin,
}

impl From<orderly_domain::Role> for RoleDto {
    fn from(role: orderly_domain::Role) -> Self {
        match role {
            orderly_domain::Role::Customer => Self::Customer,
            orderly_domain::Role::Admin => Self::Admin,
        }
    }
}

impl From<RoleDto> for orderly_domain::Role {
    fn from(role: RoleDto) -> Self {
        match role {
            RoleDto::Customer => Self::Customer,
            RoleDto::Admin => Self::Admin,
        }
    }
}

/// `POST /api/v1/users`: sign up as a customer.
#[derive(Debug, Clone, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada Lovelace"}))]
pub struct RegisterUserRequest {
    /// Unique, case-insensitive.
    #[garde(length(max = EMAIL_MAX_LEN))]
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    /// 8 to 128 characters.
    #[garde(length(chars, min = PASSWORD_MIN_LEN, max = PASSWORD_MAX_LEN))]
    #[schema(format = "password", min_length = 8, max_length = 128)]
    pub password: String,
    /// 1 to 100 characters.
    #[garde(length(chars, min = 1, max = USER_NAME_MAX_LEN))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

/// `PATCH /api/v1/users/{id}`: every field optional; `role` for admins only.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Ada King"}))]
pub struct UpdateUserRequest {
    #[garde(inner(length(max = EMAIL_MAX_LEN)))]
    #[schema(format = "email", max_length = 254)]
    pub email: Option<String>,
    #[garde(inner(length(chars, min = 1, max = USER_NAME_MAX_LEN)))]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[garde(inner(length(chars, min = PASSWORD_MIN_LEN, max = PASSWORD_MAX_LEN)))]
    #[schema(format = "password", min_length = 8, max_length = 128)]
    pub password: Option<String>,
    #[garde(skip)]
    pub role: Option<RoleDto>,
}

/// A user as clients see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0193a0b2-7c4e-7d1a-9f00-5f1c2a3b4c5d", "email": "ada@example.com", "name": "Ada Lovelace",
    "role": "customer", "created_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:00Z"
}))]
pub struct UserResponse {
    pub id: orderly_domain::Uuid,
    pub email: String,
    pub name: String,
    pub role: RoleDto,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&User> for UserResponse {
    fn from(user: &User) -> Self {
        Self {
            id: user.id().into_uuid(),
            email: user.email().as_str().to_owned(),
            name: user.name().as_str().to_owned(),
            role: user.role().into(),
            created_at: user.created_at(),
            updated_at: user.updated_at(),
        }
    }
}

/// One page of users.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserPage {
    pub data: Vec<UserResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
