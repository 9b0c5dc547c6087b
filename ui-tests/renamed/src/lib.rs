//! A library crate that declares a placed type; its test (in
//! `tests/renamed.rs`) uses it from another crate without ever calling
//! `place`, so only the record made at start-up can tell `NodeBox` where it
//! belongs.

/// Declared for node 0, from a library crate, under a renamed numakit.
#[nk::numa(node = 0, crate = nk)]
pub struct LibShard {
    /// Some data.
    pub rows: [u64; 4],
}
