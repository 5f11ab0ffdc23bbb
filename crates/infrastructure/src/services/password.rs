//! Argon2id password hashing, bounded: at most `concurrency` hashes run at once, at most `queue`
//! more wait, and every hash works in one of `concurrency` memory areas allocated once and
//! reused. A login flood therefore costs at most `concurrency` x 19 MiB and a short queue; the
//! requests beyond it are refused at once with [`HashError::Busy`] (HTTP 503 `SERVER_BUSY`)
//! instead of piling up blocking threads that each hold 19 MiB (ADR 0016).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use anyhow::Context as _;
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash as PhcHash, Version,
    password_hash::{
        Output, ParamsString, SaltString,
        rand_core::{OsRng, RngCore as _},
    },
};
use async_trait::async_trait;
use orderly_application::ports::{HashError, PasswordHasher};
use orderly_domain::{Password, PasswordHash};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The largest memory cost a stored hash may ask for (256 MiB): a corrupt or hostile hash must
/// not make us allocate without bound.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

/// How many hashes run at once and how many may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLimits {
    /// Hashes computed at the same time (each on a blocking thread with its own memory area).
    pub concurrency: usize,
    /// Hashes that may wait for a free slot; one more is refused.
    pub queue: usize,
}

impl HashingLimits {
    /// `concurrency` slots (0: one per core) and `queue` waiting places.
    #[must_use]
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            concurrency
        };
        Self { concurrency, queue }
    }
}

/// Admission, slots, and the memory areas the slots work in.
#[derive(Debug)]
struct Gate {
    limits: HashingLimits,
    /// `concurrency + queue` permits: a request that gets none is refused.
    admission: Arc<Semaphore>,
    /// `concurrency` permits: a request that holds one computes.
    slots: Arc<Semaphore>,
    /// Reused memory areas, at most one per slot.
    memory: Mutex<Vec<Vec<Block>>>,
    /// Requests refused because the slots and the queue were full, since start.
    refused: AtomicU64,
}

/// What the hashing gate holds at one moment (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingStatus {
    /// Hashes that may run at once.
    pub slots: usize,
    /// Hashes running.
    pub in_use: usize,
    /// Hashes admitted and waiting for a slot.
    pub waiting: usize,
    /// Requests refused (`503 SERVER_BUSY`) since start.
    pub refused: u64,
}

/// Argon2id with the OWASP-recommended parameters (19 MiB memory, 2 iterations, 1 lane).
/// Hashing runs on tokio's blocking pool, never on the threads that serve requests.
#[derive(Debug, Clone)]
pub struct Argon2PasswordHasher {
    params: Params,
    /// A hash of a random password, verified against when the user does not exist so that
    /// an unknown e-mail costs the same time as a wrong password (and waits in the same queue).
    dummy: String,
    gate: Arc<Gate>,
}

impl Argon2PasswordHasher {
    /// The production parameters.
    ///
    /// # Errors
    /// When the parameters are rejected or the dummy hash cannot be made.
    pub fn new(limits: HashingLimits) -> anyhow::Result<Self> {
        Self::with_params(
            Params::new(19 * 1024, 2, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?,
            limits,
        )
    }

    /// Cheap parameters for tests only (8 KiB, 1 iteration): same algorithm, same code paths.
    ///
    /// # Errors
    /// When the parameters are rejected.
    pub fn for_tests(limits: HashingLimits) -> anyhow::Result<Self> {
        Self::with_params(Params::new(8, 1, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?, limits)
    }

    fn with_params(params: Params, limits: HashingLimits) -> anyhow::Result<Self> {
        let dummy = dummy_hash(&params)?;
        let gate = Gate {
            limits,
            admission: Arc::new(Semaphore::new(limits.concurrency + limits.queue)),
            slots: Arc::new(Semaphore::new(limits.concurrency)),
            memory: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
        };
        Ok(Self { params, dummy, gate: Arc::new(gate) })
    }

    /// Runs `work` on a blocking thread with a memory area, once a slot is free; refuses at
    /// once when the queue is full. The permits travel with the work, so a request that gives
    /// up waiting does not free a slot that is still computing.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted: OwnedSemaphorePermit =
            self.gate.admission.clone().try_acquire_owned().map_err(|_| {
                self.gate.refused.fetch_add(1, Ordering::Relaxed);
                HashError::Busy
            })?;
        let slot = self
            .gate
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Failed(anyhow::anyhow!("the hashing gate is closed")))?;
        let gate = self.gate.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = gate.take_memory();
            let result = work(&mut memory);
            gate.give_back(memory);
            drop((slot, admitted));
            result
        })
        .await
        .context("the hashing task failed")?
        .map_err(HashError::Failed)
    }
}

