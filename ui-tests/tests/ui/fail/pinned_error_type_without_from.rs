use numakit::pinned;

// The error type must accept numakit::Error.
#[pinned(node = 0)]
fn work() -> Result<(), std::fmt::Error> {
    Ok(())
}

fn main() {}
