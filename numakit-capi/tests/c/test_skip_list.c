/* structs/skip_list.h: byte keys to pointers, sharded across the nodes. */
#define _GNU_SOURCE
#include "check.h"
#include <numakit/structs/skip_list.h>
#include <limits.h>
#include <pthread.h>

#define THREADS 4
#define KEYS 2000

static nkit_skip_t *shared;

/* Every thread puts, reads and removes the same few keys: overwrites and
 * removals race; a value read is always one some thread stored. */
#define RACE_KEYS 8
#define RACE_ROUNDS 4000
static void *racer(void *arg) {
    intptr_t t = (intptr_t)arg;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        unsigned char key[3] = {'r', 0, (unsigned char)(i % RACE_KEYS)};
        void *v = (void *)(intptr_t)((t + 1) * 100000 + i);
        CHECK(nkit_skip_put(shared, key, sizeof key, v) == 0);
        void *got = nkit_skip_get(shared, key, sizeof key);
        if (got == NULL) {
            /* Another thread removed it meanwhile. */
            CHECK(nkit_last_error() == NKIT_ERR_NOT_FOUND);
        } else {
            intptr_t g = (intptr_t)got;
            CHECK(g / 100000 >= 1 && g / 100000 <= THREADS && (g % 100000) % RACE_KEYS == i % RACE_KEYS);
        }
        if (i % 3 == 0 && nkit_skip_remove(shared, key, sizeof key) != 0) {
            CHECK(nkit_last_error() == NKIT_ERR_NOT_FOUND);
        }
    }
    return NULL;
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < KEYS; i++) {
        int key[2] = {t, i};
        CHECK(nkit_skip_put(shared, key, sizeof key, (void *)(intptr_t)(i + 1)) == 0);
    }
    for (int i = 0; i < KEYS; i++) {
        int key[2] = {t, i};
        CHECK(nkit_skip_get(shared, key, sizeof key) == (void *)(intptr_t)(i + 1));
        if (i % 2) CHECK(nkit_skip_remove(shared, key, sizeof key) == 0);
    }
    return NULL;
}