impl Argon2PasswordHasher {
    /// The slots in use, the requests waiting and the refusals so far. The counts are read
    /// one after the other, not atomically together: good for metrics, not for decisions.
    #[must_use]
    pub fn status(&self) -> HashingStatus {
        let gate = &self.gate;
        let in_use = gate.limits.concurrency.saturating_sub(gate.slots.available_permits());
        let admitted = (gate.limits.concurrency + gate.limits.queue)
            .saturating_sub(gate.admission.available_permits());
        HashingStatus {
            slots: gate.limits.concurrency,
            in_use,
            waiting: admitted.saturating_sub(in_use),
            refused: gate.refused.load(Ordering::Relaxed),
        }
    }
}

impl Gate {
    fn take_memory(&self) -> Vec<Block> {
        self.memory.lock().map(|mut areas| areas.pop()).ok().flatten().unwrap_or_default()
    }

    fn give_back(&self, memory: Vec<Block>) {
        if let Ok(mut areas) = self.memory.lock() {
            areas.push(memory);
        }
    }
}

fn argon2(algorithm: Algorithm, version: Version, params: Params) -> Argon2<'static> {
    Argon2::new(algorithm, version, params)
}

/// Grows `memory` to what `params` needs (it never shrinks: the area is reused).
fn ensure_memory(memory: &mut Vec<Block>, params: &Params) {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
}

