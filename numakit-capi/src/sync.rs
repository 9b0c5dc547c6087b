//! `sync.h`: MCS, ticket and reader-writer spin locks in storage the
//! caller declares by value, and the partitioned counter.
//!
//! The C types fix the layout: `nkit_mcs_lock_t` is one pointer,
//! `nkit_mcs_node_t` a pointer and an `int`, `nkit_rws_lock_t` one 32-bit
//! word. numakit's [`RawMcs`](nk::sync::RawMcs) and
//! [`RawRwLock`](nk::sync::RawRwLock) keep a second word (a state word next
//! to the MCS tail, a writer-notify word next to the reader-writer state),
//! so they cannot live in that storage; the MCS and reader-writer locks
//! here are the classic one-word algorithms on exactly the C fields.
//! The ticket lock's 128 bytes hold numakit's
//! [`RawTicket`](nk::sync::RawTicket) (12 bytes).
//!
//! Waiting spins with a growing pause and then yields the CPU, so a waiter
//! never starves the holder on an oversubscribed machine.

use crate::error::{ffi, CError, NKIT_ERR_UNSUPPORTED};
use nk::sync::{PartitionedCounter, RawTicket};
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32};

/// Spin with a growing pause, then yield: one round of waiting.
struct Backoff(u32);

impl Backoff {
    fn wait(&mut self) {
        if self.0 < 7 {
            for _ in 0..1u32 << self.0 {
                std::hint::spin_loop();
            }
            self.0 += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// `nkit_mcs_node_t`: the queue record of one waiting thread.
#[repr(C)]
pub struct NkitMcsNode {
    next: AtomicPtr<NkitMcsNode>,
    locked: AtomicI32,
}

/// `nkit_mcs_lock_t`: the tail of the queue (`NULL` when free).
#[repr(C)]
pub struct NkitMcsLock {
    tail: AtomicPtr<NkitMcsNode>,
}

// The state table of the MCS lock (one word, `tail`):
//
// | tail          | meaning                                        |
// |---------------|------------------------------------------------|
// | NULL          | free                                           |
// | node of T     | held (or about to be) by T, nobody queued after |
// | node of U ≠ T | held, U is the last of the queue               |
//
// A waiter swaps itself in as tail, links itself behind the previous tail
// and spins on its own `locked`; the holder hands over by clearing its
// successor's `locked`, or, with no successor, by swinging tail back to
// NULL.

/// Set `*lock` free.
///
/// # Safety
/// `lock` points to writable storage of an `nkit_mcs_lock_t` nobody uses.
#[no_mangle]
pub unsafe extern "C" fn nkit_mcs_init(lock: *mut NkitMcsLock) {
    ffi("nkit_mcs_init", (), || {
        if lock.is_null() {
            return Err(CError::null("lock", "nkit_mcs_init"));
        }
        // SAFETY: non-null, writable and unused per the contract.
        unsafe {
            lock.write(NkitMcsLock {
                tail: AtomicPtr::new(ptr::null_mut()),
            })
        };
        Ok(())
    })
}

/// Acquire `lock`, queueing on `node`.
///
/// # Safety
/// `lock` is initialised; `node` is storage of the calling thread that it
/// does not use for anything else until the matching `nkit_mcs_unlock`.
#[no_mangle]
pub unsafe extern "C" fn nkit_mcs_lock(lock: *mut NkitMcsLock, node: *mut NkitMcsNode) {
    ffi("nkit_mcs_lock", (), || {
        if lock.is_null() {
            return Err(CError::null("lock", "nkit_mcs_lock"));
        }
        if node.is_null() {
            return Err(CError::null("node", "nkit_mcs_lock"));
        }
        // SAFETY: non-null; the lock is initialised and shared only through
        // atomics; the node is ours until unlock (the contract).
        let (l, n) = unsafe { (&*lock, &*node) };
        n.next.store(ptr::null_mut(), Relaxed);
        n.locked.store(1, Relaxed);
        // AcqRel: publishes the node's fields to the predecessor, and
        // acquires the previous holder's critical section when free.
        let prev = l.tail.swap(node, AcqRel);
        if let Some(prev) = ptr::NonNull::new(prev) {
            // SAFETY: `prev` is the node of a thread that has not released
            // yet (it waits for our link before it can leave unlock).
            unsafe { prev.as_ref() }.next.store(node, Release);
            let mut b = Backoff(0);
            while n.locked.load(Acquire) != 0 {
                b.wait();
            }
        }
        Ok(())
    })
}

/// Release `lock`, handing it to the next queued thread.
///
/// # Safety
/// The calling thread holds `lock`, acquired with this `node`.
#[no_mangle]
pub unsafe extern "C" fn nkit_mcs_unlock(lock: *mut NkitMcsLock, node: *mut NkitMcsNode) {
    ffi("nkit_mcs_unlock", (), || {
        if lock.is_null() {
            return Err(CError::null("lock", "nkit_mcs_unlock"));
        }
        if node.is_null() {
            return Err(CError::null("node", "nkit_mcs_unlock"));
        }
        // SAFETY: as in `nkit_mcs_lock`.
        let (l, n) = unsafe { (&*lock, &*node) };
        let mut next = n.next.load(Acquire);
        if next.is_null() {
            if l.tail
                .compare_exchange(node, ptr::null_mut(), Release, Relaxed)
                .is_ok()
            {
                return Ok(());
            }
            // A successor swapped itself in and is about to link itself.
            let mut b = Backoff(0);
            loop {
                next = n.next.load(Acquire);
                if !next.is_null() {
                    break;
                }
                b.wait();
            }
        }
        // SAFETY: `next` is the queued successor's node, alive while it
        // spins on `locked`.
        unsafe { &*next }.locked.store(0, Release);
        Ok(())
    })
}

/// `nkit_rws_lock_t`: bit 0 writer active, bit 1 writer waiting, bits 2–31
/// the readers inside (the C library's layout).
#[repr(C)]
pub struct NkitRwsLock {
    state: AtomicU32,
}

const RWS_WRITER: u32 = 1;
const RWS_WRITER_WAITING: u32 = 2;
const RWS_READER: u32 = 4;
/// The largest reader count plus one reader still fits.
const RWS_READERS_FULL: u32 = !3;

/// # Safety
/// The pointer is `NULL` or what the exported function's contract says.
unsafe fn rws<'a>(lock: *mut NkitRwsLock, function: &str) -> Result<&'a NkitRwsLock, CError> {
    // SAFETY: a non-null lock is initialised storage shared through atomics
    // only (the C precondition).
    unsafe { lock.as_ref() }.ok_or_else(|| CError::null("lock", function))
}

/// Set `*lock` free.
///
/// # Safety
/// `lock` points to writable storage of an `nkit_rws_lock_t` nobody uses.
#[no_mangle]
pub unsafe extern "C" fn nkit_rws_init(lock: *mut NkitRwsLock) {
    ffi("nkit_rws_init", (), || {
        if lock.is_null() {
            return Err(CError::null("lock", "nkit_rws_init"));
        }
        // SAFETY: non-null, writable, unused (the contract).
        unsafe {
            lock.write(NkitRwsLock {
                state: AtomicU32::new(0),
            })
        };
        Ok(())
    })
}

/// Take a shared lock; waits while a writer holds the lock or waits for it.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_rws_read_lock(lock: *mut NkitRwsLock) {
    ffi("nkit_rws_read_lock", (), || {
        // SAFETY: forwarded contract.
        let l = unsafe { rws(lock, "nkit_rws_read_lock") }?;
        let mut b = Backoff(0);
        loop {
            let s = l.state.load(Relaxed);
            if s & (RWS_WRITER | RWS_WRITER_WAITING) == 0
                && s < RWS_READERS_FULL
                && l.state
                    .compare_exchange_weak(s, s + RWS_READER, Acquire, Relaxed)
                    .is_ok()
            {
                return Ok(());
            }
            b.wait();
        }
    })
}

/// Release a shared lock.
///
/// # Safety
/// The calling thread holds a shared lock on `lock`.
#[no_mangle]
pub unsafe extern "C" fn nkit_rws_read_unlock(lock: *mut NkitRwsLock) {
    ffi("nkit_rws_read_unlock", (), || {
        // SAFETY: forwarded contract.
        let l = unsafe { rws(lock, "nkit_rws_read_unlock") }?;
        l.state.fetch_sub(RWS_READER, Release);
        Ok(())
    })
}

/// Take the exclusive lock; new readers wait from the moment a writer
/// waits (writer preference).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_rws_write_lock(lock: *mut NkitRwsLock) {
    ffi("nkit_rws_write_lock", (), || {
        // SAFETY: forwarded contract.
        let l = unsafe { rws(lock, "nkit_rws_write_lock") }?;
        let mut b = Backoff(0);
        loop {
            let s = l.state.load(Relaxed);
            if s & !RWS_WRITER_WAITING == 0 {
                // No writer, no reader: take it (clearing the waiting bit;
                // other waiting writers set it again on their next round).
                if l.state
                    .compare_exchange_weak(s, RWS_WRITER, Acquire, Relaxed)
                    .is_ok()
                {
                    return Ok(());
                }
                continue;
            }
            if s & RWS_WRITER_WAITING == 0 {
                l.state.fetch_or(RWS_WRITER_WAITING, Relaxed);
            }
            b.wait();
        }
    })
}

/// Release the exclusive lock.
///
/// # Safety
/// The calling thread holds the exclusive lock on `lock`.
#[no_mangle]
pub unsafe extern "C" fn nkit_rws_write_unlock(lock: *mut NkitRwsLock) {
    ffi("nkit_rws_write_unlock", (), || {
        // SAFETY: forwarded contract.
        let l = unsafe { rws(lock, "nkit_rws_write_unlock") }?;
        l.state.fetch_and(!RWS_WRITER, Release);
        Ok(())
    })
}

/// `nkit_ticket_lock_t`: 128 bytes aligned to 64, holding a numakit
/// [`RawTicket`] at its start.
#[repr(C, align(64))]
pub struct NkitTicketLock {
    storage: [u8; 128],
}

const _: () = assert!(std::mem::size_of::<RawTicket>() <= std::mem::size_of::<NkitTicketLock>());
const _: () = assert!(std::mem::align_of::<RawTicket>() <= std::mem::align_of::<NkitTicketLock>());

/// # Safety
/// The pointer is `NULL` or what the exported function's contract says.
unsafe fn ticket<'a>(lock: *mut NkitTicketLock, function: &str) -> Result<&'a RawTicket, CError> {
    // SAFETY: a non-null lock was initialised by `nkit_ticket_init`, which
    // wrote a RawTicket at its start (size and alignment checked above);
    // RawTicket is used through shared references only (atomics).
    unsafe { lock.cast::<RawTicket>().as_ref() }.ok_or_else(|| CError::null("lock", function))
}

/// Set `*lock` free.
///
/// # Safety
/// `lock` points to writable storage of an `nkit_ticket_lock_t` nobody uses.
#[no_mangle]
pub unsafe extern "C" fn nkit_ticket_init(lock: *mut NkitTicketLock) {
    ffi("nkit_ticket_init", (), || {
        if lock.is_null() {
            return Err(CError::null("lock", "nkit_ticket_init"));
        }
        // SAFETY: non-null, writable, unused; 128 bytes aligned to 64 hold a
        // RawTicket (asserted above).
        unsafe {
            lock.write(NkitTicketLock { storage: [0; 128] });
            lock.cast::<RawTicket>().write(RawTicket::new());
        }
        Ok(())
    })
}

/// Draw a ticket and wait for it (FIFO).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_ticket_lock(lock: *mut NkitTicketLock) {
    ffi("nkit_ticket_lock", (), || {
        // SAFETY: forwarded contract.
        unsafe { ticket(lock, "nkit_ticket_lock") }?.lock();
        Ok(())
    })
}

