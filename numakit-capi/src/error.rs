//! The thread-local last error and the guard every exported function runs
//! its body in.
//!
//! Every exported function that can fail clears the calling thread's error
//! when it starts and sets it when it fails, so `nkit_last_error()` after a
//! call says whether that call failed (a `NULL` from `nkit_hash_get` is then
//! told apart from a stored `NULL` value). The message is the function's
//! name and the `Display` text of the numakit error.

use nk::mem::MemError;
use nk::sched::SchedError;
use nk::topology::TopologyError;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `NKIT_OK`: the last call succeeded.
pub const NKIT_OK: c_int = 0;
/// A `NULL` handle or pointer, a size, count or flag out of range.
pub const NKIT_ERR_INVALID_ARGUMENT: c_int = 1;
/// The node asked for does not exist.
pub const NKIT_ERR_NO_SUCH_NODE: c_int = 2;
/// The CPU asked for is not online.
pub const NKIT_ERR_NO_SUCH_CPU: c_int = 3;
/// The node (or the handle's reserved room) cannot give the memory.
pub const NKIT_ERR_OUT_OF_MEMORY: c_int = 4;
/// Hugepages were asked for and the node's pool cannot provide them.
pub const NKIT_ERR_HUGEPAGES: c_int = 5;
/// Pages are not on the node they must be on.
pub const NKIT_ERR_MISPLACED: c_int = 6;
/// The process may not use that node or CPU (cpuset, `taskset`).
pub const NKIT_ERR_NOT_ALLOWED: c_int = 7;
/// A system call failed (the message names it and keeps errno's text).
pub const NKIT_ERR_OS: c_int = 8;
/// The ring is full.
pub const NKIT_ERR_FULL: c_int = 9;
/// The ring is empty.
pub const NKIT_ERR_EMPTY: c_int = 10;
/// The key is not in the table.
pub const NKIT_ERR_NOT_FOUND: c_int = 11;
/// The topology could not be read.
pub const NKIT_ERR_TOPOLOGY: c_int = 12;
/// The request cannot be met on this machine without falling back.
pub const NKIT_ERR_UNSUPPORTED: c_int = 13;
/// numakit panicked; the call was abandoned (a defect in numakit).
pub const NKIT_ERR_PANIC: c_int = 14;

/// An error on its way to C: a code and the message.
#[derive(Debug)]
pub struct CError {
    /// One of the `NKIT_ERR_*` codes.
    pub code: c_int,
    /// What `nkit_last_error_message` returns.
    pub message: String,
}

impl CError {
    /// An error with `code` and `message`.
    pub fn new(code: c_int, message: impl Into<String>) -> Self {
        CError {
            code,
            message: message.into(),
        }
    }

    /// A `NULL` where a handle or pointer is required.
    pub fn null(what: &str, function: &str) -> Self {
        CError::new(
            NKIT_ERR_INVALID_ARGUMENT,
            format!("{function}: {what} is NULL"),
        )
    }
}

fn topology_code(e: &TopologyError) -> c_int {
    match e {
        TopologyError::NoSuchNode { .. } => NKIT_ERR_NO_SUCH_NODE,
        TopologyError::NoSuchCpu { .. } => NKIT_ERR_NO_SUCH_CPU,
        TopologyError::Os { .. } => NKIT_ERR_OS,
        _ => NKIT_ERR_TOPOLOGY,
    }
}

fn mem_code(e: &MemError) -> c_int {
    match e {
        MemError::Topology(t) => topology_code(t),
        MemError::MemorylessNode { .. }
        | MemError::OutOfNodeMemory { .. }
        | MemError::Exhausted { .. }
        | MemError::SlabFull { .. } => NKIT_ERR_OUT_OF_MEMORY,
        MemError::NodeNotAllowed { .. } => NKIT_ERR_NOT_ALLOWED,
        MemError::HugepagesUnavailable { .. } | MemError::HugepageSizeUnsupported { .. } => {
            NKIT_ERR_HUGEPAGES
        }
        MemError::Misplaced { .. } | MemError::PlacementContradicted { .. } => NKIT_ERR_MISPLACED,
        MemError::Os { .. } => NKIT_ERR_OS,
        _ => NKIT_ERR_INVALID_ARGUMENT,
    }
}

