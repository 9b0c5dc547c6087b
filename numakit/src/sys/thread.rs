//! Thread-specific data keys (`pthread_key_create`, `pthread_setspecific`)
//! and fork handlers (`pthread_atfork`).
//!
//! Used for running a destructor when a thread exits without relying on
//! `std`'s thread-local destructors (which may allocate).

use std::ffi::c_void;
use std::io;

/// A `pthread_key_t`.
pub type Key = libc::pthread_key_t;

/// `pthread_key_create(3)` — a key whose `destructor` runs with the
/// thread's value when a thread that set one exits
/// ([pthread_key_create(3)](https://man7.org/linux/man-pages/man3/pthread_key_create.3p.html)).
pub fn key_create(destructor: unsafe extern "C" fn(*mut c_void)) -> io::Result<Key> {
    let mut key: Key = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor is a function
    // that stays valid for the life of the process.
    match unsafe { libc::pthread_key_create(&mut key, Some(destructor)) } {
        0 => Ok(key),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// `pthread_setspecific(3)` — set the calling thread's value for `key`
/// ([pthread_setspecific(3)](https://man7.org/linux/man-pages/man3/pthread_setspecific.3p.html)).
///
/// # Safety
/// `value` must stay valid until the key's destructor runs for this thread
/// (or the value is replaced), since the destructor receives it.
pub unsafe fn set_specific(key: Key, value: *const c_void) -> io::Result<()> {
    // SAFETY: the caller guarantees `value`'s lifetime; the key is one made
    // by `key_create`.
    match unsafe { libc::pthread_setspecific(key, value) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// `pthread_atfork(3)` — handlers run around every `fork` of the process:
/// `prepare` in the forking thread before the copy, `parent` in it after,
/// `child` in the child's only thread
/// ([pthread_atfork(3)](https://man7.org/linux/man-pages/man3/pthread_atfork.3.html)).
/// Handlers cannot be removed: they stay registered for the life of the
/// process.
pub fn atfork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> io::Result<()> {
    // SAFETY: three plain functions, valid for the life of the process.
    match unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}
