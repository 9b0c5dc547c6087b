//! The library's settings, read from the environment once, without
//! allocating: `environ` is scanned directly (no `std::env`, whose
//! `String`s would come from this very allocator before it is ready).
//!
//! | variable | values | default |
//! |---|---|---|
//! | `NUMAKIT_MALLOC_FALLBACK` | `strict`, `nearest` | `strict` |
//! | `NUMAKIT_MALLOC_STATS` | `1`, `0` | `0` |
//!
//! A value outside these is named on stderr and the default is used. A
//! variable that appears twice in the environment counts by its first
//! entry, the one `getenv` returns.
//! Changes the program makes to its environment later are not seen.

use crate::say::Line;
use numakit::mem::OnExhausted;
use std::ffi::{c_char, CStr};
use std::sync::atomic::{AtomicU8, Ordering};

/// Bits of [`CONFIG`].
const READ: u8 = 1;
const NEAREST: u8 = 2;
const STATS: u8 = 4;

/// The variables read, in the order of `parse`'s complaints.
const NAMES: [&str; 2] = ["NUMAKIT_MALLOC_FALLBACK", "NUMAKIT_MALLOC_STATS"];

/// 0 until the environment has been read.
static CONFIG: AtomicU8 = AtomicU8::new(0);

extern "C" {
    /// libc's environment (`environ(7)`).
    static environ: *const *const c_char;
}

/// The settings in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config(u8);

impl Config {
    /// What an exhausted node does.
    pub(crate) fn policy(self) -> OnExhausted {
        if self.0 & NEAREST != 0 {
            OnExhausted::Nearest
        } else {
            OnExhausted::Strict
        }
    }

    /// Whether figures are printed at exit.
    pub(crate) fn stats(self) -> bool {
        self.0 & STATS != 0
    }
}

/// The settings; the environment is read on the first call after libc
/// has set `environ`. Before that (calls from the dynamic loader) the
/// defaults apply, and nothing is remembered.
#[inline]
pub(crate) fn get() -> Config {
    let c = CONFIG.load(Ordering::Acquire);
    if c & READ != 0 {
        return Config(c);
    }
    read()
}

#[cold]
fn read() -> Config {
    // SAFETY: a plain read of libc's pointer; it is set before any code of
    // the program runs, and null before libc's start-up code set it.
    let env = unsafe { environ };
    if env.is_null() {
        return Config(0);
    }
    let entries = (0..)
        // SAFETY: `environ` is a null-terminated array of C strings; the
        // walk stops at the null.
        .map(|i| unsafe { *env.add(i) })
        .take_while(|e| !e.is_null())
        // SAFETY: each entry is a NUL-terminated string owned by libc.
        .map(|e| unsafe { CStr::from_ptr(e) }.to_bytes());
    let (bits, complaints) = parse_all(entries);
    if CONFIG
        .compare_exchange(0, bits, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        for (name, value) in complaints.into_iter().flatten() {
            let mut line = Line::new();
            line.text("numakit-malloc: ")
                .text(name)
                .text("=")
                .bytes(value)
                .text(" is not one of ")
                .text(if name == "NUMAKIT_MALLOC_FALLBACK" {
                    "strict, nearest; using strict"
                } else {
                    "0, 1; statistics stay off"
                })
                .text("\n")
                .print();
        }
    }
    Config(CONFIG.load(Ordering::Acquire))
}

/// Values not understood, by variable: its name and the value.
type Complaints<'a> = [Option<(&'static str, &'a [u8])>; 2];

/// The bits of an environment (`READ` included) and the values not
/// understood. A variable set twice counts once, by its first entry, as
/// `getenv` finds it.
fn parse_all<'a>(entries: impl Iterator<Item = &'a [u8]>) -> (u8, Complaints<'a>) {
    let mut bits = READ;
    let mut complaints = [None, None];
    let mut seen = [false; 2];
    for entry in entries {
        let Some(which) = NAMES.iter().position(|n| {
            entry
                .strip_prefix(n.as_bytes())
                .is_some_and(|rest| rest.first() == Some(&b'='))
        }) else {
            continue;
        };
        if !std::mem::replace(&mut seen[which], true) {
            bits |= parse(entry, &mut complaints);
        }
    }
    (bits, complaints)
}

