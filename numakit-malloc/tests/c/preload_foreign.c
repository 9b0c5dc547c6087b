/* Pointers the allocator never handed out, or handed out and freed: from
 * mmap, the stack, glibc's own malloc (reached with dlsym(RTLD_NEXT)),
 * inside or misaligned into a live block, freed twice (small and large),
 * left behind by a realloc that moved the block.
 * free must leave them alone, realloc must return NULL with EINVAL and
 * malloc_usable_size 0; nothing they point at may change, and the
 * allocator must go on working. Each is named on stderr (the test driver
 * counts the lines). */
#include "check.h"
/* Using freed and foreign pointers is what this file tests. */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#include <dlfcn.h>
#include <sys/mman.h>

static int all(const unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

/* Every operation on a foreign pointer: nothing happens to it. */
static void poke(void *p, const char *what) {
    free(p);
    errno = 0;
    CHECK(realloc(p, 100) == NULL && errno == EINVAL);
    CHECK(malloc_usable_size(p) == 0);
    fprintf(stderr, "(above: %s)\n", what);
}

int main(void) {
    /* mmap: the start of a mapping (nothing readable below it, when the
     * page before is unmapped) and 16 bytes in. */
    unsigned char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    memset(m, 0x5a, 8192);
    poke(m, "mmap start");
    poke(m + 16, "mmap + 16");
    poke(m + 4096, "mmap second page");
    CHECK(all(m, 8192, 0x5a));
    munmap(m, 8192);

    /* The stack. */
    _Alignas(16) unsigned char stack[64];
    memset(stack, 0x33, sizeof stack);
    poke(stack + 32, "stack");
    CHECK(all(stack, sizeof stack, 0x33));

    /* glibc's malloc, the allocator a program had before preloading
     * (looked up in libc.so.6 itself: RTLD_NEXT would find ours). */
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    CHECK(libc != NULL);
    void *(*libc_malloc)(size_t) = libc ? (void *(*)(size_t))dlsym(libc, "malloc") : NULL;
    void (*libc_free)(void *) = libc ? (void (*)(void *))dlsym(libc, "free") : NULL;
    CHECK(libc_malloc != NULL && libc_free != NULL);
    if (nkm_ours()) CHECK(libc_malloc != malloc);
    if (nkm_ours() && libc_malloc && libc_free) {
        unsigned char *g = libc_malloc(200);
        CHECK(g != NULL);
        memset(g, 0x77, 200);
        poke(g, "glibc malloc");
        CHECK(all(g, 200, 0x77));
        libc_free(g);
    }

    /* Misaligned and interior pointers into a live block. */
    unsigned char *b = malloc(256);
    CHECK(b != NULL);
    memset(b, 0x11, 256);
    poke(b + 1, "misaligned into a block");
    poke(b + 64, "inside a block");
    CHECK(all(b, 256, 0x11));
    CHECK(malloc_usable_size(b) >= 256);
    free(b);

    /* Double frees: small (back in a cache) and large (unmapped). */
    void *s = malloc(48);
    CHECK(s != NULL);
    free(s);
    free(s);
    fprintf(stderr, "(above: small double free)\n");
    void *l = malloc(5 << 20);
    CHECK(l != NULL);
    free(l);
    free(l);
    fprintf(stderr, "(above: large double free)\n");

    /* Stale pointers of blocks that realloc moved: freed by the move, so
     * foreign like any freed block. Aligned blocks keep their header
     * clear of the free list's link, so only a cleared tag tells. */
    struct {
        size_t align, size, grown;
    } moved[] = {
        {64, 100, 5000},     /* small to another class */
        {256, 100, 3 << 20}, /* small to large */
        {64, 2 << 20, 100},  /* large to small */
        {16, 100, 5000},     /* malloc's own alignment */
    };
    for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++) {
        void *old = NULL;
        CHECK(posix_memalign(&old, moved[i].align, moved[i].size) == 0);
        memset(old, 0x44, moved[i].size);
        unsigned char *now = realloc(old, moved[i].grown);
        CHECK(now != NULL && now != old && now[0] == 0x44);
        CHECK(malloc_usable_size(old) == 0);
        free(old);
        fprintf(stderr, "(above: stale pointer of a moved block %zu)\n", i);
        /* The old block went back once: two new blocks of its kind are
         * distinct, and the moved one is untouched. */
        void *c = NULL, *d = NULL;
        CHECK(posix_memalign(&c, moved[i].align, moved[i].size) == 0);
        CHECK(posix_memalign(&d, moved[i].align, moved[i].size) == 0);
        CHECK(c != d && c != now && d != now);
        CHECK(now[0] == 0x44 && malloc_usable_size(now) >= moved[i].grown);
        free(c);
        free(d);
        free(now);
    }

    /* Still working, and the freed small block comes back once. */
    void *x = malloc(48), *y = malloc(48);
    CHECK(x != NULL && y != NULL && x != y);
    free(x);
    free(y);
    return nkm_done();
}
