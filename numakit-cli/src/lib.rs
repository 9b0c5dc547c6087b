//! The `numakit` command's code, as a library so that the `topology`
//! example and the tests call the same functions:
//!
//! | module | command |
//! |---|---|
//! | [`topology`] | `numakit topology [--json \| --numactl]` |
//! | [`launch`] | `numakit run --node N [--cpus LIST] [--membind LIST \| --interleave LIST] -- CMD` |
//! | [`process`], [`maps`] | `numakit stat PID`, `numakit verify PID` |
//! | [`measure`] | `numakit measure [--quick] [--json]` |

mod elf;
pub mod launch;
pub mod maps;
pub mod measure;
pub mod process;
pub mod topology;
