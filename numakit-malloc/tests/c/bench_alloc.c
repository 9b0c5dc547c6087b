/* The allocator workloads of the `galloc` comparison (numakit's
 * benches/support/global.rs) as a C program, for running the same binary
 * with different allocators preloaded (glibc when none is). Prints one
 * line per workload: label, threads, M operations per second.
 * `bench_alloc quick` runs each workload briefly (a smoke test). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int quick;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static size_t between(uint64_t *s, size_t lo, size_t hi) {
    return lo + (size_t)(next(s) % (hi - lo + 1));
}

static void *take(size_t size) {
    unsigned char *p = malloc(size);
    if (!p) {
        fprintf(stderr, "malloc(%zu) failed\n", size);
        exit(2);
    }
    p[0] = (unsigned char)size;
    return p;
}

#define LIVE 1000
#define MIXED_OPS 10000

static double mixed(size_t min, size_t max, int passes) {
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    void **slots = calloc(LIVE, sizeof *slots);
    for (int i = 0; i < LIVE; i++) slots[i] = take(between(&rng, min, max));
    double t0 = now();
    for (int p = 0; p < passes; p++)
        for (int k = 0; k < MIXED_OPS; k++) {
            size_t i = next(&rng) % LIVE;
            free(slots[i]);
            slots[i] = take(between(&rng, min, max));
        }
    double t = now() - t0;
    for (int i = 0; i < LIVE; i++) free(slots[i]);
    free(slots);
    return (double)passes * MIXED_OPS / t / 1e6;
}

#define LARSON_SLOTS 1000
#define LARSON_OPS 10000

struct larson {
    int threads, rounds;
    void **sets[8];
    pthread_mutex_t locks[8];
    pthread_barrier_t barrier;
};

struct larson_arg {
    struct larson *l;
    int t;
};

static void *larson_thread(void *arg) {
    struct larson_arg *a = arg;
    struct larson *l = a->l;
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(a->t + 1);
    pthread_barrier_wait(&l->barrier);
    for (int r = 0; r < l->rounds; r++) {
        int s = (a->t + r) % l->threads;
        pthread_mutex_lock(&l->locks[s]);
        for (int k = 0; k < LARSON_OPS; k++) {
            size_t i = next(&rng) % LARSON_SLOTS;
            free(l->sets[s][i]);
            l->sets[s][i] = take(between(&rng, 16, 256));
        }
        pthread_mutex_unlock(&l->locks[s]);
        pthread_barrier_wait(&l->barrier);
    }
    return NULL;
}

static double larson(int threads, int rounds) {
    struct larson l = {.threads = threads, .rounds = rounds};
    struct larson_arg args[8];
    pthread_t tid[8];
    for (int t = 0; t < threads; t++) {
        uint64_t rng = 0x2545F4914F6CDD1Dull ^ (uint64_t)(t + 1);
        l.sets[t] = malloc(LARSON_SLOTS * sizeof(void *));
        for (int i = 0; i < LARSON_SLOTS; i++) l.sets[t][i] = take(between(&rng, 16, 256));
        pthread_mutex_init(&l.locks[t], NULL);
    }
    pthread_barrier_init(&l.barrier, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++) {
        args[t] = (struct larson_arg){&l, t};
        pthread_create(&tid[t], NULL, larson_thread, &args[t]);
    }
    pthread_barrier_wait(&l.barrier);
    double t0 = now();
    for (int r = 0; r < rounds; r++) pthread_barrier_wait(&l.barrier);
    double t = now() - t0;
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    for (int s = 0; s < threads; s++) {
        for (int i = 0; i < LARSON_SLOTS; i++) free(l.sets[s][i]);
        free(l.sets[s]);
    }
    return (double)threads * rounds * LARSON_OPS / t / 1e6;
}

/* Producer/consumer: batches of BATCH blocks through a bounded queue. */
#define BATCH 256
#define QUEUE 16

static struct {
    void **q[QUEUE];
    int head, count, done;
    pthread_mutex_t m;
    pthread_cond_t cv;
} pc = {.m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&pc.m);
        while (pc.count == 0 && !pc.done) pthread_cond_wait(&pc.cv, &pc.m);
        if (pc.count == 0 && pc.done) {
            pthread_mutex_unlock(&pc.m);
            return NULL;
        }
        void **b = pc.q[pc.head];
        pc.head = (pc.head + 1) % QUEUE;
        pc.count--;
        pthread_cond_broadcast(&pc.cv);
        pthread_mutex_unlock(&pc.m);
        for (int i = 0; i < BATCH; i++) free(b[i]);
        free(b);
    }
}

static double xmalloc(size_t size, int batches) {
    pthread_t c;
    pc.head = pc.count = pc.done = 0;
    pthread_create(&c, NULL, consumer, NULL);
    double t0 = now();
    for (int n = 0; n < batches; n++) {
        void **b = take(BATCH * sizeof(void *));
        for (int i = 0; i < BATCH; i++) b[i] = take(size);
        pthread_mutex_lock(&pc.m);
        while (pc.count == QUEUE) pthread_cond_wait(&pc.cv, &pc.m);
        pc.q[(pc.head + pc.count) % QUEUE] = b;
        pc.count++;
        pthread_cond_broadcast(&pc.cv);
        pthread_mutex_unlock(&pc.m);
    }
    pthread_mutex_lock(&pc.m);
    pc.done = 1;
    pthread_cond_broadcast(&pc.cv);
    pthread_mutex_unlock(&pc.m);
    pthread_join(c, NULL);
    double t = now() - t0;
    return (double)batches * BATCH / t / 1e6;
}

#define TOUCH_OPS 1000
#define TOUCH_LIVE 16

static double touch(size_t size, int passes) {
    void *ring[TOUCH_LIVE] = {0};
    double t0 = now();
    for (int p = 0; p < passes; p++)
        for (int i = 0; i < TOUCH_OPS; i++) {
            int s = i % TOUCH_LIVE;
            free(ring[s]);
            ring[s] = take(size);
            memset(ring[s], i, size);
        }
    double t = now() - t0;
    for (int s = 0; s < TOUCH_LIVE; s++) free(ring[s]);
    return (double)passes * TOUCH_OPS / t / 1e6;
}

static int n(int full) {
    return quick ? 1 : full;
}

int main(int argc, char **argv) {
    quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    printf("mixed-8B-1KiB 1 %.3f\n", mixed(8, 1024, n(200)));
    printf("mixed-8B-64KiB 1 %.3f\n", mixed(8, 64 << 10, n(20)));
    printf("mixed-8B-256KiB 1 %.3f\n", mixed(8, 256 << 10, n(10)));
    for (int t = 1; t <= 4; t *= 2) printf("larson-16-256B %d %.3f\n", t, larson(t, n(100)));
    printf("xmalloc-64B 2 %.3f\n", xmalloc(64, n(4000)));
    printf("touch-4KiB 1 %.3f\n", touch(4096, n(50)));
    printf("touch-256KiB 1 %.3f\n", touch(256 << 10, n(2)));
    return 0;
}
