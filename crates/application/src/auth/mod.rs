//! Use cases of the OAuth2 token endpoint (log in with a password, refresh a session, revoke
//! it), the check of an access token on every authenticated request, and the database's check
//! of an admin before admin-only work ([`admin_check`]).

pub mod admin_check;
pub mod authenticate;
pub mod authorize;
pub mod refresh_session;
pub mod revoke_token;

use orderly_domain::{Role, UserId};

use crate::ports::AccessToken;

/// What a successful login or refresh hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The short-lived bearer token.
    pub access: AccessToken,
    /// The opaque, single-use refresh token.
    pub refresh_token: String,
    /// Who logged in.
    pub user_id: UserId,
    /// With which role.
    pub role: Role,
}
