// Topology is an opaque handle: its fields are private; read it through
// its accessors.
use numakit::Topology;

fn main() {
    let topo = Topology::detect().unwrap();
    let _nodes = topo.nodes;
}
