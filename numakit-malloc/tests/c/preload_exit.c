/* Allocation where preloaded allocators meet trouble: in a constructor of
 * the program, in a library constructor that runs before the allocator's
 * (preload_early.so, when preloaded after it), in pthread key destructors
 * and C++-style thread_local destructors (__cxa_thread_atexit_impl) of
 * exiting threads, in atexit handlers; and blocks that outlive their
 * thread. Prints "atexit ok" from the last handler. */
#include "check.h"
#include <pthread.h>
#include <sys/wait.h>

extern void *nkm_early_block __attribute__((weak));
extern int nkm_early_ok __attribute__((weak));
extern int nkm_early_forks[3] __attribute__((weak));
extern int __cxa_thread_atexit_impl(void (*)(void *), void *, void *);
extern void *__dso_handle;

static void *from_constructor;
static atomic_int key_dtors, tls_dtors;
static pthread_key_t key;

__attribute__((constructor)) static void program_constructor(void) {
    from_constructor = malloc(333);
    if (from_constructor) memset(from_constructor, 'k', 333);
}

static void churn(const char *where) {
    void *blocks[50];
    for (int i = 0; i < 50; i++) {
        blocks[i] = malloc((size_t)i * 100 + 1);
        if (!blocks[i]) {
            fprintf(stderr, "%s: malloc failed\n", where);
            abort();
        }
        memset(blocks[i], i, (size_t)i * 100 + 1);
    }
    void *big = calloc(1, 3 << 20);
    void *r = realloc(blocks[3], 100000);
    if (!big || !r) abort();
    blocks[3] = r;
    for (int i = 0; i < 50; i++) free(blocks[i]);
    free(big);
}

static void key_dtor(void *v) {
    churn("pthread key destructor");
    free(v);
    key_dtors++;
}

static void tls_dtor(void *v) {
    churn("thread_local destructor");
    free(v);
    tls_dtors++;
}

static void *thread(void *arg) {
    (void)arg;
    pthread_setspecific(key, malloc(10));
    __cxa_thread_atexit_impl(tls_dtor, malloc(20), &__dso_handle);
    void *outlives = malloc(4000);
    if (outlives) memset(outlives, 'o', 4000);
    return outlives;
}

static void at_exit_last(void) {
    /* registered first, so it runs last */
    churn("atexit handler");
    printf("atexit ok\n");
    fflush(stdout);
}

static void at_exit_first(void) {
    churn("atexit handler");
    void *p = malloc(77);
    if (!p) abort();
    free(p);
}

int main(void) {
    CHECK(atexit(at_exit_last) == 0);
    CHECK(from_constructor != NULL);
    CHECK(from_constructor && ((char *)from_constructor)[332] == 'k');
    free(from_constructor);
    if (&nkm_early_ok) {
        CHECK(nkm_early_ok == 1);
        char *e = nkm_early_block;
        CHECK(e && e[0] == 'a' && e[99] == 'a');
        free(e);
        printf("a library constructor before the allocator's: ok\n");
        /* Its fork handlers allocate while the gate is closed for the
         * fork (a hang dies of SIGALRM). */
        alarm(30);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) _exit(nkm_early_forks[0] == 1 && nkm_early_forks[2] == 1 ? 0 : 1);
        int status = -1;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(nkm_early_forks[0] == 1 && nkm_early_forks[1] == 1);
        alarm(0);
        printf("fork handlers of that library allocate: ok\n");
    }
    CHECK(pthread_key_create(&key, key_dtor) == 0);
    void *survivors[8];
    for (int i = 0; i < 8; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, thread, NULL) == 0);
        CHECK(pthread_join(t, &survivors[i]) == 0);
    }
    CHECK(key_dtors == 8);
    CHECK(tls_dtors == 8);
    for (int i = 0; i < 8; i++) {
        char *s = survivors[i];
        CHECK(s && s[0] == 'o' && s[3999] == 'o');
        free(s);
    }
    CHECK(atexit(at_exit_first) == 0);
    int rc = nkm_done();
    if (rc) _exit(rc);
    return 0;
}
