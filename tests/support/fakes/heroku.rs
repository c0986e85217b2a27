//! Fake heroku API (being written).
