#!/usr/bin/env bash
# AddressSanitizer job: the library's unit tests and the integration tests
# of its memory, ring and map types, built with ASan and with numakit's own
# poisoning of free heap blocks, free slab slots and unallocated arena
# memory (`--cfg numakit_asan`, see numakit/src/mem/asan.rs).
#
# Installs nothing: it fails (never skips) when the nightly toolchain or its
# ASan runtime is missing. Leak detection stays on; .ci/lsan.supp lists the
# one leak a test makes on purpose.
#
# Not run here: the loom models (their own cfg and target dir, run by
# .ci/run), the benchmarks, and the scheduler/topology/macro tests (no
# allocator of numakit's in them beyond what the tests below cover).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
start=$(date +%s)
step() { printf '\n=== asan: %s (t+%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

fail() { echo "asan.sh: $*" >&2; exit 1; }

step "check the nightly toolchain and its sanitizer runtime"
cargo +nightly --version >/dev/null 2>&1 \
    || fail "no nightly toolchain: install it with 'rustup toolchain install nightly'"
sysroot=$(rustc +nightly --print sysroot) || fail "rustc +nightly does not run"
runtime="$sysroot/lib/rustlib/$target/lib/librustc-nightly_rt.asan.a"
[ -f "$runtime" ] \
    || fail "the nightly toolchain has no ASan runtime for $target ($runtime missing)"
cargo +nightly --version

export RUSTFLAGS="-Zsanitizer=address --cfg numakit_asan"
export RUSTDOCFLAGS="$RUSTFLAGS"
export CARGO_TARGET_DIR=target/asan
export ASAN_OPTIONS="detect_leaks=1"
export LSAN_OPTIONS="suppressions=$PWD/.ci/lsan.supp:print_suppressions=0"
# Symbolised reports.
export RUST_BACKTRACE=1

step "numakit: unit tests and integration tests (loom excluded)"
cargo +nightly test --target "$target" -p numakit \
    --lib --test sync_locks --test sync_numa --test backends

step "memory, rings and map integration tests, allocator fuzzing, poisoning proofs"
cargo +nightly test --target "$target" \
    --test heap --test heap_props --test slab --test arena --test arena_props \
    --test node_box --test rings --test rings_fuzz --test hash_map \
    --test hash_map_props --test hash_map_safety --test skip_map --test deque --test hostile_input \
    --test alloc_fuzz --test asan_poison --test node_local_global \
    --test local_alloc --test per_node --test heap_large --test rings_waits

step "done"
