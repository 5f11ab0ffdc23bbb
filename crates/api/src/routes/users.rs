//! `/api/v1/users`, in one module: registration, profiles and a user's orders; their bodies and
//! schemas, and how the use cases' refusals become problems. No response type has a password
//! or hash field, so none can leak.
//!
//! The fields' rules are the domain's (`orderly_domain::user`): the parsers check them and the
//! schemas below are built from the same constants.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use orderly_application::users::{
    delete_user::DeleteUserError,
    get_user::GetUserError,
    list_users::ListUsersError,
    register_user::{RegisterUserError, RegisterUserInput},
    update_user::{CurrentPassword, UpdateUserError, UpdateUserInput},
};
use orderly_domain::{
    Email, Password, Role, User, UserId, UserName, Uuid,
    user::{EMAIL_MAX_LEN, PASSWORD_MAX_LEN, PASSWORD_MIN_LEN, USER_NAME_MAX_LEN},
};
use serde::{Deserialize, Serialize};
use utoipa::{
    ToSchema,
    openapi::{KnownFormat, Object, SchemaFormat},
};

use super::orders::{OrderPage, OrderResponse, UserOrderListQuery};
use crate::{
    auth::Authenticated,
    dto::{PageQuery, schema},
    errors::{concurrent, forbidden, not_found, server_busy, stale},
    etag::if_match,
    problem::{ApiError, ErrorCode, Problem},
    rate_limit::{self, Policy},
    routes::{created, list_request, page_response, resource},
    state::ApiState,
    validation::{FieldErrors, chars, parsed_by},
};

// ---- Schemas, from the domain's bounds ----

fn email(nullable: bool) -> Object {
    schema::string(nullable)
        .pattern(Some(schema::email_pattern()))
        .description(Some(format!(
            "An e-mail address (`local@domain.tld`), at most {EMAIL_MAX_LEN} characters once \
             trimmed; compared case-insensitively, unique."
        )))
        .examples(["ada@example.com"])
        .build()
}

/// `email` of a new user.
fn new_email() -> Object {
    email(false)
}

/// `email` of a user change.
fn changed_email() -> Object {
    email(true)
}

fn password(nullable: bool) -> Object {
    schema::string(nullable)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(PASSWORD_MIN_LEN))
        .max_length(Some(PASSWORD_MAX_LEN))
        .description(Some("Any characters; every one counts (not trimmed)."))
        .build()
}

/// `password` of a new user.
fn new_password() -> Object {
    password(false)
}

/// `password` of a user change.
fn changed_password() -> Object {
    password(true)
}

/// `current_password` of a user change: checked, never parsed, so only bounded.
fn current_password() -> Object {
    schema::string(true)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .max_length(Some(PASSWORD_MAX_LEN))
        .description(Some(
            "Your password as it is now. Required to change your own `password` or `email` \
             (403 `REAUTHENTICATION_REQUIRED` when missing or wrong); not needed to change a \
             name, nor for an admin changing another user's password or e-mail address; \
             ignored when not needed.",
        ))
        .build()
}

/// `name` of a new user.
pub(crate) fn new_user_name() -> Object {
    schema::name_text(false, USER_NAME_MAX_LEN)
}

/// `name` of a user change.
pub(crate) fn changed_user_name() -> Object {
    schema::name_text(true, USER_NAME_MAX_LEN)
}

// ---- Bodies ----

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

/// A password as sent: the parser owns the text it keeps.
fn parse_password(raw: &str) -> Result<Password, orderly_domain::InvalidPassword> {
    Password::parse(raw.to_owned())
}

