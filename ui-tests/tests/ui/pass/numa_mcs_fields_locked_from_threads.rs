// `#[mcs]` fields: given as plain values, stored in an `McsLock`, locked
// from several threads pinned on the struct's node.
use numakit::{numa, NodeId};

#[numa(node = 0)]
struct Counters<T: Send> {
    #[mcs]
    total: u64,
    #[mcs]
    items: Vec<T>,
}

fn main() -> Result<(), numakit::Error> {
    let c = Counters::place(CountersInit { total: 0, items: Vec::<u32>::new() })?;
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let c = &c;
            s.spawn(move || {
                let _pin = numakit::sched::pin_to_node(0).unwrap();
                for _ in 0..100 {
                    *c.total.lock() += 1;
                }
                c.items.lock().push(t);
            });
        }
    });
    assert_eq!(*c.total.lock(), 400);
    assert_eq!(c.items.lock().len(), 4);
    assert!(c.verify()?.is_all_on(NodeId::new(0)));
    Ok(())
}
