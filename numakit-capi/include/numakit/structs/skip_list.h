#ifndef NKIT_SKIP_LIST_H
#define NKIT_SKIP_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../error.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Opaque handle of a concurrent skip list from byte keys (compared by
 * value) to `void *`, sharded across the NUMA nodes (thread-safe).
 *
 * One shard per node the process may allocate on (nodes with memory, in its
 * cpuset); a key's shard is chosen by the FNV-1a hash of its bytes. Every byte
 * a shard keeps (its nodes, its lock, its copy of each key) is on that shard's
 * node; nothing falls back to another node. Each shard is a skip list under a
 * reader-writer lock: lookups in a shard run in parallel, writes to a shard
 * one at a time.
 *
 * Keys are copied: the caller's buffer may be freed or reused after a call.
 */
typedef struct nkit_skip_s nkit_skip_t;

/**
 * @brief Create a skip list.
 * @param max_level Tallest tower, 1 to 32 (16 or 32 are usual).
 * @return The list, or NULL (max_level 0 or above 32; a node cannot give the
 * memory; the process may allocate on no node).
 */
nkit_skip_t *nkit_skip_create(uint32_t max_level);

/**
 * @brief Free the list and its copies of the keys (NULL is accepted and does
 * nothing); the values are only pointers to the list and are not freed.
 *
 * Preconditions numakit cannot check: sl is NULL or a live list (destroying
 * it twice is undefined behaviour), and no other thread is calling a
 * function on it or will call one after. Every other function may be called
 * from any number of threads at once.
 */
void nkit_skip_destroy(nkit_skip_t *sl);

/**
 * @brief Insert or overwrite. The key bytes are copied.
 * @return 0, or -1 (NULL list or key, key_len 0, the node cannot give the memory).
 */
int nkit_skip_put(nkit_skip_t *sl, const void *key, size_t key_len, void *value);

/**
 * @return The value, or NULL: NKIT_ERR_NOT_FOUND when the key is absent,
 * NKIT_OK when the stored value is NULL, NKIT_ERR_INVALID_ARGUMENT for a NULL
 * list or key or key_len 0.
 */
void *nkit_skip_get(nkit_skip_t *sl, const void *key, size_t key_len);

/** @return 0, or -1 (NKIT_ERR_NOT_FOUND when the key is absent). */
int nkit_skip_remove(nkit_skip_t *sl, const void *key, size_t key_len);

/** @return The number of entries in all shards (exact when no writer runs). */
size_t nkit_skip_count(const nkit_skip_t *sl);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_SKIP_LIST_H */
