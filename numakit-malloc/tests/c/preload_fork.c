/* fork from a threaded parent whose other threads allocate and free all
 * the time (so some hold heap locks at fork time): every child must be
 * able to allocate, start threads and exit, within a deadline (alarm), and
 * fork + exec of /bin/sh must run the new program (preloaded as well). */
#include "check.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define WORKERS 4
#define FORKS 100
#define CONCURRENT_FORKS 50

static atomic_int stop;

static void *churn(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *keep[64] = {0};
    while (!atomic_load(&stop)) {
        seed = seed * 1103515245u + 12345u;
        int slot = (int)(seed >> 8) % 64;
        free(keep[slot]);
        size_t size = (seed >> 16) % 5 == 0 ? (seed >> 4) % (2 << 20) : (seed >> 4) % 2000;
        keep[slot] = malloc(size + 1);
        if (keep[slot]) memset(keep[slot], 1, size + 1);
        /* Past the thread cache now and then: refills and flushes take
         * the class's lock. */
        if (slot == 0) {
            void *run[300];
            size_t run_size = 16 + (seed >> 20) % 4000;
            for (int i = 0; i < 300; i++) run[i] = malloc(run_size);
            for (int i = 0; i < 300; i++) free(run[i]);
        }
    }
    for (int i = 0; i < 64; i++) free(keep[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    void *p = malloc(1000);
    if (p) memset(p, 2, 1000);
    free(arg);
    return p;
}

/* What a child does; returns its exit status. */
static int child(int round) {
    alarm(10); /* a child stuck on a lock dies of SIGALRM */
    void *blocks[200];
    for (int i = 0; i < 200; i++) {
        blocks[i] = malloc((size_t)(i * 37 % 5000) + (i % 50 == 0 ? (1 << 21) : 1));
        if (!blocks[i]) return 3;
        memset(blocks[i], 3, 1);
    }
    for (int i = 0; i < 200; i += 2) free(blocks[i]);
    pthread_t t;
    void *res = NULL;
    if (pthread_create(&t, NULL, child_thread, blocks[1]) != 0) return 4;
    pthread_join(t, &res);
    if (!res) return 5;
    free(res);
    for (int i = 3; i < 200; i += 2) free(blocks[i]);
    if (round % 2) exit(0); /* atexit handlers run (statistics, if asked) */
    _exit(0);
}

/* CONCURRENT_FORKS forks, each child as above; the children stuck or
 * failed in *arg. */
static void *fork_many(void *arg) {
    int *bad = arg;
    for (int round = 0; round < CONCURRENT_FORKS; round++) {
        pid_t pid = fork();
        if (pid < 0) {
            (*bad)++;
            continue;
        }
        if (pid == 0) _exit(child(round * 2));
        int status = 0;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            (*bad)++;
    }
    return NULL;
}

int main(void) {
    alarm(120);
    /* The parent, its threads and its children on a node with memory
     * (under the strict policy a memoryless node has none to give). */
    CHECK(nkm_pin_to_memory() >= 0);
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1)) == 0);
    int stuck = 0, failed = 0;
    for (int round = 0; round < FORKS; round++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) return child(round);
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) stuck++;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    CHECK(stuck == 0);
    CHECK(failed == 0);
    printf("%d forks from a parent with %d allocating threads: %d stuck, %d failed\n", FORKS,
           WORKERS, stuck, failed);

    /* Two threads that fork at the same time (glibc runs the prepare
     * handlers of concurrent forks side by side): neither child may
     * inherit a heap lock taken while the other fork was finishing. */
    pthread_t forkers[2];
    int results[2] = {0, 0};
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&forkers[i], NULL, fork_many, &results[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(forkers[i], NULL);
    CHECK(results[0] == 0 && results[1] == 0);
    printf("%d forks from each of 2 threads at once: %d, %d stuck or failed\n", CONCURRENT_FORKS,
           results[0], results[1]);

    /* fork + exec: the new program starts with the library preloaded. */
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "x=$(echo preloaded); test \"$x\" = preloaded && exit 7", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);

    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
    return nkm_done();
}
