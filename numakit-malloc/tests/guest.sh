#!/bin/sh
# The preload tests in a qemu guest with several nodes: the C programs with
# libnumakit_malloc.so preloaded (both fallback policies), `numakit run
# --node N --node-local-malloc` on every node with `numakit verify` on the
# running program, and busybox's ls, sort and sh -c preloaded (a
# dynamically linked busybox: the guest's own is static, which LD_PRELOAD
# cannot reach). Exits 1 when anything failed.
#
# From the workspace root (the programs are built by the host tests):
#   cargo build -p numakit-cli -p numakit-malloc
#   cargo test -p numakit-malloc --test preload programs_pass
#   apt-get download busybox && dpkg-deb -x busybox_*.deb /tmp/bb \
#     && cp /tmp/bb/bin/busybox target/debug/malloc-tests/busybox-dynamic
#   T=target/debug/malloc-tests
#   cargo xtask vm-run --nodes 2 --install target/debug/numakit \
#     --install target/debug/libnumakit_malloc.so \
#     $(for f in $T/preload_* $T/libpreload_early.so $T/busybox-dynamic; do
#         printf -- '--install %s ' $f; done) numakit-malloc/tests/guest.sh
set -u
L=/usr/bin/libnumakit_malloc.so
BB=/usr/bin/busybox-dynamic
failed=0

check() {
    what=$1
    shift
    if "$@"; then
        echo "guest.sh: ok: $what"
    else
        echo "guest.sh: FAILED ($?): $what"
        failed=1
    fi
}

for f in $L /usr/bin/numakit /usr/bin/preload_threads $BB; do
    [ -e "$f" ] || { echo "guest.sh: $f is missing (see the header for the vm-run line)"; exit 1; }
done

for policy in strict nearest; do
    check "preload_threads ($policy)" env LD_PRELOAD=$L NUMAKIT_MALLOC_FALLBACK=$policy \
        NUMAKIT_MALLOC_STATS=1 /usr/bin/preload_threads
done
# On CPU 0 (node 0 has memory): under the strict policy a process that
# starts on a memoryless node's CPU gets no memory at all.
PIN="taskset -c 0"
check preload_fork $PIN env LD_PRELOAD=$L /usr/bin/preload_fork
check "preload_exit (with a constructor before the allocator's)" \
    $PIN env LD_PRELOAD="$L /usr/bin/libpreload_early.so" /usr/bin/preload_exit
check preload_foreign $PIN env LD_PRELOAD=$L /usr/bin/preload_foreign
check preload_limits $PIN env LD_PRELOAD=$L /usr/bin/preload_limits
check preload_edges $PIN env LD_PRELOAD=$L /usr/bin/preload_edges

# numakit verify on the program while its threads' blocks are alive, on
# every node: without `numakit run` the only mappings with a strict policy
# are the allocator's node heaps.
hold=/tmp/hold.all
rm -f $hold
NKM_HOLD_FILE=$hold LD_PRELOAD=$L /usr/bin/preload_threads >/tmp/threads.all 2>&1 &
pid=$!
i=0
while [ ! -e $hold ] && [ $i -lt 600 ] && kill -0 $pid 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
check "preload_threads is holding its blocks" [ -e $hold ]
check "numakit verify of the preloaded program (heaps on every node)" numakit verify $pid
grep -E "^mapping|bind:" /proc/$pid/numa_maps | busybox awk '{print $1, $2, $NF}' | head -20
rm -f $hold
wait $pid
check "preload_threads (held)" [ $? -eq 0 ]

# numakit run on each node. Under `run` every mapping has the node's
# policy, and the page cache of the programs' files (the initramfs) is on
# node 0 whatever the policy says: `numakit verify` does not judge file
# mappings that hold page-cache pages (it says so), and every other mapping
# (the heaps, stacks, anonymous memory) must obey: verify exits 0.
for d in /sys/devices/system/node/node*; do
    n=${d##*/node}
    mem=$(sed -n 's/.*MemTotal: *\([0-9]*\) kB.*/\1/p' "$d/meminfo")
    cpus=$(cat "$d/cpulist")
    if [ -z "$cpus" ] || [ "${mem:-0}" -eq 0 ]; then
        numakit run --node "$n" --node-local-malloc -- true 2>/tmp/refused
        status=$?
        check "numakit run --node $n (no CPUs or memory) is refused" [ $status -eq 2 ]
        cat /tmp/refused
        continue
    fi
    hold=/tmp/hold.$n
    rm -f $hold
    NKM_HOLD_FILE=$hold numakit run --node "$n" --node-local-malloc -- /usr/bin/preload_threads \
        >/tmp/threads.$n 2>&1 &
    pid=$!
    i=0
    while [ ! -e $hold ] && [ $i -lt 600 ] && kill -0 $pid 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    check "numakit run --node $n --node-local-malloc: the program is holding its blocks" [ -e $hold ]
    check "numakit verify under run --node $n" numakit verify $pid
    numakit verify $pid >/tmp/verify.$n
    cat /tmp/verify.$n
    check "numakit verify under run --node $n: the page-cache file mappings are not judged" \
        grep -q '^not judged: ' /tmp/verify.$n
    rm -f $hold
    wait $pid
    status=$?
    cat /tmp/threads.$n
    check "preload_threads under numakit run --node $n" [ $status -eq 0 ]
    check "its threads ran on node $n" grep -q "on node $n " /tmp/threads.$n

    # busybox under the library, on this node, against the static busybox.
    $PIN busybox ls -la /usr/bin >/tmp/ls.ref
    numakit run --node "$n" --node-local-malloc -- $BB ls -la /usr/bin >/tmp/ls.out
    check "busybox ls on node $n" cmp /tmp/ls.ref /tmp/ls.out
    busybox seq 1 30000 | busybox sed 's/^/line /' >/tmp/sort.in
    busybox sort -r /tmp/sort.in >/tmp/sort.ref
    NUMAKIT_MALLOC_STATS=1 numakit run --node "$n" --node-local-malloc -- $BB sort -r /tmp/sort.in \
        >/tmp/sort.out 2>/tmp/sort.err
    check "busybox sort on node $n" cmp /tmp/sort.ref /tmp/sort.out
    cat /tmp/sort.err
    check "busybox sort's figures name node $n" \
        busybox awk -v n="$n" '$1 == n && $4 > 0 { found = 1 } END { exit !found }' /tmp/sort.err
    script='s=; i=0; while [ $i -lt 3000 ]; do s="$s$i,"; i=$((i + 1)); done; echo ${#s} $(echo "$s" | tr , "\n" | sort -n | tail -1)'
    want=$(busybox sh -c "$script")
    got=$(numakit run --node "$n" --node-local-malloc -- $BB sh -c "$script")
    check "busybox sh -c on node $n ($got)" [ "$got" = "$want" ]
done

if [ $failed -ne 0 ]; then
    echo "guest.sh: some checks FAILED"
    exit 1
fi
echo "guest.sh: all checks passed"
