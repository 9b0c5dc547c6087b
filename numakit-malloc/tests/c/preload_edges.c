/* Resizing and alignment at their edges, with contents checked:
 * realloc up and down through every kind of block (size classes, the
 * 1 MiB boundary, large blocks grown with mremap and shrunk in place),
 * aligned blocks (8 to 2 MiB, sizes 0, 1, 4097, 2 MiB + 1) written over
 * their whole usable size and resized, calloc zeroing memory that was
 * dirty before, threads started and ended in a loop (their caches are
 * reused, not piled up), and forks from several threads at once whose
 * children fork again. */
#include "check.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define ALIGNED(p, a) (((uintptr_t)(p) & ((uintptr_t)(a) - 1)) == 0)

static unsigned char pat(size_t i, unsigned seed) { return (unsigned char)(i * 131u + seed); }

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = pat(i, seed);
}

static int same(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(i, seed)) return 0;
    return 1;
}

static void realloc_chain(void) {
    static const size_t sizes[] = {1,         17,        100,          1000,    5000,
                                   40000,     300000,    (1 << 20) - 16, 1 << 20, (1 << 20) + 1,
                                   3 << 20,   9 << 20,   (9 << 20) + 4095, 2 << 20, 1 << 20,
                                   5000,      16,        1};
    unsigned char *p = NULL;
    size_t have = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *q = realloc(p, n);
        CHECK(q != NULL && ALIGNED(q, 16));
        if (!q) return;
        size_t kept = have < n ? have : n;
        CHECK(same(q, kept, 7));
        CHECK(malloc_usable_size(q) >= n);
        fill(q, n, 7);
        p = q;
        have = n;
    }
    free(p);
}

static void aligned_blocks(void) {
    enum { N = 64 };
    static const size_t sizes[] = {0, 1, 4097, (2 << 20) + 1};
    unsigned char *blocks[N * 4 * 3];
    size_t usable[N * 4 * 3], aligns[N * 4 * 3];
    int n = 0;
    for (size_t align = 8; align <= (1 << 21); align <<= 1) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            for (int how = 0; how < 3; how++) {
                void *p = NULL;
                if (how == 0) CHECK(posix_memalign(&p, align, sizes[s]) == 0);
                if (how == 1) p = aligned_alloc(align, sizes[s]);
                if (how == 2) p = memalign(align, sizes[s]);
                CHECK(p != NULL && ALIGNED(p, align));
                if (!p) continue;
                blocks[n] = p;
                aligns[n] = align;
                usable[n] = malloc_usable_size(p);
                CHECK(usable[n] >= sizes[s]);
                n++;
            }
        }
    }
    /* The whole usable size of every block at once: no two overlap, and
     * no write reaches a header (free would not know them after). */
    for (int i = 0; i < n; i++) fill(blocks[i], usable[i], (unsigned)i);
    for (int i = 0; i < n; i++) CHECK(same(blocks[i], usable[i], (unsigned)i));
    /* Resized up and down: contents kept; the block is still ours (its
     * usable size is known), and, with this library, aligned as before
     * (C does not ask for that, and glibc does not do it). */
    int ours = nkm_ours();
    for (int i = 0; i < n; i++) {
        size_t keep = usable[i] < 64 ? usable[i] : 64;
        unsigned char *q = realloc(blocks[i], usable[i] * 2 + 100);
        CHECK(q != NULL);
        if (!q) continue;
        CHECK(same(q, keep, (unsigned)i));
        if (ours) CHECK(ALIGNED(q, aligns[i]));
        CHECK(malloc_usable_size(q) >= usable[i] * 2 + 100);
        unsigned char *r = realloc(q, 33);
        CHECK(r != NULL);
        if (!r) {
            free(q);
            continue;
        }
        CHECK(same(r, keep < 33 ? keep : 33, (unsigned)i));
        CHECK(malloc_usable_size(r) >= 33);
        free(r);
    }
}

static void calloc_zeroes(void) {
    /* Dirty blocks of every kind, freed, then calloc'd again. */
    static const size_t sizes[] = {16, 200, 5000, 70000, 1 << 20, 3 << 20};
    for (int round = 0; round < 3; round++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            unsigned char *d = malloc(sizes[s]);
            CHECK(d != NULL);
            if (d) memset(d, 0xee, sizes[s]);
            free(d);
            unsigned char *z = calloc(1, sizes[s]);
            CHECK(z != NULL);
            int zero = 1;
            for (size_t i = 0; z && i < sizes[s]; i++) zero &= z[i] == 0;
            CHECK(zero);
            free(z);
        }
    }
    /* A large block grown with mremap, then freed: a calloc of the grown
     * size is zeroed. */
    unsigned char *g = malloc(2 << 20);
    CHECK(g != NULL);
    memset(g, 0xdd, 2 << 20);
    unsigned char *h = realloc(g, 6 << 20);
    CHECK(h != NULL);
    if (h) memset(h, 0xdd, 6 << 20);
    free(h);
    unsigned char *z = calloc(6, 1 << 20);
    CHECK(z != NULL);
    int zero = 1;
    for (size_t i = 0; z && i < (6u << 20); i += 511) zero &= z[i] == 0;
    CHECK(zero);
    free(z);
}

