//! Users: who can log in, and with which role.

use std::{fmt, str::FromStr};

use crate::{UserId, text, text::TextError, time::Timestamp};

/// Longest accepted e-mail address (RFC 5321 path limit).
pub const EMAIL_MAX_LEN: usize = 254;
/// Longest local part (before the `@`) of an e-mail address.
pub const EMAIL_LOCAL_MAX_LEN: usize = 64;
/// Longest display name, in characters.
pub const USER_NAME_MAX_LEN: usize = 100;
/// Shortest accepted password, in characters (OWASP ASVS 2.1.1).
pub const PASSWORD_MIN_LEN: usize = 8;
/// Longest accepted password, in characters: long passphrases welcome, hashing cost bounded.
pub const PASSWORD_MAX_LEN: usize = 128;

/// Why an e-mail address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    /// Longer than [`EMAIL_MAX_LEN`] bytes.
    #[error("must be at most {EMAIL_MAX_LEN} characters long")]
    TooLong,
    /// Not of the form `local@domain.tld`.
    #[error("is not a valid e-mail address")]
    Malformed,
}

impl crate::RuleError for InvalidEmail {
    fn code(&self) -> &'static str {
        match self {
            Self::TooLong => crate::rule::LENGTH,
            Self::Malformed => crate::rule::EMAIL,
        }
    }
}

/// An e-mail address, trimmed and lower-cased so that uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address of the form `local@domain.tld`.
    ///
    /// The check is deliberately structural (one `@`, a local part of at most 64 characters, a
    /// dotted domain of letters, digits and hyphens, no spaces): proving an address exists takes a
    /// confirmation mail, not a regex.
    ///
    /// # Errors
    /// [`InvalidEmail`] when the address is too long or malformed.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let email = raw.trim().to_lowercase();
        if email.len() > EMAIL_MAX_LEN {
            return Err(InvalidEmail::TooLong);
        }
        let (local, domain) = email.split_once('@').ok_or(InvalidEmail::Malformed)?;
        let local_ok = !local.is_empty()
            && local.len() <= EMAIL_LOCAL_MAX_LEN
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok { Ok(Self(email)) } else { Err(InvalidEmail::Malformed) }
    }

    /// The normalised address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("name {0}")]
pub struct InvalidUserName(#[from] pub TextError);

impl crate::RuleError for InvalidUserName {
    fn code(&self) -> &'static str {
        self.0.code()
    }
}

/// A user's display name: 1 to [`USER_NAME_MAX_LEN`] characters, trimmed, no control characters
/// and no invisible formatting characters ([`crate::text::FORMAT_CHARACTER_RANGES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// Parses a display name.
    ///
    /// # Errors
    /// [`InvalidUserName`] when empty, too long, or containing control or invisible formatting
    /// characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidUserName> {
        Ok(Self(text::name(raw, USER_NAME_MAX_LEN)?))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPassword {
    /// Shorter than [`PASSWORD_MIN_LEN`] characters.
    #[error("password must be at least {PASSWORD_MIN_LEN} characters long")]
    TooShort,
    /// Longer than [`PASSWORD_MAX_LEN`] characters.
    #[error("password must be at most {PASSWORD_MAX_LEN} characters long")]
    TooLong,
}

impl crate::RuleError for InvalidPassword {
    fn code(&self) -> &'static str {
        match self {
            Self::TooShort | Self::TooLong => crate::rule::LENGTH,
        }
    }
}

/// A plain-text password on its way to the hasher. Never printed: `Debug` shows a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks the length rules. Passwords are not trimmed: every character counts.
    ///
    /// # Errors
    /// [`InvalidPassword`] when too short or too long.
    pub fn parse(raw: String) -> Result<Self, InvalidPassword> {
        let length = raw.chars().count();
        if length < PASSWORD_MIN_LEN {
            Err(InvalidPassword::TooShort)
        } else if length > PASSWORD_MAX_LEN {
            Err(InvalidPassword::TooLong)
        } else {
            Ok(Self(raw))
        }
    }

    /// The secret itself, for the hasher only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A password hash in PHC string format, as produced by the password hasher port.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by a hasher or read from storage.
    #[must_use]
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// An unknown role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role: expected `customer` or `admin`")]
pub struct InvalidRole(String);

/// What a user may do. Customers act on their own data; admins on everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Registers, browses, orders for themselves.
    Customer,
    /// Manages the catalogue, all orders and all users.
    Admin,
}

impl Role {
    /// Every role, for documentation and exhaustive tests.
    pub const ALL: [Self; 2] = [Self::Customer, Self::Admin];

    /// The stable, lower-case name used on the wire and in storage.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| InvalidRole(s.to_owned()))
    }
}

