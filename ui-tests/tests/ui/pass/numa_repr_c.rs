// repr(C) is kept: fields at their declared offsets, values as given.
use numakit::numa;
use std::mem::offset_of;

#[numa(node = 0)]
#[repr(C)]
struct Header {
    tag: u8,
    len: u64,
    flags: u16,
    #[mcs]
    hits: u32,
}

fn main() -> Result<(), numakit::Error> {
    let h = Header::place(HeaderInit { tag: 1, len: u64::MAX, flags: 3, hits: 4 })?;
    assert_eq!((h.tag, h.len, h.flags, *h.hits.lock()), (1, u64::MAX, 3, 4));
    let base = &*h as *const Header as usize;
    assert_eq!(base % std::mem::align_of::<Header>(), 0);
    assert_eq!(offset_of!(Header, len), 8);
    assert_eq!(&h.len as *const u64 as usize - base, offset_of!(Header, len));
    assert_eq!(&h.flags as *const u16 as usize - base, offset_of!(Header, flags));
    let lock = &h.hits as *const _ as usize;
    assert_eq!(lock - base, offset_of!(Header, hits));
    assert_eq!(lock % std::mem::align_of_val(&h.hits), 0);
    Ok(())
}
