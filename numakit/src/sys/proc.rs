//! What the kernel says about the process's own restrictions:
//! `/proc/self/status` (`Cpus_allowed_list`, `Mems_allowed_list`),
//! `/proc/self/cgroup`, and the cgroup's cpuset files under
//! `/sys/fs/cgroup`
//! ([proc(5)](https://man7.org/linux/man-pages/man5/proc.5.html),
//! [cgroups(7)](https://man7.org/linux/man-pages/man7/cgroups.7.html),
//! [cpuset(7)](https://man7.org/linux/man-pages/man7/cpuset.7.html)).
//!
//! The files are read with `std::fs` and returned as text; parsing is the
//! caller's.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Bytes read at most from any of these files: `/proc/self/status` is a
/// few KiB; a CPU list of the largest machines well under 64 KiB.
const MAX_LEN: u64 = 1 << 20;

fn read_small(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)?
        .take(MAX_LEN)
        .read_to_string(&mut s)?;
    Ok(s)
}

/// The value of line `field` (`"Mems_allowed_list"`) of
/// `/proc/self/status`, trimmed; `Ok(None)` when the kernel writes no such
/// line. The file describes the process's main thread.
///
/// # Errors
/// What reading `/proc/self/status` failed with (no `/proc` mounted, ...).
pub fn status_field(field: &str) -> io::Result<Option<String>> {
    let status = read_small(Path::new(STATUS))?;
    Ok(status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then(|| value.trim().to_string())
    }))
}

/// `/proc/self/status`.
pub const STATUS: &str = "/proc/self/status";

/// Which cpuset file of the process's cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpusetFile {
    /// The CPUs the cgroup lets its tasks use.
    Cpus,
    /// The memory nodes the cgroup lets its tasks use.
    Mems,
}

/// The cgroup cpuset file that restricts this process, and its contents
/// (trimmed): with cgroup v2 the nearest `cpuset.{cpus,mems}.effective`
/// from the process's cgroup up to the root of `/sys/fs/cgroup`; with a
/// cgroup v1 `cpuset` hierarchy, `cpuset.effective_{cpus,mems}` under
/// `/sys/fs/cgroup/cpuset`. `Ok(None)` when no cgroup filesystem is mounted
/// there or the cgroup has no cpuset file.
///
/// # Errors
/// What reading `/proc/self/cgroup` failed with.
pub fn cgroup_cpuset(which: CpusetFile) -> io::Result<Option<(PathBuf, String)>> {
    let cgroups = read_small(Path::new("/proc/self/cgroup"))?;
    Ok(cpuset_file_in(Path::new("/sys/fs/cgroup"), &cgroups, which))
}

/// [`cgroup_cpuset`] for a `/proc/self/cgroup` text and a cgroup mount
/// root (separate for tests).
pub(crate) fn cpuset_file_in(
    root: &Path,
    cgroups: &str,
    which: CpusetFile,
) -> Option<(PathBuf, String)> {
    let (v2_name, v1_name) = match which {
        CpusetFile::Cpus => ("cpuset.cpus.effective", "cpuset.effective_cpus"),
        CpusetFile::Mems => ("cpuset.mems.effective", "cpuset.effective_mems"),
    };
    let mut candidates = Vec::new();
    for line in cgroups.lines() {
        // `hierarchy-ID:controller-list:cgroup-path`
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(relative) = relative_cgroup(path) else {
            continue;
        };
        if controllers.split(',').any(|c| c == "cpuset") {
            candidates.push((root.join("cpuset").join(&relative), v1_name));
        } else if id == "0" && controllers.is_empty() {
            // The v2 hierarchy: mounted at the root (pure v2) or at
            // `unified` (hybrid); the nearest cgroup that has the file.
            for base in [root.to_path_buf(), root.join("unified")] {
                let mut dir = base.join(&relative);
                loop {
                    candidates.push((dir.clone(), v2_name));
                    if dir == base || !dir.pop() {
                        break;
                    }
                }
            }
        }
    }
    candidates.into_iter().find_map(|(dir, name)| {
        let file = dir.join(name);
        let text = read_small(&file).ok()?;
        let text = text.trim();
        // An empty effective set never restricts a running task: the
        // kernel shows the parent's then (v1), so look further.
        (!text.is_empty()).then(|| (file, text.to_string()))
    })
}

/// A cgroup path as written in `/proc/self/cgroup`, relative, with no `..`
/// (a path from another namespace reads as `/..`: not ours to look at).
fn relative_cgroup(path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => out.push(p),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicUsize, Ordering};
        pub struct Dir(PathBuf);
        impl Dir {
            pub fn new() -> Self {
                static N: AtomicUsize = AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "numakit-proc-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn v2_finds_the_nearest_cgroup_with_the_file() {
        let t = tree(&[
            ("cpuset.mems.effective", "0-1\n"),
            ("app/cpuset.mems.effective", "0\n"),
            ("app/job/cgroup.procs", "1\n"),
        ]);
        let found = cpuset_file_in(t.path(), "0::/app/job\n", CpusetFile::Mems).unwrap();
        assert_eq!(found.0, t.path().join("app/cpuset.mems.effective"));
        assert_eq!(found.1, "0");
        let root = cpuset_file_in(t.path(), "0::/\n", CpusetFile::Mems).unwrap();
        assert_eq!(root.1, "0-1");
        assert_eq!(cpuset_file_in(t.path(), "0::/\n", CpusetFile::Cpus), None);
    }

    #[test]
    fn v1_cpuset_hierarchy() {
        let t = tree(&[("cpuset/box/cpuset.effective_cpus", "2-3\n")]);
        let text = "9:name=systemd:/\n3:cpuset,cpu:/box\n0::/\n";
        let found = cpuset_file_in(t.path(), text, CpusetFile::Cpus).unwrap();
        assert_eq!(found.0, t.path().join("cpuset/box/cpuset.effective_cpus"));
        assert_eq!(found.1, "2-3");
    }

    #[test]
    fn foreign_and_malformed_lines_are_ignored() {
        let t = tree(&[("cpuset.cpus.effective", "0\n")]);
        for text in ["", "garbage", "0::/../x", "1:cpuset", "::::"] {
            assert_eq!(
                cpuset_file_in(t.path(), text, CpusetFile::Cpus),
                None,
                "{text:?}"
            );
        }
    }

    #[test]
    fn status_has_the_allowed_cpus() {
        assert!(status_field("Cpus_allowed_list").unwrap().is_some());
        assert_eq!(status_field("No_such_field").unwrap(), None);
    }
}
