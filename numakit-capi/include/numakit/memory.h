#ifndef NKIT_MEMORY_H
#define NKIT_MEMORY_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ========================================================================== */
/* Arenas: a node-strict region with a bump allocator                          */
/* ========================================================================== */

/** Opaque handle of an arena. */
typedef struct nkit_arena_s nkit_arena_t;

/**
 * @brief Create an arena of at least `size` bytes on node `node_id`.
 * Every page is populated now and is on the node; the call fails (NULL) when
 * the node does not exist, has no memory or cannot provide `size` bytes now.
 * @return The arena, or NULL (size 0, absent node, not enough memory).
 */
nkit_arena_t *nkit_arena_create(int node_id, size_t size);

/**
 * @brief Allocate `size` bytes aligned to 16. Not thread-safe (as in the C
 * library: calls on one arena must not overlap).
 * @return The block, or NULL when the arena is full or size is 0.
 */
void *nkit_arena_alloc(nkit_arena_t *arena, size_t size);

/** @brief Forget every allocation; pages stay resident on the node. */
void nkit_arena_reset(nkit_arena_t *arena);

/** @brief Unmap the arena (NULL is accepted and does nothing). */
void nkit_arena_destroy(nkit_arena_t *arena);

/**
 * @brief Move the pages of [ptr, ptr + size) to `target_node` (the kernel's
 * page migration). Pages never touched are not present and do not count.
 * @return 0 when every present page is on the node afterwards, -1 otherwise
 * (the message says where the pages are).
 */
int nkit_memory_migrate(void *ptr, size_t size, int target_node);

/* ========================================================================== */
/* Slabs: fixed-size objects on a node                                         */
/* ========================================================================== */

/** Opaque handle of a slab (thread-safe). */
typedef struct nkit_slab_s nkit_slab_t;

/**
 * @brief A slab of `capacity` objects of `obj_size` bytes, each aligned to 64,
 * populated now on node `node_id`. Any capacity >= 1 is accepted.
 * @return The slab, or NULL (obj_size or capacity 0, too large, absent node).
 */
nkit_slab_t *nkit_slab_create(int node_id, size_t obj_size, size_t capacity);

/** @return One object, or NULL when all `capacity` objects are in use. */
void *nkit_slab_alloc(nkit_slab_t *slab);

/**
 * @brief Give an object back. NULL is accepted and does nothing; a pointer the
 * slab did not hand out is refused (error set, nothing changed).
 * Precondition: an object is freed at most once and not used afterwards.
 */
void nkit_slab_free(nkit_slab_t *slab, void *ptr);

/** @brief Unmap the slab (NULL is accepted and does nothing). */
void nkit_slab_destroy(nkit_slab_t *slab);

/** @return Objects that can still be handed out (a snapshot under concurrency). */
size_t nkit_slab_available(nkit_slab_t *slab);

/** @return The number of objects of the slab in all. */
size_t nkit_slab_capacity(nkit_slab_t *slab);

/* ========================================================================== */
/* Arena figures and giving pages back                                         */
/* ========================================================================== */

/**
 * @brief Return the whole unused pages above the bump pointer to the OS
 * (MADV_DONTNEED). The range stays bound to the node; pages are populated
 * again, checked, when the arena grows into them.
 * @return The number of whole pages (of the arena's page size) above the bump
 * pointer, all of them given back now (pages given back by an earlier call and
 * not used since count again).
 */
size_t nkit_arena_coalesce(nkit_arena_t *arena);

/** @return Bytes handed out since creation or the last reset (padding included). */
size_t nkit_arena_used(nkit_arena_t *arena);

/** @return Bytes the arena can hand out in all (at least the size asked for). */
size_t nkit_arena_size(nkit_arena_t *arena);

/** @return 1 for hugetlb pages, 0 for normal pages, -1 for a NULL arena. */
int nkit_arena_is_huge(nkit_arena_t *arena);

/* ========================================================================== */
/* Mempools: malloc-style blocks on the calling thread's node                  */
/* ========================================================================== */

/** Opaque handle of a mempool (thread-safe). */
typedef struct nkit_mempool_s nkit_mempool_t;

/** @return A pool with a heap on every node that has memory, or NULL. */
nkit_mempool_t *nkit_mempool_create(void);

/**
 * @brief `size` bytes aligned to 16, on the node the calling thread runs on.
 * Never from another node: NULL when that node has no memory or none left.
 * @return The block, or NULL (size 0, size too large, node without memory).
 */
void *nkit_mempool_alloc(nkit_mempool_t *pool, size_t size);

/**
 * @brief Give a block back, from any thread. NULL is accepted and does nothing.
 * Precondition: `ptr` came from nkit_mempool_alloc on this pool, is freed
 * once and not used afterwards.
 */
void nkit_mempool_free(nkit_mempool_t *pool, void *ptr);

/** @brief Unmap the pool's heaps (NULL is accepted and does nothing). */
void nkit_mempool_destroy(nkit_mempool_t *pool);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_MEMORY_H */
