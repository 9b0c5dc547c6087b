//! Nothing here: the test in `tests/renamed.rs` is the point of this crate.
