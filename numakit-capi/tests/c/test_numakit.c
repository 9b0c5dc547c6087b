/* numakit.h and error.h: init/teardown and the thread-local error. */
#define _GNU_SOURCE
#include "check.h"
#include <pthread.h>

static void *other_thread(void *arg) {
    (void)arg;
    /* A fresh thread starts without an error, whatever the others did. */
    CHECK(nkit_last_error() == NKIT_OK);
    CHECK(strcmp(nkit_last_error_message(), "") == 0);
    CHECK(nkit_topo_cpus_on_node(-5) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    return NULL;
}

int main(void) {
    /* Before any call: no error, an empty (never NULL) message. */
    CHECK(nkit_last_error() == NKIT_OK);
    CHECK(nkit_last_error_message() != NULL);
    CHECK(strcmp(nkit_last_error_message(), "") == 0);

    CHECK(nkit_init() == 0);
    CHECK_OK();
    CHECK(nkit_init() == 0); /* again: reuses the topology */
    CHECK_OK();
    int nodes = nk_nodes();
    int absent = nk_absent_node();
    CHECK(absent >= nodes);

    /* A failure sets code and message: the Rust error's text, naming the
     * node asked for and the nodes that exist. */
    CHECK(nkit_topo_cpus_on_node(absent) == -1);
    CHECK_ERR(NKIT_ERR_NO_SUCH_NODE);
    char want[64];
    snprintf(want, sizeof want, "NUMA node %d does not exist", absent);
    CHECK(strstr(nkit_last_error_message(), want) != NULL);
    CHECK(strstr(nkit_last_error_message(), "this machine has") != NULL);
    /* Reading the error does not clear it... */
    CHECK(nkit_last_error() == NKIT_ERR_NO_SUCH_NODE);
    /* ...the next call that succeeds does. */
    CHECK(nkit_topo_num_nodes() == nodes);
    CHECK_OK();

    /* The error is per thread. */
    CHECK(nkit_arena_alloc(NULL, 8) == NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(nkit_last_error() == NKIT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(nkit_last_error_message(), "nkit_arena_alloc: arena is NULL") != NULL);

    /* teardown undoes the calling thread's pins and may be called again. */
    CHECK(nkit_bind_thread(0) == 0);
    nkit_teardown();
    CHECK_OK();
    nkit_teardown();
    CHECK_OK();
    return nk_done("test_numakit");
}
