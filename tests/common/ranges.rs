//! Live blocks of an allocator under test, by address: inserting one that
//! overlaps a live block fails the property test. Included with `#[path]`
//! by the property tests (it needs proptest, which `common`'s other users
//! do not have).

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeMap;

/// Live blocks by address (start → length); refuses overlaps.
#[derive(Default)]
pub struct Ranges(BTreeMap<usize, usize>);

impl Ranges {
    /// Record a live block of `len` bytes at `addr` (zero-length blocks
    /// are not recorded); fails if it overlaps one already live.
    pub fn insert(&mut self, addr: usize, len: usize) -> Result<(), TestCaseError> {
        if len == 0 {
            return Ok(());
        }
        if let Some((&a, &l)) = self.0.range(..addr + len).next_back() {
            prop_assert!(
                a + l <= addr,
                "block {addr:#x}+{len} overlaps live {a:#x}+{l}"
            );
        }
        self.0.insert(addr, len);
        Ok(())
    }

    /// Forget the block at `addr` (freed).
    pub fn remove(&mut self, addr: usize, len: usize) {
        if len > 0 {
            self.0.remove(&addr);
        }
    }
}