/// Release the lock to the next ticket.
///
/// # Safety
/// The calling thread holds `lock`.
#[no_mangle]
pub unsafe extern "C" fn nkit_ticket_unlock(lock: *mut NkitTicketLock) {
    ffi("nkit_ticket_unlock", (), || {
        // SAFETY: forwarded contract.
        let t = unsafe { ticket(lock, "nkit_ticket_unlock") }?;
        // SAFETY: the caller holds the lock (the C precondition).
        unsafe { t.unlock() };
        Ok(())
    })
}

/// `nkit_pcounter_t`: a numakit [`PartitionedCounter`].
pub struct NkitPcounter {
    counter: PartitionedCounter,
}

/// # Safety
/// The pointer is `NULL` or what the exported function's contract says.
unsafe fn pcounter<'a>(
    c: *mut NkitPcounter,
    function: &str,
) -> Result<&'a PartitionedCounter, CError> {
    // SAFETY: a non-null handle came from `nkit_pcounter_create` and is not
    // destroyed (the C precondition); the counter is Sync.
    unsafe { c.as_ref() }
        .map(|c| &c.counter)
        .ok_or_else(|| CError::null("counter", function))
}

/// A zero counter with its shards in memory on each node; `NULL` when the
/// shards cannot be placed on the nodes (numakit would otherwise put them
/// in ordinary memory, which the C API does not accept silently).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_pcounter_create() -> *mut NkitPcounter {
    ffi("nkit_pcounter_create", ptr::null_mut(), || {
        let counter = PartitionedCounter::new();
        if !counter.is_node_placed() {
            return Err(CError::new(
                NKIT_ERR_UNSUPPORTED,
                "nkit_pcounter_create: the counter's shards could not be placed on the NUMA \
                 nodes (the topology could not be read or no node has memory)",
            ));
        }
        Ok(Box::into_raw(Box::new(NkitPcounter { counter })))
    })
}

