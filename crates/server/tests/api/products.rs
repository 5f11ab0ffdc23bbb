//! Tests for this area (being written).
