use numakit::pinned;

#[pinned]
fn work() -> Result<(), numakit::Error> {
    Ok(())
}

fn main() {}