fn sched_code(e: &SchedError) -> c_int {
    match e {
        SchedError::Topology(t) => topology_code(t),
        SchedError::NotAllowed { .. }
        | SchedError::NodeNotAllowed { .. }
        | SchedError::MemoryNotAllowed { .. } => NKIT_ERR_NOT_ALLOWED,
        SchedError::NoCpus { .. } | SchedError::MemorylessNode { .. } => NKIT_ERR_UNSUPPORTED,
        SchedError::Os { .. } | SchedError::Spawn { .. } => NKIT_ERR_OS,
        _ => NKIT_ERR_INVALID_ARGUMENT,
    }
}

/// The text of a topology error in C's terms: an absent node is listed
/// with the C calls that say which exist (the Rust text names a cargo
/// example); other errors keep numakit's text.
fn topology_text(e: &TopologyError) -> String {
    match e {
        TopologyError::NoSuchNode {
            requested,
            available,
        } => {
            let ids: Vec<String> = available.iter().map(|n| n.to_string()).collect();
            format!(
                "NUMA node {requested} does not exist: this machine has node{} {}; ask for one \
                 of those (nkit_topo_num_nodes() counts them; `numakit topology` or `numactl \
                 --hardware` lists them)",
                if ids.len() == 1 { "" } else { "s" },
                ids.join(", ")
            )
        }
        other => other.to_string(),
    }
}

/// The text of a memory error in C's terms (see [`topology_text`]); the
/// arena and slab errors that name Rust calls are worded by their C
/// functions.
fn mem_text(e: &MemError) -> String {
    match e {
        MemError::Topology(t) => topology_text(t),
        other => other.to_string(),
    }
}

impl From<TopologyError> for CError {
    fn from(e: TopologyError) -> Self {
        CError::new(topology_code(&e), topology_text(&e))
    }
}

impl From<MemError> for CError {
    fn from(e: MemError) -> Self {
        CError::new(mem_code(&e), mem_text(&e))
    }
}

impl From<SchedError> for CError {
    fn from(e: SchedError) -> Self {
        let text = match &e {
            SchedError::Topology(t) => topology_text(t),
            other => other.to_string(),
        };
        CError::new(sched_code(&e), text)
    }
}

impl From<nk::Error> for CError {
    fn from(e: nk::Error) -> Self {
        let text = match &e {
            nk::Error::Topology(t) => topology_text(t),
            nk::Error::Mem(m) => mem_text(m),
            nk::Error::Sched(SchedError::Topology(t)) => topology_text(t),
            other => other.to_string(),
        };
        let code = match &e {
            nk::Error::Topology(t) => topology_code(t),
            nk::Error::Mem(m) => mem_code(m),
            nk::Error::Sched(s) => sched_code(s),
            nk::Error::CpuId(_) => NKIT_ERR_NO_SUCH_CPU,
            nk::Error::Push(_) => NKIT_ERR_FULL,
            nk::Error::Pop(_) => NKIT_ERR_EMPTY,
            nk::Error::Insert(i) => mem_code(i.error()),
            _ => NKIT_ERR_INVALID_ARGUMENT,
        };
        CError::new(code, text)
    }
}

/// A ring or deque capacity from C: a power of two from 1 to `max`, said
/// in slots (the Rust errors speak of sizes).
pub(crate) fn capacity_arg(capacity: u64, max: u64, what: &str) -> Result<usize, CError> {
    let refuse = |why: String| {
        Err(CError::new(
            NKIT_ERR_INVALID_ARGUMENT,
            format!("capacity {capacity}: {why}"),
        ))
    };
    if capacity == 0 {
        return refuse(format!(
            "a {what} needs at least one slot; ask for 1 or more (a power of two)"
        ));
    }
    if capacity > max {
        return refuse(format!(
            "a {what} holds at most {max} (2^{}) slots",
            max.ilog2()
        ));
    }
    if !capacity.is_power_of_two() {
        // Below `max`, a power of two: so is the next power of two.
        let below = 1u64 << capacity.ilog2();
        return refuse(format!(
            "{what} capacities are powers of two; use {} (or {below})",
            below * 2
        ));
    }
    usize::try_from(capacity).or_else(|_| refuse("more than this machine can address".into()))
}

