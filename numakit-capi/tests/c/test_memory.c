/* memory.h: arenas, migration, slabs, mempools. */
#define _GNU_SOURCE
#include "check.h"
#include <limits.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

static void arenas(int nodes, int absent) {
    nkit_arena_t *a = nkit_arena_create(0, 1 << 20);
    CHECK(a != NULL);
    CHECK_OK();
    if (a == NULL) return;
    size_t size = nkit_arena_size(a);
    CHECK(size >= (1u << 20));
    CHECK(nkit_arena_used(a) == 0);
    CHECK(nkit_arena_is_huge(a) == 0);
    CHECK_OK();

    char *p = nkit_arena_alloc(a, 100);
    CHECK(p != NULL);
    CHECK(((uintptr_t)p & 15) == 0);
    memset(p, 0xab, 100);
    CHECK(nkit_arena_used(a) >= 100);
    char *q = nkit_arena_alloc(a, 1);
    CHECK(q != NULL && q >= p + 100);
    CHECK(((uintptr_t)q & 15) == 0);

    /* Size 0 and SIZE_MAX are refused; the arena is unchanged. */
    size_t used = nkit_arena_used(a);
    CHECK(nkit_arena_alloc(a, 0) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_arena_alloc(a, SIZE_MAX) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_arena_alloc(a, size) == NULL); /* fits the arena, not what is left */
    CHECK_ERR(NKIT_ERR_OUT_OF_MEMORY);
    CHECK(nkit_arena_used(a) == used);

    /* Reset, then exactly the whole size fits, and one byte more does not. */
    nkit_arena_reset(a);
    CHECK_OK();
    CHECK(nkit_arena_used(a) == 0);
    char *all = nkit_arena_alloc(a, size);
    CHECK(all != NULL);
    if (all) {
        all[0] = 1;
        all[size - 1] = 2;
    }
    CHECK(nkit_arena_used(a) == size);
    CHECK(nkit_arena_alloc(a, 1) == NULL);
    CHECK_ERR(NKIT_ERR_OUT_OF_MEMORY);
    CHECK_MSG("nkit_arena_alloc", "nkit_arena_reset() it");

    /* Coalesce gives back the pages above the bump pointer; the arena
     * still works afterwards. */
    nkit_arena_reset(a);
    size_t pages = nkit_arena_coalesce(a);
    CHECK_OK();
    CHECK(pages >= 1);
    /* Counted over the whole unused range, given back or not. */
    CHECK(nkit_arena_coalesce(a) == pages);
    CHECK_OK();
    /* With all of it in use there is nothing to give back. */
    CHECK(nkit_arena_alloc(a, size) != NULL);
    CHECK(nkit_arena_coalesce(a) == 0);
    CHECK_OK();
    nkit_arena_reset(a);
    char *again = nkit_arena_alloc(a, size);
    CHECK(again != NULL);
    if (again) memset(again, 1, size);
    nkit_arena_destroy(a);
    CHECK_OK();

    /* The smallest arena. */
    nkit_arena_t *tiny = nkit_arena_create(0, 1);
    CHECK(tiny != NULL);
    CHECK(tiny && nkit_arena_size(tiny) >= 1);
    CHECK(tiny && nkit_arena_alloc(tiny, 1) != NULL);
    nkit_arena_destroy(tiny);

    /* Bad sizes and nodes. */
    CHECK(nkit_arena_create(0, 0) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_arena_create(0, SIZE_MAX) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK_MSG("nkit_arena_create", "more than an arena can map");
    CHECK(nkit_arena_create(0, SIZE_MAX / 2) == NULL);
    CHECK(nkit_last_error() != NKIT_OK);
    CHECK(nkit_arena_create(absent, 4096) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK_MSG("nkit_arena_create", "nkit_topo_num_nodes()");
    CHECK(nkit_arena_create(-1, 4096) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_arena_create(INT_MAX, 4096) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);

    /* NULL handles. */
    CHECK(nkit_arena_alloc(NULL, 8) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_arena_reset(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_arena_coalesce(NULL) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_arena_used(NULL) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_arena_size(NULL) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_arena_is_huge(NULL) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_arena_destroy(NULL);
    CHECK_OK();

    /* One arena on every node with memory; a memoryless node is refused. */
    for (int n = 0; n < nodes; n++) {
        int has_memory = nk_has_memory(n);
        nkit_arena_t *an = nkit_arena_create(n, 64 << 10);
        if (has_memory) {
            CHECK(an != NULL);
            char *x = an ? nkit_arena_alloc(an, 4096) : NULL;
            CHECK(x != NULL);
            if (x) memset(x, n, 4096);
        } else {
            CHECK(an == NULL);
            CHECK_ERR(NKIT_ERR_OUT_OF_MEMORY);
        }
        nkit_arena_destroy(an);
    }
}

static void migration(int nodes, int absent) {
    long page = sysconf(_SC_PAGESIZE);
    size_t len = 4 * (size_t)page;
    char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(buf != MAP_FAILED);
    if (buf == MAP_FAILED) return;
    memset(buf, 7, len);
    for (int n = 0; n < nodes; n++) {
        if (!nk_has_memory(n)) {
            CHECK(nkit_memory_migrate(buf, len, n) == -1);
            CHECK(nkit_last_error() != NKIT_OK);
            continue;
        }
        CHECK(nkit_memory_migrate(buf, len, n) == 0);
        CHECK_OK();
        CHECK(buf[0] == 7 && buf[len - 1] == 7); /* contents kept */
    }
    /* Empty range: nothing to move. */
    CHECK(nkit_memory_migrate(buf, 0, 0) == 0);
    CHECK_OK();
    CHECK(nkit_memory_migrate(NULL, 0, 0) == 0);
    CHECK_OK();
    /* NULL with a length, a range that wraps, absent nodes. */
    CHECK(nkit_memory_migrate(NULL, len, 0) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_memory_migrate(buf, SIZE_MAX, 0) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_memory_migrate(buf, len, absent) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_memory_migrate(buf, len, -1) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    munmap(buf, len);
}

static void slabs(int absent) {
    nkit_slab_t *s = nkit_slab_create(0, 100, 8);
    CHECK(s != NULL);
    CHECK_OK();
    if (s == NULL) return;
    CHECK(nkit_slab_capacity(s) == 8);
    CHECK(nkit_slab_available(s) == 8);
    void *objs[8];
    for (int i = 0; i < 8; i++) {
        objs[i] = nkit_slab_alloc(s);
        CHECK(objs[i] != NULL);
        CHECK(((uintptr_t)objs[i] & 63) == 0);
        if (objs[i]) memset(objs[i], i, 100);
        for (int j = 0; j < i; j++) CHECK(objs[i] != objs[j]);
    }
    CHECK(nkit_slab_available(s) == 0);
    CHECK(nkit_slab_alloc(s) == NULL);
    CHECK_ERR(NKIT_ERR_OUT_OF_MEMORY);
    CHECK_MSG("nkit_slab_alloc", "nkit_slab_free some");
    nkit_slab_free(s, objs[3]);
    CHECK_OK();
    CHECK(nkit_slab_available(s) == 1);
    void *again = nkit_slab_alloc(s);
    CHECK(again == objs[3]);
    CHECK(nkit_slab_available(s) == 0);

    /* A pointer the slab did not hand out is refused and changes nothing. */
    int local;
    nkit_slab_free(s, &local);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_slab_free(s, (char *)objs[0] + 1); /* inside an object, not its start */
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_slab_available(s) == 0);
    nkit_slab_free(s, NULL);
    CHECK_OK();
    for (int i = 0; i < 8; i++) nkit_slab_free(s, objs[i]);
    CHECK(nkit_slab_available(s) == 8);
    nkit_slab_destroy(s);
    CHECK_OK();

    /* Capacity 1 works; 0 and SIZE_MAX do not; object sizes 0 and SIZE_MAX
     * do not. */
    nkit_slab_t *one = nkit_slab_create(0, 1, 1);
    CHECK(one != NULL);
    CHECK(one && nkit_slab_alloc(one) != NULL);
    CHECK(one && nkit_slab_alloc(one) == NULL);
    nkit_slab_destroy(one);
    CHECK(nkit_slab_create(0, 64, 0) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_slab_create(0, 64, SIZE_MAX) == NULL);
    CHECK(nkit_last_error() != NKIT_OK);
    CHECK(nkit_slab_create(0, 0, 8) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_slab_create(0, SIZE_MAX, 8) == NULL);
    CHECK(nkit_last_error() != NKIT_OK);
    CHECK(nkit_slab_create(absent, 64, 8) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_slab_create(-1, 64, 8) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);

    /* NULL handles. */
    CHECK(nkit_slab_alloc(NULL) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_slab_free(NULL, &local);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_slab_available(NULL) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_slab_capacity(NULL) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_slab_destroy(NULL);
    CHECK_OK();
}

#define POOL_THREADS 4
#define POOL_ROUNDS 500

static nkit_mempool_t *pool_shared;
static int pool_node;

static void *pool_worker(void *arg) {
    (void)arg;
    nkit_mempool_t *pool = pool_shared;
    /* Blocks come from the node the thread runs on: one with memory. */
    CHECK(nkit_pin_thread_to_node(pool_node) == 0);
    for (int i = 0; i < POOL_ROUNDS; i++) {
        size_t size = 1 + (size_t)(i * 37) % 5000;
        unsigned char *p = nkit_mempool_alloc(pool, size);
        CHECK(p != NULL);
        if (!p) continue;
        CHECK(((uintptr_t)p & 15) == 0);
        memset(p, i & 0xff, size);
        CHECK(p[0] == (i & 0xff) && p[size - 1] == (i & 0xff));
        nkit_mempool_free(pool, p);
    }
    CHECK(nkit_unbind_thread() == 0);
    return NULL;
}

static void mempools(int nodes) {
    nkit_mempool_t *pool = nkit_mempool_create();
    CHECK(pool != NULL);
    CHECK_OK();
    if (!pool) return;
    /* Run on a node with CPUs and memory: on a memoryless node's CPUs
     * numakit refuses instead of taking memory elsewhere. */
    pool_node = -1;
    for (int n = 0; n < nodes && pool_node < 0; n++)
        if (nk_has_memory(n) && nkit_topo_cpus_on_node(n) > 0) pool_node = n;
    CHECK(pool_node >= 0);
    CHECK(nkit_pin_thread_to_node(pool_node) == 0);
    pool_shared = pool;
    size_t sizes[] = {1, 32, 100, 16384, 16385, 1 << 20};
    void *blocks[6];
    for (int i = 0; i < 6; i++) {
        blocks[i] = nkit_mempool_alloc(pool, sizes[i]);
        CHECK(blocks[i] != NULL);
        CHECK(((uintptr_t)blocks[i] & 15) == 0);
        if (blocks[i]) memset(blocks[i], 0x5a, sizes[i]);
    }
    /* Freed from another order, and from another thread (below). */
    for (int i = 5; i >= 0; i--) nkit_mempool_free(pool, blocks[i]);
    CHECK_OK();

    CHECK(nkit_mempool_alloc(pool, 0) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_mempool_alloc(pool, SIZE_MAX) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_mempool_alloc(pool, SIZE_MAX - 16) == NULL);
    CHECK(nkit_last_error() != NKIT_OK);
    nkit_mempool_free(pool, NULL);
    CHECK_OK();

    pthread_t t[POOL_THREADS];
    for (int i = 0; i < POOL_THREADS; i++) CHECK(pthread_create(&t[i], NULL, pool_worker, NULL) == 0);
    for (int i = 0; i < POOL_THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);

    /* NULL pool. */
    CHECK(nkit_mempool_alloc(NULL, 8) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    int x;
    nkit_mempool_free(NULL, &x);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_mempool_destroy(pool);
    CHECK_OK();
    CHECK(nkit_unbind_thread() == 0);
    nkit_mempool_destroy(NULL);
    CHECK_OK();
}

int main(void) {
    int nodes = nk_nodes();
    int absent = nk_absent_node();
    arenas(nodes, absent);
    migration(nodes, absent);
    slabs(absent);
    mempools(nodes);
    return nk_done("test_memory");
}
