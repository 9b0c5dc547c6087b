//! The process-wide topology snapshot behind [`Topology::current`].
//!
//! Reading sysfs costs tens of microseconds (a dozen files per node), more
//! than the rest of making a small region. The machine's shape changes only
//! on CPU or memory hotplug, so the library reads it once and keeps it:
//!
//! - **Common path** (well under a microsecond): a clock read, two atomic
//!   loads, and a thread-local copy of the snapshot's `Arc` when its
//!   generation is current. No lock, no file.
//! - **Hotplug check**: at most once every [`RECHECK`], the first caller
//!   after the deadline re-reads the kernel's hotplug signals
//!   ([`SIGNAL_FILES`] and the total of RAM from `sysinfo(2)`, a handful of
//!   bytes) and compares them with those the snapshot was taken under. Only
//!   if they differ is the whole topology read again.
//! - **[`Topology::refresh`]** reads everything now, whatever the signals
//!   say.
//!
//! So after a CPU or node goes online or offline, or memory is added or
//! removed, [`Topology::current`] answers with the new shape at most
//! [`RECHECK`] later, and at once after [`Topology::refresh`]. In between a
//! stale answer can only name a node or CPU that the kernel then refuses
//! (`mbind`, `sched_setaffinity` fail with a typed error); it cannot make
//! memory unsafe.
//!
//! Free-memory and free-hugepage figures in the snapshot are those of the
//! moment it was read, possibly long ago. numakit's own capacity checks
//! never use them: they read `meminfo` and `free_hugepages` live when they
//! decide. Programs that want current figures call [`Topology::detect`].

use super::{Topology, TopologyError};
use std::cell::RefCell;
use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The longest [`Topology::current`] serves a snapshot without checking the
/// hotplug signals.
pub(crate) const RECHECK: Duration = Duration::from_millis(100);

/// The sysfs files whose contents change on CPU, node or memory hotplug
/// (`Documentation/ABI/stable/sysfs-devices-node`,
/// `Documentation/ABI/testing/sysfs-devices-system-cpu`).
pub(crate) const SIGNAL_FILES: [&CStr; 4] = [
    c"/sys/devices/system/node/online",
    c"/sys/devices/system/node/has_cpu",
    c"/sys/devices/system/node/has_memory",
    c"/sys/devices/system/cpu/online",
];

/// What the hotplug signals said: each file's bytes (or `None` when it
/// cannot be read, as on a kernel without NUMA support) and the total RAM.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Signals {
    files: [Option<Vec<u8>>; SIGNAL_FILES.len()],
    total_ram: Option<u64>,
}

impl Signals {
    fn read() -> Signals {
        // These files hold a CPU or node list: a few bytes, at most a page.
        let mut buf = [0u8; 4096];
        let files = SIGNAL_FILES.map(|path| {
            crate::sys::fs::read_into(path, &mut buf)
                .ok()
                .map(|n| buf[..n].to_vec())
        });
        Signals {
            files,
            total_ram: crate::sys::sysinfo_memory().ok().map(|(total, _)| total),
        }
    }
}

struct Shared {
    topo: Arc<Topology>,
    signals: Signals,
    generation: u64,
}

/// The snapshot; `None` until first asked for.
static SHARED: Mutex<Option<Shared>> = Mutex::new(None);
/// The generation of [`SHARED`]'s snapshot (0: none yet). Written under the
/// lock, read without it.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// When the next hotplug check is due, in nanoseconds since [`epoch`].
static NEXT_CHECK: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's copy of the snapshot and its generation.
    static LOCAL: RefCell<Option<(u64, Arc<Topology>)>> = const { RefCell::new(None) };
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    // u64 nanoseconds last 584 years.
    epoch().elapsed().as_nanos() as u64
}

fn lock() -> MutexGuard<'static, Option<Shared>> {
    // Nothing panics while the lock is held with the data half-changed
    // (the snapshot is replaced whole), so a poisoned lock is still sound.
    SHARED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The snapshot, checked against the hotplug signals if [`RECHECK`] has
