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
        hmac_only::install();
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

/// jsonwebtoken's cryptography, for the HMAC algorithms only (ADR 0038). Its `rust_crypto`
/// backend builds RSA, ECDSA and EdDSA too, which tokens signed with a shared secret never use;
/// this provider computes and checks the MAC with the `hmac` and `sha2` crates the service
/// already builds (`verify_slice`: a constant-time comparison). Any other algorithm is refused
/// as a key of the wrong kind.
mod hmac_only {
    use hmac::{Hmac, Mac};
    use jsonwebtoken::{
        Algorithm, DecodingKey, EncodingKey,
        crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier},
        errors::{ErrorKind, Result},
    };
    use sha2::{Sha256, Sha384, Sha512};
    use signature::{Signer, Verifier};

    static PROVIDER: CryptoProvider = CryptoProvider {
        signer_factory: signer,
        verifier_factory: verifier,
        jwk_utils: JwkUtils::new_unimplemented(),
    };

    /// Makes it the process's provider; a second call (another `JwtAccessTokens`) changes
    /// nothing.
    pub(super) fn install() {
        let _already = PROVIDER.install_default();
    }

    /// A keyed MAC and the algorithm it stands for; it signs and verifies.
    struct Keyed {
        algorithm: Algorithm,
        secret: Vec<u8>,
    }

    impl Keyed {
        fn new(algorithm: Algorithm, secret: &[u8]) -> Result<Self> {
            match algorithm {
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                    Ok(Self { algorithm, secret: secret.to_vec() })
                }
                _ => Err(ErrorKind::InvalidAlgorithm.into()),
            }
        }

        fn mac(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
            fn compute<M: Mac + hmac::digest::KeyInit>(
                secret: &[u8],
                message: &[u8],
            ) -> std::result::Result<Vec<u8>, signature::Error> {
                let mut mac =
                    <M as Mac>::new_from_slice(secret).map_err(signature::Error::from_source)?;
                mac.update(message);
                Ok(mac.finalize().into_bytes().to_vec())
            }
            match self.algorithm {
                Algorithm::HS384 => compute::<Hmac<Sha384>>(&self.secret, message),
                Algorithm::HS512 => compute::<Hmac<Sha512>>(&self.secret, message),
                _ => compute::<Hmac<Sha256>>(&self.secret, message),
            }
        }
    }

    impl Signer<Vec<u8>> for Keyed {
        fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
            self.mac(message)
        }
    }

    impl JwtSigner for Keyed {
        fn algorithm(&self) -> Algorithm {
            self.algorithm
        }
    }

    impl Verifier<Vec<u8>> for Keyed {
        fn verify(
            &self,
            message: &[u8],
            signature: &Vec<u8>,
        ) -> std::result::Result<(), signature::Error> {
            fn check<M: Mac + hmac::digest::KeyInit>(
                secret: &[u8],
                message: &[u8],
                signature: &[u8],
            ) -> std::result::Result<(), signature::Error> {
                let mut mac =
                    <M as Mac>::new_from_slice(secret).map_err(signature::Error::from_source)?;
                mac.update(message);
                mac.verify_slice(signature).map_err(signature::Error::from_source)
            }
            match self.algorithm {
                Algorithm::HS384 => check::<Hmac<Sha384>>(&self.secret, message, signature),
                Algorithm::HS512 => check::<Hmac<Sha512>>(&self.secret, message, signature),
                _ => check::<Hmac<Sha256>>(&self.secret, message, signature),
            }
        }
    }

    impl JwtVerifier for Keyed {
        fn algorithm(&self) -> Algorithm {
            self.algorithm
        }
    }

    fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
        Ok(Box::new(Keyed::new(*algorithm, key.try_get_hmac_secret()?)?))
    }

    fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
        Ok(Box::new(Keyed::new(*algorithm, key.try_get_hmac_secret()?)?))
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

    /// RFC 7515, appendix A.1: the HS256 example's signature, computed and checked by the
    /// provider this crate installs.
    #[test]
    fn the_rfc_7515_hs256_example_signs_and_verifies() {
        use base64::Engine as _;
        let _tokens = tokens(b"0123456789abcdef0123456789abcdef");
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(
                "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
            )
            .expect("the example's key");
        let message = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
            eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let expected = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let signed = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(&secret),
            Algorithm::HS256,
        )
        .expect("sign");
        assert_eq!(signed, expected);
        let key = DecodingKey::from_secret(&secret);
        let verify = |signature| {
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, Algorithm::HS256)
        };
        assert!(verify(expected).expect("verify"));
        assert!(!verify("eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").expect("verify"));
        assert!(
            jsonwebtoken::crypto::verify(expected, message.as_bytes(), &key, Algorithm::RS256)
                .is_err()
        );
    }

    #[test]
    fn the_secret_never_prints() {
        let settings = tokens(b"super-secret-value-0123456789abcdef").settings.clone();
        assert!(!format!("{settings:?}").contains("super-secret"));
    }
}
