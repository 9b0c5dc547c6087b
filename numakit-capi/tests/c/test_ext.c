/* ext.h: page-kind arenas and the placement proof. */
#define _GNU_SOURCE
#include "check.h"
#include <numakit/ext.h>
#include <limits.h>

int main(void) {
    int nodes = nk_nodes();
    int absent = nk_absent_node();

    /* An arena on every node with memory proves its placement. */
    for (int n = 0; n < nodes; n++) {
        int has_memory = nk_has_memory(n);
        nkit_arena_t *a = nkit_ext_arena_create(n, 1 << 20, NKIT_EXT_PAGES_NORMAL);
        if (!has_memory) {
            CHECK(a == NULL);
            CHECK_ERR(NKIT_ERR_OUT_OF_MEMORY);
            continue;
        }
        CHECK(a != NULL);
        if (!a) continue;
        CHECK(nkit_ext_arena_node(a) == n);
        char *p = nkit_arena_alloc(a, 256 << 10);
        CHECK(p != NULL);
        if (p) memset(p, 1, 256 << 10);
        nkit_ext_placement_t pl = {0, 0, 0, 0};
        CHECK(nkit_ext_arena_verify(a, &pl) == 0);
        CHECK_OK();
        CHECK(pl.page_size > 0);
        CHECK(pl.pages >= (256u << 10) / pl.page_size);
        CHECK(pl.on_node == pl.pages);
        CHECK(pl.not_present == 0);
        CHECK(nkit_ext_arena_verify(a, NULL) == 0);
        /* locate agrees, and counts nothing on another node. */
        nkit_ext_placement_t loc;
        CHECK(nkit_ext_locate(p, 256 << 10, n, &loc) == 0);
        CHECK(loc.on_node == loc.pages && loc.pages >= (256u << 10) / loc.page_size);
        for (int m = 0; m < nodes; m++) {
            if (m == n) continue;
            CHECK(nkit_ext_locate(p, 256 << 10, m, &loc) == 0);
            CHECK(loc.on_node == 0);
        }
        nkit_arena_destroy(a);
    }

    /* Transparent huge pages: the memory is on the node either way. */
    nkit_arena_t *thp = nkit_ext_arena_create(0, 4 << 20, NKIT_EXT_PAGES_TRANSPARENT_HUGE);
    CHECK(thp != NULL);
    CHECK(thp && nkit_arena_is_huge(thp) == 0);
    CHECK(thp && nkit_arena_alloc(thp, 4 << 20) != NULL);
    CHECK(thp && nkit_ext_arena_verify(thp, NULL) == 0);
    nkit_arena_destroy(thp);

    /* Hugetlb pages: as many as the harness reserved, else a clear refusal. */
    const char *huge = getenv("NUMAKIT_EXPECT_HUGEPAGES_2M");
    nkit_arena_t *h = nkit_ext_arena_create(0, 2 << 20, NKIT_EXT_PAGES_HUGE_2M);
    if (huge && atoi(huge) > 0) {
        CHECK(h != NULL);
        CHECK(h && nkit_arena_is_huge(h) == 1);
        CHECK(h && nkit_arena_alloc(h, 1 << 20) != NULL);
        CHECK(h && nkit_ext_arena_verify(h, NULL) == 0);
    } else if (h == NULL) {
        CHECK_ERR(NKIT_ERR_HUGEPAGES);
        CHECK(strstr(nkit_last_error_message(), "nr_hugepages") != NULL);
    } else {
        CHECK(nkit_arena_is_huge(h) == 1);
    }
    nkit_arena_destroy(h);

    /* Bad arguments. */
    CHECK(nkit_ext_arena_create(0, 4096, 4) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_ext_arena_create(0, 4096, -1) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_ext_arena_create(0, 0, NKIT_EXT_PAGES_NORMAL) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_ext_arena_create(0, SIZE_MAX, NKIT_EXT_PAGES_NORMAL) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_ext_arena_create(absent, 4096, NKIT_EXT_PAGES_NORMAL) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_ext_arena_create(-1, 4096, NKIT_EXT_PAGES_NORMAL) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_ext_arena_node(NULL) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_ext_arena_verify(NULL, NULL) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    int x = 0;
    nkit_ext_placement_t loc;
    CHECK(nkit_ext_locate(&x, sizeof x, 0, NULL) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_ext_locate(&x, sizeof x, absent, &loc) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_ext_locate(&x, sizeof x, INT_MAX, &loc) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_ext_locate(&x, SIZE_MAX, 0, &loc) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    /* An empty range and an unmapped one are placements, not errors. */
    CHECK(nkit_ext_locate(NULL, 0, 0, &loc) == 0);
    CHECK(loc.pages == 0);
    CHECK(nkit_ext_locate((void *)4096, 4096, 0, &loc) == 0);
    CHECK(loc.not_present == loc.pages && loc.on_node == 0);
    return nk_done("test_ext");
}
