/* Under a seccomp filter that refuses process_vm_readv(2) with EPERM, as
 * sandboxes and hardened services install: large blocks (whose headers
 * are read with it) are still known as the allocator's own, and foreign
 * pointers still foreign. */
#include "check.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>

static int refuse_process_vm_readv(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_readv, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

int main(void) {
    CHECK(nkm_pin_to_memory() >= 0);
    CHECK(refuse_process_vm_readv() == 0);
    struct iovec l = {0}, r = {0};
    errno = 0;
    CHECK(syscall(SYS_process_vm_readv, getpid(), &l, 1, &r, 1, 0) < 0 && errno == EPERM);

    for (int round = 0; round < 3; round++) {
        size_t size = (size_t)(3 + round) << 20;
        unsigned char *p = malloc(size);
        CHECK(p != NULL);
        if (!p) break;
        memset(p, 0x5c, size);
        CHECK(malloc_usable_size(p) >= size);
        unsigned char *q = realloc(p, 2 * size); /* large to large */
        CHECK(q != NULL && q[size - 1] == 0x5c);
        if (!q) q = p;
        CHECK(malloc_usable_size(q) >= 2 * size);
        unsigned char *s = realloc(q, 100); /* large to small */
        CHECK(s != NULL && s[99] == 0x5c);
        free(s ? s : q);
        void *a = NULL;
        CHECK(posix_memalign(&a, 1 << 16, 5000) == 0); /* aligned past 4 KiB */
        CHECK(a != NULL && malloc_usable_size(a) >= 5000);
        void *b = realloc(a, 1 << 21);
        CHECK(b != NULL && malloc_usable_size(b) >= (1 << 21));
        free(b ? b : a);
    }
    /* Foreign pointers stay foreign: the stack, and a mapping's start. */
    _Alignas(16) unsigned char stack[64];
    memset(stack, 1, sizeof stack);
    CHECK(malloc_usable_size(stack + 32) == 0);
    unsigned char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    CHECK(malloc_usable_size(m) == 0);
    munmap(m, 4096);
    CHECK(malloc_usable_size(m) == 0);
    return nkm_done();
}
