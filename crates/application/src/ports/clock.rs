use orderly_domain::time::Timestamp;

/// The current time. A port so that deadlines and timestamps can be tested.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> Timestamp;
}
