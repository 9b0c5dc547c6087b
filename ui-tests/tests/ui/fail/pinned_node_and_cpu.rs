use numakit::pinned;

#[pinned(node = 0, cpu = 1)]
fn work() -> Result<(), numakit::Error> {
    Ok(())
}

fn main() {}
