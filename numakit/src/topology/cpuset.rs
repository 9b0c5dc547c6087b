//! [`CpuSet`]: a growable set of CPU ids, and the Linux list format
//! (`0-3,8,10-11`) used by sysfs and `taskset`.

use super::CpuId;
use std::fmt;

/// A set of CPUs, of any size (no 1024-CPU limit).
///
/// Displays and parses in the kernel's list format, `0-3,8,10-11`.
///
/// # Examples
/// ```
/// use numakit::CpuSet;
/// let set: CpuSet = "0-3,8".parse().unwrap();
/// assert_eq!(set.len(), 5);
/// assert!(set.contains(8u32.into()));
/// assert_eq!(set.to_string(), "0-3,8");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet {
    /// Kernel mask words: bit `c % WORD` of word `c / WORD` is CPU `c`.
    words: Vec<Word>,
}

type Word = libc::c_ulong;
const WORD: usize = Word::BITS as usize;

impl CpuSet {
    /// An empty set.
    pub const fn new() -> Self {
        Self { words: Vec::new() }
    }

    /// CPU ids a set can hold: `0..MAX_CPUS` (65536). Linux's `NR_CPUS`
    /// tops out at 8192; a larger id is a typo or hostile input, and holding
    /// it would cost a mask of `id / 8` bytes (512 MiB for `u32::MAX`).
    pub const MAX_CPUS: u32 = MAX_CPU_ID;

    /// Add `cpu`; returns whether it was absent.
    ///
    /// # Panics
    /// If `cpu` is not below [`CpuSet::MAX_CPUS`]; [`try_insert`](Self::try_insert)
    /// returns an error instead.
    #[track_caller]
    pub fn insert(&mut self, cpu: CpuId) -> bool {
        match self.try_insert(cpu) {
            Ok(absent) => absent,
            Err(e) => panic!("{e}"),
        }
    }

    /// Add `cpu`; returns whether it was absent.
    ///
    /// # Errors
    /// [`CpuIdOutOfRange`] if `cpu` is not below [`CpuSet::MAX_CPUS`]; the
    /// set is unchanged.
    ///
    /// # Examples
    /// ```
    /// use numakit::{CpuId, CpuSet};
    /// let mut set = CpuSet::new();
    /// assert_eq!(set.try_insert(CpuId::new(3)), Ok(true));
    /// assert!(set.try_insert(CpuId::new(u32::MAX)).is_err());
    /// assert_eq!(set.to_string(), "3");
    /// ```
    pub fn try_insert(&mut self, cpu: CpuId) -> Result<bool, CpuIdOutOfRange> {
        if cpu.get() >= MAX_CPU_ID {
            return Err(CpuIdOutOfRange {
                requested: cpu,
                limit: MAX_CPU_ID,
            });
        }
        let (w, b) = Self::pos(cpu);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let was = self.words[w] & b != 0;
        self.words[w] |= b;
        Ok(!was)
    }

    /// A set of the CPUs `cpus` yields.
    ///
    /// # Errors
    /// [`CpuIdOutOfRange`] for the first CPU not below [`CpuSet::MAX_CPUS`].
    pub fn try_from_cpus(cpus: impl IntoIterator<Item = CpuId>) -> Result<Self, CpuIdOutOfRange> {
        let mut set = CpuSet::new();
        for c in cpus {
            set.try_insert(c)?;
        }
        Ok(set)
    }

    /// Remove `cpu`; returns whether it was present.
    pub fn remove(&mut self, cpu: CpuId) -> bool {
        let (w, b) = Self::pos(cpu);
        match self.words.get_mut(w) {
            Some(word) if *word & b != 0 => {
                *word &= !b;
                let trimmed = std::mem::take(self).trimmed();
                *self = trimmed;
                true
            }
            _ => false,
        }
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: CpuId) -> bool {
        let (w, b) = Self::pos(cpu);
        self.words.get(w).is_some_and(|word| word & b != 0)
    }

    /// Number of CPUs in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The lowest CPU in the set.
    pub fn first(&self) -> Option<CpuId> {
        self.iter().next()
    }

