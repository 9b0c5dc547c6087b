//! What the macros generate, checked at run time: `#[numa]` structs with
//! every accepted `repr`, large alignments, generics, and `Drop` (each
//! value dropped exactly once, on every path, panics included), and
//! `numa_static!` initialisers that read their own static (a panic naming
//! it, never a hang).
//!
//! Anything that could deadlock runs under [`within`], which fails the
//! test after a timeout instead of hanging.

mod common;

use numakit::mem::{MemError, NodeBox};
use numakit::{numa, numa_static, NodeId};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::mem::{align_of, offset_of, size_of, size_of_val};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Run `f` on its own thread; its result or its panic message, or a test
/// failure after 30 s (a deadlock) instead of a hung test binary.
fn within<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    common::within(Duration::from_secs(30), what, f).map_err(|p| common::panic_message(&*p))
}

fn addr<T>(r: &T) -> usize {
    std::ptr::from_ref(r) as usize
}

// ---------------------------------------------------------------- repr

#[numa(node = 0)]
#[repr(C)]
struct Header {
    tag: u8,
    len: u64,
    flags: u16,
}

#[test]
fn repr_c_keeps_declared_offsets_and_values() {
    let h = Header::place(HeaderInit {
        tag: 7,
        len: u64::MAX - 1,
        flags: 0xBEEF,
    })
    .unwrap();
    assert_eq!((h.tag, h.len, h.flags), (7, u64::MAX - 1, 0xBEEF));
    let base = addr(&*h);
    assert_eq!(base % align_of::<Header>(), 0);
    assert_eq!(addr(&h.tag) - base, offset_of!(Header, tag));
    assert_eq!(addr(&h.len) - base, offset_of!(Header, len));
    assert_eq!(addr(&h.flags) - base, offset_of!(Header, flags));
    assert_eq!(offset_of!(Header, len), 8, "repr(C) order");
}

#[numa(node = 0)]
#[repr(transparent)]
struct Meters<U> {
    value: f64,
    _unit: PhantomData<U>,
}

#[numa(node = 0)]
#[repr(transparent)]
struct Id(u64);

#[test]
fn repr_transparent_has_its_field_layout() {
    struct Si;
    let m = Meters::<Si>::place(MetersInit {
        value: 2.5,
        _unit: PhantomData,
    })
    .unwrap();
    assert_eq!(m.value, 2.5);
    assert_eq!(size_of::<Meters<Si>>(), size_of::<f64>());
    assert_eq!(addr(&*m) % align_of::<f64>(), 0);
    let id = Id::place(IdInit(u64::MAX)).unwrap();
    assert_eq!(id.0, u64::MAX);
    assert_eq!(size_of::<Id>(), 8);
}

#[numa(node = 0)]
#[repr(align(64))]
struct Line {
    hits: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(128))]
struct Wide([u8; 3]);

/// A field with a larger alignment than the struct's other fields.
#[numa(node = 0)]
struct Mixed {
    tag: u8,
    wide: Wide,
    after: u16,
}

#[numa(node = 0)]
#[repr(C, align(4096))]
struct PageSized {
    bytes: [u8; 100],
}

/// Larger than a shared-heap box: a mapping of its own.
#[numa(node = 0)]
#[repr(C, align(4096))]
struct TwoPages {
    head: u8,
    bytes: [u8; 8000],
}

#[numa(interleave = [0])]
#[repr(align(256))]
struct Spread {
    words: [u64; 1024],
}

#[numa(node = 0)]
#[repr(align(8192))]
struct TooAligned {
    x: u8,
}

#[test]
fn large_alignments_are_honoured_or_refused() {
    let l = Line::place(LineInit { hits: 3 }).unwrap();
    assert_eq!((l.hits, addr(&*l) % 64), (3, 0));

    let m = Mixed::place(MixedInit {
        tag: 1,
        wide: Wide([4, 5, 6]),
        after: 9,
    })
    .unwrap();
    assert_eq!((m.tag, m.wide, m.after), (1, Wide([4, 5, 6]), 9));
    assert_eq!(addr(&m.wide) % 128, 0);
    assert_eq!(addr(&*m) % align_of::<Mixed>(), 0);

    let p = PageSized::place(PageSizedInit { bytes: [0xAB; 100] }).unwrap();
    assert_eq!((p.bytes[0], p.bytes[99]), (0xAB, 0xAB));
    assert_eq!(addr(&*p) % 4096, 0);

    let t = TwoPages::place(TwoPagesInit {
        head: 1,
        bytes: [2; 8000],
    })
    .unwrap();
    assert_eq!((t.head, t.bytes[7999], addr(&*t) % 4096), (1, 2, 0));
    let s = Spread::place(SpreadInit { words: [3; 1024] }).unwrap();
    assert_eq!((s.words[1023], addr(&*s) % 256), (3, 0));

    // More than a page: a typed error naming the alignment, no placement.
    match TooAligned::place(TooAlignedInit { x: 1 }) {
        Err(numakit::Error::Mem(MemError::InvalidAlignment { align })) => assert_eq!(align, 8192),
        Err(e) => panic!("wrong error for align 8192: {e}"),
        Ok(_) => panic!("a value aligned to 8192 was placed with a 4096-byte page"),
    }
}

