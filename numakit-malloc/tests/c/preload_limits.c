/* The C contracts at their edges: sizes, counts and alignments at 0, 1,
 * the largest valid, the smallest invalid and SIZE_MAX, for every
 * function of the family. */
#include "check.h"
/* Sizes past PTRDIFF_MAX, and a block used after a realloc that failed,
 * are what this file tests. */
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wuse-after-free"

#define ALIGNED(p, a) (((uintptr_t)(p) & ((uintptr_t)(a) - 1)) == 0)
#define FAILS(expr, err)                   \
    do {                                   \
        errno = 0;                         \
        void *r_ = (expr);                 \
        CHECK(r_ == NULL && errno == err); \
        if (r_) free(r_);                  \
    } while (0)

int main(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int ours = nkm_ours();

    /* malloc */
    void *a = malloc(0), *b = malloc(0);
    CHECK(a != NULL && b != NULL && a != b); /* unique pointers */
    free(a);
    free(b);
    a = malloc(1);
    CHECK(a != NULL && ALIGNED(a, 16));
    CHECK(malloc_usable_size(a) >= 1);
    free(a);
    FAILS(malloc(SIZE_MAX), ENOMEM);
    FAILS(malloc(SIZE_MAX / 2), ENOMEM);
    FAILS(malloc(SIZE_MAX - 15), ENOMEM);
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0);

    /* calloc: overflow of the product, zeroing of reused memory */
    FAILS(calloc(SIZE_MAX, 2), ENOMEM);
    FAILS(calloc(2, SIZE_MAX), ENOMEM);
    FAILS(calloc((SIZE_MAX >> 1) + 1, 2), ENOMEM);
    FAILS(calloc(SIZE_MAX, SIZE_MAX), ENOMEM);
    FAILS(calloc(1, SIZE_MAX), ENOMEM);
    a = calloc(0, 0);
    CHECK(a != NULL);
    free(a);
    a = calloc(SIZE_MAX, 0);
    CHECK(a != NULL);
    free(a);
    for (int round = 0; round < 3; round++) {
        unsigned char *d = malloc(1000);
        CHECK(d != NULL);
        memset(d, 0xff, 1000);
        free(d);
        unsigned char *z = calloc(10, 100);
        CHECK(z != NULL);
        int zero = 1;
        for (int i = 0; i < 1000; i++) zero &= z[i] == 0;
        CHECK(zero);
        free(z);
    }

    /* realloc */
    unsigned char *r = realloc(NULL, 10);
    CHECK(r != NULL);
    memset(r, 'r', 10);
    FAILS(realloc(r, SIZE_MAX), ENOMEM);
    FAILS(realloc(r, SIZE_MAX - 15), ENOMEM);
    CHECK(r[9] == 'r'); /* untouched after a failed realloc */
    unsigned char *r2 = realloc(r, 1);
    CHECK(r2 != NULL && r2[0] == 'r');
    r = realloc(r2, 5 << 20);
    CHECK(r != NULL && r[0] == 'r');
    r2 = realloc(r, 3 << 20); /* large shrink */
    CHECK(r2 != NULL && r2[0] == 'r');
    r = realloc(r2, 100);
    CHECK(r != NULL && r[0] == 'r');
    if (ours) {
        errno = 0;
        CHECK(realloc(r, 0) == NULL); /* glibc: frees */
        CHECK(errno == 0);
    } else {
        free(r);
    }

    /* reallocarray */
    r = reallocarray(NULL, 4, 4);
    CHECK(r != NULL);
    memset(r, 'q', 16);
    FAILS(reallocarray(r, SIZE_MAX, 2), ENOMEM);
    FAILS(reallocarray(r, 2, (SIZE_MAX >> 1) + 1), ENOMEM);
    FAILS(reallocarray(r, SIZE_MAX, SIZE_MAX), ENOMEM);
    CHECK(r[15] == 'q');
    r2 = reallocarray(r, 1000, 8);
    CHECK(r2 != NULL && r2[15] == 'q');
    r = reallocarray(r2, 1, 1);
    CHECK(r != NULL && r[0] == 'q');
    free(r);

    /* posix_memalign: power of two multiple of sizeof(void *) */
    void *p = (void *)0x1;
    size_t bad[] = {0, 1, 2, 4, 12, 24, 48, 4097, SIZE_MAX, (SIZE_MAX >> 1)};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(posix_memalign(&p, bad[i], 8) == EINVAL);
        CHECK(p == (void *)0x1); /* not written on failure */
    }
    size_t good[] = {8, 16, 32, 64, 4096, 8192, 1 << 16, 1 << 21};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        for (size_t size = 0; size <= 4097; size += 4097) {
            p = NULL;
            CHECK(posix_memalign(&p, good[i], size) == 0);
            CHECK(p != NULL && ALIGNED(p, good[i]));
            if (p && size) memset(p, 1, size);
            free(p);
        }
    }
    p = (void *)0x1;
    CHECK(posix_memalign(&p, (SIZE_MAX >> 1) + 1, 1) == ENOMEM); /* largest power of two */
    CHECK(posix_memalign(&p, 8, SIZE_MAX) == ENOMEM);
    CHECK(p == (void *)0x1);

    /* aligned_alloc: alignment a power of two */
    if (ours) { /* glibc before 2.38 accepts these */
        FAILS(aligned_alloc(0, 8), EINVAL);
        FAILS(aligned_alloc(3, 8), EINVAL);
        FAILS(aligned_alloc(SIZE_MAX, 8), EINVAL);
    }
    FAILS(aligned_alloc((SIZE_MAX >> 1) + 1, 1), ENOMEM);
    FAILS(aligned_alloc(16, SIZE_MAX), ENOMEM);
    a = aligned_alloc(1, 1);
    CHECK(a != NULL);
    free(a);
    a = aligned_alloc(1, 0);
    CHECK(a != NULL);
    free(a);
    a = aligned_alloc(1 << 20, 1 << 20);
    CHECK(a != NULL && ALIGNED(a, 1 << 20));
    if (a) memset(a, 1, 1 << 20);
    free(a);

    /* memalign: rounds up to a power of two (glibc) */
    a = memalign(0, 8);
    CHECK(a != NULL);
    free(a);
    a = memalign(3, 8);
    CHECK(a != NULL && ALIGNED(a, 4));
    free(a);
    a = memalign(100, 8);
    CHECK(a != NULL && ALIGNED(a, 128));
    free(a);
    FAILS(memalign(SIZE_MAX, 8), EINVAL);
    FAILS(memalign((SIZE_MAX >> 1) + 1, 8), ENOMEM);

    /* valloc / pvalloc */
    a = valloc(0);
    CHECK(a != NULL && ALIGNED(a, page));
    free(a);
    a = valloc(1);
    CHECK(a != NULL && ALIGNED(a, page));
    free(a);
    FAILS(valloc(SIZE_MAX), ENOMEM);
    a = pvalloc(1);
    CHECK(a != NULL && ALIGNED(a, page) && malloc_usable_size(a) >= page);
    free(a);
    a = pvalloc(0);
    CHECK(a != NULL && ALIGNED(a, page));
    free(a);
    FAILS(pvalloc(SIZE_MAX), ENOMEM);
    FAILS(pvalloc(SIZE_MAX - page), ENOMEM);

    /* the usable size is usable */
    unsigned char *u = malloc(37);
    CHECK(u != NULL);
    size_t n = malloc_usable_size(u);
    CHECK(n >= 37);
    memset(u, 0, n);
    free(u);
    return nkm_done();
}
