//! numakit's C interface: `libnumakit.so` / `libnumakit.a` and the headers
//! under `include/numakit/`, source-compatible with the C library of the
//! same design (`nkit_*` functions, opaque handles, by-value lock types).
//!
//! Every function is a thin layer over the numakit crate: the C layer
//! checks arguments (`NULL` handles, negative ids), calls the Rust API and
//! turns its `Result` into `NULL`/`-1`/`0` plus a thread-local error
//! (`nkit_last_error()`, `nkit_last_error_message()`: the function's name
//! and the Rust error's text). Nothing falls back: where the memory cannot be on the node asked
//! for, the call fails and says why. No panic crosses the boundary: every
//! exported function runs its body under `catch_unwind`
//! ([`error::ffi`]).
//!
//! The by-value lock types keep the C library's sizes (8, 16, 4 and 128
//! bytes); numakit's own MCS and reader-writer locks carry a second state
//! word and do not fit them, so `nkit_mcs_*` and `nkit_rws_*` are one-word
//! locks of this crate ([`sync`]); the ticket lock is numakit's
//! `RawTicket`, placed in the caller's 128 bytes.

pub mod auto_balancer;
pub mod balancer;
pub mod deque;
pub mod error;
pub mod ext;
pub mod hash;
mod keys;
pub mod memory;
pub mod messaging;
pub mod pool;
pub mod ring;
pub mod sched;
pub mod skip_list;
pub mod sync;
pub mod topology;

use error::{ffi, CError, NKIT_ERR_TOPOLOGY};
use std::ffi::{c_char, c_int};

/// `nkit_init`: read the topology (once; later calls reuse it). Returns 0,
/// or -1 when the topology cannot be read (the error says which file).
///
/// Calling it is optional with numakit (every function reads the topology
/// on first use); it is kept so that programs written for the C library
/// build and fail early when the machine cannot be described.
#[no_mangle]
pub extern "C" fn nkit_init() -> c_int {
    ffi("nkit_init", -1, || {
        let topo = nk::Topology::current()?;
        if topo.num_nodes() == 0 {
            return Err(CError::new(
                NKIT_ERR_TOPOLOGY,
                "nkit_init: the topology lists no NUMA node",
            ));
        }
        Ok(0)
    })
}

/// `nkit_teardown`: undo `nkit_bind_thread` / `nkit_pin_thread_*` on the
/// calling thread. Handles are released by their own `*_destroy`/`*_free`
/// functions; numakit keeps no other global state to release.
#[no_mangle]
pub extern "C" fn nkit_teardown() {
    ffi("nkit_teardown", (), || {
        sched::unpin_calling_thread();
        Ok(())
    })
}

/// The library's version, `"MAJOR.MINOR.PATCH"` (static storage).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

/// The version's parts, as `NKIT_VERSION_MAJOR` / `_MINOR` / `_PATCH` in
/// `version.h` state them for the headers a program was built with.
#[no_mangle]
pub extern "C" fn nkit_version_number() -> c_int {
    let part = |s: &str| s.parse::<c_int>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 10_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    /// The by-value C types have the sizes and alignments this crate gives
    /// them: a C file asserts them with `_Static_assert` and must compile.
    #[test]
    fn by_value_types_match_the_headers_host_only() {
        let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
        let mut c = String::from("#include <numakit/numakit.h>\n");
        for (name, size, align) in crate::sync::layouts() {
            c.push_str(&format!(
                "_Static_assert(sizeof({name}) == {size}, \"size of {name}\");\n\
                 _Static_assert(_Alignof({name}) == {align}, \"alignment of {name}\");\n"
            ));
        }
        // And the C library's documented sizes, so neither side drifts.
        for (name, size) in [
            ("nkit_mcs_lock_t", 8),
            ("nkit_mcs_node_t", 16),
            ("nkit_rws_lock_t", 4),
            ("nkit_ticket_lock_t", 128),
            ("nkit_thread_policy_t", 8),
        ] {
            c.push_str(&format!(
                "_Static_assert(sizeof({name}) == {size}, \"C library size of {name}\");\n"
            ));
        }
        c.push_str(&format!(
            "_Static_assert(NKIT_MAILBOX_CAPACITY == {}, \"mailbox capacity\");\n",
            crate::messaging::MAILBOX_CAPACITY
        ));
        let dir = std::env::temp_dir().join(format!("nkit-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("layout.c");
        std::fs::write(&file, &c).unwrap();
        let out = Command::new("gcc")
            .args([
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-fsyntax-only",
                "-I",
            ])
            .arg(&include)
            .arg(&file)
            .output()
            .expect("gcc must be installed to check the C headers");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "layout assertions failed:\n{c}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
