/* sched.h's balancer advice: where the machine has no usable hardware
 * counters (VMs, the qemu guests) start fails with a message that says
 * why, and check refuses to advise; where it has them, a start/check pair
 * advises, and a threshold no workload can reach advises staying. */
#include "check.h"
#include <math.h>

static volatile uint64_t sink;

static void work(void) {
    /* Enough instructions to be judged (well over 1000). */
    uint64_t x = 1;
    for (int i = 0; i < 100000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    sink = x;
}

int main(void) {
    CHECK(nkit_init() == 0);

    /* Check without start: an error, not advice. */
    CHECK(nkit_balancer_check() == NKIT_ADVISE_ERROR);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(nkit_last_error_message(), "nkit_balancer_start") != NULL);

    /* Thresholds: 0, negative, NaN, infinities are refused; tiny and huge
     * finite values are taken. */
    double bad[] = {0.0, -0.0, -1.0, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nkit_balancer_set_threshold(bad[i]);
        CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
        CHECK(strstr(nkit_last_error_message(), "stays") != NULL);
    }
    nkit_balancer_set_threshold(1e-300);
    CHECK(nkit_last_error() == NKIT_OK);
    nkit_balancer_set_threshold(1e300);
    CHECK(nkit_last_error() == NKIT_OK);

    int started = nkit_balancer_start();
    if (started != 0) {
        CHECK(started == -1);
        int code = nkit_last_error();
        CHECK(code == NKIT_ERR_UNSUPPORTED || code == NKIT_ERR_OS);
        CHECK(strstr(nkit_last_error_message(), "perf_event_open") != NULL);
        printf("test_balancer: no hardware counters here: %s\n", nkit_last_error_message());
        CHECK(nkit_balancer_check() == NKIT_ADVISE_ERROR);
        CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    } else {
        CHECK(nkit_last_error() == NKIT_OK);
        work();
        /* 1e300 misses per thousand instructions cannot happen. */
        CHECK(nkit_balancer_check() == NKIT_ADVISE_STAY);
        CHECK(nkit_last_error() == NKIT_OK);
        /* The check closed the counters. */
        CHECK(nkit_balancer_check() == NKIT_ADVISE_ERROR);
        CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
        /* Restarting while open is fine; advice is one of the two. */
        CHECK(nkit_balancer_start() == 0);
        CHECK(nkit_balancer_start() == 0);
        nkit_balancer_set_threshold(50.0);
        work();
        int advice = nkit_balancer_check();
        CHECK(advice == NKIT_ADVISE_STAY || advice == NKIT_ADVISE_MIGRATE);
    }
    nkit_teardown();
    return nk_done("test_balancer");
}