/// passed since the last check.
pub(crate) fn current() -> Result<Arc<Topology>, TopologyError> {
    let now = now_ns();
    if now >= NEXT_CHECK.load(Ordering::Relaxed) {
        return check(now, false);
    }
    let generation = GENERATION.load(Ordering::Acquire);
    let local = LOCAL.try_with(|local| match &*local.borrow() {
        Some((g, topo)) if *g == generation => Some(Arc::clone(topo)),
        _ => None,
    });
    if let Ok(Some(topo)) = local {
        return Ok(topo);
    }
    let shared = lock();
    match &*shared {
        Some(s) => {
            let topo = Arc::clone(&s.topo);
            let generation = s.generation;
            drop(shared);
            // A thread-local destructor may ask after `LOCAL` is gone:
            // it then takes the lock every time, nothing worse.
            let _ = LOCAL.try_with(|local| {
                *local.borrow_mut() = Some((generation, Arc::clone(&topo)));
            });
            Ok(topo)
        }
        None => {
            drop(shared);
            check(now, false)
        }
    }
}

/// Read the whole topology now and make it the snapshot.
pub(crate) fn refresh() -> Result<Arc<Topology>, TopologyError> {
    check(now_ns(), true)
}

/// Under the lock: compare the hotplug signals with the snapshot's (unless
/// `force`), read the topology again if they differ, and set the next
/// check's deadline.
fn check(now: u64, force: bool) -> Result<Arc<Topology>, TopologyError> {
    let mut shared = lock();
    let fresh = match &*shared {
        // Another thread checked while this one waited for the lock.
        Some(s) if !force && now < NEXT_CHECK.load(Ordering::Relaxed) => {
            return Ok(Arc::clone(&s.topo));
        }
        Some(s) if !force && s.signals == Signals::read() => None,
        _ => Some(read_consistent()?),
    };
    if let Some((topo, signals)) = fresh {
        let generation = GENERATION.load(Ordering::Relaxed) + 1;
        *shared = Some(Shared {
            topo: Arc::new(topo),
            signals,
            generation,
        });
        GENERATION.store(generation, Ordering::Release);
    }
    NEXT_CHECK.store(
        now_ns().saturating_add(RECHECK.as_nanos() as u64),
        Ordering::Relaxed,
    );
    let s = shared.as_ref().expect("set above or already there");
    Ok(Arc::clone(&s.topo))
}