/// Free the counter. `NULL` is accepted and does nothing.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_pcounter_destroy(counter: *mut NkitPcounter) {
    ffi("nkit_pcounter_destroy", (), || {
        if !counter.is_null() {
            // SAFETY: from `Box::into_raw` in `nkit_pcounter_create`, not
            // destroyed before (the C precondition).
            drop(unsafe { Box::from_raw(counter) });
        }
        Ok(())
    })
}

/// Add `value` (may be negative) on the calling CPU's shard.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_pcounter_add(counter: *mut NkitPcounter, value: i64) {
    ffi("nkit_pcounter_add", (), || {
        // SAFETY: forwarded contract.
        unsafe { pcounter(counter, "nkit_pcounter_add") }?.add(value);
        Ok(())
    })
}

/// Add 1.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_pcounter_inc(counter: *mut NkitPcounter) {
    ffi("nkit_pcounter_inc", (), || {
        // SAFETY: forwarded contract.
        unsafe { pcounter(counter, "nkit_pcounter_inc") }?.inc();
        Ok(())
    })
}

/// Subtract 1.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_pcounter_dec(counter: *mut NkitPcounter) {
    ffi("nkit_pcounter_dec", (), || {
        // SAFETY: forwarded contract.
        unsafe { pcounter(counter, "nkit_pcounter_dec") }?.dec();
        Ok(())
    })
}

