/*
 * numakit from C: the topology, an arena on each node with its placement
 * proof, a worker pinned to a node, and a ring between them.
 *
 * Build (from the repository root, after `cargo build -p numakit-capi --release`):
 *   gcc -std=c11 -O2 -pthread -I numakit-capi/include examples/c/placement.c \
 *       -L target/release -lnumakit -Wl,-rpath,$PWD/target/release -o placement
 * or, with numakit installed: gcc placement.c $(pkg-config --cflags --libs numakit)
 */
#define _GNU_SOURCE
#include <numakit/numakit.h>
#include <numakit/ext.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MESSAGES 1000

struct job {
    int node;
    nkit_ring_t *ring;
    long sum;
    int ran_on;
};

static void die(const char *what) {
    fprintf(stderr, "%s: %s (error %d)\n", what, nkit_last_error_message(), nkit_last_error());
    exit(1);
}

static void *worker(void *arg) {
    struct job *job = arg;
    if (nkit_pin_thread_to_node(job->node) != 0) die("nkit_pin_thread_to_node");
    job->ran_on = nkit_current_node();
    long received = 0;
    while (received < MESSAGES) {
        void *item;
        if (nkit_ring_pop(job->ring, &item)) {
            job->sum += (long)(intptr_t)item;
            received++;
        }
    }
    nkit_unbind_thread();
    return NULL;
}

int main(void) {
    if (nkit_init() != 0) die("nkit_init");
    int nodes = nkit_topo_num_nodes();
    printf("%d NUMA node(s), %d CPUs\n", nodes, nkit_topo_num_cpus());

    int worker_node = -1;
    for (int n = 0; n < nodes; n++) {
        size_t total = 0, free_ = 0;
        if (nkit_topo_node_memory(n, &total, &free_) != 0) die("nkit_topo_node_memory");
        printf("node %d: %d CPUs, %zu MiB (%zu MiB free), distance to 0: %d\n", n,
               nkit_topo_cpus_on_node(n), total >> 20, free_ >> 20, nkit_topo_distance(n, 0));
        if (total == 0) {
            printf("  no memory: an arena there is refused: ");
            nkit_arena_t *none = nkit_arena_create(n, 1 << 20);
            printf("%s\n", none ? "(created?)" : nkit_last_error_message());
            nkit_arena_destroy(none);
            continue;
        }
        /* An arena on the node, used, and the kernel's word that every page
         * is there. */
        nkit_arena_t *arena = nkit_arena_create(n, 4 << 20);
        if (!arena) die("nkit_arena_create");
        char *block = nkit_arena_alloc(arena, 1 << 20);
        if (!block) die("nkit_arena_alloc");
        for (size_t i = 0; i < (1u << 20); i++) block[i] = (char)i;
        nkit_ext_placement_t proof;
        if (nkit_ext_arena_verify(arena, &proof) != 0) die("nkit_ext_arena_verify");
        printf("  arena: %zu of %zu pages on node %d: all pages on node %d\n", proof.on_node,
               proof.pages, n, n);
        nkit_arena_destroy(arena);
        if (worker_node < 0 && nkit_topo_cpus_on_node(n) > 0) worker_node = n;
    }
    if (worker_node < 0) {
        fprintf(stderr, "no node has both CPUs and memory\n");
        return 1;
    }

    /* A worker pinned to that node, fed through a ring whose slots are in
     * its node's memory. */
    struct job job = {worker_node, nkit_ring_create(worker_node, 64), 0, -1};
    if (!job.ring) die("nkit_ring_create");
    pthread_t t;
    if (pthread_create(&t, NULL, worker, &job) != 0) return 1;
    for (long i = 1; i <= MESSAGES; i++) {
        while (!nkit_ring_push(job.ring, (void *)(intptr_t)i)) {
            /* full: the worker catches up */
        }
    }
    pthread_join(t, NULL);
    nkit_ring_free(job.ring);
    printf("worker pinned to node %d ran on node %d and summed %ld (expected %ld)\n", job.node,
           job.ran_on, job.sum, (long)MESSAGES * (MESSAGES + 1) / 2);
    return job.sum == (long)MESSAGES * (MESSAGES + 1) / 2 && job.ran_on == job.node ? 0 : 1;
}
