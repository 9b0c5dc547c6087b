/* sched.h: pinning and where the calling thread runs. */
#define _GNU_SOURCE
#include "check.h"
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

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

struct launched {
    int node, cpu;
    _Atomic int ran;
};

static _Atomic int launches_run;

static void launched_fn(void *arg) {
    struct launched *l = arg;
    l->node = nkit_current_node();
    l->cpu = nkit_current_cpu();
    l->ran++;
    launches_run++;
}

static void count_fn(void *arg) {
    (void)arg;
    launches_run++;
}

/* A launched thread that launches another: join_all waits for both. */
static void nested_fn(void *arg) {
    nkit_thread_policy_t p;
    p.type = NKIT_POLICY_BIND_NODE;
    p.node_id = *(int *)arg;
    launches_run++;
    CHECK(nkit_thread_launch(p, count_fn, NULL) == 0);
}

/* join_all on a launched thread would wait for itself: refused. */
static _Atomic int self_join_err = -1;

static void self_join_fn(void *arg) {
    (void)arg;
    nkit_thread_join_all();
    self_join_err = nkit_last_error();
}

static _Atomic int slow_done;

static void slow_fn(void *arg) {
    (void)arg;
    usleep(200 * 1000);
    slow_done = 1;
}

static void *joiner(void *arg) {
    (void)arg;
    nkit_thread_join_all();
    return NULL;
}

/* Two callers at once: the second waits for the threads the first took. */
static void concurrent_joins(nkit_thread_policy_t p) {
    slow_done = 0;
    CHECK(nkit_thread_launch(p, slow_fn, NULL) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, joiner, NULL) == 0);
    usleep(50 * 1000);
    nkit_thread_join_all();
    CHECK_OK();
    CHECK(slow_done == 1);
    CHECK(pthread_join(t, NULL) == 0);
    /* A launched thread's own call joins nothing and is refused. */
    CHECK(nkit_thread_launch(p, self_join_fn, NULL) == 0);
    CHECK(nkit_thread_launch(p, slow_fn, NULL) == 0);
    slow_done = 0;
    nkit_thread_join_all();
    CHECK(self_join_err == NKIT_ERR_INVALID_ARGUMENT);
    CHECK(slow_done == 1);
}

