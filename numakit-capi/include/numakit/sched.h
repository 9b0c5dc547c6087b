#ifndef NKIT_SCHED_H
#define NKIT_SCHED_H

#include <stddef.h>
#include <pthread.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Thread affinity policies. */
typedef enum {
    NKIT_POLICY_BIND_NODE,  /* all CPUs of a NUMA node */
    NKIT_POLICY_STRICT_CPU  /* one logical CPU */
} nkit_policy_type_e;

/** @brief A placement policy (by value; 8 bytes). */
typedef struct {
    nkit_policy_type_e type;
    union {
        int node_id;
        int cpu_id;
    };
} nkit_thread_policy_t;

/** Function pointer for thread routines. */
typedef void (*nkit_thread_func_t)(void *arg);

/** @brief Balancer advice codes. */
typedef enum {
    NKIT_ADVISE_STAY,
    NKIT_ADVISE_MIGRATE,
    NKIT_ADVISE_ERROR
} nkit_advice_e;

/**
 * @brief Start counting the calling thread's hardware cache misses and
 * instructions retired (counters already open on the thread restart).
 * @return 0, or -1 with NKIT_ERR_UNSUPPORTED when the machine (or VM) has
 * no such counters or perf_event_paranoid forbids them (the message says
 * which and what to change), NKIT_ERR_OS otherwise. Never a software
 * estimate instead.
 */
int nkit_balancer_start(void);

/**
 * @brief Stop counting, close the counters and advise.
 * @return NKIT_ADVISE_MIGRATE when misses per thousand instructions exceed
 * the threshold; NKIT_ADVISE_STAY otherwise, also when fewer than 1000
 * instructions ran (too few to judge); NKIT_ADVISE_ERROR with the last
 * error set when nkit_balancer_start has not succeeded on this thread
 * since the last check, or a counter could not be read.
 */
nkit_advice_e nkit_balancer_check(void);

/**
 * @brief Set the process-wide threshold in misses per thousand
 * instructions (default 50). A value that is not positive and finite is
 * refused (NKIT_ERR_INVALID_ARGUMENT) and the threshold stays.
 */
void nkit_balancer_set_threshold(double mpki);

/**
 * @brief Start a thread placed by `policy` that runs func(arg).
 * The thread is pinned (and its memory bound to the node) before func runs.
 * @return 0 once it is pinned, or -1 (NULL func, bad policy type, absent or
 * memoryless node, CPU not online or not allowed): func then never runs.
 */
int nkit_thread_launch(nkit_thread_policy_t policy, nkit_thread_func_t func, void *arg);

/**
 * @brief Wait for every thread nkit_thread_launch started (also those started
 * meanwhile, and those another thread's nkit_thread_join_all is joining).
 * Called on a thread nkit_thread_launch started, it would wait for itself:
 * it joins nothing and sets NKIT_ERR_INVALID_ARGUMENT.
 */
void nkit_thread_join_all(void);

/**
 * @brief Pin the calling thread to the CPUs of `node_id` and bind its memory
 * policy to the node.
 * @return 0, or -1 (absent node, no CPUs or memory there, not allowed).
 * Called while the thread exits (from a pthread key destructor) after its
 * records were destroyed, it undoes the pin and fails (NKIT_ERR_UNSUPPORTED);
 * called there before they were ever made, the record's few hundred bytes
 * are not freed.
 */
int nkit_bind_thread(int node_id);

/**
 * @brief Undo every nkit_bind_thread / nkit_pin_thread_* of the calling
 * thread: its CPU mask and memory policy are as before the first one.
 * @return 0.
 */
int nkit_unbind_thread(void);

/** @return Node of the CPU the calling thread runs on now, or -1. */
int nkit_current_node(void);

/** @return The CPU the calling thread runs on now, or -1. */
int nkit_current_cpu(void);

/**
 * @brief Pin the calling thread to logical CPU `core_id` (memory bound to its node).
 * @return 0, or -1 (CPU not online or not allowed).
 */
int nkit_pin_thread_to_core(int core_id);

/** @brief As nkit_bind_thread. @return 0 or -1. */
int nkit_pin_thread_to_node(int node_id);

/** @brief As nkit_current_cpu. */
int nkit_get_current_core(void);

/** @brief As nkit_current_node. */
int nkit_get_current_node(void);

/** Messages a node's mailbox holds. */
#define NKIT_MAILBOX_CAPACITY 4096

