//! Just enough of ELF to tell, before `exec`, whether `LD_PRELOAD` can
//! work: whether a file is a shared object that defines given symbols, and
//! whether a program is dynamically linked (has a `PT_INTERP` header, the
//! dynamic loader that reads `LD_PRELOAD`).
//!
//! Every offset and size is read from a file that may be anything, so each
//! read is bounds-checked and a malformed file is "not ELF" or "no such
//! symbol", never a panic.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// `e_type` of a shared object (also of a position-independent executable).
pub const ET_DYN: u16 = 3;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const SHT_DYNSYM: u32 = 11;
/// Program and section headers read at most (a real file has far fewer).
const MAX_HEADERS: u64 = 1 << 16;
/// Bytes of `.dynstr` or `.dynsym` read at most.
const MAX_TABLE: u64 = 64 << 20;

/// Where ELF bytes come from: a file read in place, or bytes in memory.
pub trait Source {
    /// `len` bytes at `offset`, or `None` past the end or on a read error.
    fn bytes(&self, offset: u64, len: u64) -> Option<Vec<u8>>;
}

impl Source for File {
    fn bytes(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        // Within the file: a damaged count must not make a huge buffer.
        if offset.checked_add(len)? > self.metadata().ok()?.len() {
            return None;
        }
        let mut buf = vec![0; usize::try_from(len).ok()?];
        self.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }
}

impl Source for [u8] {
    fn bytes(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.get(start..end).map(<[u8]>::to_vec)
    }
}

/// The ELF header's facts that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `ELFCLASS64` (else 32-bit).
    pub class64: bool,
    /// Little-endian (else big-endian).
    pub little: bool,
    /// `e_type`: executable, shared object, ...
    pub kind: u16,
    /// `e_machine`: the instruction set.
    pub machine: u16,
    /// It has a `PT_INTERP` program header: a dynamic loader runs first.
    pub interp: bool,
    /// It has a `PT_DYNAMIC` program header.
    pub dynamic: bool,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
}