#[numa(node = 0)]
struct Unit;

#[numa(node = 0)]
#[repr(align(64))]
struct AlignedEmpty {}

#[test]
fn zero_sized_structs_are_placed() {
    let u = Unit::place(UnitInit).unwrap();
    assert_eq!(size_of_val(&*u), 0);
    let e = AlignedEmpty::place(AlignedEmptyInit {}).unwrap();
    assert_eq!((size_of::<AlignedEmpty>(), addr(&*e) % 64), (0, 0));
    assert_eq!(e.node(), NodeId::new(0));
}

// ---------------------------------------------------------------- generics

#[numa(node = 0)]
struct Bounded<'a, T: Clone + Debug, const N: usize, D = u8>
where
    T: PartialEq,
    D: Copy + Default,
{
    items: [T; N],
    label: &'a str,
    #[mcs]
    extra: D,
}

#[numa(node = 0)]
struct Tuple<T>(T, u8)
where
    T: Send;

#[test]
fn generics_with_bounds_where_clauses_const_params_and_lifetimes() {
    let label = String::from("borrowed");
    let b = Bounded::<'_, String, 3, u32>::place(BoundedInit {
        items: [String::from("a"), String::from("b"), String::from("c")],
        label: &label,
        extra: 42,
    })
    .unwrap();
    assert_eq!(b.items.concat(), "abc");
    assert_eq!(b.label, "borrowed");
    assert_eq!(*b.extra.lock(), 42);
    let z = Bounded::<'_, u64, 0>::place(BoundedInit {
        items: [],
        label: "",
        extra: 0u8,
    })
    .unwrap();
    assert_eq!(z.items.len(), 0);
    let t = Tuple::place(TupleInit(vec![1u32, 2], 3)).unwrap();
    assert_eq!((t.0.as_slice(), t.1), (&[1, 2][..], 3));
}

// ---------------------------------------------------------------- Drop

/// Counts its drops, per instance and in total.
#[derive(Debug)]
struct Counted {
    drops: Arc<AtomicUsize>,
}

impl Counted {
    fn new(drops: &Arc<AtomicUsize>) -> Self {
        Counted {
            drops: Arc::clone(drops),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[numa(node = 0)]
struct Owner {
    a: Counted,
    #[mcs]
    b: Counted,
    c: Vec<Counted>,
    drops: Arc<AtomicUsize>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.drops.fetch_add(100, Ordering::SeqCst);
    }
}

#[numa(node = 999)]
struct Nowhere {
    a: Counted,
    b: Counted,
}

#[test]
fn placed_value_with_drop_is_dropped_exactly_once() {
    let fields = Arc::new(AtomicUsize::new(0));
    let user = Arc::new(AtomicUsize::new(0));
    let o = Owner::place(OwnerInit {
        a: Counted::new(&fields),
        b: Counted::new(&fields),
        c: vec![Counted::new(&fields), Counted::new(&fields)],
        drops: Arc::clone(&user),
    })
    .unwrap();
    assert_eq!(fields.load(Ordering::SeqCst), 0, "nothing dropped by place");
    drop(o);
    assert_eq!(user.load(Ordering::SeqCst), 100, "Owner::drop ran once");
    assert_eq!(fields.load(Ordering::SeqCst), 4, "each field dropped once");
}

#[test]
fn failed_placement_drops_the_given_fields_once() {
    let fields = Arc::new(AtomicUsize::new(0));
    let r = Nowhere::place(NowhereInit {
        a: Counted::new(&fields),
        b: Counted::new(&fields),
    });
    let e = r.err().expect("node 999 does not exist");
    assert!(e.to_string().contains("999"), "{e}");
    assert_eq!(fields.load(Ordering::SeqCst), 2);
}

fn counted_or_panic(drops: &Arc<AtomicUsize>, panic: bool) -> Counted {
    if panic {
        panic!("building a field failed");
    }
    Counted::new(drops)
}

#[test]
fn panic_while_building_a_field_drops_the_built_ones_once() {
    let fields = Arc::new(AtomicUsize::new(0));
    let user = Arc::new(AtomicUsize::new(0));
    // Each field in turn panics while being built; the ones built before it
    // are dropped once, nothing is placed, Owner::drop never runs.
    for panicking in 0..3 {
        let before = fields.load(Ordering::SeqCst);
        let r = catch_unwind(AssertUnwindSafe(|| {
            Owner::place(OwnerInit {
                a: counted_or_panic(&fields, panicking == 0),
                b: counted_or_panic(&fields, panicking == 1),
                c: vec![counted_or_panic(&fields, panicking == 2)],
                drops: Arc::clone(&user),
            })
        }));
        assert!(r.is_err());
        assert_eq!(fields.load(Ordering::SeqCst) - before, panicking);
    }
    assert_eq!(user.load(Ordering::SeqCst), 0);
}

/// Its `Drop` panics.
struct Bomb {
    drops: Arc<AtomicUsize>,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        panic!("Bomb::drop");
    }
}

#[numa(node = 0)]
struct Volatile {
    first: Counted,
    bomb: Bomb,
    last: Counted,
}

#[test]
fn panicking_field_drop_still_drops_the_other_fields_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let v = Volatile::place(VolatileInit {
        first: Counted::new(&drops),
        bomb: Bomb {
            drops: Arc::clone(&drops),
        },
        last: Counted::new(&drops),
    })
    .unwrap();
    let r = catch_unwind(AssertUnwindSafe(move || drop(v)));
    assert_eq!(common::panic_message(&*r.unwrap_err()), "Bomb::drop");
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn into_inner_moves_out_without_dropping() {
    let fields = Arc::new(AtomicUsize::new(0));
    let user = Arc::new(AtomicUsize::new(0));
    let o = Owner::place(OwnerInit {
        a: Counted::new(&fields),
        b: Counted::new(&fields),
        c: Vec::new(),
        drops: Arc::clone(&user),
    })
    .unwrap();
    let inner: Owner = NodeBox::into_inner(o);
    assert_eq!(
        (fields.load(Ordering::SeqCst), user.load(Ordering::SeqCst)),
        (0, 0)
    );
    drop(inner);
    assert_eq!(
        (fields.load(Ordering::SeqCst), user.load(Ordering::SeqCst)),
        (2, 100)
    );
}

#[numa(node = 0)]
enum Either {
    Left(Counted),
    Right(u64),
}

#[test]
fn placed_enum_drops_its_variant_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let e = Either::place(Either::Left(Counted::new(&drops))).unwrap();
    match &*e {
        Either::Left(c) => assert!(Arc::ptr_eq(&c.drops, &drops)),
        Either::Right(_) => panic!("placed the wrong variant"),
    }
    drop(e);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    let r = Either::place(Either::Right(5)).unwrap();
    assert!(matches!(*r, Either::Right(5)));
    assert_eq!(r.node(), NodeId::new(0));
}

