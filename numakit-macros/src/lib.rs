//! Procedural macros for [numakit](https://docs.rs/numakit): declare NUMA
//! placement on types, functions and statics, and let the compiler refuse
//! anything ambiguous.
//!
//! Use them through `numakit`, which re-exports them and documents them;
//! generated code reaches the runtime through `::numakit::__private` only.
//!
//! Each macro parses, validates, then expands (one file each). On an error
//! the item is still emitted next to `compile_error!`, so follow-on errors
//! and IDEs stay sane.

use proc_macro::TokenStream;

mod args;
mod numa;
mod numa_static;
mod pinned;

/// Place a struct's values on a NUMA node: `#[numa(node = N)]` or
/// `#[numa(interleave = [A, B, ..])]`. See `numakit`'s documentation.
///
/// `repr(C)`, `repr(transparent)` and `repr(align(N))` are kept; a packed
/// struct (`repr(packed)`, `repr(packed(N))`) is refused, since `place`
/// writes each field in place and that needs aligned fields.
#[proc_macro_attribute]
pub fn numa(attr: TokenStream, item: TokenStream) -> TokenStream {
    numa::expand(attr.into(), item.into()).into()
}

/// Run a function with the calling thread pinned: `#[pinned(node = N)]` or
/// `#[pinned(cpu = C)]`, plus `on_error = panic` for functions that do not
/// return `Result`. See `numakit`'s documentation.
#[proc_macro_attribute]
pub fn pinned(attr: TokenStream, item: TokenStream) -> TokenStream {
    pinned::expand(attr.into(), item.into()).into()
}

/// Statics placed on a node, initialised once on first access. See
/// `numakit`'s documentation.
#[proc_macro]
pub fn numa_static(input: TokenStream) -> TokenStream {
    numa_static::expand(input.into()).into()
}
