use numakit::pinned;

#[pinned(node = 0)]
async fn work() -> Result<(), numakit::Error> {
    Ok(())
}

fn main() {}
