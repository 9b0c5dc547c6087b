/* Shared checks of the C tests: failures are counted and reported with the
 * last numakit error; main returns nk_done(). */
#ifndef NKIT_TEST_CHECK_H
#define NKIT_TEST_CHECK_H

#include <numakit/numakit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>

static _Atomic int nk_failures;
static _Atomic int nk_checks;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        nk_checks++;                                                                  \
        if (!(cond)) {                                                                \
            nk_failures++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n  (last error %d: %s)\n",       \
                    __FILE__, __LINE__, #cond, nkit_last_error(),                     \
                    nkit_last_error_message());                                       \
        }                                                                             \
    } while (0)

/* The last call failed with `code` and said something. */
#define CHECK_ERR(code)                                                               \
    do {                                                                              \
        int nk_code_ = nkit_last_error();                                             \
        const char *nk_msg_ = nkit_last_error_message();                              \
        nk_checks++;                                                                  \
        if (nk_code_ != (code) || nk_msg_ == NULL || nk_msg_[0] == '\0') {            \
            nk_failures++;                                                            \
            fprintf(stderr, "%s:%d: expected error %s (%d), got %d: \"%s\"\n",        \
                    __FILE__, __LINE__, #code, (int)(code), nk_code_,                 \
                    nk_msg_ ? nk_msg_ : "(NULL)");                                    \
        }                                                                             \
    } while (0)

/* The last message names the function `fn` first and contains `text`. */
#define CHECK_MSG(fn, text)                                                           \
    do {                                                                              \
        const char *nk_msg_ = nkit_last_error_message();                              \
        size_t nk_len_ = strlen(fn);                                                  \
        nk_checks++;                                                                  \
        if (strncmp(nk_msg_, fn, nk_len_) != 0 || strncmp(nk_msg_ + nk_len_, ": ", 2) != 0 || \
            strstr(nk_msg_, text) == NULL) {                                          \
            nk_failures++;                                                            \
            fprintf(stderr, "%s:%d: expected a message of %s with \"%s\", got \"%s\"\n", \
                    __FILE__, __LINE__, fn, text, nk_msg_);                           \
        }                                                                             \
    } while (0)

/* The last call succeeded: NKIT_OK and an empty message. */
#define CHECK_OK()                                                                    \
    do {                                                                              \
        const char *nk_msg_ = nkit_last_error_message();                              \
        nk_checks++;                                                                  \
        if (nkit_last_error() != NKIT_OK || nk_msg_ == NULL || nk_msg_[0] != '\0') {  \
            nk_failures++;                                                            \
            fprintf(stderr, "%s:%d: expected success, got error %d: \"%s\"\n",        \
                    __FILE__, __LINE__, nkit_last_error(), nk_msg_ ? nk_msg_ : "(NULL)"); \
        }                                                                             \
    } while (0)

/* The node count, checked against NUMAKIT_EXPECT_NODES when the harness
 * promises one (so multi-node checks fail, not skip, without the nodes). */
static inline int nk_nodes(void) {
    int n = nkit_topo_num_nodes();
    const char *want = getenv("NUMAKIT_EXPECT_NODES");
    if (want != NULL) {
        int expected = atoi(want);
        if (expected <= 0) {
            fprintf(stderr, "NUMAKIT_EXPECT_NODES=%s is not a positive node count\n", want);
            exit(2);
        }
        if (n != expected) {
            fprintf(stderr, "the harness promised %d NUMA nodes but numakit sees %d\n", expected, n);
            exit(2);
        }
    }
    if (n < 1) {
        fprintf(stderr, "nkit_topo_num_nodes() = %d: %s\n", n, nkit_last_error_message());
        exit(2);
    }
    return n;
}

/* The smallest node id that does not exist. */
static inline int nk_absent_node(void) {
    int id = 0;
    while (nkit_topo_cpus_on_node(id) >= 0) id++;
    nkit_topo_num_nodes(); /* clears the error of the probe that failed */
    return id;
}

/* Whether node `id` has memory. */
static inline int nk_has_memory(int id) {
    size_t total = 0;
    return nkit_topo_node_memory(id, &total, NULL) == 0 && total > 0;
}

static inline int nk_done(const char *name) {
    if (nk_failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, nk_failures, nk_checks);
        return 1;
    }
    printf("%s: %d checks passed\n", name, nk_checks);
    return 0;
}

#endif
