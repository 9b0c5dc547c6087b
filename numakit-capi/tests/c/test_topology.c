/* topology.h: nkit_topo_*. */
#define _DEFAULT_SOURCE
#include "check.h"
#include <limits.h>
#include <sys/mman.h>
#include <unistd.h>

/* The node's MemFree from sysfs, in bytes; 0 if it cannot be read. */
static size_t sysfs_free(int node) {
    char path[96], line[256];
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d/meminfo", node);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        char *at = strstr(line, "MemFree:");
        if (at) kb = strtoull(at + 8, NULL, 10);
    }
    fclose(f);
    return kb * 1024;
}

/* The free memory is the kernel's figure now, not one read when numakit
 * first looked: with 1 GiB touched since then (once the kernel has folded
 * its per-CPU counts, vm.stat_interval: 1 s), the figure lies between two
 * reads of sysfs around it. Skipped on a node with less than 4 GiB free. */
static void free_memory_is_read_now(int nodes) {
    int n = 0;
    while (n < nodes && !(nkit_topo_cpus_on_node(n) > 0 && nk_has_memory(n))) n++;
    if (n == nodes) return;
    const size_t len = (size_t)1 << 30, slack = 16u << 20;
    size_t free_ = 0;
    CHECK(nkit_topo_node_memory(n, NULL, &free_) == 0);
    if (free_ < 4 * len) return;
    CHECK(nkit_bind_thread(n) == 0);
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    if (p == MAP_FAILED) return;
    memset(p, 1, len);
    usleep(1100 * 1000);
    int within = 0;
    for (int attempt = 0; attempt < 5 && !within; attempt++) {
        size_t s1 = sysfs_free(n);
        CHECK(nkit_topo_node_memory(n, NULL, &free_) == 0);
        size_t s2 = sysfs_free(n);
        size_t lo = s1 < s2 ? s1 : s2, hi = s1 < s2 ? s2 : s1;
        within = lo > 0 && free_ + slack >= lo && free_ <= hi + slack;
        if (!within)
            fprintf(stderr, "free memory of node %d: sysfs %zu and %zu, numakit %zu\n", n, s1, s2,
                    free_);
    }
    CHECK(within);
    CHECK(munmap(p, len) == 0);
    CHECK(nkit_unbind_thread() == 0);
}

int main(void) {
    int nodes = nk_nodes();
    int absent = nk_absent_node();
    CHECK_OK();
    int cpus = nkit_topo_num_cpus();
    CHECK(cpus >= 1);
    CHECK_OK();
    CHECK(nkit_topo_is_numa() == 1);
    CHECK_OK();

    int sum = 0, seen = 0;
    for (int n = 0; n < absent; n++) {
        int c = nkit_topo_cpus_on_node(n);
        CHECK(c >= 0);
        CHECK_OK();
        sum += c;
        seen++;
        /* Local distance is the smallest, 10 by the ACPI convention. */
        CHECK(nkit_topo_distance(n, n) == 10);
        for (int m = 0; m < absent; m++) {
            int d = nkit_topo_distance(n, m);
            CHECK(d >= 10);
        }
        size_t total = 1, free_ = 1;
        CHECK(nkit_topo_node_memory(n, &total, &free_) == 0);
        CHECK_OK();
        CHECK(free_ <= total);
        /* Either output may be NULL. */
        size_t total2 = 0;
        CHECK(nkit_topo_node_memory(n, &total2, NULL) == 0);
        CHECK(total2 == total);
        CHECK(nkit_topo_node_memory(n, NULL, NULL) == 0);
    }
    CHECK(seen == nodes);
    CHECK(sum == cpus);
    CHECK(nk_has_memory(0) || nodes > 1);

    /* Nodes that do not exist: negative, one past the last, INT_MAX. */
    int bad[] = {-1, INT_MIN, absent, absent + 1, INT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(nkit_topo_cpus_on_node(bad[i]) == -1);
        CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
        CHECK(nkit_topo_distance(0, bad[i]) == -1);
        CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
        CHECK(nkit_topo_distance(bad[i], 0) == -1);
        CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
        size_t total = 12345, free_ = 6789;
        CHECK(nkit_topo_node_memory(bad[i], &total, &free_) == -1);
        CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
        CHECK(total == 12345 && free_ == 6789); /* untouched on failure */
    }
    free_memory_is_read_now(nodes);
    return nk_done("test_topology");
}
