// A placed struct that borrows keeps the borrow: the box cannot outlive
// the data.
use numakit::numa;

#[numa(node = 0)]
struct View<'a> {
    name: &'a str,
}

fn main() {
    let placed = {
        let name = String::from("short-lived");
        View::place(ViewInit { name: &name }).unwrap()
    };
    println!("{}", placed.name);
}
