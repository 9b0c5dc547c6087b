//! The published crates carry their own copies of the README and the
//! licence texts (a package cannot include files outside its folder); the
//! copies must stay identical to the top-level files. (`host_only`: the
//! guests hold the test binaries, not the source tree.)

use std::path::Path;

fn same(copy: &str, original: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read =
        |p: &str| std::fs::read(root.join(p)).unwrap_or_else(|e| panic!("cannot read {p}: {e}"));
    assert!(
        read(copy) == read(original),
        "{copy} differs from {original}: run `cp {original} {copy}` and commit both"
    );
}

#[test]
fn host_only_the_crate_readme_is_the_top_level_readme() {
    same("numakit/README.md", "README.md");
}

#[test]
fn host_only_every_published_crate_carries_both_licences() {
    for krate in ["numakit", "numakit-macros"] {
        for licence in ["LICENSE-MIT", "LICENSE-APACHE"] {
            same(&format!("{krate}/{licence}"), licence);
        }
    }
}
