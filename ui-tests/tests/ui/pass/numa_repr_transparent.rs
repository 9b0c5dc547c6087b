// repr(transparent) is kept: the struct is laid out as its one field.
use numakit::numa;
use std::marker::PhantomData;

#[numa(node = 0)]
#[repr(transparent)]
struct Meters<U> {
    value: f64,
    _unit: PhantomData<U>,
}

#[numa(node = 0)]
#[repr(transparent)]
struct Id(u64);

fn main() -> Result<(), numakit::Error> {
    struct Si;
    let m = Meters::<Si>::place(MetersInit { value: 2.5, _unit: PhantomData })?;
    assert_eq!(m.value, 2.5);
    assert_eq!(std::mem::size_of::<Meters<Si>>(), 8);
    assert_eq!(&*m as *const Meters<Si> as usize % 8, 0);
    let id = Id::place(IdInit(u64::MAX))?;
    assert_eq!(id.0, u64::MAX);
    Ok(())
}