/// The sum over all shards (0 with the error set for a `NULL` counter).
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_pcounter_read(counter: *mut NkitPcounter) -> i64 {
    ffi("nkit_pcounter_read", 0, || {
        // SAFETY: forwarded contract.
        Ok(unsafe { pcounter(counter, "nkit_pcounter_read") }?.sum())
    })
}

/// Set every shard to zero.
///
/// # Safety
/// Each pointer argument is `NULL` or what the header says it is: a
/// live handle from its `create` function, a lock its `init` set up.
#[no_mangle]
pub unsafe extern "C" fn nkit_pcounter_reset(counter: *mut NkitPcounter) {
    ffi("nkit_pcounter_reset", (), || {
        // SAFETY: forwarded contract.
        unsafe { pcounter(counter, "nkit_pcounter_reset") }?.take();
        Ok(())
    })
}

/// For tests: the C layout of the by-value types, as this crate has it.
#[cfg(test)]
pub(crate) fn layouts() -> Vec<(&'static str, usize, usize)> {
    use std::mem::{align_of, size_of};
    vec![
        (
            "nkit_mcs_lock_t",
            size_of::<NkitMcsLock>(),
            align_of::<NkitMcsLock>(),
        ),
        (
            "nkit_mcs_node_t",
            size_of::<NkitMcsNode>(),
            align_of::<NkitMcsNode>(),
        ),
        (
            "nkit_rws_lock_t",
            size_of::<NkitRwsLock>(),
            align_of::<NkitRwsLock>(),
        ),
        (
            "nkit_ticket_lock_t",
            size_of::<NkitTicketLock>(),
            align_of::<NkitTicketLock>(),
        ),
        (
            "nkit_thread_policy_t",
            size_of::<crate::sched::NkitThreadPolicy>(),
            align_of::<crate::sched::NkitThreadPolicy>(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::UnsafeCell;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A counter guarded by one of the locks; `run` fails instead of hanging.
    struct Shared<L> {
        lock: L,
        value: UnsafeCell<u64>,
    }
    // SAFETY: `value` is only touched while `lock` is held (the lock under
    // test provides the exclusion that makes this Sync).
    unsafe impl<L: Send> Sync for Shared<L> {}
    // SAFETY: as above; nothing is tied to a thread.
    unsafe impl<L: Send> Send for Shared<L> {}

    fn watchdog(threads: Vec<std::thread::JoinHandle<()>>) {
        let start = Instant::now();
        for t in threads {
            while !t.is_finished() {
                assert!(start.elapsed() < Duration::from_secs(60), "lock test hung");
                std::thread::sleep(Duration::from_millis(5));
            }
            t.join().unwrap();
        }
    }

    fn rws_ptr(l: &NkitRwsLock) -> *mut NkitRwsLock {
        l as *const NkitRwsLock as *mut NkitRwsLock
    }
    fn read_lock(l: &NkitRwsLock) {
        // SAFETY: `l` is a live, initialised lock; the tests unlock only
        // what they hold.
        unsafe { nkit_rws_read_lock(rws_ptr(l)) }
    }
    fn read_unlock(l: &NkitRwsLock) {
        // SAFETY: `l` is a live, initialised lock; the tests unlock only
        // what they hold.
        unsafe { nkit_rws_read_unlock(rws_ptr(l)) }
    }
    fn write_lock(l: &NkitRwsLock) {
        // SAFETY: `l` is a live, initialised lock; the tests unlock only
        // what they hold.
        unsafe { nkit_rws_write_lock(rws_ptr(l)) }
    }
    fn write_unlock(l: &NkitRwsLock) {
        // SAFETY: `l` is a live, initialised lock; the tests unlock only
        // what they hold.
        unsafe { nkit_rws_write_unlock(rws_ptr(l)) }
    }

    const THREADS: usize = 4;

    /// Rounds per thread; few in the emulated guest, where every handover
    /// of a spin lock waits for the host to run the next vCPU.
    fn rounds() -> u64 {
        if std::env::var_os("NUMAKIT_IN_VM").is_some() {
            200
        } else {
            5_000
        }
    }

    #[test]
    fn mcs_excludes() {
        let s = Arc::new(Shared {
            lock: NkitMcsLock {
                tail: AtomicPtr::new(ptr::null_mut()),
            },
            value: UnsafeCell::new(0),
        });
        let threads = (0..THREADS)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let mut node = NkitMcsNode {
                        next: AtomicPtr::new(ptr::null_mut()),
                        locked: AtomicI32::new(0),
                    };
                    let lock = &s.lock as *const NkitMcsLock as *mut NkitMcsLock;
                    for _ in 0..rounds() {
                        // SAFETY: the lock is initialised; the node is this
                        // thread's; unlock follows lock with the same node.
                        unsafe { nkit_mcs_lock(lock, &mut node) };
                        // SAFETY: the lock is held.
                        unsafe { *s.value.get() += 1 };
                        // SAFETY: held, with this node.
                        unsafe { nkit_mcs_unlock(lock, &mut node) };
                    }
                })
            })
            .collect();
        watchdog(threads);
        // SAFETY: every thread is joined.
        assert_eq!(unsafe { *s.value.get() }, THREADS as u64 * rounds());
        assert!(
            s.lock.tail.load(Relaxed).is_null(),
            "the queue is empty again"
        );
    }

    #[test]
    fn rws_excludes_writers_and_shares_readers() {
        let s = Arc::new(Shared {
            lock: NkitRwsLock {
                state: AtomicU32::new(0),
            },
            value: UnsafeCell::new(0),
        });
        let threads = (0..THREADS)
            .map(|i| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for _ in 0..rounds() {
                        if i % 2 == 0 {
                            write_lock(&s.lock);
                            // SAFETY: the exclusive lock is held.
                            unsafe { *s.value.get() += 2 };
                            write_unlock(&s.lock);
                        } else {
                            read_lock(&s.lock);
                            // SAFETY: a shared lock is held: no writer.
                            let v = unsafe { *s.value.get() };
                            assert_eq!(v % 2, 0);
                            read_unlock(&s.lock);
                        }
                    }
                })
            })
            .collect();
        watchdog(threads);
        // SAFETY: every thread is joined.
        let value = unsafe { *s.value.get() };
        assert_eq!(value, (THREADS as u64 / 2) * rounds() * 2);
        assert_eq!(
            s.lock.state.load(Relaxed),
            0,
            "no reader, writer or waiter left"
        );
    }

    #[test]
    fn rws_blocks_new_readers_while_a_writer_waits() {
        use std::sync::atomic::AtomicBool;
        let l: &'static NkitRwsLock = Box::leak(Box::new(NkitRwsLock {
            state: AtomicU32::new(0),
        }));
        read_lock(l);
        assert_eq!(l.state.load(Relaxed), RWS_READER);
        let writer_in = Arc::new(AtomicBool::new(false));
        let w = {
            let writer_in = Arc::clone(&writer_in);
            std::thread::spawn(move || {
                write_lock(l);
                writer_in.store(true, Relaxed);
                std::thread::sleep(Duration::from_millis(20));
                write_unlock(l);
            })
        };
        let start = Instant::now();
        while l.state.load(Relaxed) & RWS_WRITER_WAITING == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "writer never waited"
            );
            std::thread::yield_now();
        }
        // A new reader now waits for the writer, which waits for us.
        let reader_in = Arc::new(AtomicBool::new(false));
        let r = {
            let (reader_in, writer_in) = (Arc::clone(&reader_in), Arc::clone(&writer_in));
            std::thread::spawn(move || {
                read_lock(l);
                // Writer preference: the writer went first.
                assert!(
                    writer_in.load(Relaxed),
                    "a reader overtook the waiting writer"
                );
                reader_in.store(true, Relaxed);
                read_unlock(l);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!reader_in.load(Relaxed) && !writer_in.load(Relaxed));
        read_unlock(l);
        watchdog(vec![w, r]);
        assert!(reader_in.load(Relaxed) && writer_in.load(Relaxed));
        assert_eq!(l.state.load(Relaxed), 0);
    }
}