/// A full read whose hotplug signals did not change while it ran: a node
/// going offline halfway through the read would otherwise leave a snapshot
/// that never existed (or an error naming a vanished file). Three tries,
/// then the last read stands; the next check compares its signals again.
fn read_consistent() -> Result<(Topology, Signals), TopologyError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let before = Signals::read();
        let topo = Topology::detect();
        let after = Signals::read();
        if before == after || tries == 3 {
            // Keep the signals seen *before* the read: if a change raced
            // with it, the next check sees a difference and reads again.
            return topo.map(|t| (t, before));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{CpuSet, NodeId};

    /// The tests below change the shared snapshot: one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    type Shape = (Vec<(NodeId, CpuSet, u64)>, Vec<Vec<u32>>, CpuSet);

    /// Everything but the live free-memory figures.
    fn shape(t: &Topology) -> Shape {
        let nodes = t
            .nodes()
            .iter()
            .map(|n| (n.id(), n.cpus().clone(), n.memory_total()))
            .collect();
        let distances = t
            .node_ids()
            .map(|a| t.node_ids().map(|b| t.distance(a, b).unwrap()).collect())
            .collect();
        (nodes, distances, t.online_cpus().clone())
    }

    fn generation() -> u64 {
        GENERATION.load(Ordering::Relaxed)
    }

    #[test]
    fn current_is_the_machine_and_is_shared() {
        let _serial = serial();
        let a = Topology::current().unwrap();
        let g = generation();
        let b = Topology::current().unwrap();
        assert_eq!(shape(&a), shape(&Topology::detect().unwrap()));
        assert_eq!(generation(), g, "no signal changed: no re-read");
        assert!(Arc::ptr_eq(&a, &b), "the same snapshot, not two reads");
        // Another thread gets the same snapshot too.
        let c = std::thread::spawn(|| Topology::current().unwrap())
            .join()
            .unwrap();
        assert!(Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn refresh_replaces_the_snapshot() {
        let _serial = serial();
        let before = Topology::current().unwrap();
        let g = generation();
        let fresh = Topology::refresh().unwrap();
        assert!(!Arc::ptr_eq(&before, &fresh));
        assert_eq!(generation(), g + 1);
        let after = Topology::current().unwrap();
        assert!(
            Arc::ptr_eq(&fresh, &after),
            "current serves the refreshed one"
        );
        assert_eq!(shape(&before), shape(&fresh));
    }

    #[test]
    fn a_changed_signal_rereads_once_the_check_is_due() {
        let _serial = serial();
        let first = Topology::current().unwrap();
        // Pretend the snapshot was taken under other signals (as before a
        // CPU went offline); the check is not due yet.
        {
            let mut shared = lock();
            let s = shared.as_mut().unwrap();
            s.signals.files[3] = Some(b"0-4095\n".to_vec());
            NEXT_CHECK.store(u64::MAX, Ordering::Relaxed);
        }
        let g = generation();
        let served = Topology::current().unwrap();
        assert!(Arc::ptr_eq(&first, &served), "no check before the deadline");
        NEXT_CHECK.store(0, Ordering::Relaxed);
        let reread = Topology::current().unwrap();
        assert!(
            !Arc::ptr_eq(&first, &reread),
            "a changed signal must re-read"
        );
        assert_eq!(generation(), g + 1);
        assert!(NEXT_CHECK.load(Ordering::Relaxed) > now_ns());
        // Signals that match keep the snapshot through a check.
        NEXT_CHECK.store(0, Ordering::Relaxed);
        let kept = Topology::current().unwrap();
        assert!(Arc::ptr_eq(&reread, &kept));
        assert_eq!(generation(), g + 1);
    }

    #[test]
    fn a_thread_with_an_old_copy_gets_the_new_snapshot() {
        let _serial = serial();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (back, got) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            back.send(Topology::current().unwrap()).unwrap();
            wait.recv().unwrap();
            back.send(Topology::current().unwrap()).unwrap();
        });
        let old = got.recv().unwrap();
        let fresh = Topology::refresh().unwrap();
        go.send(()).unwrap();
        let seen = got.recv().unwrap();
        t.join().unwrap();
        assert!(!Arc::ptr_eq(&old, &seen));
        assert!(Arc::ptr_eq(&fresh, &seen));
    }

    #[test]
    fn the_common_path_reads_no_file() {
        let _serial = serial();
        // What one full read costs here (an emulated guest is many times
        // slower than the host): the fastest of three.
        let detect = (0..3)
            .map(|_| {
                let t0 = Instant::now();
                std::hint::black_box(Topology::detect().unwrap());
                t0.elapsed()
            })
            .min()
            .unwrap();
        let _ = Topology::current().unwrap();
        NEXT_CHECK.store(0, Ordering::Relaxed);
        let _ = Topology::current().unwrap();
        let n = 20_000u32;
        let t0 = Instant::now();
        for _ in 0..n {
            std::hint::black_box(Topology::current().unwrap());
        }
        let per_call = t0.elapsed() / n;
        // The common path reads no file: a small fraction of one read,
        // even with the one hotplug check that can fall inside the loop.
        assert!(
            per_call * 20 < detect,
            "{per_call:?} per call, {detect:?} per full read"
        );
        // On the host (a few tens of nanoseconds unloaded), well under a
        // microsecond; 2 µs leaves room for a loaded machine.
        if std::env::var_os("NUMAKIT_IN_VM").is_none() {
            assert!(per_call < Duration::from_micros(2), "{per_call:?} per call");
        }
    }

    #[test]
    fn signals_are_the_kernels() {
        let s = Signals::read();
        assert!(s.files[3].as_deref().is_some_and(|f| !f.is_empty()));
        assert!(s.total_ram.is_some_and(|t| t > 0));
        assert_eq!(s, Signals::read());
    }
}
