//! `tracing` events (feature `tracing`): placements and their refusals,
//! pins and refused pins, migrations and refused ones, each with its target,
//! level and fields, seen by a subscriber that records every event.

#![cfg(all(feature = "tracing", not(loom)))]

#[path = "../../tests/common/mod.rs"]
mod common;

use numakit::mem::{migrate, Arena, PageKind};
use numakit::sched::Pin;
use numakit::NodeId;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{span, Event, Level, Metadata, Subscriber};

/// One recorded event: target, level, message and fields as text.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    level: Level,
    text: String,
}

#[derive(Clone, Default)]
struct Record(Arc<Mutex<Vec<Seen>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Record {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Seen {
            target: event.metadata().target().to_string(),
            level: *event.metadata().level(),
            text: fields.0,
        });
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// The events `f` emits on this thread.
fn events_of(f: impl FnOnce()) -> Vec<Seen> {
    let record = Record::default();
    tracing::subscriber::with_default(record.clone(), f);
    let seen = record.0.lock().unwrap().clone();
    seen
}

fn one<'a>(seen: &'a [Seen], target: &str, level: Level, message: &str) -> &'a Seen {
    let hits: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.target == target && s.level == level && s.text.contains(message))
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "one {level} {target} `{message}` in {seen:#?}"
    );
    hits[0]
}

#[test]
fn placements_and_refusals_are_events() {
    let topo = common::topology();
    let seen = events_of(|| {
        let arena = Arena::builder(0).capacity(1 << 16).build().unwrap();
        drop(arena);
    });
    let e = one(
        &seen,
        "numakit::mem",
        Level::DEBUG,
        "memory mapped and bound",
    );
    assert!(e.text.contains("nodes=0 "), "{e:?}");
    assert!(e.text.contains("bytes=65536"), "{e:?}");
    assert!(e.text.contains("page_kind=Normal"), "{e:?}");

    let absent = common::absent_node(&topo);
    let seen = events_of(|| {
        assert!(Arena::builder(absent).capacity(4096).build().is_err());
        assert!(Arena::builder(0)
            .capacity(usize::MAX)
            .pages(PageKind::Normal)
            .build()
            .is_err());
    });
    let refused: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.level == Level::WARN && s.text.contains("placement refused"))
        .collect();
    assert_eq!(refused.len(), 2, "{seen:#?}");
    assert!(
        refused[0].text.contains(&format!("nodes={absent} ")),
        "{refused:?}"
    );
    assert!(refused[1].text.contains("nodes=0 "), "{refused:?}");
    for r in &refused {
        assert_eq!(r.target, "numakit::mem");
        assert!(r.text.contains("error="), "{r:?}");
    }
    assert!(
        seen.iter().all(|s| s.level != Level::DEBUG),
        "a refused placement emitted a success: {seen:#?}"
    );
}

#[test]
fn pins_and_refused_pins_are_events() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    std::thread::spawn(move || {
        let seen = events_of(|| {
            let guard = Pin::node(0).bind_memory(false).apply().unwrap();
            drop(guard);
        });
        let e = one(&seen, "numakit::sched", Level::DEBUG, "thread pinned");
        assert!(e.text.contains("cpus="), "{e:?}");
        assert!(e.text.contains("memory_node=None"), "{e:?}");

        let seen = events_of(|| {
            assert!(Pin::node(absent).apply().is_err());
            assert!(Pin::node(u32::MAX).apply().is_err());
        });
        let refused: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.target == "numakit::sched" && s.level == Level::WARN)
            .collect();
        assert_eq!(refused.len(), 2, "{seen:#?}");
        assert!(
            refused[0].text.contains(&absent.get().to_string()),
            "{refused:?}"
        );
        assert!(
            refused[1].text.contains(&u32::MAX.to_string()),
            "{refused:?}"
        );
    })
    .join()
    .unwrap();
}

#[test]
fn migrations_and_refused_ones_are_events() {
    let topo = common::topology();
    let absent = common::absent_node(&topo);
    let arena = Arena::builder(0).capacity(1 << 16).build().unwrap();
    let bytes: &mut [u8] = arena.alloc_slice_fill_with(8192, |i| i as u8);
    let (ptr, len) = (bytes.as_ptr(), bytes.len());
    let seen = events_of(|| {
        migrate(ptr, len, NodeId::new(0)).unwrap();
        assert!(migrate(ptr, len, absent).is_err());
    });
    let ok = one(&seen, "numakit::mem", Level::DEBUG, "pages migrated");
    assert!(ok.text.contains("bytes=8192"), "{ok:?}");
    assert!(ok.text.contains("node=0"), "{ok:?}");
    let refused = one(&seen, "numakit::mem", Level::WARN, "migration refused");
    assert!(
        refused.text.contains(&format!("node={absent}")),
        "{refused:?}"
    );
}

#[test]
fn balancer_decisions_are_events() {
    use numakit::sched::{BalancePolicy, Balancer};
    use std::time::Duration;
    let balancer = Balancer::builder(BalancePolicy::MoveThreads)
        .interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let group = balancer.register("short-lived");
    let tid = std::thread::spawn(numakit::sys::gettid).join().unwrap();
    // Wait until the kernel has finished the task, not only the join.
    let task = format!("/proc/self/task/{tid}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&task).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    group.add_thread(tid);
    let mut events = Vec::new();
    let seen = events_of(|| events = balancer.run_interval());
    assert_eq!(events.len(), 1, "{events:?}");
    let e = one(&seen, "numakit::balancer", Level::INFO, "balancer decision");
    assert!(e.text.contains(&tid.to_string()), "{e:?}");
    assert!(e.text.contains("short-lived"), "{e:?}");
}