    /// CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = CpuId> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                Some(CpuId::new((w * WORD) as u32 + b))
            })
        })
    }

    /// CPUs in both sets.
    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        let words = self
            .words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| a & b)
            .collect();
        CpuSet { words }.trimmed()
    }

    /// CPUs in either set.
    pub fn union(&self, other: &CpuSet) -> CpuSet {
        let n = self.words.len().max(other.words.len());
        let words = (0..n)
            .map(|i| {
                self.words.get(i).copied().unwrap_or(0) | other.words.get(i).copied().unwrap_or(0)
            })
            .collect();
        CpuSet { words }
    }

    /// CPUs in `self` but not in `other`.
    pub fn difference(&self, other: &CpuSet) -> CpuSet {
        let words = self
            .words
            .iter()
            .enumerate()
            .map(|(i, a)| a & !other.words.get(i).copied().unwrap_or(0))
            .collect();
        CpuSet { words }.trimmed()
    }

    /// Whether every CPU of `self` is in `other`.
    pub fn is_subset(&self, other: &CpuSet) -> bool {
        self.difference(other).is_empty()
    }

    /// The set as kernel mask words (`unsigned long`, bit `c % 64` of word
    /// `c / 64`), as `sched_setaffinity(2)` takes it.
    pub fn to_mask(&self) -> Vec<libc::c_ulong> {
        self.words.clone()
    }

    /// A set from kernel mask words, as `sched_getaffinity(2)` returns it.
    ///
    /// # Panics
    /// If a bit at or above [`CpuSet::MAX_CPUS`] is set;
    /// [`try_from_mask`](Self::try_from_mask) returns an error instead.
    #[track_caller]
    pub fn from_mask(mask: &[libc::c_ulong]) -> Self {
        match Self::try_from_mask(mask) {
            Ok(set) => set,
            Err(e) => panic!("{e}"),
        }
    }

    /// A set from kernel mask words (bit `c % 64` of word `c / 64` is CPU
    /// `c`). Words past the last CPU a set can hold may be there, as long
    /// as they are zero.
    ///
    /// # Errors
    /// [`CpuIdOutOfRange`] naming the lowest set bit at or above
    /// [`CpuSet::MAX_CPUS`] (saturated at `u32::MAX`).
    ///
    /// # Examples
    /// ```
    /// use numakit::CpuSet;
    /// assert_eq!(CpuSet::try_from_mask(&[0b1010]).unwrap().to_string(), "1,3");
    /// let mut mask = vec![0; 1025];
    /// mask[1024] = 1;
    /// assert!(CpuSet::try_from_mask(&mask).is_err());
    /// ```
    pub fn try_from_mask(mask: &[libc::c_ulong]) -> Result<Self, CpuIdOutOfRange> {
        let held = (MAX_CPU_ID as usize).div_ceil(WORD);
        if let Some((w, word)) = mask.iter().enumerate().skip(held).find(|(_, w)| **w != 0) {
            let bit = (w as u64) * WORD as u64 + u64::from(word.trailing_zeros());
            return Err(CpuIdOutOfRange {
                requested: CpuId::new(u32::try_from(bit).unwrap_or(u32::MAX)),
                limit: MAX_CPU_ID,
            });
        }
        Ok(CpuSet {
            words: mask[..mask.len().min(held)].to_vec(),
        }
        .trimmed())
    }

    /// Parse the kernel's list format: `0-3,8,10-11`, optionally with a
    /// stride (`0-7:2`); empty or whitespace means the empty set.
    pub fn parse_list(s: &str) -> Result<Self, ParseCpuListError> {
        let mut set = CpuSet::new();
        let s = s.trim();
        if s.is_empty() {
            return Ok(set);
        }
        let bad = || ParseCpuListError {
            input: s.to_string(),
        };
        for part in s.split(',') {
            let part = part.trim();
            let (range, stride) = match part.split_once(':') {
                Some((r, st)) => (r, st.parse::<u32>().map_err(|_| bad())?),
                None => (part, 1),
            };
            if stride == 0 {
                return Err(bad());
            }
            let (lo, hi) = match range.split_once('-') {
                Some((lo, hi)) => (
                    lo.parse::<u32>().map_err(|_| bad())?,
                    hi.parse::<u32>().map_err(|_| bad())?,
                ),
                None => {
                    let c = range.parse::<u32>().map_err(|_| bad())?;
                    (c, c)
                }
            };
            // Refuse absurd ids rather than allocate gigabytes for a typo.
            if lo > hi || hi >= MAX_CPU_ID {
                return Err(bad());
            }
            for c in (lo..=hi).step_by(stride as usize) {
                set.try_insert(CpuId::new(c)).map_err(|_| bad())?;
            }
        }
        Ok(set)
    }

    fn pos(cpu: CpuId) -> (usize, Word) {
        let c = cpu.get() as usize;
        (c / WORD, 1 << (c % WORD))
    }

    fn trimmed(mut self) -> Self {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
        self
    }
}

/// Largest CPU id accepted when parsing (Linux's `NR_CPUS` tops out at 8192).
const MAX_CPU_ID: u32 = 1 << 16;

/// # Panics
/// On a CPU id not below [`CpuSet::MAX_CPUS`], as [`CpuSet::insert`];
/// [`CpuSet::try_from_cpus`] returns an error instead.
impl FromIterator<CpuId> for CpuSet {
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = CpuId>>(iter: I) -> Self {
        let mut set = CpuSet::new();
        for c in iter {
            set.insert(c);
        }
        set
    }
}

impl std::str::FromStr for CpuSet {
    type Err = ParseCpuListError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_list(s)
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids = self.iter().map(CpuId::get).peekable();
        let mut first = true;
        while let Some(lo) = ids.next() {
            let mut hi = lo;
            while ids.peek() == Some(&(hi + 1)) {
                hi = ids.next().unwrap_or(hi);
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        if first {
            f.write_str("(none)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({self})")
    }
}

/// A CPU id too large for a [`CpuSet`] (not below [`CpuSet::MAX_CPUS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "CPU {requested} is out of range: a CpuSet holds CPU ids below {limit} (Linux supports \
     at most 8192 CPUs); use the id of an online CPU (Topology::online_cpus)"
)]
pub struct CpuIdOutOfRange {
    /// The CPU asked for.
    pub requested: CpuId,
    /// The first id that is refused ([`CpuSet::MAX_CPUS`]).
    pub limit: u32,
}

