#!/bin/bash
# The allocator workloads (tests/c/bench_alloc.c) with glibc, mimalloc,
# jemalloc and libnumakit_malloc.so preloaded, RUNS times each in turn;
# prints the median M ops/s per workload and allocator, with the range.
#
#   apt-get install libmimalloc2.0 libjemalloc2
#   cargo build --release -p numakit-malloc
#   cargo test --release -p numakit-malloc --test preload workloads   # builds bench_alloc
#   numakit-malloc/tests/bench.sh [RUNS]
set -eu
runs=${1:-5}
dir=$(cd "$(dirname "$0")/../.." && pwd)
bench=$dir/target/release/malloc-tests/bench_alloc
ours=$dir/target/release/libnumakit_malloc.so
mi=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
je=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
for f in "$bench" "$ours" "$mi" "$je"; do
    [ -e "$f" ] || { echo "bench.sh: $f is missing (see the header)" >&2; exit 1; }
done
out=$(mktemp)
for r in $(seq "$runs"); do
    for a in glibc:"" mimalloc:$mi jemalloc:$je numakit:$ours; do
        name=${a%%:*}
        lib=${a#*:}
        LD_PRELOAD=$lib NUMAKIT_MALLOC_FALLBACK=strict "$bench" | sed "s/^/$name /" >>"$out"
    done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; $runs runs; M ops/s, median (min-max)"
printf '| %-16s | %s | %-22s | %-22s | %-22s | %-22s |\n' workload threads glibc mimalloc jemalloc numakit
for w in $(awk '{print $2 "/" $3}' "$out" | awk '!seen[$0]++'); do
    row=$(printf '| %-16s | %7s |' "${w%/*}" "${w#*/}")
    for name in glibc mimalloc jemalloc numakit; do
        cell=$(awk -v n="$name" -v w="${w%/*}" -v t="${w#*/}" '$1 == n && $2 == w && $3 == t { print $4 }' "$out" |
            sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                printf "%.3g (%.3g-%.3g)", m, v[1], v[NR] }')
        row="$row $(printf '%-22s |' "$cell")"
    done
    echo "$row"
done
rm -f "$out"