/// `POST /users`: sign up as a customer.
#[derive(Clone, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada Lovelace"}))]
pub struct RegisterUserRequest {
    #[garde(custom(chars(0, EMAIL_MAX_LEN)), custom(parsed_by(Email::parse)))]
    #[schema(schema_with = new_email)]
    pub email: String,
    #[garde(custom(chars(PASSWORD_MIN_LEN, PASSWORD_MAX_LEN)), custom(parsed_by(parse_password)))]
    #[schema(schema_with = new_password)]
    pub password: String,
    #[garde(custom(chars(1, USER_NAME_MAX_LEN)), custom(parsed_by(UserName::parse)))]
    #[schema(schema_with = new_user_name)]
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

/// `PATCH /users/{id}`: every field optional (`null` is the same as absent); `role` for
/// admins only; `current_password` to change one's own `password` or `email`.
#[derive(Clone, Default, Deserialize, ToSchema, garde::Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Ada King"}))]
pub struct UpdateUserRequest {
    #[garde(inner(custom(chars(0, EMAIL_MAX_LEN)), custom(parsed_by(Email::parse))))]
    #[schema(schema_with = changed_email)]
    pub email: Option<String>,
    #[garde(inner(custom(chars(1, USER_NAME_MAX_LEN)), custom(parsed_by(UserName::parse))))]
    #[schema(schema_with = changed_user_name)]
    pub name: Option<String>,
    #[garde(inner(
        custom(chars(PASSWORD_MIN_LEN, PASSWORD_MAX_LEN)),
        custom(parsed_by(parse_password))
    ))]
    #[schema(schema_with = changed_password)]
    pub password: Option<String>,
    #[garde(skip)]
    pub role: Option<RoleDto>,
    /// Your password as it is now: required to change your own `password` or `email` (403
    /// `REAUTHENTICATION_REQUIRED` without it or when it is wrong); not needed for a name, or
    /// for an admin changing another user; ignored when not needed.
    #[garde(inner(custom(chars(0, PASSWORD_MAX_LEN))))]
    #[schema(schema_with = current_password)]
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

/// The changes of a `PATCH /users/{id}`, parsed.
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
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

// ---- Refusals ----

fn email_taken() -> ApiError {
    ApiError::new(ErrorCode::EmailTaken, "A user with this e-mail address already exists.")
}

/// 409 `LAST_ADMIN`: the only admin would be `what` ("deleted", "demoted").
fn last_admin(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::LastAdmin,
        format!(
            "This user is the only administrator and cannot be {what}; make another user an \
             administrator first."
        ),
    )
}