static void *short_life(void *arg) {
    void *keep[16];
    for (int i = 0; i < 16; i++) {
        keep[i] = malloc((size_t)(i * 97 % 3000) + 1);
        if (keep[i]) memset(keep[i], i, 1);
    }
    for (int i = 1; i < 16; i++) free(keep[i]);
    (void)arg;
    return keep[0]; /* freed by the joiner: a block outliving its thread */
}

static long rss_kb(void) {
    char buf[256];
    if (nkm_read("/proc/self/statm", buf, sizeof buf) < 0) return -1;
    long pages = 0, resident = 0;
    if (sscanf(buf, "%ld %ld", &pages, &resident) != 2) return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long run_threads(int rounds) {
    for (int r = 0; r < rounds; r++) {
        pthread_t t[8];
        for (int i = 0; i < 8; i++) CHECK(pthread_create(&t[i], NULL, short_life, NULL) == 0);
        for (int i = 0; i < 8; i++) {
            void *res = NULL;
            pthread_join(t[i], &res);
            CHECK(res != NULL);
            free(res);
        }
    }
    return rss_kb();
}

static void threads_come_and_go(void) {
    long first = run_threads(50);   /* 400 threads */
    long later = run_threads(500);  /* 4000 more */
    CHECK(first > 0 && later > 0);
    /* A cache kept per thread that ever ran would be a page or more each:
     * 16 MB for 4000 threads. */
    CHECK(later - first < 4096);
    printf("threads: %ld kB resident after 400 threads, %ld kB after 4400\n", first, later);
}

/* malloc_trim gives the pages of freed blocks back: 40 MB of 1000-byte
 * blocks, all freed, leave at most half of it resident after the call. */
static void trim_gives_pages_back(void) {
    enum { N = 40000 };
    static unsigned char *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = malloc(1000);
        CHECK(b[i] != NULL);
        if (b[i]) memset(b[i], 1, 1000);
    }
    long full = rss_kb();
    for (int i = 0; i < N; i++) free(b[i]);
    CHECK(malloc_trim(0) == 1);
    long after = rss_kb();
    CHECK(full > 0 && after > 0 && full - after > 20000);
    printf("trim: %ld kB resident with the blocks, %ld kB after free and malloc_trim\n", full,
           after);
    /* Blocks come back as before. */
    for (int i = 0; i < N; i += 100) {
        b[i] = malloc(1000);
        CHECK(b[i] != NULL);
        if (b[i]) memset(b[i], 2, 1000);
    }
    for (int i = 0; i < N; i += 100) free(b[i]);
}

static atomic_int stop;

static void *forker(void *arg) {
    int *stuck = arg;
    for (int r = 0; r < 25; r++) {
        void *p = malloc(100);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10); /* a child stuck on the gate or a lock dies of SIGALRM */
            void *q = malloc(5000);
            if (!q) _exit(3);
            pid_t g = fork();
            if (g == 0) {
                void *x = malloc(64);
                _exit(x ? 0 : 4);
            }
            int st = 0;
            if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st)) _exit(5);
            free(q);
            _exit(0);
        }
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
            atomic_fetch_add((atomic_int *)stuck, 1);
        free(p);
    }
    return NULL;
}

static void *churn(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        void *p = malloc(64);
        free(p);
    }
    return NULL;
}

static void forks_from_many_threads(void) {
    atomic_int bad = 0;
    pthread_t f[4], c[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&c[i], NULL, churn, NULL) == 0);
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&f[i], NULL, forker, (void *)&bad) == 0);
    for (int i = 0; i < 4; i++) pthread_join(f[i], NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(c[i], NULL);
    CHECK(atomic_load(&bad) == 0);
    printf("100 forks from 4 threads at once, each child forking again: %d failed\n",
           (int)atomic_load(&bad));
}

int main(void) {
    alarm(300);
    /* Under the strict policy a memoryless node has no memory to give. */
    CHECK(nkm_pin_to_memory() >= 0);
    realloc_chain();
    aligned_blocks();
    calloc_zeroes();
    threads_come_and_go();
    trim_gives_pages_back();
    forks_from_many_threads();
    return nkm_done();
}
