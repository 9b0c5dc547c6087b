/* structs/hash_table.h: byte keys to pointers. */
#define _GNU_SOURCE
#include "check.h"
#include <limits.h>
#include <pthread.h>

#define THREADS 4
#define KEYS 2000

static nkit_hash_t *shared;

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < KEYS; i++) {
        int key[2] = {t, i};
        CHECK(nkit_hash_put(shared, key, sizeof key, (void *)(intptr_t)(i + 1)) == 0);
    }
    for (int i = 0; i < KEYS; i++) {
        int key[2] = {t, i};
        CHECK(nkit_hash_get(shared, key, sizeof key) == (void *)(intptr_t)(i + 1));
        if (i % 2) CHECK(nkit_hash_remove(shared, key, sizeof key) == 0);
    }
    return NULL;
}

int main(void) {
    int nodes = nk_nodes();
    int absent = nk_absent_node();

    nkit_hash_t *h = nkit_hash_create(0, 16);
    CHECK(h != NULL);
    CHECK_OK();
    if (!h) return nk_done("test_hash_table");
    int a = 1, b = 2;
    CHECK(nkit_hash_count(h) == 0);
    CHECK(nkit_hash_put(h, "alpha", 5, &a) == 0);
    CHECK_OK();
    CHECK(nkit_hash_put(h, "beta", 4, &b) == 0);
    CHECK(nkit_hash_count(h) == 2);
    CHECK(nkit_hash_get(h, "alpha", 5) == &a);
    CHECK_OK();
    /* Keys are bytes compared by value, not pointers or C strings. */
    char copy[] = {'a', 'l', 'p', 'h', 'a'};
    CHECK(nkit_hash_get(h, copy, sizeof copy) == &a);
    CHECK(nkit_hash_get(h, "alph", 4) == NULL);
    CHECK_ERR(NKIT_ERR_NOT_FOUND);
    /* Overwrite. */
    CHECK(nkit_hash_put(h, "alpha", 5, &b) == 0);
    CHECK(nkit_hash_get(h, "alpha", 5) == &b);
    CHECK(nkit_hash_count(h) == 2);
    /* A stored NULL is told apart from a missing key by the error. */
    CHECK(nkit_hash_put(h, "null", 4, NULL) == 0);
    CHECK(nkit_hash_get(h, "null", 4) == NULL);
    CHECK_OK();
    /* The empty key (NULL allowed with length 0). */
    CHECK(nkit_hash_put(h, NULL, 0, &a) == 0);
    CHECK(nkit_hash_get(h, "", 0) == &a);
    CHECK(nkit_hash_count(h) == 4);
    /* Remove. */
    CHECK(nkit_hash_remove(h, "beta", 4) == 0);
    CHECK_OK();
    CHECK(nkit_hash_remove(h, "beta", 4) == -1);
    CHECK_ERR(NKIT_ERR_NOT_FOUND);
    CHECK(nkit_hash_get(h, "beta", 4) == NULL);
    CHECK_ERR(NKIT_ERR_NOT_FOUND);
    CHECK(nkit_hash_count(h) == 3);

    /* Bad keys and NULL tables. */
    CHECK(nkit_hash_put(h, NULL, 5, &a) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_hash_get(h, NULL, 5) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_hash_remove(h, NULL, 5) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_hash_put(h, "k", SIZE_MAX, &a) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_hash_get(h, "k", SIZE_MAX) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_hash_put(NULL, "k", 1, &a) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_hash_get(NULL, "k", 1) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_hash_remove(NULL, "k", 1) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_hash_count(NULL) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_hash_count(h) == 3);
    nkit_hash_destroy(h);
    CHECK_OK();
    nkit_hash_destroy(NULL);
    CHECK_OK();

    /* Capacities 0 and 1 work; SIZE_MAX cannot be reserved. */
    nkit_hash_t *zero = nkit_hash_create(0, 0);
    CHECK(zero != NULL);
    CHECK(zero && nkit_hash_put(zero, "x", 1, &a) == 0);
    nkit_hash_destroy(zero);
    nkit_hash_t *one = nkit_hash_create(0, 1);
    CHECK(one != NULL);
    nkit_hash_destroy(one);
    CHECK(nkit_hash_create(0, SIZE_MAX) == NULL);
    CHECK(nkit_last_error() != NKIT_OK);
    CHECK(nkit_hash_create(absent, 16) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_hash_create(-1, 16) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_hash_create(INT_MAX, 16) == NULL);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);

    /* A table on each node with memory, filled by several threads. */
    for (int n = 0; n < nodes; n++) {
        if (!nk_has_memory(n)) {
            CHECK(nkit_hash_create(n, 16) == NULL);
            CHECK(nkit_last_error() != NKIT_OK);
            continue;
        }
        shared = nkit_hash_create(n, 0);
        CHECK(shared != NULL);
        if (!shared) continue;
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
        for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
        CHECK(nkit_hash_count(shared) == (size_t)THREADS * (KEYS / 2));
        nkit_hash_destroy(shared);
    }
    return nk_done("test_hash_table");
}
