/* A library preloaded after libnumakit_malloc.so: its constructor runs
 * before the allocator's own (the loader initialises the last preloaded
 * object first), so these calls reach malloc before its initialisation.
 * Its fork handlers, registered before the allocator's, allocate: the
 * prepare one runs after the allocator's has closed its fork gate, the
 * parent and child ones before the gate opens again. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void *nkm_early_block;
int nkm_early_ok;
/* Fork handlers of this library that ran and could allocate: prepare,
 * parent, child (the child's count is seen in the child only). */
int nkm_early_forks[3];

static void fork_handler(int which) {
    char *p = malloc(200 + (size_t)which);
    if (!p) return;
    memset(p, 'f', 200);
    free(p);
    nkm_early_forks[which]++;
}
static void prepare(void) { fork_handler(0); }
static void parent(void) { fork_handler(1); }
static void child(void) { fork_handler(2); }

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
    nkm_early_ok = pthread_atfork(prepare, parent, child) == 0;
}
