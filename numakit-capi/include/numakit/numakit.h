#ifndef LIBNUMAKIT_H
#define LIBNUMAKIT_H

/*
 * numakit's C interface. Link with -lnumakit (pkg-config: numakit).
 *
 * Handles (nkit_arena_t *, nkit_slab_t *, ...) are opaque. The few true
 * preconditions, which numakit cannot check: a handle passed to a function
 * is NULL or live (created and not yet destroyed); a by-value lock was set up
 * by its init function and is unlocked only by its holder; pointers given
 * with a length are valid for that length. Everything else (NULL handles,
 * sizes 0 or SIZE_MAX, absent nodes and CPUs) is reported as an error,
 * never a crash: see error.h.
 */

#include "error.h"
#include "version.h"
#include "topology.h"
#include "memory.h"
#include "sched.h"
#include "sync.h"
#include "structs/ring_buffer.h"
#include "structs/hash_table.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Read the topology (once; later calls reuse it).
 * Optional with numakit (every function reads it on first use).
 * @return 0 on success, -1 when the topology cannot be read.
 */
int nkit_init(void);

/**
 * @brief Undo the calling thread's nkit_bind_thread / nkit_pin_thread_*.
 * Handles are released by their own destroy functions.
 */
void nkit_teardown(void);

#ifdef __cplusplus
}
#endif

#endif /* LIBNUMAKIT_H */
