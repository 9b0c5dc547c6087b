//! Procedural macros for [numakit](https://docs.rs/numakit): declare NUMA
//! placement on types, functions and statics.
//!
//! Use them through `numakit`, which re-exports them; generated code reaches
//! the runtime through `::numakit::__private`.