/// A CPU list that is not in the kernel's `0-3,8` format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a CPU list; expected the kernel's list format, e.g. `0-3,8,10-11`")]
pub struct ParseCpuListError {
    input: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_roundtrip() {
        for s in ["0", "0-3", "0-3,8,10-11", "1,3,5", "64-130", "0,63-64"] {
            assert_eq!(CpuSet::parse_list(s).unwrap().to_string(), s);
        }
        assert_eq!(CpuSet::parse_list("0-7:2").unwrap().to_string(), "0,2,4,6");
        assert_eq!(CpuSet::parse_list(" 0-1\n").unwrap().len(), 2);
        assert!(CpuSet::parse_list("").unwrap().is_empty());
        assert_eq!(CpuSet::new().to_string(), "(none)");
    }

    #[test]
    fn parse_rejects_garbage() {
        for s in ["a", "3-1", "1-", "-1", "0-3:0", "99999999", "1,,2"] {
            assert!(CpuSet::parse_list(s).is_err(), "{s}");
        }
    }

    #[test]
    fn ids_are_capped_like_parse_list() {
        let mut s = CpuSet::new();
        let last = CpuId::new(CpuSet::MAX_CPUS - 1);
        assert_eq!(s.try_insert(last), Ok(true));
        assert!(s.contains(last));
        for bad in [CpuSet::MAX_CPUS, CpuSet::MAX_CPUS + 1, u32::MAX] {
            let e = s.try_insert(CpuId::new(bad)).unwrap_err();
            assert_eq!((e.requested, e.limit), (CpuId::new(bad), CpuSet::MAX_CPUS));
            assert!(e.to_string().contains(&bad.to_string()), "{e}");
            assert!(!s.contains(CpuId::new(bad)));
            assert!(!s.remove(CpuId::new(bad)));
        }
        assert_eq!(s.len(), 1);
        assert!(CpuSet::try_from_cpus([CpuId::new(1), CpuId::new(u32::MAX)]).is_err());
        let r = std::panic::catch_unwind(|| {
            let mut s = CpuSet::new();
            s.insert(CpuId::new(u32::MAX))
        });
        assert!(r.is_err(), "insert documents a panic for out-of-range ids");
    }

    #[test]
    fn set_operations() {
        let a: CpuSet = "0-7".parse().unwrap();
        let b: CpuSet = "4-11".parse().unwrap();
        assert_eq!(a.intersection(&b).to_string(), "4-7");
        assert_eq!(a.union(&b).to_string(), "0-11");
        assert_eq!(a.difference(&b).to_string(), "0-3");
        assert!(a.intersection(&b).is_subset(&a));
        assert!(!a.is_subset(&b));
        let mask = b.to_mask();
        assert_eq!(CpuSet::from_mask(&mask), b);
        assert_eq!(CpuSet::from_mask(&[]), CpuSet::new());
        let mut c = CpuSet::new();
        assert!(c.insert(CpuId::new(200)));
        assert!(!c.insert(CpuId::new(200)));
        assert!(c.remove(CpuId::new(200)));
        assert!(c.is_empty());
        assert_eq!(c, CpuSet::new().union(&CpuSet::new()));
    }

    #[test]
    fn masks_with_bits_past_the_largest_id_are_refused() {
        let words = (CpuSet::MAX_CPUS as usize) / WORD;
        // The largest id a set holds, with zero words after it.
        let mut mask = vec![0 as libc::c_ulong; words + 3];
        mask[words - 1] = 1 << (WORD - 1);
        let set = CpuSet::try_from_mask(&mask).unwrap();
        assert_eq!(set.first(), Some(CpuId::new(CpuSet::MAX_CPUS - 1)));
        assert_eq!(set.len(), 1);
        assert_eq!(set.to_mask().len(), words);
        // The smallest id it does not.
        mask[words] = 1;
        let e = CpuSet::try_from_mask(&mask).unwrap_err();
        assert_eq!(e.requested, CpuId::new(CpuSet::MAX_CPUS));
        assert_eq!(e.limit, CpuSet::MAX_CPUS);
        mask[words] = 0;
        mask[words + 2] = 1 << 5;
        let e = CpuSet::try_from_mask(&mask).unwrap_err();
        assert_eq!(
            e.requested,
            CpuId::new(CpuSet::MAX_CPUS + 2 * WORD as u32 + 5)
        );
        let panicked = std::panic::catch_unwind(|| CpuSet::from_mask(&mask)).unwrap_err();
        let text = panicked.downcast_ref::<String>().unwrap();
        assert!(text.contains("out of range"), "{text}");
        assert_eq!(
            CpuSet::try_from_mask(&[libc::c_ulong::MAX]).unwrap().len(),
            WORD
        );
    }
}
