/* Shared pieces of the preload tests: checks that count failures, the
 * node topology from sysfs, and page placement with move_pages(2) (a raw
 * system call: no libnuma). Every program exits 0 only when all checks
 * passed and prints "N checks passed" last. */
#ifndef NKM_CHECK_H
#define NKM_CHECK_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic int nkm_failures;
static _Atomic int nkm_checks;

#define CHECK(cond)                                                                \
    do {                                                                           \
        nkm_checks++;                                                              \
        if (!(cond)) {                                                             \
            nkm_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s (errno %d)\n", __FILE__,      \
                    __LINE__, #cond, errno);                                       \
        }                                                                          \
    } while (0)

static inline int nkm_done(void) {
    if (nkm_failures) {
        fprintf(stderr, "%d of %d checks failed\n", (int)nkm_failures, (int)nkm_checks);
        return 1;
    }
    printf("%d checks passed\n", (int)nkm_checks);
    return 0;
}

/* Whether the program runs on numakit's allocator (not under valgrind's
 * replacement): NKM_ALLOCATOR=numakit (the default) or =other. */
static inline int nkm_ours(void) {
    const char *v = getenv("NKM_ALLOCATOR");
    return v == NULL || strcmp(v, "numakit") == 0;
}

/* Whether failed allocations fall back (NUMAKIT_MALLOC_FALLBACK=nearest). */
static inline int nkm_nearest(void) {
    const char *v = getenv("NUMAKIT_MALLOC_FALLBACK");
    return v != NULL && strcmp(v, "nearest") == 0;
}

/* Reads a whole small file into buf; length or -1. */
static inline int nkm_read(const char *path, char *buf, size_t len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = '\0';
    return (int)n;
}

#define NKM_MAX_NODES 64

/* The first CPU of a kernel list ("0-3,8") that the process may run on,
 * or -1. */
static inline int nkm_first_allowed(const char *list) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return -1;
    const char *s = list;
    while (*s >= '0' && *s <= '9') {
        char *end;
        long lo = strtol(s, &end, 10), hi = lo;
        if (*end == '-') hi = strtol(end + 1, &end, 10);
        for (long c = lo; c <= hi && c < CPU_SETSIZE; c++)
            if (CPU_ISSET((int)c, &allowed)) return (int)c;
        s = end;
        if (*s == ',') s++;
    }
    return -1;
}

/* The online nodes: ids, first CPU the process may use (-1: none) and
 * MemTotal in kB. */
struct nkm_node {
    int id;
    int cpu;
    long mem_kb;
};

static inline int nkm_nodes(struct nkm_node *out) {
    char buf[4096];
    if (nkm_read("/sys/devices/system/node/online", buf, sizeof buf) < 0) return 0;
    int n = 0;
    char *s = buf;
    while (*s && n < NKM_MAX_NODES) {
        char *end;
        long lo = strtol(s, &end, 10);
        if (end == s) break;
        long hi = lo;
        if (*end == '-') hi = strtol(end + 1, &end, 10);
        for (long id = lo; id <= hi && n < NKM_MAX_NODES; id++) {
            char path[128], text[4096];
            out[n].id = (int)id;
            out[n].cpu = -1;
            out[n].mem_kb = 0;
            snprintf(path, sizeof path, "/sys/devices/system/node/node%ld/cpulist", id);
            if (nkm_read(path, text, sizeof text) > 0) out[n].cpu = nkm_first_allowed(text);
            snprintf(path, sizeof path, "/sys/devices/system/node/node%ld/meminfo", id);
            if (nkm_read(path, text, sizeof text) > 0) {
                char *m = strstr(text, "MemTotal:");
                if (m) out[n].mem_kb = strtol(m + 9, NULL, 10);
            }
            n++;
        }
        s = end;
        while (*s == ',' || *s == '\n') s++;
    }
    return n;
}

/* Pin the calling thread to the first CPU it may use of a node with
 * memory (threads it starts inherit this): under the strict policy a
 * thread on a memoryless node gets no memory at all. Returns the node, or
 * -1 when there is no such CPU. */
static inline int nkm_pin_to_memory(void) {
    struct nkm_node nodes[NKM_MAX_NODES];
    int n = nkm_nodes(nodes);
    for (int i = 0; i < n; i++) {
        if (nodes[i].cpu < 0 || nodes[i].mem_kb == 0) continue;
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(nodes[i].cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) == 0) return nodes[i].id;
    }
    return -1;
}

/* The node of the page holding p (faulted in by the caller), or a
 * negative errno. */
static inline int nkm_node_of(const void *p) {
    void *page = (void *)((uintptr_t)p & ~(uintptr_t)4095);
    int status = -1;
    long rc = syscall(SYS_move_pages, 0, 1UL, &page, NULL, &status, 0);
    return rc < 0 ? -errno : status;
}

/* The memory policy mode of the mapping holding p (MPOL_BIND = 2), or a
 * negative errno. */
static inline int nkm_policy_of(const void *p) {
    int mode = -1;
    unsigned long mask[16];
    long rc = syscall(SYS_get_mempolicy, &mode, mask, 1024UL, p, 2UL /* MPOL_F_ADDR */);
    return rc < 0 ? -errno : mode;
}

#endif
