#ifndef NKIT_SYNC_H
#define NKIT_SYNC_H

#include <stdint.h>
#include "error.h"

/*
 * The lock types are declared by value (on the stack, in structs, static)
 * with the sizes and alignments of the C library of the same design. Their
 * fields belong to the lock: use the functions only. Preconditions: a lock is
 * set up by its init function before use and not moved while in use; an
 * unlock is called only by the thread holding the lock.
 */

#ifdef __cplusplus
#define NKIT_ATOMIC_(T) T
#define NKIT_ALIGNAS_(n) alignas(n)
extern "C" {
#else
#include <stdatomic.h>
#define NKIT_ATOMIC_(T) _Atomic(T)
#define NKIT_ALIGNAS_(n) _Alignas(n)
#endif

/** @brief MCS queue node: one per waiting thread, usually on its stack (16 bytes). */
typedef struct nkit_mcs_node_s {
    struct nkit_mcs_node_s *next;
    NKIT_ATOMIC_(int) locked;
} nkit_mcs_node_t;

/** @brief MCS lock: the tail of the queue of waiters (one pointer). */
typedef struct {
    NKIT_ATOMIC_(nkit_mcs_node_t *) tail;
} nkit_mcs_lock_t;

/** @brief Set the lock free. */
void nkit_mcs_init(nkit_mcs_lock_t *lock);

/**
 * @brief Acquire the lock, queueing on `node`, which stays the calling
 * thread's until the matching nkit_mcs_unlock.
 */
void nkit_mcs_lock(nkit_mcs_lock_t *lock, nkit_mcs_node_t *node);

/** @brief Release the lock acquired with `node`, to the next in the queue. */
void nkit_mcs_unlock(nkit_mcs_lock_t *lock, nkit_mcs_node_t *node);

/**
 * @brief Reader-writer spin lock, writer preferred (4 bytes).
 * Bit 0: writer active; bit 1: writer waiting (blocks new readers);
 * bits 2-31: readers inside.
 */
typedef struct {
    NKIT_ATOMIC_(uint32_t) state;
} nkit_rws_lock_t;

/** @brief Set the lock free. */
void nkit_rws_init(nkit_rws_lock_t *lock);
/** @brief Take a shared lock; waits while a writer holds or waits for the lock. */
void nkit_rws_read_lock(nkit_rws_lock_t *lock);
/** @brief Release a shared lock. */
void nkit_rws_read_unlock(nkit_rws_lock_t *lock);
/** @brief Take the exclusive lock. */
void nkit_rws_write_lock(nkit_rws_lock_t *lock);
/** @brief Release the exclusive lock. */
void nkit_rws_write_unlock(nkit_rws_lock_t *lock);

/**
 * @brief Ticket lock (FIFO): 128 bytes aligned to 64, so that it does not
 * share a cache line with its neighbours. Its state is numakit's ticket lock.
 */
typedef struct {
    NKIT_ALIGNAS_(64) unsigned char opaque_[128];
} nkit_ticket_lock_t;

/** @brief Set the lock free. */
void nkit_ticket_init(nkit_ticket_lock_t *lock);
/** @brief Draw a ticket and wait for it. */
void nkit_ticket_lock(nkit_ticket_lock_t *lock);
/** @brief Release the lock to the next ticket. */
void nkit_ticket_unlock(nkit_ticket_lock_t *lock);

/* ========================================================================== */
/* Partitioned counter                                                         */
/* ========================================================================== */

/** Opaque handle of a partitioned counter (thread-safe). */
typedef struct nkit_pcounter_s nkit_pcounter_t;

/**
 * @brief A zero counter with its shards in memory on each node.
 * @return The counter, or NULL when the shards cannot be placed on the nodes.
 */
nkit_pcounter_t *nkit_pcounter_create(void);
/** @brief Free the counter (NULL is accepted and does nothing). */
void nkit_pcounter_destroy(nkit_pcounter_t *counter);
/** @brief Add `value` (may be negative) on the calling CPU's shard. */
void nkit_pcounter_add(nkit_pcounter_t *counter, int64_t value);
/** @brief Add 1. */
void nkit_pcounter_inc(nkit_pcounter_t *counter);
/** @brief Subtract 1. */
void nkit_pcounter_dec(nkit_pcounter_t *counter);
/** @return The sum over all shards (0 with the error set for NULL). */
int64_t nkit_pcounter_read(nkit_pcounter_t *counter);
/** @brief Set every shard to zero. */
void nkit_pcounter_reset(nkit_pcounter_t *counter);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_SYNC_H */