/**
 * @brief Queue `data` for the threads of `target_node` (thread-safe). The
 * node's mailbox is in its own memory.
 * @return 0, or -1 (absent or memoryless node; NKIT_ERR_FULL when the
 * mailbox holds NKIT_MAILBOX_CAPACITY messages).
 */
int nkit_send(int target_node, void *data);

/**
 * @brief Run `handler` on the messages queued for the node the calling thread
 * runs on (pin it first), oldest first.
 * @param limit At most this many; 0 = until the mailbox is empty.
 * @return The number handled (0 with NKIT_ERR_INVALID_ARGUMENT for a NULL handler).
 */
size_t nkit_process_local(void (*handler)(void *), size_t limit);

/* ========================================================================== */
/* Task pool                                                                   */
/* ========================================================================== */

/** Opaque handle of a task pool (thread-safe). */
typedef struct nkit_pool_s nkit_pool_t;

/**
 * @brief A pool with workers pinned on every node with CPUs the process may
 * use, one per CPU.
 * @return The pool, or NULL.
 */
nkit_pool_t *nkit_pool_create(void);

/**
 * @brief Run func(data_ptr) on a worker of the node where data_ptr's page is
 * now (as the kernel reports it).
 * @return 0, or -1 (the page is not present: never touched or not mapped;
 * no workers on that node; NULL pool, func or data_ptr).
 */
int nkit_pool_submit_local(nkit_pool_t *pool, void (*func)(void *), void *data_ptr);

/**
 * @brief Run func(arg) on a worker of target_node, never elsewhere.
 * @return 0, or -1 (absent node, no workers there, NULL pool or func).
 */
int nkit_pool_submit_to_node(nkit_pool_t *pool, int target_node, void (*func)(void *), void *arg);

/**
 * @brief Run every queued task, stop the workers, free the pool (NULL is
 * accepted and does nothing). Not from a task of the pool.
 */
void nkit_pool_destroy(nkit_pool_t *pool);

/* -------------------------------------------------------------------------
 * Auto-balancer: a background thread samples the hardware counters (cache
 * misses, instructions) of registered threads every interval. A thread
 * whose misses per thousand instructions since the last sample exceed the
 * threshold is moved to the other node, among those with CPUs this process
 * may use, that has the most free memory at that moment (its CPU mask
 * becomes that node's allowed CPUs; its memory stays where it is). Each
 * move is counted and passed to the callback.
 * ---------------------------------------------------------------------- */

/** @brief Opaque handle for the auto-balancer. */
typedef struct nkit_auto_balancer_s nkit_auto_balancer_t;

/**
 * @brief Called on the balancer's thread after each move. It must not
 * destroy the balancer (destroy waits for that thread).
 */
typedef void (*nkit_migration_cb_t)(pthread_t tid, int from_node, int to_node, double mpki);

/**
 * @brief Create and start the auto-balancer.
 * @param interval_ms 1 to 3600000 (one hour).
 * @param mpki_thresh positive and finite.
 * @param cb may be NULL.
 * @return the handle, or NULL with the last error set: a bad argument
 * (NKIT_ERR_INVALID_ARGUMENT), or no usable hardware counters
 * (NKIT_ERR_UNSUPPORTED, the message says why), never a guess instead.
 */
nkit_auto_balancer_t *nkit_auto_balancer_create(unsigned interval_ms, double mpki_thresh,
                                                nkit_migration_cb_t cb);

/**
 * @brief Register the calling thread, now on `node`: `tid` must be
 * pthread_self() (another thread's kernel id cannot be known from its
 * pthread_t).
 * @return 0, or -1: NULL ab, another thread's tid, an absent node, already
 * registered, or 1024 threads registered.
 */
int nkit_auto_balancer_register(nkit_auto_balancer_t *ab, pthread_t tid, int node);

/** @brief Stop watching `tid`. @return 0, or -1 (NULL ab; NKIT_ERR_NOT_FOUND). */
int nkit_auto_balancer_unregister(nkit_auto_balancer_t *ab, pthread_t tid);

/** @brief The moves made so far (0 with the last error set for NULL ab). */
size_t nkit_auto_balancer_migrations(nkit_auto_balancer_t *ab);

/** @brief Stop the balancer's thread, wait for it and free the handle. */
void nkit_auto_balancer_destroy(nkit_auto_balancer_t *ab);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_SCHED_H */
