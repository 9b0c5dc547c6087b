#ifndef NKIT_HASH_TABLE_H
#define NKIT_HASH_TABLE_H

#include <stddef.h>
#include "../error.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Opaque handle of a concurrent hash table from byte keys (compared by
 * value) to `void *`, its tables in memory on one node (thread-safe).
 */
typedef struct nkit_hash_s nkit_hash_t;

/**
 * @param capacity Entries to reserve room for now (it grows past them, on the node).
 * @return The table, or NULL (absent node, capacity too large for the node).
 */
nkit_hash_t *nkit_hash_create(int node_id, size_t capacity);

/** @brief Free the table (NULL is accepted and does nothing). */
void nkit_hash_destroy(nkit_hash_t *ht);

/**
 * @brief Insert or overwrite. The key bytes are copied; `key` may be NULL
 * when key_len is 0.
 * @return 0, or -1 (NULL table or key, the node cannot give the memory).
 */
int nkit_hash_put(nkit_hash_t *ht, const void *key, size_t key_len, void *value);

/**
 * @return The value, or NULL: NKIT_ERR_NOT_FOUND when the key is absent,
 * NKIT_OK when the stored value is NULL.
 */
void *nkit_hash_get(nkit_hash_t *ht, const void *key, size_t key_len);

/** @return 0, or -1 (NKIT_ERR_NOT_FOUND when the key is absent). */
int nkit_hash_remove(nkit_hash_t *ht, const void *key, size_t key_len);

/** @return The number of entries. */
size_t nkit_hash_count(const nkit_hash_t *ht);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_HASH_TABLE_H */