impl Header {
    fn word(&self, b: &[u8], at: usize, size: usize) -> Option<u64> {
        let b = b.get(at..at.checked_add(size)?)?;
        let mut v = 0u64;
        for i in 0..size {
            let byte = if self.little { b[size - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    }

    /// A field that is 4 bytes in ELF32 and 8 in ELF64.
    fn addr(&self, b: &[u8], at32: usize, at64: usize) -> Option<u64> {
        if self.class64 {
            self.word(b, at64, 8)
        } else {
            self.word(b, at32, 4)
        }
    }
}

/// Read the ELF header and program headers of `src`; `None` when it is not
/// ELF (or too damaged to say).
pub fn header(src: &(impl Source + ?Sized)) -> Option<Header> {
    let ident = src.bytes(0, 16)?;
    if ident[..4] != *b"\x7fELF" {
        return None;
    }
    let class64 = match ident[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match ident[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let mut h = Header {
        class64,
        little,
        kind: 0,
        machine: 0,
        interp: false,
        dynamic: false,
        shoff: 0,
        shentsize: 0,
        shnum: 0,
    };
    let eh = src.bytes(0, if class64 { 64 } else { 52 })?;
    h.kind = u16::try_from(h.word(&eh, 16, 2)?).ok()?;
    h.machine = u16::try_from(h.word(&eh, 18, 2)?).ok()?;
    let phoff = h.addr(&eh, 28, 32)?;
    h.shoff = h.addr(&eh, 32, 40)?;
    let (phentsize, phnum) = if class64 {
        (h.word(&eh, 54, 2)?, h.word(&eh, 56, 2)?)
    } else {
        (h.word(&eh, 42, 2)?, h.word(&eh, 44, 2)?)
    };
    (h.shentsize, h.shnum) = if class64 {
        (h.word(&eh, 58, 2)?, h.word(&eh, 60, 2)?)
    } else {
        (h.word(&eh, 46, 2)?, h.word(&eh, 48, 2)?)
    };
    if phnum > 0 && phentsize >= 4 && phnum <= MAX_HEADERS {
        let table = src.bytes(phoff, phentsize.checked_mul(phnum)?)?;
        for i in 0..phnum {
            let at = usize::try_from(i * phentsize).ok()?;
            match u32::try_from(h.word(&table, at, 4)?).ok()? {
                PT_INTERP => h.interp = true,
                PT_DYNAMIC => h.dynamic = true,
                _ => {}
            }
        }
    }
    Some(h)
}

/// Whether the dynamic symbol table of `src` defines (not merely imports)
/// every symbol of `names`. `false` when there is no such table.
pub fn defines(src: &(impl Source + ?Sized), h: &Header, names: &[&str]) -> bool {
    defined_symbols(src, h, names).is_some_and(|found| found.iter().all(|&f| f))
}

fn defined_symbols(src: &(impl Source + ?Sized), h: &Header, names: &[&str]) -> Option<Vec<bool>> {
    let (shentsize, shnum) = (h.shentsize, h.shnum);
    if shnum == 0 || shnum > MAX_HEADERS || shentsize < if h.class64 { 64 } else { 40 } {
        return None;
    }
    let sections = src.bytes(h.shoff, shentsize.checked_mul(shnum)?)?;
    let section = |i: u64| -> Option<(u32, u64, u64, u64, u64)> {
        let at = usize::try_from(i.checked_mul(shentsize)?).ok()?;
        let kind = u32::try_from(h.word(&sections, at + 4, 4)?).ok()?;
        let offset = h.addr(&sections, at + 16, at + 24)?;
        let size = h.addr(&sections, at + 20, at + 32)?;
        let link = h.word(&sections, at + if h.class64 { 40 } else { 24 }, 4)?;
        let entsize = h.addr(&sections, at + 36, at + 56)?;
        Some((kind, offset, size, link, entsize))
    };
    let mut found = vec![false; names.len()];
    for i in 0..shnum {
        let (kind, offset, size, link, entsize) = section(i)?;
        if kind != SHT_DYNSYM {
            continue;
        }
        let min = if h.class64 { 24 } else { 16 };
        if entsize < min || size > MAX_TABLE || link >= shnum {
            return None;
        }
        let (_, str_offset, str_size, _, _) = section(link)?;
        if str_size > MAX_TABLE {
            return None;
        }
        let strings = src.bytes(str_offset, str_size)?;
        let symbols = src.bytes(offset, size)?;
        for s in 0..size / entsize {
            let at = usize::try_from(s * entsize).ok()?;
            let name = usize::try_from(h.word(&symbols, at, 4)?).ok()?;
            let shndx = h.word(&symbols, at + if h.class64 { 6 } else { 14 }, 2)?;
            if shndx == 0 {
                continue;
            }
            let Some(rest) = strings.get(name..) else {
                continue;
            };
            let name = &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())];
            for (want, hit) in names.iter().zip(found.iter_mut()) {
                *hit |= name == want.as_bytes();
            }
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_program_is_dynamic_and_defines_no_malloc() {
        let exe = File::open(std::env::current_exe().unwrap()).unwrap();
        let h = header(&exe).expect("the test program is ELF");
        assert!(h.interp && h.dynamic, "{h:?}");
        assert!(!defines(&exe, &h, &["malloc"]));
    }

    #[test]
    fn counts_past_the_end_of_a_file_read_nothing() {
        let exe = File::open(std::env::current_exe().unwrap()).unwrap();
        let len = exe.metadata().unwrap().len();
        assert!(exe.bytes(0, 16).is_some());
        assert!(exe.bytes(len - 1, 1).is_some());
        assert!(exe.bytes(len, 1).is_none());
        assert!(exe.bytes(0, u64::MAX).is_none());
        assert!(exe.bytes(u64::MAX, 1).is_none());
        assert!(exe.bytes(1, 1 << 40).is_none());
    }

    #[test]
    fn damaged_files_are_not_elf_and_never_panic() {
        assert_eq!(header(&b""[..]), None);
        assert_eq!(header(&b"#!/bin/sh\n"[..]), None);
        assert_eq!(header(&b"\x7fELF"[..]), None);
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[16] = 2; // ET_EXEC, no program headers: static
        let parsed = header(&h[..]).unwrap();
        assert!(!parsed.interp && !parsed.dynamic);
        assert!(!defines(&h[..], &parsed, &["malloc"]));
        // Offsets and counts that point anywhere.
        for fill in [0x00, 0x7f, 0xff] {
            let mut bad = h.clone();
            bad[24..64].iter_mut().for_each(|b| *b = fill);
            if let Some(p) = header(&bad[..]) {
                assert!(!defines(&bad[..], &p, &["malloc"]));
            }
        }
    }
}