/// Everything a stored user consists of, for repositories that rebuild a [`User`].
#[derive(Debug, Clone)]
pub struct UserParts {
    pub id: UserId,
    pub email: Email,
    pub name: UserName,
    pub role: Role,
    pub password_hash: PasswordHash,
    /// See [`User::session_epoch`].
    pub session_epoch: u64,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A person who can log in.
///
/// `version` counts saved changes for optimistic locking: a loaded user carries the stored version,
/// any change moves it one step on, and a repository writes the change only if the stored row still
/// has the version the user was loaded with.
#[derive(Debug, Clone)]
pub struct User {
    id: UserId,
    email: Email,
    name: UserName,
    role: Role,
    password_hash: PasswordHash,
    /// Moves on when the credentials change; access tokens carry the epoch they were issued in
    /// and stop working once it has moved on.
    session_epoch: u64,
    version: u64,
    /// The version in storage when loaded (0 before the first save): every change since moves
    /// `version` to this + 1, so one save is one version step however many fields changed.
    stored_version: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl User {
    /// A newly registered user with the given role, at version 1.
    #[must_use]
    pub fn register(
        email: Email,
        name: UserName,
        password_hash: PasswordHash,
        role: Role,
        now: Timestamp,
    ) -> Self {
        Self {
            id: UserId::new(),
            email,
            name,
            role,
            password_hash,
            session_epoch: 0,
            version: 1,
            stored_version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Rebuilds a stored user.
    #[must_use]
    pub fn restore(parts: UserParts) -> Self {
        let UserParts {
            id,
            email,
            name,
            role,
            password_hash,
            session_epoch,
            version,
            created_at,
            updated_at,
        } = parts;
        Self {
            id,
            email,
            name,
            role,
            password_hash,
            session_epoch,
            version,
            stored_version: version,
            created_at,
            updated_at,
        }
    }

    #[must_use]
    pub fn id(&self) -> UserId {
        self.id
    }
    #[must_use]
    pub fn email(&self) -> &Email {
        &self.email
    }
    #[must_use]
    pub fn name(&self) -> &UserName {
        &self.name
    }
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }
    #[must_use]
    pub fn password_hash(&self) -> &PasswordHash {
        &self.password_hash
    }
    /// The session epoch: access tokens issued before it moved on (a new password) are no
    /// longer accepted.
    #[must_use]
    pub fn session_epoch(&self) -> u64 {
        self.session_epoch
    }
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }
    #[must_use]
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    #[must_use]
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    /// Changes the e-mail address (uniqueness is the repository's to enforce).
    pub fn change_email(&mut self, email: Email, now: Timestamp) {
        if self.email != email {
            self.email = email;
            self.touch(now);
        }
    }

    /// Changes the display name.
    pub fn rename(&mut self, name: UserName, now: Timestamp) {
        if self.name != name {
            self.name = name;
            self.touch(now);
        }
    }

    /// Changes the role. Who may do so is the use case's decision (admins only).
    pub fn change_role(&mut self, role: Role, now: Timestamp) {
        if self.role != role {
            self.role = role;
            self.touch(now);
        }
    }

    /// Replaces the password hash and ends every session: the session epoch moves on.
    pub fn change_password(&mut self, password_hash: PasswordHash, now: Timestamp) {
        self.password_hash = password_hash;
        self.session_epoch += 1;
        self.touch(now);
    }

    fn touch(&mut self, now: Timestamp) {
        self.version = self.stored_version + 1;
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn now() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    fn user() -> User {
        User::register(
            Email::parse("ada@example.com").expect("valid"),
            UserName::parse("Ada").expect("valid"),
            PasswordHash::new("$argon2id$v=19$...".into()),
            Role::Customer,
            now(),
        )
    }

    #[test]
    fn emails_are_normalised_to_lower_case() {
        let email = Email::parse("  Ada.Lovelace+orders@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "ada.lovelace+orders@example.com");
        assert_eq!(email.to_string(), email.as_str());
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for raw in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@exa mple.com",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "ada@-example.com",
            "ada@example-.com",
            "ada@example..com",
        ] {
            assert_eq!(Email::parse(raw), Err(InvalidEmail::Malformed), "{raw:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(EMAIL_LOCAL_MAX_LEN + 1));
        assert_eq!(Email::parse(&long_local), Err(InvalidEmail::Malformed));
        let long = format!("{}@{}.com", "a".repeat(60), "b".repeat(EMAIL_MAX_LEN));
        assert_eq!(Email::parse(&long), Err(InvalidEmail::TooLong));
    }

    #[test]
    fn names_follow_the_text_rules() {
        assert_eq!(UserName::parse(" Ada ").map(|n| n.as_str().to_owned()), Ok("Ada".into()));
        assert_eq!(UserName::parse(""), Err(InvalidUserName(TextError::Empty)));
        let long = "x".repeat(USER_NAME_MAX_LEN + 1);
        assert_eq!(
            UserName::parse(&long),
            Err(InvalidUserName(TextError::TooLong { max: USER_NAME_MAX_LEN }))
        );
        for raw in ["Zoë", "李雷", "Ωmega"] {
            assert_eq!(UserName::parse(raw).map(|n| n.as_str().to_owned()), Ok(raw.to_owned()));
        }
    }

    #[test]
    fn names_refuse_invisible_formatting_characters() {
        for raw in
            ["\u{202e}admin", "ad\u{200b}min", "\u{2066}Ada\u{2069}", "Ada\u{feff}", "A\u{ad}da"]
        {
            let refused = UserName::parse(raw).expect_err(raw);
            assert_eq!(refused, InvalidUserName(TextError::FormatCharacter), "{raw:?}");
            assert_eq!(crate::RuleError::code(&refused), crate::rule::FORMAT_CHARACTERS);
        }
    }

    #[test]
    fn passwords_have_length_limits_and_never_print() {
        assert_eq!(Password::parse("short".into()), Err(InvalidPassword::TooShort));
        assert_eq!(
            Password::parse("x".repeat(PASSWORD_MAX_LEN + 1)),
            Err(InvalidPassword::TooLong)
        );
        let password = Password::parse("correct horse battery".into()).expect("valid");
        assert_eq!(password.expose(), "correct horse battery");
        assert!(!format!("{password:?}").contains("horse"));
        let hash = PasswordHash::new("$argon2id$secret".into());
        assert!(!format!("{hash:?}").contains("secret"));
        assert_eq!(hash.as_str(), "$argon2id$secret");
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
        }
        assert_eq!("root".parse::<Role>(), Err(InvalidRole("root".into())));
    }

    #[test]
    fn a_registered_user_starts_at_version_one() {
        let user = user();
        assert_eq!(user.version(), 1);
        assert_eq!(user.role(), Role::Customer);
        assert_eq!(user.created_at(), user.updated_at());
        assert_eq!(user.name().as_str(), "Ada");
        assert_eq!(user.password_hash().as_str(), "$argon2id$v=19$...");
    }

    fn stored(user: User, version: u64) -> User {
        User::restore(UserParts {
            id: user.id(),
            email: user.email().clone(),
            name: user.name().clone(),
            role: user.role(),
            password_hash: user.password_hash().clone(),
            session_epoch: user.session_epoch(),
            version,
            created_at: user.created_at(),
            updated_at: user.updated_at(),
        })
    }

    #[test]
    fn changes_move_the_version_one_step_and_a_no_op_does_not() {
        let mut user = stored(user(), 4);
        let later = now() + chrono::TimeDelta::seconds(5);
        user.rename(UserName::parse("Ada").expect("valid"), later);
        user.change_email(user.email().clone(), later);
        user.change_role(Role::Customer, later);
        assert_eq!(user.version(), 4);
        assert_eq!(user.updated_at(), now());

        user.rename(UserName::parse("Ada L.").expect("valid"), later);
        user.change_email(Email::parse("ada@example.org").expect("valid"), later);
        user.change_role(Role::Admin, later);
        assert_eq!(user.session_epoch(), 0, "a role or name change keeps the sessions");
        user.change_password(PasswordHash::new("new".into()), later);
        assert_eq!(user.version(), 5, "one save, one version step, however many changes");
        assert_eq!(user.session_epoch(), 1, "a new password ends the sessions");

        let mut fresh = self::user();
        fresh.rename(UserName::parse("Ada B.").expect("valid"), later);
        assert_eq!(fresh.version(), 1, "a user not yet stored is saved as version 1");
        assert_eq!(user.updated_at(), later);
        assert_eq!(user.role(), Role::Admin);
        assert_eq!(user.email().as_str(), "ada@example.org");
    }

    #[test]
    fn a_restored_user_keeps_every_part() {
        let original = user();
        let restored = User::restore(UserParts {
            id: original.id(),
            email: original.email().clone(),
            name: original.name().clone(),
            role: original.role(),
            password_hash: original.password_hash().clone(),
            session_epoch: 3,
            version: 7,
            created_at: original.created_at(),
            updated_at: original.updated_at(),
        });
        assert_eq!(restored.id(), original.id());
        assert_eq!(restored.version(), 7);
        assert_eq!(restored.session_epoch(), 3);
    }

    proptest! {
        #[test]
        fn any_well_formed_address_parses_and_is_idempotent(
            local in "[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]", domain in "[a-z0-9]{1,20}", tld in "[a-z]{2,6}",
        ) {
            prop_assume!(!local.contains(".."));
            let raw = format!("{local}@{domain}.{tld}");
            let email = Email::parse(&raw).expect("well-formed");
            prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
            prop_assert_eq!(email.as_str(), raw.as_str());
        }

        #[test]
        fn parse_never_panics_and_accepted_addresses_are_bounded(raw in "\\PC{0,300}") {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert!(email.as_str().len() <= EMAIL_MAX_LEN);
                prop_assert_eq!(email.as_str().matches('@').count(), 1);
            }
        }

        #[test]
        fn password_length_decides_acceptance(len in 0..200_usize) {
            let accepted = Password::parse("p".repeat(len)).is_ok();
            prop_assert_eq!(accepted, (PASSWORD_MIN_LEN..=PASSWORD_MAX_LEN).contains(&len));
        }

        #[test]
        fn accepted_names_are_trimmed_and_bounded(raw in "\\PC{0,150}") {
            if let Ok(name) = UserName::parse(&raw) {
                prop_assert_eq!(name.as_str(), name.as_str().trim());
                prop_assert!(!name.as_str().is_empty());
                prop_assert!(name.as_str().chars().count() <= USER_NAME_MAX_LEN);
            }
        }
    }
}