impl From<RegisterUserError> for ApiError {
    fn from(error: RegisterUserError) -> Self {
        match error {
            RegisterUserError::DuplicateEmail => email_taken(),
            RegisterUserError::Busy => server_busy(),
            RegisterUserError::Store(store) => store.into(),
            RegisterUserError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<GetUserError> for ApiError {
    fn from(error: GetUserError) -> Self {
        match error {
            GetUserError::NotFound => not_found("user"),
            GetUserError::Store(store) => store.into(),
        }
    }
}

impl From<ListUsersError> for ApiError {
    fn from(error: ListUsersError) -> Self {
        match error {
            ListUsersError::Forbidden => forbidden("Only administrators may list users."),
            ListUsersError::InvalidCursor(cursor) => cursor.into(),
            ListUsersError::Store(store) => store.into(),
        }
    }
}

impl From<UpdateUserError> for ApiError {
    fn from(error: UpdateUserError) -> Self {
        match error {
            UpdateUserError::NotFound => not_found("user"),
            UpdateUserError::Forbidden => forbidden("Only administrators may change roles."),
            UpdateUserError::CurrentPasswordRequired => ApiError::new(
                ErrorCode::ReauthenticationRequired,
                "Changing your own password or e-mail address needs your current password: \
                 send it as `current_password`.",
            ),
            UpdateUserError::WrongCurrentPassword => ApiError::new(
                ErrorCode::ReauthenticationRequired,
                "`current_password` is not your current password.",
            ),
            UpdateUserError::VersionMismatch { expected, current } => stale(expected, current),
            UpdateUserError::Conflict => concurrent(),
            UpdateUserError::DuplicateEmail => email_taken(),
            UpdateUserError::LastAdmin => last_admin("demoted"),
            UpdateUserError::Busy => server_busy(),
            UpdateUserError::Store(store) => store.into(),
            UpdateUserError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

impl From<DeleteUserError> for ApiError {
    fn from(error: DeleteUserError) -> Self {
        match error {
            DeleteUserError::NotFound => not_found("user"),
            DeleteUserError::HasOrders => ApiError::new(
                ErrorCode::UserHasOrders,
                "The user has orders, which are kept; the account cannot be deleted.",
            ),
            DeleteUserError::LastAdmin => last_admin("deleted"),
            DeleteUserError::Store(store) => store.into(),
            DeleteUserError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

// ---- Routes ----

/// Register a customer account.
///
/// Anyone may register; the account always gets the `customer` role (admins are made with
/// `orderly admin create`). Log in afterwards at `POST /auth/token`.
#[utoipa::path(
    post, path = "/users", operation_id = "registerUser", tag = "users",
    request_body = RegisterUserRequest,
    responses(
        (status = 201, description = "The new user", body = UserResponse,
            headers(("Location" = String, description = "The user's URL"), ("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "EMAIL_TAKEN", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "SERVER_BUSY: too many passwords are being hashed (with `Retry-After`), or DATABASE_UNAVAILABLE / DATABASE_BUSY", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    state: web::Data<ApiState>,
    request: HttpRequest,
    body: web::Json<RegisterUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    rate_limit::enforce(&request, Policy::AuthPerIp, None, None).await?;
    rate_limit::enforce(&request, Policy::AuthPerAccount, None, Some(&body.email)).await?;
    let input = RegisterUserInput::try_from(body)?;
    let user = state.use_cases.register_user.execute(input).await?;
    Ok(created(
        &request,
        format_args!("/users/{}", user.id()),
        user.version(),
        &UserResponse::from(&user),
    ))
}

/// The logged-in user.
#[utoipa::path(
    get, path = "/users/me", operation_id = "getCurrentUser", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse, headers(("ETag" = String))),
        (status = 304, description = "The copy named by If-None-Match is current"),
        (status = 404, description = "NOT_FOUND: the account was deleted a moment ago (within `AUTH_CACHE_TTL`; afterwards its tokens get 401)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let Authenticated(actor) = auth;
    let id = actor
        .user_id()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a token without a user")))?;
    let user = state.use_cases.get_user.execute(&actor, id).await?;
    Ok(resource(&request, user.version(), &UserResponse::from(&user)))
}

/// List users (admins).
#[utoipa::path(
    get, path = "/users", operation_id = "listUsers", tag = "users",
    params(PageQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of users, oldest first", body = UserPage,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` when there is a next page"))),
        (status = 400, description = "VALIDATION_FAILED (limit over 100) or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: not an admin", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let listed = state.use_cases.list_users.execute(&auth.0, list_request(&query)?).await?;
    let body = UserPage {
        data: listed.items.iter().map(UserResponse::from).collect(),
        next_cursor: listed.next_cursor,
    };
    Ok(page_response(&request, &body, body.next_cursor.as_deref()))
}

/// One user: yourself, or anyone for an admin.
#[utoipa::path(
    get, path = "/users/{id}", operation_id = "getUser", tag = "users",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The user", body = UserResponse, headers(("ETag" = String))),
        (status = 304, description = "The copy named by If-None-Match is current"),
        (status = 404, description = "NOT_FOUND (also for another customer's account)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = state.use_cases.get_user.execute(&auth.0, UserId::from_uuid(*id)).await?;
    Ok(resource(&request, user.version(), &UserResponse::from(&user)))
}

/// Change a user: yourself, or anyone for an admin. Only admins change roles; the last admin
/// cannot be demoted.
///
/// A new `password` or `email` for your own account needs your current password in
/// `current_password` (403 `REAUTHENTICATION_REQUIRED` when it is missing or wrong), admins
/// included; an admin changing another user's needs none. Every request that sends
/// `current_password` also counts against the `auth-account` rate limit of the account.
///
/// Send `If-Match` with the ETag you read to make sure you do not overwrite someone else's change
/// (412 when it did change). Without it, your change is applied to the current user.
#[utoipa::path(
    patch, path = "/users/{id}", operation_id = "updateUser", tag = "users",
    params(("id" = Uuid, Path, description = "The user's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you last read")),
    request_body = UpdateUserRequest,
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The user as stored", body = UserResponse, headers(("ETag" = String))),
        (status = 400, description = "VALIDATION_FAILED or MALFORMED_REQUEST", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "FORBIDDEN: a customer changing a role; REAUTHENTICATION_REQUIRED: a new password or e-mail address for your own account without your current password in `current_password`, or with a wrong one", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "EMAIL_TAKEN, LAST_ADMIN (demoting the only admin) or CONCURRENT_MODIFICATION (without If-Match, after repeated concurrent changes)", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "PRECONDITION_FAILED: If-Match is stale", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "SERVER_BUSY: too many passwords are being hashed (a password change; with `Retry-After`), or DATABASE_UNAVAILABLE / DATABASE_BUSY", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    body: web::Json<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.current_password.is_some() {
        // Each one is a guess at the account's password: bounded per account, like logins.
        let account = format!("user:{}", id.as_ref());
        rate_limit::enforce(&request, Policy::AuthPerAccount, None, Some(&account)).await?;
    }
    let changes = UserChanges::try_from(body)?;
    // Preconditions are evaluated once the request itself is known to be valid (RFC 9110
    // section 13.2.1): a malformed body is a 400 whatever If-Match says.
    let input = changes.into_input(UserId::from_uuid(*id), if_match(&request)?);
    let user = state.use_cases.update_user.execute(&auth.0, input).await?;
    Ok(resource(&request, user.version(), &UserResponse::from(&user)))
}

/// Delete a user without orders: yourself, or anyone for an admin. The last admin cannot be
/// deleted.
#[utoipa::path(
    delete, path = "/users/{id}", operation_id = "deleteUser", tag = "users",
    params(("id" = Uuid, Path, description = "The user's id")),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Deleted; the user's sessions are revoked"),
        (status = 404, description = "NOT_FOUND", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "USER_HAS_ORDERS or LAST_ADMIN (deleting the only admin)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    state: web::Data<ApiState>,
    auth: Authenticated,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state.use_cases.delete_user.execute(&auth.0, UserId::from_uuid(*id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A user's orders, newest first: yours, or anyone's for an admin.
#[utoipa::path(
    get, path = "/users/{id}/orders", operation_id = "listUserOrders", tag = "orders",
    params(("id" = Uuid, Path, description = "The user's id"), PageQuery, UserOrderListQuery),
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "One page of the user's orders", body = OrderPage,
            headers(("Link" = String, description = "`<...>; rel=\"next\"` when there is a next page"))),
        (status = 400, description = "VALIDATION_FAILED or INVALID_CURSOR", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: another customer's account", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn orders(
    state: web::Data<ApiState>,
    request: HttpRequest,
    auth: Authenticated,
    id: web::Path<Uuid>,
    page: web::Query<PageQuery>,
    filter: web::Query<UserOrderListQuery>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth.0;
    let listed = state
        .use_cases
        .list_user_orders
        .execute(
            &actor,
            UserId::from_uuid(*id),
            filter.status.map(Into::into),
            list_request(&page)?,
        )
        .await?;
    let body = OrderPage {
        data: listed
            .items
            .iter()
            .map(|order| OrderResponse::new(order, &actor, state.clock.now()))
            .collect(),
        next_cursor: listed.next_cursor,
    };
    Ok(page_response(&request, &body, body.next_cursor.as_deref()))
}

/// This module's operations, in routing order (`routes::table`).
pub(crate) fn endpoints() -> Vec<super::table::Declared> {
    super::table::declared![register, list, me, get, update, delete, orders]
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
