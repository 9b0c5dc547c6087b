// Looking up nodes goes through the snapshot's accessors and a Result.
use numakit::{NodeId, Topology};

fn main() -> Result<(), numakit::Error> {
    let topo = Topology::detect()?;
    let node = topo.node(NodeId::new(0))?;
    assert!(!node.cpus().is_empty() || !node.has_memory() || topo.num_nodes() > 0);
    assert!(topo.node(NodeId::new(100_000)).is_err());
    Ok(())
}