/// Room for the last message, its NUL included; a longer message is cut
/// at a character boundary and ends in "...".
const MESSAGE_ROOM: usize = 1024;

thread_local! {
    // `const` and without destructors: plain `#[thread_local]` statics that
    // stay usable while the thread exits (calls from pthread key
    // destructors and atexit handlers keep their errors).
    static CODE: Cell<c_int> = const { Cell::new(NKIT_OK) };
    static MESSAGE: RefCell<[u8; MESSAGE_ROOM]> = const { RefCell::new([0; MESSAGE_ROOM]) };
}

/// `message`, NUL-free and cut to fit, into `buf` with its NUL.
fn store(buf: &mut [u8; MESSAGE_ROOM], message: &str) {
    const CUT: &str = "...";
    let mut len = message.len();
    let cut = len >= MESSAGE_ROOM;
    if cut {
        len = MESSAGE_ROOM - 1 - CUT.len();
        while !message.is_char_boundary(len) {
            len -= 1;
        }
    }
    for (b, &m) in buf.iter_mut().zip(&message.as_bytes()[..len]) {
        // A NUL inside would cut the C string short: it becomes a space.
        *b = if m == 0 { b' ' } else { m };
    }
    if cut {
        buf[len..len + CUT.len()].copy_from_slice(CUT.as_bytes());
        len += CUT.len();
    }
    buf[len] = 0;
}

fn set(code: c_int, message: &str) {
    let _ = CODE.try_with(|c| c.set(code));
    let _ = MESSAGE.try_with(|m| {
        // Busy only if a signal handler's call interrupted this thread's
        // own: the handler's error then stays without its message.
        if let Ok(mut m) = m.try_borrow_mut() {
            store(&mut m, message);
        }
    });
}

pub(crate) fn clear() {
    if CODE.try_with(Cell::get).is_ok_and(|c| c != NKIT_OK) {
        set(NKIT_OK, "");
    }
}

/// Record `e`, raised by the exported `function`, as the calling thread's
/// last error; its message starts with the function's name.
pub(crate) fn record(function: &str, e: CError) {
    let named = e
        .message
        .strip_prefix(function)
        .is_some_and(|rest| rest.starts_with(':'));
    if named {
        set(e.code, &e.message);
    } else {
        set(e.code, &format!("{function}: {}", e.message));
    }
}

/// Run the body of the exported `function`: clear the last error, run
/// `body` catching any unwinding, record its error, and return `failed`
/// on error. A call that succeeds leaves no error, also when a callback
/// it ran (a message handler, a task) made a call that failed.
pub(crate) fn ffi<R>(
    function: &'static str,
    failed: R,
    body: impl FnOnce() -> Result<R, CError>,
) -> R {
    clear();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(r)) => {
            clear();
            r
        }
        Ok(Err(e)) => {
            record(function, e);
            failed
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            // Dropping the payload could itself panic; keep it out of the way.
            std::mem::forget(payload);
            set(
                NKIT_ERR_PANIC,
                &format!(
                    "{function}: numakit panicked (a defect in numakit; please report it): {what}"
                ),
            );
            failed
        }
    }
}

/// The calling thread's last error code (`NKIT_OK` after a call that
/// succeeded).
#[no_mangle]
pub extern "C" fn nkit_last_error() -> c_int {
    CODE.try_with(Cell::get).unwrap_or(NKIT_OK)
}

/// The calling thread's last error message: never `NULL`, empty after a
/// call that succeeded; valid until the thread's next `nkit_*` call.
#[no_mangle]
pub extern "C" fn nkit_last_error_message() -> *const c_char {
    static EMPTY: &std::ffi::CStr = c"";
    // The buffer is the thread's, never freed, and changes only at the
    // thread's next call, as documented.
    MESSAGE
        .try_with(|m| m.as_ptr().cast::<c_char>().cast_const())
        .unwrap_or(EMPTY.as_ptr())
}

