use orderly_domain::time::Timestamp;

/// The current time. A port so that deadlines and timestamps can be tested.
#[mockall::automock]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> Timestamp;
}