int main(void) {
    nk_nodes();

    /* max_level: 0 and above 32 are refused; 1 and 32 work. */
    CHECK(nkit_skip_create(0) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_create(33) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_create(UINT32_MAX) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    for (uint32_t level = 1; level <= 32; level += 31) {
        nkit_skip_t *s = nkit_skip_create(level);
        CHECK(s != NULL);
        CHECK_OK();
        for (int i = 0; s && i < 500; i++) CHECK(nkit_skip_put(s, &i, sizeof i, NULL) == 0);
        CHECK(nkit_skip_count(s) == 500);
        nkit_skip_destroy(s);
        CHECK_OK();
    }

    nkit_skip_t *sl = nkit_skip_create(16);
    CHECK(sl != NULL);
    CHECK_OK();
    if (!sl) return nk_done("test_skip_list");
    int a = 1, b = 2;
    CHECK(nkit_skip_count(sl) == 0);
    CHECK_OK();
    CHECK(nkit_skip_put(sl, "alpha", 5, &a) == 0);
    CHECK_OK();
    CHECK(nkit_skip_put(sl, "beta", 4, &b) == 0);
    CHECK(nkit_skip_count(sl) == 2);
    CHECK(nkit_skip_get(sl, "alpha", 5) == &a);
    CHECK_OK();
    /* Keys are bytes compared by value, and copied: the caller's buffer
     * can change after the call. */
    char buf[] = {'g', 'a', 'm', 'm', 'a'};
    CHECK(nkit_skip_put(sl, buf, sizeof buf, &b) == 0);
    buf[0] = 'G';
    CHECK(nkit_skip_get(sl, "gamma", 5) == &b);
    CHECK(nkit_skip_get(sl, buf, sizeof buf) == NULL);
    CHECK_ERR(NKIT_ERR_NOT_FOUND);
    CHECK(nkit_skip_get(sl, "alph", 4) == NULL);
    CHECK_ERR(NKIT_ERR_NOT_FOUND);
    CHECK(nkit_skip_get(sl, "alphab", 6) == NULL);
    CHECK_ERR(NKIT_ERR_NOT_FOUND);
    /* Overwrite. */
    CHECK(nkit_skip_put(sl, "alpha", 5, &b) == 0);
    CHECK(nkit_skip_get(sl, "alpha", 5) == &b);
    CHECK(nkit_skip_count(sl) == 3);
    /* A stored NULL is told apart from a missing key by the error. */
    CHECK(nkit_skip_put(sl, "null", 4, NULL) == 0);
    CHECK(nkit_skip_get(sl, "null", 4) == NULL);
    CHECK_OK();
    CHECK(nkit_skip_count(sl) == 4);
    /* Remove. */
    CHECK(nkit_skip_remove(sl, "beta", 4) == 0);
    CHECK_OK();
    CHECK(nkit_skip_remove(sl, "beta", 4) == -1);
    CHECK_ERR(NKIT_ERR_NOT_FOUND);
    CHECK(nkit_skip_get(sl, "beta", 4) == NULL);
    CHECK_ERR(NKIT_ERR_NOT_FOUND);
    CHECK(nkit_skip_count(sl) == 3);

    /* Bad keys: NULL, empty (refused, as the C library does), too long. */
    CHECK(nkit_skip_put(sl, NULL, 5, &a) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_put(sl, "k", 0, &a) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_put(sl, NULL, 0, &a) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_put(sl, "k", SIZE_MAX, &a) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_get(sl, NULL, 5) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_get(sl, "k", 0) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_get(sl, "k", SIZE_MAX) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_remove(sl, NULL, 5) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_remove(sl, "k", 0) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_remove(sl, "k", SIZE_MAX) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    /* A one-byte key and a long one. */
    CHECK(nkit_skip_put(sl, "x", 1, &a) == 0);
    CHECK(nkit_skip_get(sl, "x", 1) == &a);
    static char big[1 << 16];
    memset(big, 'z', sizeof big);
    CHECK(nkit_skip_put(sl, big, sizeof big, &b) == 0);
    CHECK(nkit_skip_get(sl, big, sizeof big) == &b);
    CHECK(nkit_skip_remove(sl, big, sizeof big) == 0);
    CHECK(nkit_skip_count(sl) == 4);

    /* Keys are all their bytes, NUL bytes included: "n", "n\0", "n\0a",
     * "n\0b" and "\0" are five keys. */
    {
        int vals[5];
        const char *keys[5] = {"n", "n\0", "n\0a", "n\0b", "\0"};
        size_t lens[5] = {1, 2, 3, 3, 1};
        size_t count = nkit_skip_count(sl);
        for (int i = 0; i < 5; i++) CHECK(nkit_skip_put(sl, keys[i], lens[i], &vals[i]) == 0);
        CHECK(nkit_skip_count(sl) == count + 5);
        for (int i = 0; i < 5; i++) CHECK(nkit_skip_get(sl, keys[i], lens[i]) == &vals[i]);
        CHECK(nkit_skip_get(sl, "n\0c", 3) == NULL);
        CHECK_ERR(NKIT_ERR_NOT_FOUND);
        CHECK(nkit_skip_get(sl, "\0\0", 2) == NULL);
        CHECK_ERR(NKIT_ERR_NOT_FOUND);
        for (int i = 0; i < 5; i++) CHECK(nkit_skip_remove(sl, keys[i], lens[i]) == 0);
        CHECK(nkit_skip_count(sl) == count);
    }
    /* The longest length refused is one past PTRDIFF_MAX (no object is
     * larger), for every function. */
    CHECK(nkit_skip_put(sl, "k", (size_t)PTRDIFF_MAX + 1, &a) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_get(sl, "k", (size_t)PTRDIFF_MAX + 1) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_remove(sl, "k", (size_t)PTRDIFF_MAX + 1) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    /* A 1 MiB key (larger than the shard heap's size classes). */
    {
        size_t n = (size_t)1 << 20;
        unsigned char *huge = malloc(n);
        CHECK(huge != NULL);
        if (huge) {
            memset(huge, 0, n);
            huge[n - 1] = 7;
            CHECK(nkit_skip_put(sl, huge, n, &a) == 0);
            CHECK(nkit_skip_get(sl, huge, n) == &a);
            CHECK(nkit_skip_get(sl, huge, n - 1) == NULL); /* a prefix is another key */
            CHECK_ERR(NKIT_ERR_NOT_FOUND);
            free(huge); /* the list keeps its own copy */
            unsigned char *again = calloc(n, 1);
            CHECK(again != NULL);
            if (again) {
                again[n - 1] = 7;
                CHECK(nkit_skip_remove(sl, again, n) == 0);
                free(again);
            }
        }
    }

    /* NULL lists. */
    CHECK(nkit_skip_put(NULL, "k", 1, &a) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_get(NULL, "k", 1) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_remove(NULL, "k", 1) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_count(NULL) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_skip_count(sl) == 4);
    nkit_skip_destroy(sl);
    CHECK_OK();
    nkit_skip_destroy(NULL);
    CHECK_OK();

    /* Several threads on one list; keys spread over every shard. */
    shared = nkit_skip_create(20);
    CHECK(shared != NULL);
    if (shared) {
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0);
        for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
        CHECK(nkit_skip_count(shared) == (size_t)THREADS * (KEYS / 2));
        /* Entries left in the list are freed by destroy (valgrind checks). */
        nkit_skip_destroy(shared);
        CHECK_OK();
    }

    /* Several threads on the same keys at once. */
    shared = nkit_skip_create(4);
    CHECK(shared != NULL);
    if (shared) {
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, racer, (void *)(intptr_t)i) == 0);
        for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
        CHECK(nkit_skip_count(shared) <= RACE_KEYS);
        size_t left = 0;
        for (int k = 0; k < RACE_KEYS; k++) {
            unsigned char key[3] = {'r', 0, (unsigned char)k};
            if (nkit_skip_get(shared, key, sizeof key) != NULL) left++;
        }
        CHECK(nkit_skip_count(shared) == left);
        nkit_skip_destroy(shared);
        CHECK_OK();
    }
    return nk_done("test_skip_list");
}
