#ifndef NKIT_DEQUE_H
#define NKIT_DEQUE_H

#include <stdint.h>
#include <stdbool.h>
#include "../error.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Opaque handle of a work-stealing deque (Chase-Lev) of `void *`,
 * its buffer in memory on one node.
 *
 * One thread at a time, the owner, calls nkit_deque_push and
 * nkit_deque_pop (a true precondition numakit cannot check); any thread
 * may call nkit_deque_steal and nkit_deque_size.
 *
 * The deque does not grow: the capacity given to nkit_deque_create is the
 * number of elements it holds, and nkit_deque_push reports a full deque
 * (NKIT_ERR_FULL) instead of resizing. Its buffer is mapped, bound to the
 * node and populated when it is created, so push, pop and steal never
 * allocate.
 */
typedef struct nkit_deque_s nkit_deque_t;

/**
 * @param node_id The node the buffer is on; no fallback to another node.
 * @param initial_capacity The number of elements: a power of two.
 * @return The deque, or NULL (capacity 0, not a power of two, or more
 *         slots (16 bytes each) than the node has memory in all,
 *         NKIT_ERR_INVALID_ARGUMENT; absent node, NKIT_ERR_NO_SUCH_NODE;
 *         the node has not that much free now, NKIT_ERR_OUT_OF_MEMORY).
 */
nkit_deque_t *nkit_deque_create(int node_id, uint32_t initial_capacity);

/**
 * @brief Free the deque (NULL is accepted and does nothing). The pointers
 * still in it are not freed: they are only values to the deque.
 *
 * Preconditions numakit cannot check: dq is NULL or a live deque (destroying
 * it twice is undefined behaviour), and no other thread is calling a
 * function on it or will call one after (join or otherwise stop the owner
 * and the thieves first).
 */
void nkit_deque_destroy(nkit_deque_t *dq);

/**
 * @brief Push at the bottom (owner only).
 * @return true if pushed; false if the deque is full (NKIT_ERR_FULL) or
 *         dq is NULL (NKIT_ERR_INVALID_ARGUMENT). "Full" also covers the
 *         moment when the thief that stole the element capacity positions
 *         back has not finished copying it out (longer if that thread was
 *         preempted right then); popping or retrying later is the answer.
 */
bool nkit_deque_push(nkit_deque_t *dq, void *data);

/**
 * @brief Pop the newest element (owner only, LIFO).
 * @return true with it in *data; false if the deque is empty
 *         (NKIT_ERR_EMPTY, *data unchanged) or dq/data is NULL
 *         (NKIT_ERR_INVALID_ARGUMENT).
 */
bool nkit_deque_pop(nkit_deque_t *dq, void **data);

/**
 * @brief Steal the oldest element (any thread, FIFO). A lost race with
 * another thread is retried, so false means the deque was empty.
 * @return true with it in *data; false if the deque is empty
 *         (NKIT_ERR_EMPTY, *data unchanged) or dq/data is NULL
 *         (NKIT_ERR_INVALID_ARGUMENT).
 */
bool nkit_deque_steal(nkit_deque_t *dq, void **data);

/**
 * @return The number of elements at one moment (approximate while other
 *         threads push, pop or steal); 0 with NKIT_ERR_INVALID_ARGUMENT
 *         for a NULL dq.
 */
uint32_t nkit_deque_size(nkit_deque_t *dq);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_DEQUE_H */
