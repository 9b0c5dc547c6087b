/* sched.h: pinning and where the calling thread runs. */
#define _GNU_SOURCE
#include "check.h"
#include <limits.h>
#include <pthread.h>
#include <sched.h>

static cpu_set_t mask_now(void) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CHECK(sched_getaffinity(0, sizeof s, &s) == 0);
    return s;
}

static void *pinned_thread(void *arg) {
    int node = *(int *)arg;
    CHECK(nkit_pin_thread_to_node(node) == 0);
    CHECK_OK();
    CHECK(nkit_current_node() == node);
    return NULL; /* exits pinned: the pins are dropped with the thread */
}

int main(void) {
    int nodes = nk_nodes();
    int absent = nk_absent_node();
    cpu_set_t before = mask_now();

    int cpu = nkit_current_cpu();
    CHECK(cpu >= 0);
    CHECK_OK();
    CHECK(nkit_get_current_core() >= 0);
    int node = nkit_current_node();
    CHECK(node >= 0 && node < absent);
    CHECK(nkit_get_current_node() >= 0);
    CHECK_OK();

    /* Pin to each node with CPUs: the thread then runs there. */
    for (int n = 0; n < absent; n++) {
        if (nkit_topo_cpus_on_node(n) == 0) {
            CHECK(nkit_bind_thread(n) == -1);
            CHECK(nkit_last_error() != NKIT_OK);
            continue;
        }
        int has_memory = nk_has_memory(n);
        int r = nkit_bind_thread(n);
        if (!has_memory) {
            /* Memory cannot be bound to a memoryless node. */
            CHECK(r == -1);
            CHECK(nkit_last_error() != NKIT_OK);
            continue;
        }
        CHECK(r == 0);
        CHECK_OK();
        CHECK(nkit_current_node() == n);
        CHECK(nkit_get_current_node() == n);
        CHECK(nkit_unbind_thread() == 0);
        CHECK_OK();
        cpu_set_t after = mask_now();
        CHECK(CPU_EQUAL(&before, &after));
    }

    /* Pin to one CPU, then to another on top: unbind undoes both. */
    CHECK(nkit_pin_thread_to_core(cpu) == 0);
    CHECK_OK();
    CHECK(nkit_current_cpu() == cpu);
    CHECK(nkit_get_current_core() == cpu);
    cpu_set_t one = mask_now();
    CHECK(CPU_COUNT(&one) == 1 && CPU_ISSET(cpu, &one));
    CHECK(nkit_pin_thread_to_node(nkit_current_node()) == 0);
    CHECK(nkit_unbind_thread() == 0);
    cpu_set_t restored = mask_now();
    CHECK(CPU_EQUAL(&before, &restored));
    /* Unbinding an unbound thread changes nothing. */
    CHECK(nkit_unbind_thread() == 0);
    CHECK_OK();

    /* CPUs and nodes that do not exist. */
    int bad_cpus[] = {-1, INT_MIN, 1 << 20, INT_MAX};
    for (size_t i = 0; i < sizeof bad_cpus / sizeof bad_cpus[0]; i++) {
        CHECK(nkit_pin_thread_to_core(bad_cpus[i]) == -1);
        CHECK_ERR(NKIT_ERR_NO_SUCH_CPU);
    }
    int bad_nodes[] = {-1, INT_MIN, absent, INT_MAX};
    for (size_t i = 0; i < sizeof bad_nodes / sizeof bad_nodes[0]; i++) {
        CHECK(nkit_bind_thread(bad_nodes[i]) == -1);
        CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
        CHECK(nkit_pin_thread_to_node(bad_nodes[i]) == -1);
        CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    }
    cpu_set_t unchanged = mask_now();
    CHECK(CPU_EQUAL(&before, &unchanged));

    /* Pins are per thread; a thread may exit pinned. */
    for (int n = 0; n < nodes; n++) {
        if (nkit_topo_cpus_on_node(n) <= 0 || !nk_has_memory(n)) continue;
        pthread_t t;
        int arg = n;
        CHECK(pthread_create(&t, NULL, pinned_thread, &arg) == 0);
        CHECK(pthread_join(t, NULL) == 0);
    }
    cpu_set_t main_mask = mask_now();
    CHECK(CPU_EQUAL(&before, &main_mask));
    return nk_done("test_sched");
}
