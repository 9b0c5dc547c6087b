#ifndef NKIT_EXT_H
#define NKIT_EXT_H

/*
 * What numakit adds to the C library's API: arenas with a chosen page kind,
 * and the placement proof (where pages are, as the kernel reports them).
 */

#include <stddef.h>
#include "error.h"
#include "memory.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Page kinds of nkit_ext_arena_create. */
typedef enum {
    NKIT_EXT_PAGES_NORMAL = 0,           /* base pages */
    NKIT_EXT_PAGES_TRANSPARENT_HUGE = 1, /* MADV_HUGEPAGE: the kernel may back them with THP */
    NKIT_EXT_PAGES_HUGE_2M = 2,          /* 2 MiB hugetlb pages from the node's pool */
    NKIT_EXT_PAGES_HUGE_1G = 3           /* 1 GiB hugetlb pages from the node's pool */
} nkit_ext_page_kind_e;

/** Where the pages of a range are. */
typedef struct {
    size_t page_size;   /* bytes per page counted */
    size_t pages;       /* pages in the range */
    size_t on_node;     /* pages on the node asked about */
    size_t not_present; /* pages never touched or not mapped */
} nkit_ext_placement_t;

/**
 * @brief An arena of at least `size` bytes of `pages` (an nkit_ext_page_kind_e)
 * on `node_id`, every page populated now. Hugetlb pages come from the node's
 * reserved pool or the call fails (NKIT_ERR_HUGEPAGES names the sysfs file to
 * write): never a SIGBUS later, never other pages. Destroy with
 * nkit_arena_destroy.
 */
nkit_arena_t *nkit_ext_arena_create(int node_id, size_t size, int pages);

/** @return The node of the arena, or -1. */
int nkit_ext_arena_node(nkit_arena_t *arena);

/**
 * @brief The placement proof: every page the arena handed out (and its
 * header) is on its node, as the kernel reports it now.
 * @param out Receives the counts on success (may be NULL).
 * @return 0, or -1 with NKIT_ERR_MISPLACED (the message says where the pages are).
 */
int nkit_ext_arena_verify(nkit_arena_t *arena, nkit_ext_placement_t *out);

/**
 * @brief Where the pages of [ptr, ptr + len) are, counted against node_id
 * (any memory of the process; ptr is looked up, never read).
 * @return 0 with *out filled, or -1 (absent node, range wrapping the address
 * space, NULL out).
 */
int nkit_ext_locate(const void *ptr, size_t len, int node_id, nkit_ext_placement_t *out);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_EXT_H */
