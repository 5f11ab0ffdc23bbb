use orderly_application::ports::Clock;
use orderly_domain::time::{Timestamp, Utc};

/// The system clock, truncated to microseconds: the precision PostgreSQL stores, so a value
/// read back equals the value written.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = Utc::now();
        Timestamp::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_has_microsecond_precision() {
        let now = SystemClock.now();
        assert_eq!(now.timestamp_subsec_nanos() % 1000, 0);
        assert!((Utc::now() - now).num_seconds() < 5);
    }
}
