/* A library preloaded after libnumakit_malloc.so: its constructor runs
 * before the allocator's own (the loader initialises the last preloaded
 * object first), so these calls reach malloc before its initialisation. */
#include <stdlib.h>
#include <string.h>

void *nkm_early_block;
int nkm_early_ok;

__attribute__((constructor)) static void early(void) {
    char *a = malloc(100), *b = calloc(10, 10), *c = malloc(1 << 21);
    if (!a || !b || !c) return;
    memset(a, 'a', 100);
    memset(c, 'c', 1 << 21);
    a = realloc(a, 5000);
    if (!a || a[99] != 'a' || b[99] != 0 || c[(1 << 21) - 1] != 'c') return;
    free(b);
    free(c);
    nkm_early_block = a; /* freed by the program */
    nkm_early_ok = 1;
}
