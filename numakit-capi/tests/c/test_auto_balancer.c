/* sched.h's auto-balancer: arguments at their edges, NULL handles, and,
 * where the machine has no usable hardware counters (VMs, the qemu
 * guests), a create that fails saying why. Where it has them, the calling
 * thread registers, a second registration and another thread's tid are
 * refused, and unregister/destroy work. */
#include "check.h"
#include <math.h>
#include <pthread.h>

static void on_move(pthread_t tid, int from, int to, double mpki) {
    (void)tid;
    (void)from;
    (void)to;
    (void)mpki;
}

static void *other_thread(void *arg) {
    (void)arg;
    return NULL;
}

int main(void) {
    CHECK(nkit_init() == 0);

    /* Bad arguments: refused before anything else. */
    CHECK(nkit_auto_balancer_create(0, 50.0, NULL) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_auto_balancer_create(3600001u, 50.0, NULL) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_auto_balancer_create(UINT32_MAX, 50.0, NULL) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    double bad[] = {0.0, -1.0, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(nkit_auto_balancer_create(100, bad[i], NULL) == NULL);
        CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    }

    /* NULL handles are errors, not crashes. */
    CHECK(nkit_auto_balancer_register(NULL, pthread_self(), 0) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_auto_balancer_unregister(NULL, pthread_self()) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_auto_balancer_migrations(NULL) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_auto_balancer_destroy(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);

    nkit_auto_balancer_t *ab = nkit_auto_balancer_create(1, 1.0, on_move);
    if (ab == NULL) {
        int code = nkit_last_error();
        CHECK(code == NKIT_ERR_UNSUPPORTED || code == NKIT_ERR_OS);
        CHECK(strstr(nkit_last_error_message(), "perf_event_open") != NULL);
        printf("test_auto_balancer: no hardware counters here: %s\n", nkit_last_error_message());
    } else {
        CHECK(nkit_auto_balancer_migrations(ab) == 0);
        CHECK(nkit_auto_balancer_register(ab, pthread_self(), -1) == -1);
        CHECK(nkit_auto_balancer_register(ab, pthread_self(), INT32_MAX) == -1);
        CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
        pthread_t other;
        CHECK(pthread_create(&other, NULL, other_thread, NULL) == 0);
        CHECK(nkit_auto_balancer_register(ab, other, 0) == -1);
        CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
        CHECK(nkit_auto_balancer_unregister(ab, other) == -1);
        CHECK_ERR(NKIT_ERR_NOT_FOUND);
        pthread_join(other, NULL);
        CHECK(nkit_auto_balancer_register(ab, pthread_self(), nkit_current_node()) == 0);
        CHECK(nkit_auto_balancer_register(ab, pthread_self(), 0) == -1);
        CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
        CHECK(nkit_auto_balancer_unregister(ab, pthread_self()) == 0);
        CHECK(nkit_auto_balancer_unregister(ab, pthread_self()) == -1);
        CHECK_ERR(NKIT_ERR_NOT_FOUND);
        nkit_auto_balancer_destroy(ab);
        CHECK(nkit_last_error() == NKIT_OK);
    }
    nkit_teardown();
    return nk_done("test_auto_balancer");
}
