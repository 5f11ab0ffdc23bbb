//! Users on the wire. No response type has a password or hash field, so none can leak.

use chrono::{DateTime, Utc};
use orderly_application::users::{
    register_user::RegisterUserInput,
    update_user::{CurrentPassword, UpdateUserInput},
};
use orderly_domain::{
    Email, Password, Role, User, UserId, UserName,
    user::{EMAIL_MAX_LEN, PASSWORD_MAX_LEN, PASSWORD_MIN_LEN, USER_NAME_MAX_LEN},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schema;
use crate::validation::FieldErrors;

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
#[derive(Clone, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada Lovelace"}))]
pub struct RegisterUserRequest {
    #[garde(length(chars, max = EMAIL_MAX_LEN))]
    #[schema(schema_with = schema::new_email)]
    pub email: String,
    #[garde(length(chars, min = PASSWORD_MIN_LEN, max = PASSWORD_MAX_LEN))]
    #[schema(schema_with = schema::new_password)]
    pub password: String,
    #[garde(length(chars, min = 1, max = USER_NAME_MAX_LEN))]
    #[schema(schema_with = schema::new_user_name)]
    pub name: String,
}

/// Without the password.
impl std::fmt::Debug for RegisterUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterUserRequest")
            .field("email", &self.email)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Sign-up always makes a customer: admins come from `orderly admin create`.
impl TryFrom<RegisterUserRequest> for RegisterUserInput {
    type Error = FieldErrors;

    fn try_from(body: RegisterUserRequest) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::check(&body);
        let email = fields.parse("email", Email::parse(&body.email));
        let name = fields.parse("name", UserName::parse(&body.name));
        let password = fields.parse("password", Password::parse(body.password));
        fields.into_result(|| {
            Some(RegisterUserInput {
                email: email?,
                name: name?,
                password: password?,
                role: Role::Customer,
            })
        })
    }
}

/// `PATCH /api/v1/users/{id}`: every field optional (`null` is the same as absent); `role` for
/// admins only; `current_password` to change one's own `password` or `email`.
#[derive(Clone, Default, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Ada King"}))]
pub struct UpdateUserRequest {
    #[garde(inner(length(chars, max = EMAIL_MAX_LEN)))]
    #[schema(schema_with = schema::changed_email)]
    pub email: Option<String>,
    #[garde(inner(length(chars, min = 1, max = USER_NAME_MAX_LEN)))]
    #[schema(schema_with = schema::changed_user_name)]
    pub name: Option<String>,
    #[garde(inner(length(chars, min = PASSWORD_MIN_LEN, max = PASSWORD_MAX_LEN)))]
    #[schema(schema_with = schema::changed_password)]
    pub password: Option<String>,
    #[garde(skip)]
    pub role: Option<RoleDto>,
    /// Your password as it is now: required to change your own `password` or `email` (403
    /// `REAUTHENTICATION_REQUIRED` without it or when it is wrong); not needed for a name, or
    /// for an admin changing another user; ignored when not needed.
    #[garde(inner(length(chars, max = PASSWORD_MAX_LEN)))]
    #[schema(schema_with = schema::current_password)]
    pub current_password: Option<String>,
}

/// Without the passwords.
impl std::fmt::Debug for UpdateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateUserRequest")
            .field("email", &self.email)
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The changes of a `PATCH /api/v1/users/{id}`, parsed.
#[derive(Debug)]
pub struct UserChanges {
    email: Option<Email>,
    name: Option<UserName>,
    password: Option<Password>,
    role: Option<Role>,
    current_password: Option<CurrentPassword>,
}

impl UserChanges {
    /// The use case's input: these changes to user `id`, if it is at `expected_version`.
    #[must_use]
    pub fn into_input(self, id: UserId, expected_version: Option<u64>) -> UpdateUserInput {
        let Self { email, name, password, role, current_password } = self;
        UpdateUserInput { id, expected_version, email, name, password, role, current_password }
    }
}

impl TryFrom<UpdateUserRequest> for UserChanges {
    type Error = FieldErrors;

