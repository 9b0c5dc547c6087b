/* Threads pinned to every node allocate, write, resize and free; half of
 * each thread's blocks are freed by another thread (on another node when
 * there is one), and some outlive their thread and are freed by main.
 * Every block's first and last page must be on the thread's node (checked
 * with move_pages), or, for a thread on a memoryless node: null with
 * ENOMEM under the strict policy, another node under nearest.
 * NUMAKIT_EXPECT_NODES, when set, is the number of nodes there must be.
 * Only the CPUs the process may use are used (so it runs under
 * `numakit run --node N` too). With NKM_HOLD_FILE=PATH the program
 * creates PATH once the threads have exited, with their kept blocks
 * alive, and waits (up to 60 s) until PATH is removed before freeing
 * them: `numakit verify PID` looks at it meanwhile. */
#include "check.h"
#include <pthread.h>
#include <sched.h>

#define PER_NODE 2
#define BLOCKS 600
#define MAX_THREADS (NKM_MAX_NODES * PER_NODE)

static const size_t sizes[] = {1, 8, 24, 100, 1000, 4000, 5000, 70000, 300000, 3 << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

struct worker {
    int index;
    struct nkm_node node;
    pthread_t thread;
    /* Blocks for the next worker to free, and blocks left for main. */
    unsigned char *given[BLOCKS];
    size_t given_size[BLOCKS];
    unsigned char *kept[BLOCKS];
    size_t kept_size[BLOCKS];
    long placed;
};

static struct worker workers[MAX_THREADS];
static int nworkers;
static pthread_barrier_t barrier;

static void check_block(const struct worker *w, const unsigned char *p, size_t size) {
    if (!nkm_ours()) return;
    int first = nkm_node_of(p), last = nkm_node_of(p + size - 1);
    if (w->node.mem_kb > 0) {
        CHECK(first == w->node.id);
        CHECK(last == w->node.id);
        if (first != w->node.id || last != w->node.id)
            fprintf(stderr, "  block %p (%zu B) of the thread on node %d: pages on %d, %d\n",
                    (const void *)p, size, w->node.id, first, last);
    } else {
        /* nearest: another node, one with memory */
        CHECK(first >= 0 && first != w->node.id);
    }
    CHECK(nkm_policy_of(p) == 2);
}

static int intact(const unsigned char *p, size_t size, unsigned char v) {
    return p[0] == v && p[size / 2] == v && p[size - 1] == v;
}

static void *work(void *arg) {
    struct worker *w = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->node.cpu, &set);
    CHECK(sched_setaffinity(0, sizeof set, &set) == 0);
    unsigned cpu = 0, node = 0;
    CHECK(syscall(SYS_getcpu, &cpu, &node, NULL) == 0 && (int)node == w->node.id);
    unsigned char tag = (unsigned char)(w->index + 1);

    /* strict on a memoryless node: every allocation fails (the thread
     * still frees its neighbour's blocks below). */
    int none = nkm_ours() && w->node.mem_kb == 0 && !nkm_nearest();
    if (none) {
        errno = 0;
        void *p = malloc(64);
        CHECK(p == NULL && errno == ENOMEM);
        free(p);
    }
    for (int i = 0; i < BLOCKS && !none; i++) {
        size_t size = sizes[i % NSIZES];
        if (size > 100000 && i % 7) size = 512; /* large ones now and then */
        unsigned char *p = malloc(size);
        CHECK(p != NULL);
        if (!p) continue;
        CHECK(((uintptr_t)p & 15) == 0);
        CHECK(malloc_usable_size(p) >= size);
        memset(p, tag, size);
        check_block(w, p, size);
        if (i % 5 == 0) {
            /* grow: contents kept, still on the node */
            unsigned char *q = realloc(p, size * 3 + 100);
            CHECK(q != NULL);
            if (q) {
                CHECK(intact(q, size, tag));
                memset(q, tag, size * 3 + 100);
                p = q;
                size = size * 3 + 100;
                check_block(w, p, size);
            }
        }
        switch (i % 3) {
        case 0:
            free(p);
            break;
        case 1:
            w->given[i] = p;
            w->given_size[i] = size;
            break;
        default:
            w->kept[i] = p;
            w->kept_size[i] = size;
        }
        w->placed++;
    }
    pthread_barrier_wait(&barrier);
    /* Free the previous worker's given blocks (a remote free when it ran
     * on another node). */
    struct worker *prev = &workers[(w->index + nworkers - 1) % nworkers];
    unsigned char ptag = (unsigned char)(prev->index + 1);
    for (int i = 0; i < BLOCKS; i++) {
        if (prev->given[i]) {
            CHECK(intact(prev->given[i], prev->given_size[i], ptag));
            free(prev->given[i]);
            prev->given[i] = NULL;
        }
    }
    pthread_barrier_wait(&barrier);
    return NULL; /* the kept blocks outlive the thread */
}

int main(void) {
    struct nkm_node nodes[NKM_MAX_NODES];
    int n = nkm_nodes(nodes); /* the CPUs allowed before main pins itself */
    /* main itself allocates (thread stacks' TLS, the probe): a node with
     * memory. The workers pin themselves. */
    CHECK(nkm_pin_to_memory() >= 0);
    CHECK(n >= 1);
    const char *expect = getenv("NUMAKIT_EXPECT_NODES");
    if (expect) CHECK(n == atoi(expect));
    if (nkm_ours()) {
        void *probe = malloc(32);
        CHECK(probe != NULL && nkm_policy_of(probe) == 2); /* preloaded: node-bound */
        free(probe);
    }
    for (int i = 0; i < n; i++) {
        if (nodes[i].cpu < 0) continue;
        for (int k = 0; k < PER_NODE; k++) {
            workers[nworkers].index = nworkers;
            workers[nworkers].node = nodes[i];
            nworkers++;
        }
    }
    pthread_barrier_init(&barrier, NULL, (unsigned)nworkers);
    for (int i = 0; i < nworkers; i++)
        CHECK(pthread_create(&workers[i].thread, NULL, work, &workers[i]) == 0);
    for (int i = 0; i < nworkers; i++) pthread_join(workers[i].thread, NULL);
    const char *hold = getenv("NKM_HOLD_FILE");
    if (hold) {
        FILE *f = fopen(hold, "w");
        CHECK(f != NULL);
        if (f) fclose(f);
        for (int i = 0; i < 6000 && access(hold, F_OK) == 0; i++) usleep(10000);
        CHECK(access(hold, F_OK) != 0);
    }
    /* Blocks of exited threads: intact, freed here. */
    long kept = 0;
    for (int i = 0; i < nworkers; i++) {
        unsigned char tag = (unsigned char)(i + 1);
        for (int b = 0; b < BLOCKS; b++) {
            if (workers[i].kept[b]) {
                CHECK(intact(workers[i].kept[b], workers[i].kept_size[b], tag));
                free(workers[i].kept[b]);
                kept++;
            }
        }
    }
    for (int i = 0; i < nworkers; i++)
        printf("thread %d on node %d (cpu %d, %ld kB): %ld blocks placed\n", i,
               workers[i].node.id, workers[i].node.cpu, workers[i].node.mem_kb,
               workers[i].placed);
    printf("%d nodes, %d threads, %ld blocks freed after their thread exited\n", n, nworkers,
           kept);
    return nkm_done();
}