// ---------------------------------------------------------------- numa_static!

numa_static! {
    /// Reads itself: every access panics, none hangs.
    #[numa(node = 0)]
    static SELF_REF: u64 = *SELF_REF.get_or_panic() + 1;

    /// `PING` reads `PONG`, whose initialiser reads `PING`.
    #[numa(node = 0)]
    static PING: u64 = *PONG.get_or_panic() + 1;
    #[numa(node = 0)]
    static PONG: u64 = *PING.get_or_panic() + 1;
}

#[test]
fn static_reading_itself_panics_with_its_name_instead_of_hanging() {
    for attempt in 0..2 {
        let msg = within("SELF_REF.get()", || SELF_REF.get().copied())
            .expect_err("SELF_REF has no value to return");
        assert!(
            msg.contains("macros_soundness::SELF_REF") && msg.contains("its own initialiser"),
            "attempt {attempt}: {msg}"
        );
    }
    assert!(SELF_REF.placement().unwrap().is_none(), "never initialised");
}

#[test]
fn statics_reading_each_other_panic_instead_of_hanging() {
    let msg = within("PING.get()", || PING.get().copied()).expect_err("a cycle");
    assert!(msg.contains("::PING"), "{msg}");
    // The other way round, from another thread, after the first failed.
    let msg = within("PONG.get()", || PONG.get().copied()).expect_err("a cycle");
    assert!(msg.contains("::PONG"), "{msg}");
}

static FAIL_FIRST: AtomicBool = AtomicBool::new(true);
static RUNS: AtomicUsize = AtomicUsize::new(0);

numa_static! {
    /// Its first initialisation panics; the next one succeeds.
    #[numa(node = 0)]
    static FLAKY: u64 = {
        RUNS.fetch_add(1, Ordering::SeqCst);
        if FAIL_FIRST.swap(false, Ordering::SeqCst) {
            panic!("first initialisation fails");
        }
        7
    };
}

#[test]
fn static_whose_initialiser_panicked_initialises_on_the_next_access() {
    let msg = within("FLAKY.get()", || FLAKY.get().copied()).unwrap_err();
    assert_eq!(msg, "first initialisation fails");
    // The same thread and others: no false "re-entrant" report, no hang.
    let v = within("FLAKY.get() again", || *FLAKY.get().unwrap()).unwrap();
    assert_eq!(v, 7);
    assert_eq!(*FLAKY.get().unwrap(), 7);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
}

#[test]
fn static_initialised_on_one_thread_is_read_on_many() {
    numa_static! {
        #[numa(node = 0)]
        static SHARED: [u64; 16] = [3; 16];
    }
    let sums: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| within("SHARED", || SHARED.get().unwrap().iter().sum()).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(sums, vec![48; 4]);
}