    fn try_from(body: UpdateUserRequest) -> Result<Self, FieldErrors> {
        let mut fields = FieldErrors::check(&body);
        let email = body.email.as_deref().map(|raw| fields.parse("email", Email::parse(raw)));
        let name = body.name.as_deref().map(|raw| fields.parse("name", UserName::parse(raw)));
        let password = body.password.map(|raw| fields.parse("password", Password::parse(raw)));
        fields.into_result(|| {
            Some(UserChanges {
                email: email.map_or(Some(None), |email| email.map(Some))?,
                name: name.map_or(Some(None), |name| name.map(Some))?,
                password: password.map_or(Some(None), |password| password.map(Some))?,
                role: body.role.map(Into::into),
                current_password: body.current_password.map(CurrentPassword::new),
            })
        })
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn codes(errors: &FieldErrors) -> Vec<(&str, &str)> {
        errors.errors().iter().map(|e| (e.field.as_str(), e.code.as_str())).collect()
    }

    #[test]
    fn a_registration_becomes_a_customer_with_a_normalised_address() {
        let body: RegisterUserRequest = serde_json::from_value(json!({
            "email": " Ada@Example.COM ", "password": "correct horse", "name": "Ada"
        }))
        .expect("well-formed");
        let input = RegisterUserInput::try_from(body).expect("valid");
        assert_eq!(input.email.as_str(), "ada@example.com");
        assert_eq!(input.role, Role::Customer);
    }

    #[test]
    fn a_registration_reports_every_field_with_the_domains_codes() {
        let body: RegisterUserRequest = serde_json::from_value(json!({
            "email": "ada@@example.com", "password": "short", "name": "Ada\nLovelace"
        }))
        .expect("well-formed");
        let errors = RegisterUserInput::try_from(body).expect_err("invalid");
        assert_eq!(
            codes(&errors),
            [("password", "length"), ("email", "email"), ("name", "control_characters")]
        );
    }

    #[test]
    fn a_change_of_user_becomes_the_use_cases_input() {
        let body: UpdateUserRequest =
            serde_json::from_value(json!({"name": "Ada King", "role": "admin"})).expect("ok");
        let input = UserChanges::try_from(body)
            .expect("valid")
            .into_input(UserId::from_uuid(orderly_domain::Uuid::nil()), Some(3));
        assert_eq!(input.name.map(|n| n.as_str().to_owned()).as_deref(), Some("Ada King"));
        assert_eq!(input.role, Some(Role::Admin));
        assert_eq!(input.expected_version, Some(3));
        assert!(input.email.is_none() && input.password.is_none());

        let body: UpdateUserRequest =
            serde_json::from_value(json!({"email": "not an address"})).expect("ok");
        let errors = UserChanges::try_from(body).expect_err("invalid");
        assert_eq!(codes(&errors), [("email", "email")]);
    }

    #[test]
    fn names_with_invisible_formatting_characters_are_refused_with_the_domains_code() {
        let body: RegisterUserRequest = serde_json::from_value(json!({
            "email": "ada@example.com", "password": "correct horse", "name": "\u{202e}admin"
        }))
        .expect("well-formed");
        let errors = RegisterUserInput::try_from(body).expect_err("invalid");
        assert_eq!(codes(&errors), [("name", "format_characters")]);

        let body: UpdateUserRequest =
            serde_json::from_value(json!({"name": "ad\u{200b}min"})).expect("well-formed");
        let errors = UserChanges::try_from(body).expect_err("invalid");
        assert_eq!(codes(&errors), [("name", "format_characters")]);
    }

    #[test]
    fn the_current_password_reaches_the_use_case_and_no_password_prints() {
        let body: UpdateUserRequest = serde_json::from_value(json!({
            "password": "a brand new passphrase", "current_password": "correct horse battery"
        }))
        .expect("well-formed");
        assert!(!format!("{body:?}").contains("horse"));
        assert!(!format!("{body:?}").contains("passphrase"));
        let input = UserChanges::try_from(body)
            .expect("valid")
            .into_input(UserId::from_uuid(orderly_domain::Uuid::nil()), None);
        assert!(!format!("{input:?}").contains("horse"));
        assert_eq!(
            input.current_password.as_ref().map(CurrentPassword::expose),
            Some("correct horse battery")
        );

        let body: RegisterUserRequest = serde_json::from_value(json!({
            "email": "ada@example.com", "password": "correct horse", "name": "Ada"
        }))
        .expect("well-formed");
        assert!(!format!("{body:?}").contains("horse"));
    }
}
