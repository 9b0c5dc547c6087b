//! The guest kernel: the host's newest `/boot/vmlinuz-*`, booted as an
//! uncompressed ELF `vmlinux` through PVH (about twice as fast to start under
//! TCG as the bzImage). The ELF is extracted once from the XZ payload inside
//! the bzImage and cached under `target/xtask/kernel/`, keyed by the kernel's
//! file name.

use std::cmp::Ordering;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Result;

/// Start of an XZ stream (magic plus the first byte of the stream flags).
const XZ_MAGIC: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];

/// Start of an ELF file.
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// Returns the kernel image to boot: the cached `vmlinux` for the newest
/// `/boot/vmlinuz-*`, or that compressed image itself if extraction fails.
pub fn find_and_prepare(xtask_dir: &Path) -> Result<PathBuf> {
    let image = newest_kernel(Path::new("/boot"))?;
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cached = xtask_dir
        .join("kernel")
        .join(name.replacen("vmlinuz", "vmlinux", 1));
    if is_elf(&cached) {
        eprintln!(
            "xtask: kernel {} (cached uncompressed {})",
            image.display(),
            cached.display()
        );
        return Ok(cached);
    }
    match extract_vmlinux(&image, &cached) {
        Ok(()) => {
            eprintln!(
                "xtask: kernel {} (extracted uncompressed {})",
                image.display(),
                cached.display()
            );
            Ok(cached)
        }
        Err(why) => {
            eprintln!(
                "xtask: warning: could not extract vmlinux from {} ({why}); booting the \
                 compressed image, which starts about 2x slower",
                image.display()
            );
            Ok(image)
        }
    }
}

/// The newest `vmlinuz-*` in `dir`, by version order of the file names.
fn newest_kernel(dir: &Path) -> Result<PathBuf> {
    let entries = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vmlinuz-"))
        .collect();
    names.sort_by(|a, b| version_cmp(a, b));
    names.pop().map(|n| dir.join(n)).ok_or_else(|| {
        format!(
            "no vmlinuz-* in {} (install linux-image-amd64)",
            dir.display()
        )
    })
}

/// Compares strings with runs of digits compared as numbers
/// (`6.1.0-9` < `6.1.0-10`).
fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let len_a = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let len_b = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (num_a, num_b) = (trim_zeros(&a[..len_a]), trim_zeros(&b[..len_b]));
                let order = num_a.len().cmp(&num_b.len()).then(num_a.cmp(num_b));
                if order != Ordering::Equal {
                    return order;
                }
                a = &a[len_a..];
                b = &b[len_b..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[zeros..]
}

/// Whether `path` is a readable ELF file.
fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == ELF_MAGIC
}

/// Tries each XZ stream in the bzImage until one decompresses to an ELF file,
/// which is written to `out` (through a temporary file and a rename, so a
/// concurrent or interrupted run never leaves a broken cache).
fn extract_vmlinux(image: &Path, out: &Path) -> std::result::Result<(), String> {
    let data = fs::read(image).map_err(|e| format!("reading it: {e}"))?;
    let dir = out.parent().ok_or("bad cache path")?;
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let mut last_error = "no XZ stream found".to_string();
    for offset in find_all(&data, XZ_MAGIC) {
        match xz_decompress(&data[offset..], &tmp) {
            Ok(()) if is_elf(&tmp) => {
                return fs::rename(&tmp, out).map_err(|e| format!("renaming to cache: {e}"));
            }
            Ok(()) => last_error = format!("the XZ stream at {offset} is not an ELF file"),
            Err(e) => last_error = e,
        }
    }
    let _ = fs::remove_file(&tmp);
    Err(last_error)
}

/// Offsets of every occurrence of `needle` in `haystack`.
fn find_all<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// `xz -dc --single-stream < input > out`. xz stops after the first stream
/// and exits while we may still be writing the bytes after it (the rest of
/// the bzImage): a broken pipe on our side is expected, not an error, and
/// xz's status decides.
fn xz_decompress(input: &[u8], out: &Path) -> std::result::Result<(), String> {
    let out_file = fs::File::create(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let mut child = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(out_file)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("running xz (install xz-utils): {e}"))?;
    let mut stdin = child.stdin.take().ok_or("xz stdin not captured")?;
    let write_result = stdin.write_all(input);
    drop(stdin);
    let status = child.wait().map_err(|e| format!("waiting for xz: {e}"))?;
    match write_result {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => return Err(format!("feeding xz: {e}")),
        _ => {}
    }
    if status.success() {
        Ok(())
    } else {
        Err(format!("xz failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let mut names = vec![
            "vmlinuz-6.1.0-10-amd64",
            "vmlinuz-6.1.0-9-amd64",
            "vmlinuz-6.12.1-amd64",
            "vmlinuz-6.1.0-56-amd64",
        ];
        names.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            names,
            vec![
                "vmlinuz-6.1.0-9-amd64",
                "vmlinuz-6.1.0-10-amd64",
                "vmlinuz-6.1.0-56-amd64",
                "vmlinuz-6.12.1-amd64",
            ]
        );
    }

    #[test]
    fn finds_magic() {
        let data = [
            1, 0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 2, 0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00,
        ];
        assert_eq!(find_all(&data, XZ_MAGIC).collect::<Vec<_>>(), vec![1, 8]);
    }
}
