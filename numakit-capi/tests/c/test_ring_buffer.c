/* structs/ring_buffer.h: the MPMC ring of pointers. */
#define _GNU_SOURCE
#include "check.h"
#include <limits.h>
#include <pthread.h>
#include <sched.h>

#define ITEMS 20000
#define PRODUCERS 2

static nkit_ring_t *shared;
static _Atomic long consumed_sum;
static _Atomic long consumed_count;

static void *producer(void *arg) {
    long base = (long)(intptr_t)arg;
    for (long i = 1; i <= ITEMS; i++) {
        while (!nkit_ring_push(shared, (void *)(intptr_t)(base + i))) {
            CHECK(nkit_last_error() == NKIT_ERR_FULL);
            sched_yield();
        }
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    while (consumed_count < (long)PRODUCERS * ITEMS) {
        void *item;
        if (nkit_ring_pop(shared, &item)) {
            consumed_sum += (long)(intptr_t)item;
            consumed_count++;
        } else {
            sched_yield();
        }
    }
    return NULL;
}

/* A call from a pthread key destructor, which runs while the thread exits
 * (after Rust's own thread-locals are gone): its error is still there. */
static pthread_key_t exit_key;
static nkit_ring_t *exit_ring;
static _Atomic int exit_err = -1;
static _Atomic int exit_msg_ok;
static _Atomic int exit_bind = 1, exit_bind_err = -1;

static void at_exit_of_thread(void *v) {
    (void)v;
    CHECK(nkit_ring_push(exit_ring, (void *)1));
    CHECK(!nkit_ring_push(exit_ring, (void *)2)); /* capacity 1: full */
    exit_err = nkit_last_error();
    exit_msg_ok = strstr(nkit_last_error_message(), "nkit_ring_push") != NULL;
    /* The thread's record of pins is gone: a pin is refused, not leaked. */
    exit_bind = nkit_bind_thread(0);
    exit_bind_err = nkit_last_error();
}

static void *exiting_thread(void *arg) {
    (void)arg;
    CHECK(pthread_setspecific(exit_key, (void *)1) == 0);
    CHECK(nkit_arena_create(-5, 1) == NULL); /* Rust thread-locals in use */
    CHECK(nkit_bind_thread(0) == 0);
    CHECK(nkit_unbind_thread() == 0);
    return NULL;
}

static void errors_while_a_thread_exits(void) {
    exit_ring = nkit_ring_create(0, 1);
    CHECK(exit_ring != NULL);
    CHECK(pthread_key_create(&exit_key, at_exit_of_thread) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, exiting_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(exit_err == NKIT_ERR_FULL);
    CHECK(exit_msg_ok);
    CHECK(exit_bind == -1 && exit_bind_err == NKIT_ERR_UNSUPPORTED);
    CHECK(pthread_key_delete(exit_key) == 0);
    nkit_ring_free(exit_ring);
}

int main(void) {
    int nodes = nk_nodes();
    int absent = nk_absent_node();

    nkit_ring_t *r = nkit_ring_create(0, 8);
    CHECK(r != NULL);
    CHECK_OK();
    if (!r) return nk_done("test_ring_buffer");
    int vals[9];
    for (int i = 0; i < 8; i++) {
        CHECK(nkit_ring_push(r, &vals[i]));
        CHECK_OK();
    }
    CHECK(!nkit_ring_push(r, &vals[8]));
    CHECK_ERR(NKIT_ERR_FULL);
    for (int i = 0; i < 8; i++) {
        void *item = NULL;
        CHECK(nkit_ring_pop(r, &item));
        CHECK(item == &vals[i]); /* FIFO */
    }
    void *untouched = &vals[0];
    CHECK(!nkit_ring_pop(r, &untouched));
    CHECK_ERR(NKIT_ERR_EMPTY);
    CHECK(untouched == &vals[0]);
    /* NULL items are items. */
    CHECK(nkit_ring_push(r, NULL));
    void *got = &vals[1];
    CHECK(nkit_ring_pop(r, &got));
    CHECK(got == NULL);
    CHECK_OK();

    /* NULL ring or output. */
    CHECK(!nkit_ring_push(NULL, &vals[0]));
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(!nkit_ring_pop(NULL, &got));
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_ring_push(r, &vals[2]));
    CHECK(!nkit_ring_pop(r, NULL));
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_ring_pop(r, &got) && got == &vals[2]); /* not lost */
    nkit_ring_free(r);
    CHECK_OK();
    nkit_ring_free(NULL);
    CHECK_OK();

    /* Capacities: 1 works; 0, not a power of two, SIZE_MAX do not. */
    nkit_ring_t *one = nkit_ring_create(0, 1);
    CHECK(one != NULL);
    CHECK(one && nkit_ring_push(one, &vals[0]));
    CHECK(one && !nkit_ring_push(one, &vals[1]));
    nkit_ring_free(one);
    size_t bad[] = {0, 3, 1000, SIZE_MAX, (SIZE_MAX >> 1) + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(nkit_ring_create(0, bad[i]) == NULL);
        CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
        CHECK_MSG("nkit_ring_create", "capacity ");
        CHECK(strstr(nkit_last_error_message(), "bytes") == NULL);
    }
    CHECK(nkit_ring_create(absent, 8) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK_MSG("nkit_ring_create", "does not exist");
    CHECK(nkit_ring_create(-1, 8) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_ring_create(INT_MAX, 8) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);

    /* A ring on each node with memory, producers and a consumer. */
    for (int n = 0; n < nodes; n++) {
        if (!nk_has_memory(n)) {
            CHECK(nkit_ring_create(n, 64) == NULL);
            CHECK(nkit_last_error() != NKIT_OK);
            continue;
        }
        shared = nkit_ring_create(n, 64);
        CHECK(shared != NULL);
        if (!shared) continue;
        consumed_sum = 0;
        consumed_count = 0;
        pthread_t p[PRODUCERS], c;
        for (int i = 0; i < PRODUCERS; i++)
            CHECK(pthread_create(&p[i], NULL, producer, (void *)(intptr_t)(i * 1000000L)) == 0);
        CHECK(pthread_create(&c, NULL, consumer, NULL) == 0);
        for (int i = 0; i < PRODUCERS; i++) CHECK(pthread_join(p[i], NULL) == 0);
        CHECK(pthread_join(c, NULL) == 0);
        long want = 0;
        for (int i = 0; i < PRODUCERS; i++) want += (long)ITEMS * i * 1000000L + (long)ITEMS * (ITEMS + 1) / 2;
        CHECK(consumed_count == (long)PRODUCERS * ITEMS);
        CHECK(consumed_sum == want);
        nkit_ring_free(shared);
    }
    errors_while_a_thread_exits();
    return nk_done("test_ring_buffer");
}