/// A node id from C: negative ids are refused with the nodes that exist.
pub(crate) fn node_arg(node_id: c_int, function: &str) -> Result<nk::NodeId, CError> {
    match u32::try_from(node_id) {
        Ok(id) => Ok(nk::NodeId::new(id)),
        Err(_) => {
            let nodes = nk::Topology::current()
                .map(|t| {
                    t.node_ids()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|e| format!("unknown ({e})"));
            Err(CError::new(
                NKIT_ERR_NO_SUCH_NODE,
                format!(
                    "{function}: NUMA node {node_id} does not exist (node ids are not negative); \
                     this machine has nodes {nodes}"
                ),
            ))
        }
    }
}

/// A CPU id from C: negative ids are refused with the online CPUs.
pub(crate) fn cpu_arg(cpu_id: c_int, function: &str) -> Result<nk::CpuId, CError> {
    match u32::try_from(cpu_id) {
        Ok(id) => Ok(nk::CpuId::new(id)),
        Err(_) => {
            let online = nk::Topology::current()
                .map(|t| t.online_cpus().to_string())
                .unwrap_or_else(|e| format!("unknown ({e})"));
            Err(CError::new(
                NKIT_ERR_NO_SUCH_CPU,
                format!(
                    "{function}: CPU {cpu_id} is not online (CPU ids are not negative); \
                     the online CPUs are {online}"
                ),
            ))
        }
    }
}

/// An `int` result from a count that may not fit.
pub(crate) fn to_int(n: usize, what: &str) -> Result<c_int, CError> {
    c_int::try_from(n).map_err(|_| {
        CError::new(
            NKIT_ERR_UNSUPPORTED,
            format!("{what} is {n}, more than an int can hold"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn message() -> String {
        // SAFETY: the pointer is a NUL-terminated string that stays valid
        // until this thread's next call (none here).
        unsafe { CStr::from_ptr(nkit_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_an_error_return() {
        let r: c_int = ffi("nkit_f", -1, || panic!("boom {}", 42));
        assert_eq!(r, -1);
        assert_eq!(nkit_last_error(), NKIT_ERR_PANIC);
        assert!(message().starts_with("nkit_f: "), "{}", message());
        assert!(message().contains("boom 42"), "{}", message());
        // A panic with a non-string payload.
        let r: *mut u8 = ffi("nkit_f", std::ptr::null_mut(), || {
            std::panic::panic_any(7u32)
        });
        assert!(r.is_null());
        assert_eq!(nkit_last_error(), NKIT_ERR_PANIC);
        assert!(message().contains("without a message"), "{}", message());
        // The next call that succeeds clears it.
        assert_eq!(ffi("nkit_g", -1, || Ok::<c_int, CError>(3)), 3);
        assert_eq!(nkit_last_error(), NKIT_OK);
        assert_eq!(message(), "");
    }

    #[test]
    fn messages_are_the_function_and_the_rust_errors_text() {
        let e = nk::mem::MemError::InvalidConfig("x\0y".into());
        let text = e.to_string();
        let r: c_int = ffi("nkit_f", -1, || Err(e.into()));
        assert_eq!(r, -1);
        assert_eq!(nkit_last_error(), NKIT_ERR_INVALID_ARGUMENT);
        // An interior NUL would cut the C string short: it becomes a space.
        assert_eq!(message(), format!("nkit_f: {}", text.replace('\0', " ")));
        // A message that names its function already is not named twice;
        // one that only starts with the name is.
        ffi("nkit_f", (), || Err(CError::new(1, "nkit_f: a")));
        assert_eq!(message(), "nkit_f: a");
        ffi("nkit_f", (), || Err(CError::new(1, "nkit_fx: a")));
        assert_eq!(message(), "nkit_f: nkit_fx: a");
    }

    #[test]
    fn a_call_that_succeeds_leaves_no_error_from_a_callback() {
        let r = ffi("nkit_outer", 0, || {
            let inner: c_int = ffi("nkit_inner", -1, || Err(CError::new(9, "full")));
            assert_eq!(nkit_last_error(), 9);
            Ok(inner)
        });
        assert_eq!(r, -1);
        assert_eq!(nkit_last_error(), NKIT_OK);
        assert_eq!(message(), "");
    }

    #[test]
    fn long_messages_are_cut_at_a_character_with_their_nul() {
        for len in [0, 1, MESSAGE_ROOM - 2, MESSAGE_ROOM - 1, MESSAGE_ROOM, 5000] {
            // Two-byte characters: a cut at an odd byte would split one.
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            ffi("f", (), || Err(CError::new(1, text.clone())));
            let m = message();
            let full = format!("f: {text}");
            if full.len() < MESSAGE_ROOM {
                assert_eq!(m, full);
            } else {
                assert!(
                    m.len() < MESSAGE_ROOM && m.len() > MESSAGE_ROOM - 8,
                    "{}",
                    m.len()
                );
                assert!(m.ends_with("...") && full.starts_with(&m[..m.len() - 3]));
            }
        }
        // From another thread, the messages are that thread's.
        std::thread::spawn(|| assert_eq!(message(), ""))
            .join()
            .unwrap();
    }

    #[test]
    fn capacities_are_said_in_slots() {
        let max = 1 << 31;
        for (c, want) in [
            (0, "at least one slot"),
            (3, "use 4 (or 2)"),
            ((1 << 31) - 1, "use 2147483648 (or 1073741824)"),
            (u64::from(u32::MAX), "at most 2147483648 (2^31) slots"),
            (max + 1, "at most 2147483648 (2^31) slots"),
            (u64::MAX, "at most 2147483648 (2^31) slots"),
        ] {
            let e = capacity_arg(c, max, "deque").unwrap_err();
            assert_eq!(e.code, NKIT_ERR_INVALID_ARGUMENT);
            assert!(
                e.message.starts_with(&format!("capacity {c}: ")) && e.message.contains(want),
                "{c}: {}",
                e.message
            );
            assert!(!e.message.contains("bytes"), "{}", e.message);
        }
        assert_eq!(capacity_arg(1, max, "deque").unwrap(), 1);
        assert_eq!(capacity_arg(max, max, "deque").unwrap(), 1 << 31);
    }

    #[test]
    fn an_absent_node_is_named_with_the_c_calls_that_list_them() {
        let e: CError = TopologyError::NoSuchNode {
            requested: nk::NodeId::new(7),
            available: vec![nk::NodeId::new(0), nk::NodeId::new(2)],
        }
        .into();
        assert_eq!(e.code, NKIT_ERR_NO_SUCH_NODE);
        assert!(e.message.contains("node 7 does not exist"), "{}", e.message);
        assert!(e.message.contains("nodes 0, 2"), "{}", e.message);
        assert!(e.message.contains("nkit_topo_num_nodes"), "{}", e.message);
        assert!(!e.message.contains("cargo"), "{}", e.message);
        let e: CError = nk::mem::Arena::new(nk::NodeId::new(4096), 4096)
            .unwrap_err()
            .into();
        assert!(!e.message.contains("cargo"), "{}", e.message);
    }

    #[test]
    fn negative_ids_name_what_exists() {
        let e = node_arg(-3, "f").unwrap_err();
        assert_eq!(e.code, NKIT_ERR_NO_SUCH_NODE);
        assert!(
            e.message.contains("node -3") && e.message.contains("nodes 0"),
            "{}",
            e.message
        );
        let e = cpu_arg(i32::MIN, "g").unwrap_err();
        assert_eq!(e.code, NKIT_ERR_NO_SUCH_CPU);
        assert!(e.message.contains("CPU -2147483648"), "{}", e.message);
        assert_eq!(node_arg(i32::MAX, "f").unwrap().get(), i32::MAX as u32);
        assert!(to_int(usize::MAX, "n").is_err());
        assert_eq!(to_int(5, "n").unwrap(), 5);
    }
}