/// The bits one `NAME=value` entry sets; a value that is not understood
/// goes to `complaints`.
fn parse<'a>(entry: &'a [u8], complaints: &mut Complaints<'a>) -> u8 {
    if let Some(v) = entry.strip_prefix(b"NUMAKIT_MALLOC_FALLBACK=") {
        return match v {
            b"strict" => 0,
            b"nearest" => NEAREST,
            _ => {
                complaints[0] = Some(("NUMAKIT_MALLOC_FALLBACK", v));
                0
            }
        };
    }
    if let Some(v) = entry.strip_prefix(b"NUMAKIT_MALLOC_STATS=") {
        return match v {
            b"1" => STATS,
            b"0" => 0,
            _ => {
                complaints[1] = Some(("NUMAKIT_MALLOC_STATS", v));
                0
            }
        };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_to_bits_and_complaints() {
        let mut c = [None, None];
        assert_eq!(parse(b"NUMAKIT_MALLOC_FALLBACK=nearest", &mut c), NEAREST);
        assert_eq!(parse(b"NUMAKIT_MALLOC_FALLBACK=strict", &mut c), 0);
        assert_eq!(parse(b"NUMAKIT_MALLOC_STATS=1", &mut c), STATS);
        assert_eq!(parse(b"NUMAKIT_MALLOC_STATS=0", &mut c), 0);
        assert_eq!(parse(b"NUMAKIT_MALLOC_FALLBACKX=nearest", &mut c), 0);
        assert_eq!(parse(b"PATH=/bin", &mut c), 0);
        assert_eq!(c, [None, None]);
        assert_eq!(parse(b"NUMAKIT_MALLOC_FALLBACK=preferred", &mut c), 0);
        assert_eq!(parse(b"NUMAKIT_MALLOC_STATS=yes", &mut c), 0);
        assert_eq!(parse(b"NUMAKIT_MALLOC_FALLBACK=", &mut c), 0);
        assert_eq!(
            c,
            [
                Some(("NUMAKIT_MALLOC_FALLBACK", &b""[..])),
                Some(("NUMAKIT_MALLOC_STATS", &b"yes"[..]))
            ]
        );
        assert_eq!(Config(READ | NEAREST).policy(), OnExhausted::Nearest);
        assert_eq!(Config(READ).policy(), OnExhausted::Strict);
        assert!(Config(STATS).stats());
    }

    #[test]
    fn the_first_entry_of_a_variable_set_twice_counts_as_getenv_says() {
        let env = |list: &[&'static str]| parse_all(list.iter().map(|e| e.as_bytes()));
        let f = "NUMAKIT_MALLOC_FALLBACK";
        let s = "NUMAKIT_MALLOC_STATS";
        for (list, bits, complaints) in [
            (
                &[
                    "NUMAKIT_MALLOC_FALLBACK=strict",
                    "NUMAKIT_MALLOC_FALLBACK=nearest",
                ][..],
                READ,
                [None, None],
            ),
            (
                &[
                    "NUMAKIT_MALLOC_FALLBACK=nearest",
                    "NUMAKIT_MALLOC_FALLBACK=x",
                ],
                READ | NEAREST,
                [None, None],
            ),
            (
                &[
                    "NUMAKIT_MALLOC_FALLBACK=x",
                    "NUMAKIT_MALLOC_FALLBACK=nearest",
                ],
                READ,
                [Some((f, &b"x"[..])), None],
            ),
            (
                &[
                    "NUMAKIT_MALLOC_STATS=0",
                    "PATH=/bin",
                    "NUMAKIT_MALLOC_STATS=1",
                ],
                READ,
                [None, None],
            ),
            (
                &["NUMAKIT_MALLOC_STATS=", "NUMAKIT_MALLOC_STATS=1"],
                READ,
                [None, Some((s, &b""[..]))],
            ),
            (
                &["NUMAKIT_MALLOC_STATS=1", "NUMAKIT_MALLOC_FALLBACK=nearest"],
                READ | STATS | NEAREST,
                [None, None],
            ),
            (&[], READ, [None, None]),
        ] {
            assert_eq!(env(list), (bits, complaints), "{list:?}");
        }
    }
}
