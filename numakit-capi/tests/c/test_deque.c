/* structs/deque.h: the work-stealing deque of pointers. */
#define _GNU_SOURCE
#include "check.h"
#include <numakit/structs/deque.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>

#define ITEMS 50000L
#define THIEVES 3

static nkit_deque_t *shared;
static _Atomic int owner_done;
static _Atomic long taken_sum;
static _Atomic long taken_count;

static void take(void *item) {
    taken_sum += (long)(intptr_t)item;
    taken_count++;
}

static void *thief(void *arg) {
    (void)arg;
    for (;;) {
        int done = owner_done;
        void *item;
        if (nkit_deque_steal(shared, &item)) {
            take(item);
        } else {
            CHECK(nkit_last_error() == NKIT_ERR_EMPTY);
            if (done) break;
            sched_yield();
        }
    }
    return NULL;
}

int main(void) {
    int nodes = nk_nodes();
    int absent = nk_absent_node();

    nkit_deque_t *dq = nkit_deque_create(0, 8);
    CHECK(dq != NULL);
    CHECK_OK();
    if (!dq) return nk_done("test_deque");
    CHECK(nkit_deque_size(dq) == 0);
    CHECK_OK();
    int vals[9];
    for (int i = 0; i < 8; i++) {
        CHECK(nkit_deque_push(dq, &vals[i]));
        CHECK_OK();
        CHECK(nkit_deque_size(dq) == (uint32_t)i + 1);
    }
    /* It does not grow: the ninth push fails and says so. */
    CHECK(!nkit_deque_push(dq, &vals[8]));
    CHECK_ERR(NKIT_ERR_FULL);
    CHECK(strstr(nkit_last_error_message(), "does not grow") != NULL);
    CHECK(nkit_deque_size(dq) == 8);
    /* Thieves take the oldest, the owner the newest. */
    void *item = NULL;
    CHECK(nkit_deque_steal(dq, &item));
    CHECK_OK();
    CHECK(item == &vals[0]);
    CHECK(nkit_deque_pop(dq, &item));
    CHECK_OK();
    CHECK(item == &vals[7]);
    CHECK(nkit_deque_size(dq) == 6);
    /* Room again: two more. */
    CHECK(nkit_deque_push(dq, &vals[8]));
    CHECK(nkit_deque_push(dq, NULL)); /* NULL items are items */
    CHECK(nkit_deque_size(dq) == 8);
    CHECK(nkit_deque_pop(dq, &item) && item == NULL);
    CHECK(nkit_deque_pop(dq, &item) && item == &vals[8]);
    for (int i = 6; i >= 1; i--) {
        CHECK(nkit_deque_pop(dq, &item));
        CHECK(item == &vals[i]);
    }
    void *untouched = &vals[0];
    CHECK(!nkit_deque_pop(dq, &untouched));
    CHECK_ERR(NKIT_ERR_EMPTY);
    CHECK(untouched == &vals[0]);
    CHECK(!nkit_deque_steal(dq, &untouched));
    CHECK_ERR(NKIT_ERR_EMPTY);
    CHECK(untouched == &vals[0]);
    CHECK(nkit_deque_size(dq) == 0);
    CHECK_OK();

    /* NULL deque or output. */
    CHECK(!nkit_deque_push(NULL, &vals[0]));
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(!nkit_deque_pop(NULL, &item));
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(!nkit_deque_steal(NULL, &item));
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_deque_size(NULL) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_deque_push(dq, &vals[2]));
    CHECK(!nkit_deque_pop(dq, NULL));
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(!nkit_deque_steal(dq, NULL));
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_deque_size(dq) == 1); /* not lost */
    CHECK(nkit_deque_steal(dq, &item) && item == &vals[2]);
    /* Destroyed with elements inside (they are only pointers). */
    CHECK(nkit_deque_push(dq, &vals[3]));
    nkit_deque_destroy(dq);
    CHECK_OK();
    nkit_deque_destroy(NULL);
    CHECK_OK();

    /* Capacities: 1 and 2^20 work; 0, non-powers of two, UINT32_MAX do
     * not. (2^31, the largest power of two a uint32_t holds, is valid and
     * fails only for want of memory: 32 GiB of slots.) */
    nkit_deque_t *one = nkit_deque_create(0, 1);
    CHECK(one != NULL);
    CHECK(one && nkit_deque_push(one, &vals[0]));
    CHECK(one && !nkit_deque_push(one, &vals[1]));
    CHECK_ERR(NKIT_ERR_FULL);
    CHECK(one && nkit_deque_steal(one, &item) && item == &vals[0]);
    CHECK(one && nkit_deque_push(one, &vals[1]));
    CHECK(one && nkit_deque_pop(one, &item) && item == &vals[1]);
    nkit_deque_destroy(one);
    nkit_deque_t *big = nkit_deque_create(0, 1u << 20);
    CHECK(big != NULL);
    if (big) {
        for (uint32_t i = 0; i < (1u << 20); i++) {
            if (!nkit_deque_push(big, &vals[i % 9])) {
                CHECK(!"push into the 2^20 deque");
                break;
            }
        }
        CHECK(nkit_deque_size(big) == (1u << 20));
        CHECK(!nkit_deque_push(big, &vals[0]));
        CHECK_ERR(NKIT_ERR_FULL);
        nkit_deque_destroy(big);
    }
    uint32_t bad[] = {0, 3, 1000, (1u << 31) + 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(nkit_deque_create(0, bad[i]) == NULL);
        CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
        CHECK_MSG("nkit_deque_create", "capacity ");
        /* What it suggests fits a uint32_t. */
        CHECK(strstr(nkit_last_error_message(), "4294967296") == NULL);
    }
    CHECK(nkit_deque_create(0, UINT32_MAX) == NULL);
    CHECK_MSG("nkit_deque_create", "at most 2147483648 (2^31) slots");
    CHECK(nkit_deque_create(absent, 8) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_deque_create(nodes, 8) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_deque_create(-1, 8) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_deque_create(INT_MAX, 8) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_deque_create(INT_MIN, 8) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);

    /* A deque on each node with memory: the owner pushes and pops, thieves
     * steal; every item is taken exactly once (the sum says so). */
    for (int n = 0; n < nodes; n++) {
        if (!nk_has_memory(n)) {
            CHECK(nkit_deque_create(n, 64) == NULL);
            CHECK(nkit_last_error() != NKIT_OK);
            continue;
        }
        shared = nkit_deque_create(n, 64);
        CHECK(shared != NULL);
        if (!shared) continue;
        owner_done = 0;
        taken_sum = 0;
        taken_count = 0;
        pthread_t t[THIEVES];
        for (int i = 0; i < THIEVES; i++) CHECK(pthread_create(&t[i], NULL, thief, NULL) == 0);
        for (long i = 1; i <= ITEMS; i++) {
            while (!nkit_deque_push(shared, (void *)(intptr_t)i)) {
                CHECK(nkit_last_error() == NKIT_ERR_FULL);
                sched_yield();
            }
            if (i % 4 == 0 && nkit_deque_pop(shared, &item)) take(item);
        }
        owner_done = 1;
        for (int i = 0; i < THIEVES; i++) CHECK(pthread_join(t[i], NULL) == 0);
        while (nkit_deque_pop(shared, &item)) take(item);
        CHECK(taken_count == ITEMS);
        CHECK(taken_sum == ITEMS * (ITEMS + 1) / 2);
        CHECK(nkit_deque_size(shared) == 0);
        nkit_deque_destroy(shared);
    }

    /* Capacities 1 and 2: every push reuses a slot a thief may still be
     * copying out of; every item is still taken exactly once. */
    for (uint32_t cap = 1; cap <= 2; cap++) {
        shared = nkit_deque_create(0, cap);
        CHECK(shared != NULL);
        if (!shared) continue;
        owner_done = 0;
        taken_sum = 0;
        taken_count = 0;
        pthread_t t[THIEVES];
        for (int i = 0; i < THIEVES; i++) CHECK(pthread_create(&t[i], NULL, thief, NULL) == 0);
        long n = ITEMS / 5;
        for (long i = 1; i <= n; i++) {
            while (!nkit_deque_push(shared, (void *)(intptr_t)i)) {
                CHECK(nkit_last_error() == NKIT_ERR_FULL);
                if (i % 2 && nkit_deque_pop(shared, &item)) take(item);
                sched_yield();
            }
            CHECK(nkit_deque_size(shared) <= cap);
        }
        owner_done = 1;
        for (int i = 0; i < THIEVES; i++) CHECK(pthread_join(t[i], NULL) == 0);
        while (nkit_deque_pop(shared, &item)) take(item);
        CHECK(taken_count == n);
        CHECK(taken_sum == n * (n + 1) / 2);
        nkit_deque_destroy(shared);
    }
    return nk_done("test_deque");
}
