// repr(align(N)) and fields with large alignments are honoured; a type
// aligned beyond a page is refused with a typed error.
use numakit::mem::MemError;
use numakit::numa;

#[numa(node = 0)]
#[repr(align(64))]
struct Line {
    hits: u64,
}

#[derive(Clone, Copy)]
#[repr(align(256))]
struct Wide(u8);

#[numa(node = 0)]
struct Mixed {
    tag: u8,
    wide: Wide,
}

#[numa(node = 0)]
#[repr(C, align(4096))]
struct Page {
    bytes: [u8; 16],
}

#[numa(node = 0)]
#[repr(align(8192))]
struct TooAligned {
    x: u8,
}

fn main() -> Result<(), numakit::Error> {
    let l = Line::place(LineInit { hits: 1 })?;
    assert_eq!((l.hits, &*l as *const Line as usize % 64), (1, 0));
    let m = Mixed::place(MixedInit { tag: 2, wide: Wide(3) })?;
    assert_eq!((m.tag, m.wide.0), (2, 3));
    assert_eq!(&m.wide as *const Wide as usize % 256, 0);
    let p = Page::place(PageInit { bytes: [4; 16] })?;
    assert_eq!((p.bytes[15], &*p as *const Page as usize % 4096), (4, 0));
    match TooAligned::place(TooAlignedInit { x: 5 }) {
        Err(numakit::Error::Mem(MemError::InvalidAlignment { align: 8192 })) => {}
        other => panic!("align 8192 with 4096-byte pages: {:?}", other.err()),
    }
    Ok(())
}
