/* topology.h: nkit_topo_*. */
#include "check.h"
#include <limits.h>

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
    return nk_done("test_topology");
}
