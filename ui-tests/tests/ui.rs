//! The compile-time surface: `pass/` cases compile and run, `fail/` cases
//! must be refused with exactly the `.stderr` next to them.
//!
//! Regenerate expectations after a deliberate change with
//! `TRYBUILD=overwrite cargo test -p numakit-ui-tests`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
