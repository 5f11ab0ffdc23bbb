use anyhow::Context as _;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash as PhcHash, PasswordHasher as _, PasswordVerifier as _,
    Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use async_trait::async_trait;
use orderly_application::ports::PasswordHasher;
use orderly_domain::{Password, PasswordHash};

/// Argon2id with the OWASP-recommended parameters (19 MiB memory, 2 iterations, 1 lane).
/// Hashing runs on tokio's blocking pool, never on the threads that serve requests.
#[derive(Debug, Clone)]
pub struct Argon2PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the user does not exist so that
    /// an unknown e-mail costs the same time as a wrong password.
    dummy: String,
}

impl Argon2PasswordHasher {
    /// The production parameters.
    ///
    /// # Errors
    /// When the parameters are rejected or the dummy hash cannot be made.
    pub fn new() -> anyhow::Result<Self> {
        Self::with_params(Params::new(19 * 1024, 2, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?)
    }

    /// Cheap parameters for tests only (8 KiB, 1 iteration): same algorithm, same code paths.
    ///
    /// # Errors
    /// When the parameters are rejected.
    pub fn for_tests() -> anyhow::Result<Self> {
        Self::with_params(Params::new(8, 1, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?)
    }

    fn with_params(params: Params) -> anyhow::Result<Self> {
        let dummy = hash_blocking(&params, "orderly-dummy-password-for-timing")?;
        Ok(Self { params, dummy })
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_blocking(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?
        .to_string())
}

fn verify_blocking(params: &Params, password: &str, phc: &str) -> anyhow::Result<bool> {
    let parsed =
        PhcHash::new(phc).map_err(|e| anyhow::anyhow!("a stored password hash is corrupt: {e}"))?;
    match argon2(params).verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(error) => Err(anyhow::anyhow!("verifying a password: {error}")),
    }
}

#[async_trait]
impl PasswordHasher for Argon2PasswordHasher {
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        let params = self.params.clone();
        let password = password.expose().to_owned();
        let phc = tokio::task::spawn_blocking(move || hash_blocking(&params, &password))
            .await
            .context("the hashing task failed")??;
        Ok(PasswordHash::new(phc))
    }

    async fn verify<'a>(
        &self,
        password: &str,
        hash: Option<&'a PasswordHash>,
    ) -> anyhow::Result<bool> {
        let params = self.params.clone();
        let password = password.to_owned();
        let (phc, known) = match hash {
            Some(hash) => (hash.as_str().to_owned(), true),
            None => (self.dummy.clone(), false),
        };
        let matches =
            tokio::task::spawn_blocking(move || verify_blocking(&params, &password, &phc))
                .await
                .context("the verification task failed")??;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Argon2PasswordHasher::for_tests().expect("params");
        let password = Password::parse("correct horse battery".into()).expect("valid");
        let hash = hasher.hash(&password).await.expect("hash");
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse battery", Some(&hash)).await.expect("verify"));
        assert!(!hasher.verify("wrong horse battery", Some(&hash)).await.expect("verify"));
        assert!(!hasher.verify("correct horse battery", None).await.expect("dummy verify"));
        assert!(hasher.verify("x", Some(&PasswordHash::new("garbage".into()))).await.is_err());
    }

    #[tokio::test]
    async fn production_parameters_follow_owasp() {
        let hasher = Argon2PasswordHasher::new().expect("params");
        let hash = hasher
            .hash(&Password::parse("passphrase!".into()).expect("valid"))
            .await
            .expect("hash");
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", hash.as_str());
    }
}
