//! Fake scalingo API (being written).
