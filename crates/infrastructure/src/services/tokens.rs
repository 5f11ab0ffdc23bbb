use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use orderly_application::ports::{AccessToken, AccessTokens, Claims, InvalidToken};
use orderly_domain::{
    Role, UserId,
    time::{TimeDelta, Timestamp},
};
use serde::{Deserialize, Serialize};

/// What the access tokens are signed with and say about themselves.
#[derive(Clone)]
pub struct JwtSettings {
    /// The HMAC secret (at least 32 bytes in production).
    pub secret: Vec<u8>,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// How long a token is valid.
    pub ttl: TimeDelta,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct JwtClaims {
    sub: String,
    role: String,
    iat: i64,
    exp: i64,
    iss: String,
    aud: String,
    /// The session epoch (absent in tokens issued before it existed: epoch 0).
    #[serde(default)]
    sep: u64,
}

/// HS256 JWT access tokens, with the algorithm pinned: a token signed any other way (or `none`)
/// is refused.
pub struct JwtAccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    settings: JwtSettings,
}

impl std::fmt::Debug for JwtAccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAccessTokens").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl JwtAccessTokens {
    #[must_use]
    pub fn new(settings: JwtSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked against the caller's clock in `verify`, not the system's.
        validation.validate_exp = false;
        Self {
            encoding: EncodingKey::from_secret(&settings.secret),
            decoding: DecodingKey::from_secret(&settings.secret),
            validation,
            settings,
        }
    }
}

impl AccessTokens for JwtAccessTokens {
    fn issue(&self, claims: Claims, now: Timestamp) -> anyhow::Result<AccessToken> {
        let expires = now + self.settings.ttl;
        let body = JwtClaims {
            sub: claims.user_id.to_string(),
            role: claims.role.as_str().to_owned(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sep: claims.session_epoch,
        };
        let token = encode(&Header::new(Algorithm::HS256), &body, &self.encoding)?;
        let expires_in = u64::try_from(self.settings.ttl.num_seconds()).unwrap_or(0);
        Ok(AccessToken { token, expires_in })
    }

    fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, InvalidToken> {
        let data = decode::<JwtClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| InvalidToken)?;
        let claims = data.claims;
        if claims.exp <= now.timestamp() {
            return Err(InvalidToken);
        }
        let user_id: UserId = claims.sub.parse().map_err(|_| InvalidToken)?;
        let role: Role = claims.role.parse().map_err(|_| InvalidToken)?;
        Ok(Claims { user_id, role, session_epoch: claims.sep })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(secret: &[u8]) -> JwtAccessTokens {
        JwtAccessTokens::new(JwtSettings {
            secret: secret.to_vec(),
            issuer: "orderly".into(),
            audience: "orderly-api".into(),
            ttl: TimeDelta::minutes(15),
        })
    }

    fn now() -> Timestamp {
        Timestamp::from_timestamp(1_800_000_000, 0).expect("valid")
    }

    #[test]
    fn an_issued_token_verifies_until_it_expires() {
        let tokens = tokens(b"0123456789abcdef0123456789abcdef");
        let claims = Claims { user_id: UserId::new(), role: Role::Admin, session_epoch: 4 };
        let issued = tokens.issue(claims, now()).expect("issue");
        assert_eq!(issued.expires_in, 900);
        assert_eq!(tokens.verify(&issued.token, now()), Ok(claims));
        assert_eq!(tokens.verify(&issued.token, now() + TimeDelta::minutes(15)), Err(InvalidToken));
    }

    #[test]
    fn tokens_signed_with_another_secret_or_algorithm_are_refused() {
        let claims = Claims { user_id: UserId::new(), role: Role::Customer, session_epoch: 0 };
        let other =
            tokens(b"another secret of at least 32 bytes!").issue(claims, now()).expect("issue");
        assert_eq!(
            tokens(b"0123456789abcdef0123456789abcdef").verify(&other.token, now()),
            Err(InvalidToken)
        );

        let body = JwtClaims {
            sub: claims.user_id.to_string(),
            role: "admin".into(),
            iat: now().timestamp(),
            exp: now().timestamp() + 60,
            iss: "orderly".into(),
            aud: "orderly-api".into(),
            sep: 0,
        };
        let secret = b"0123456789abcdef0123456789abcdef";
        let hs512 =
            encode(&Header::new(Algorithm::HS512), &body, &EncodingKey::from_secret(secret))
                .expect("encode");
        assert_eq!(tokens(secret).verify(&hs512, now()), Err(InvalidToken));
        assert_eq!(tokens(secret).verify("not.a.token", now()), Err(InvalidToken));
    }

    #[test]
    fn the_secret_never_prints() {
        let settings = tokens(b"super-secret-value-0123456789abcdef").settings.clone();
        assert!(!format!("{settings:?}").contains("super-secret"));
    }
}
