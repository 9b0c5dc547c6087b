use numakit::pinned;

#[pinned(node = 0)]
const fn work() -> Result<(), numakit::Error> {
    Ok(())
}

fn main() {}