fn hash_blocking(
    params: &Params,
    password: &str,
    memory: &mut Vec<Block>,
) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0_u8; 64];
    let salt_bytes =
        salt.decode_b64(&mut salt_bytes).map_err(|e| anyhow::anyhow!("a fresh salt: {e}"))?;
    ensure_memory(memory, params);
    let hasher = argon2(Algorithm::Argon2id, Version::V0x13, params.clone());
    let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(length, |out| {
        hasher
            .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    phc_string(params, &salt, output)
}

fn phc_string(params: &Params, salt: &SaltString, output: Output) -> anyhow::Result<String> {
    let phc = PhcHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow::anyhow!("{e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// A well-formed hash with `params`, a random salt and a random output: no password hashes to
/// it, and verifying against it costs exactly what verifying against a real hash costs (the
/// verifier recomputes the hash either way). Made without hashing, so start-up does not pay
/// for one (issue 11 found 29 of 31 ms of start-up there).
fn dummy_hash(params: &Params) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut bytes = vec![0_u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    OsRng.fill_bytes(&mut bytes);
    let output = Output::new(&bytes).map_err(|e| anyhow::anyhow!("a dummy hash: {e}"))?;
    phc_string(params, &salt, output)
}

fn verify_blocking(password: &str, phc: &str, memory: &mut Vec<Block>) -> anyhow::Result<bool> {
    let corrupt =
        |e: &dyn std::fmt::Display| anyhow::anyhow!("a stored password hash is corrupt: {e}");
    let parsed = PhcHash::new(phc).map_err(|e| corrupt(&e))?;
    let expected = parsed.hash.ok_or_else(|| corrupt(&"no hash"))?;
    let salt = parsed.salt.ok_or_else(|| corrupt(&"no salt"))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| corrupt(&e))?;
    let version = parsed.version.map(Version::try_from).transpose().map_err(|e| corrupt(&e))?;
    let params = Params::try_from(&parsed).map_err(|e| corrupt(&e))?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return Err(corrupt(&format!("a memory cost of {} KiB", params.m_cost())));
    }
    let mut salt_bytes = [0_u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| corrupt(&e))?;
    ensure_memory(memory, &params);
    let hasher = argon2(algorithm, version.unwrap_or_default(), params);
    let computed = Output::init_with(expected.len(), |out| {
        hasher
            .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *memory)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("verifying a password: {e}"))?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

#[async_trait]
impl PasswordHasher for Argon2PasswordHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let params = self.params.clone();
        let password = password.expose().to_owned();
        let phc = self.run(move |memory| hash_blocking(&params, &password, memory)).await?;
        Ok(PasswordHash::new(phc))
    }

    async fn verify<'a>(
        &self,
        password: &str,
        hash: Option<&'a PasswordHash>,
    ) -> Result<bool, HashError> {
        let password = password.to_owned();
        let (phc, known) = match hash {
            Some(hash) => (hash.as_str().to_owned(), true),
            None => (self.dummy.clone(), false),
        };
        let matches = self.run(move |memory| verify_blocking(&password, &phc, memory)).await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cheap(concurrency: usize, queue: usize) -> Argon2PasswordHasher {
        Argon2PasswordHasher::for_tests(HashingLimits::new(concurrency, queue)).expect("params")
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = cheap(2, 2);
        let password = Password::parse("correct horse battery".into()).expect("valid");
        let hash = hasher.hash(&password).await.expect("hash");
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse battery", Some(&hash)).await.expect("verify"));
        assert!(!hasher.verify("wrong horse battery", Some(&hash)).await.expect("verify"));
        assert!(!hasher.verify("correct horse battery", None).await.expect("dummy verify"));
        assert!(matches!(
            hasher.verify("x", Some(&PasswordHash::new("garbage".into()))).await,
            Err(HashError::Failed(_))
        ));
    }

    #[tokio::test]
    async fn hashes_made_by_the_library_itself_verify() {
        use argon2::PasswordHasher as _;
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::new(64, 1, 1, None).expect("params");
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"library made", &salt)
            .expect("hash")
            .to_string();
        let hasher = cheap(1, 0);
        let stored = PasswordHash::new(phc);
        assert!(hasher.verify("library made", Some(&stored)).await.expect("verify"));
        assert!(!hasher.verify("library made!", Some(&stored)).await.expect("verify"));
    }

    #[tokio::test]
    async fn a_hostile_memory_cost_is_refused_not_allocated() {
        let hasher = cheap(1, 0);
        let hostile = PasswordHash::new(
            "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                .into(),
        );
        assert!(matches!(hasher.verify("x", Some(&hostile)).await, Err(HashError::Failed(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_slots_and_the_queue_requests_are_refused_at_once() {
        // Production parameters make each hash slow enough (tens of ms) to overlap.
        let hasher = Argon2PasswordHasher::new(HashingLimits::new(1, 1)).expect("params");
        let password = Password::parse("flood flood flood".into()).expect("valid");
        let attempts: Vec<_> = (0..8)
            .map(|_| {
                let hasher = hasher.clone();
                let password = password.clone();
                tokio::spawn(async move { hasher.hash(&password).await })
            })
            .collect();
        let mut done = 0;
        let mut busy = 0;
        for attempt in attempts {
            match tokio::time::timeout(Duration::from_secs(30), attempt)
                .await
                .expect("no hang")
                .expect("the task")
            {
                Ok(_) => done += 1,
                Err(HashError::Busy) => busy += 1,
                Err(HashError::Failed(error)) => panic!("unexpected failure: {error:#}"),
            }
        }
        assert!(done >= 2, "the slot and the queue place are served ({done})");
        assert!(busy >= 1, "the rest is refused ({done} done, {busy} busy)");
        assert_eq!(done + busy, 8);
        let status = hasher.status();
        assert_eq!((status.slots, status.in_use, status.waiting), (1, 0, 0), "{status:?}");
        assert_eq!(status.refused, busy, "every refusal is counted");
        // Capacity comes back once the flood is over.
        hasher.hash(&password).await.expect("a slot is free again");
        assert!(hasher.gate.memory.lock().expect("lock").len() <= 1, "one area per slot");
    }

    #[tokio::test]
    async fn production_parameters_follow_owasp() {
        let hasher = Argon2PasswordHasher::new(HashingLimits::new(1, 1)).expect("params");
        let hash = hasher
            .hash(&Password::parse("passphrase!".into()).expect("valid"))
            .await
            .expect("hash");
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", hash.as_str());
        assert!(hasher.verify("passphrase!", Some(&hash)).await.expect("verify"));
    }
}
