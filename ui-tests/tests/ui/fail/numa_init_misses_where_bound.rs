// The `Init` twin keeps the struct's bounds: a value that does not meet
// them is refused.
use numakit::numa;

#[numa(node = 0)]
struct Table<T>
where
    T: Copy,
{
    rows: [T; 4],
}

fn main() {
    let _ = Table::place(TableInit { rows: [String::new(), String::new(), String::new(), String::new()] });
}
