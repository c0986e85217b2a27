//! Fake clever API (being written).