static void launches(int nodes, int absent, int cpu, int home) {
    nkit_thread_policy_t p;
    /* One thread per node with CPUs and memory: it runs there. */
    for (int n = 0; n < nodes; n++) {
        int usable = nkit_topo_cpus_on_node(n) > 0 && nk_has_memory(n);
        struct launched l = {-1, -1, 0};
        p.type = NKIT_POLICY_BIND_NODE;
        p.node_id = n;
        int r = nkit_thread_launch(p, launched_fn, &l);
        if (!usable) {
            CHECK(r == -1);
            CHECK(nkit_last_error() != NKIT_OK);
            nkit_thread_join_all();
            CHECK(l.ran == 0); /* never ran unpinned */
            continue;
        }
        CHECK(r == 0);
        CHECK_OK();
        nkit_thread_join_all();
        CHECK(l.ran == 1);
        CHECK(l.node == n);
    }
    /* One CPU. */
    struct launched l = {-1, -1, 0};
    p.type = NKIT_POLICY_STRICT_CPU;
    p.cpu_id = cpu;
    CHECK(nkit_thread_launch(p, launched_fn, &l) == 0);
    nkit_thread_join_all();
    CHECK(l.ran == 1 && l.cpu == cpu);

    /* Many, then nested, all joined. */
    launches_run = 0;
    p.type = NKIT_POLICY_BIND_NODE;
    p.node_id = home;
    for (int i = 0; i < 16; i++) CHECK(nkit_thread_launch(p, count_fn, NULL) == 0);
    int node = p.node_id;
    CHECK(nkit_thread_launch(p, nested_fn, &node) == 0);
    nkit_thread_join_all();
    CHECK(launches_run == 18);
    nkit_thread_join_all(); /* nothing left: returns at once */
    CHECK_OK();
    concurrent_joins(p);

    /* Refusals: func never runs. */
    launches_run = 0;
    CHECK(nkit_thread_launch(p, NULL, NULL) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_thread_policy_t bad = p;
    bad.type = (nkit_policy_type_e)7;
    CHECK(nkit_thread_launch(bad, count_fn, NULL) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    bad.type = NKIT_POLICY_BIND_NODE;
    int bad_nodes[] = {-1, absent, INT_MAX};
    for (size_t i = 0; i < 3; i++) {
        bad.node_id = bad_nodes[i];
        CHECK(nkit_thread_launch(bad, count_fn, NULL) == -1);
        CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    }
    bad.type = NKIT_POLICY_STRICT_CPU;
    int bad_cpus[] = {-1, 1 << 20, INT_MAX};
    for (size_t i = 0; i < 3; i++) {
        bad.cpu_id = bad_cpus[i];
        CHECK(nkit_thread_launch(bad, count_fn, NULL) == -1);
        CHECK_ERR(NKIT_ERR_NO_SUCH_CPU);
    }
    nkit_thread_join_all();
    CHECK(launches_run == 0);
}

static intptr_t received[NKIT_MAILBOX_CAPACITY + 8];
static size_t n_received;

static void on_message(void *data) {
    received[n_received++] = (intptr_t)data;
}

/* A handler whose own nkit call fails: the call that ran it succeeded. */
static void failing_handler(void *data) {
    (void)data;
    CHECK(nkit_send(-1, NULL) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
}

static void messaging(int nodes, int absent) {
    for (int n = 0; n < nodes; n++) {
        int usable = nkit_topo_cpus_on_node(n) > 0 && nk_has_memory(n);
        if (!nk_has_memory(n)) {
            CHECK(nkit_send(n, NULL) == -1);
            CHECK(nkit_last_error() != NKIT_OK);
            continue;
        }
        /* Sent from anywhere, handled on the node, oldest first. */
        for (intptr_t i = 1; i <= 10; i++) CHECK(nkit_send(n, (void *)(i * 100 + n)) == 0);
        CHECK_OK();
        if (!usable) continue;
        CHECK(nkit_bind_thread(n) == 0);
        n_received = 0;
        CHECK(nkit_process_local(on_message, 3) == 3);
        CHECK_OK();
        CHECK(nkit_process_local(on_message, 0) == 7);
        CHECK(nkit_process_local(on_message, 0) == 0);
        CHECK(n_received == 10);
        for (size_t i = 0; i < n_received && i < 10; i++) CHECK(received[i] == (intptr_t)(i + 1) * 100 + n);
        /* A full mailbox refuses, and loses nothing. */
        for (intptr_t i = 0; i < NKIT_MAILBOX_CAPACITY; i++) CHECK(nkit_send(n, (void *)i) == 0);
        CHECK(nkit_send(n, (void *)-1) == -1);
        CHECK_ERR(NKIT_ERR_FULL);
        CHECK_MSG("nkit_send", "nkit_process_local");
        n_received = 0;
        CHECK(nkit_process_local(on_message, SIZE_MAX) == NKIT_MAILBOX_CAPACITY);
        CHECK(received[0] == 0 && received[NKIT_MAILBOX_CAPACITY - 1] == NKIT_MAILBOX_CAPACITY - 1);
        CHECK(nkit_send(n, NULL) == 0);
        CHECK(nkit_process_local(failing_handler, 0) == 1);
        CHECK_OK();
        CHECK(nkit_unbind_thread() == 0);
    }
    CHECK(nkit_send(absent, NULL) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_send(-1, NULL) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_send(INT_MAX, NULL) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_process_local(NULL, 1) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
}

static _Atomic int tasks_run;
static _Atomic int tasks_off_node;

struct task_arg {
    int node;
};

static void pool_task(void *arg) {
    struct task_arg *t = arg;
    if (nkit_current_node() != t->node) tasks_off_node++;
    tasks_run++;
}

static void pools(int nodes, int absent) {
    nkit_pool_t *pool = nkit_pool_create();
    CHECK(pool != NULL);
    CHECK_OK();
    if (!pool) return;
    static struct task_arg args[64];
    nkit_arena_t *arenas[64] = {0};
    tasks_run = 0;
    tasks_off_node = 0;
    int submitted = 0;
    for (int n = 0; n < nodes; n++) {
        args[n].node = n;
        int cpu_less = nkit_topo_cpus_on_node(n) == 0;
        int r = nkit_pool_submit_to_node(pool, n, pool_task, &args[n]);
        if (cpu_less) {
            CHECK(r == -1);
            CHECK(nkit_last_error() != NKIT_OK);
            continue;
        }
        CHECK(r == 0);
        CHECK_OK();
        submitted++;
        for (int i = 0; i < 20; i++) {
            CHECK(nkit_pool_submit_to_node(pool, n, pool_task, &args[n]) == 0);
            submitted++;
        }
        /* Near the data: memory on node n, so the task runs on node n. */
        if (!nk_has_memory(n)) continue;
        nkit_arena_t *a = nkit_arena_create(n, 4096);
        CHECK(a != NULL);
        struct task_arg *on_node = a ? nkit_arena_alloc(a, sizeof *on_node) : NULL;
        if (on_node) {
            on_node->node = n;
            CHECK(nkit_pool_submit_local(pool, pool_task, on_node) == 0);
            CHECK_OK();
            submitted++;
        }
        /* The arena must outlive the task: destroyed after the pool. */
        if (n < 64) arenas[n] = a;
    }
    /* Refusals. */
    CHECK(nkit_pool_submit_to_node(pool, absent, pool_task, &args[0]) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_pool_submit_to_node(pool, -1, pool_task, &args[0]) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_pool_submit_to_node(pool, INT_MAX, pool_task, &args[0]) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    CHECK(nkit_pool_submit_to_node(pool, 0, NULL, NULL) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_pool_submit_to_node(NULL, 0, pool_task, &args[0]) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_pool_submit_local(pool, pool_task, NULL) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_pool_submit_local(pool, NULL, &args[0]) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_pool_submit_local(NULL, pool_task, &args[0]) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    /* A page nobody maps is on no node: refused, not run somewhere. */
    CHECK(nkit_pool_submit_local(pool, pool_task, (void *)4096) == -1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    /* destroy runs what is queued. */
    nkit_pool_destroy(pool);
    CHECK_OK();
    CHECK(tasks_run == submitted);
    CHECK(tasks_off_node == 0);
    for (int n = 0; n < 64; n++) nkit_arena_destroy(arenas[n]);
    nkit_pool_destroy(NULL);
    CHECK_OK();
}

int main(void) {
    int nodes = nk_nodes();
    int absent = nk_absent_node();
    cpu_set_t before = mask_now();

    CHECK(nkit_current_cpu() >= 0);
    CHECK_OK();
    /* A CPU of a node with memory (pinning to a CPU binds memory to its
     * node, which a memoryless node refuses). */
    int home = -1;
    for (int n = 0; n < nodes && home < 0; n++)
        if (nkit_topo_cpus_on_node(n) > 0 && nk_has_memory(n)) home = n;
    CHECK(home >= 0);
    CHECK(nkit_bind_thread(home) == 0);
    int cpu = nkit_current_cpu();
    CHECK(cpu >= 0);
    CHECK(nkit_unbind_thread() == 0);
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
    launches(nodes, absent, cpu, home);
    messaging(nodes, absent);
    pools(nodes, absent);
    cpu_set_t main_mask = mask_now();
    CHECK(CPU_EQUAL(&before, &main_mask));
    return nk_done("test_sched");
}
