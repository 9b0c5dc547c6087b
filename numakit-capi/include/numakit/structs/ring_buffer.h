#ifndef NKIT_RING_BUFFER_H
#define NKIT_RING_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include "../error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Cache line size assumed by the C library's ring layout. */
#define NKIT_CACHE_LINE 128

/**
 * @brief Opaque handle of a bounded lock-free ring of `void *` (multi-producer,
 * multi-consumer), its slots in memory on one node. push/pop are ordinary
 * functions here (static inline over the ring's fields in the C library).
 */
typedef struct nkit_ring_s nkit_ring_t;

/**
 * @param capacity Number of slots: a power of two.
 * @return The ring, or NULL (capacity 0, not a power of two, too large; absent node).
 */
nkit_ring_t *nkit_ring_create(int node_id, size_t capacity);

/** @brief Free the ring (NULL is accepted and does nothing). */
void nkit_ring_free(nkit_ring_t *ring);

/** @return true if pushed, false if the ring is full (NKIT_ERR_FULL). */
bool nkit_ring_push(nkit_ring_t *ring, void *item);

/** @return true with the oldest item in *item, false if empty (NKIT_ERR_EMPTY). */
bool nkit_ring_pop(nkit_ring_t *ring, void **item);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_RING_BUFFER_H */
