/* A program whose fd 2 ends up as a file of its own: started with stderr
 * closed, or closing it itself (with "close"), it opens FILE, which the
 * kernel numbers 2, and writes its data there. The statistics at exit
 * (NUMAKIT_MALLOC_STATS=1) must not go into FILE, nor the lines the library
 * writes for a foreign pointer or an allocation it cannot serve; the test
 * driver reads it after the program has exited. Before that, on the real
 * stderr, one allocation fails, and its line must be there.
 *
 * Usage: preload_stderr FILE [close] */
#include "check.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: preload_stderr FILE [close]\n");
        return 2;
    }
    size_t huge = (size_t)1 << 50; /* no node has a PiB */
    if (argc > 2 && strcmp(argv[2], "close") == 0) {
        void *volatile q = malloc(huge);
        CHECK(q == NULL);
        close(2);
    }
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd == 2);
    void *p = malloc(100);
    CHECK(p != NULL);
    free(p);
    char *b = malloc(64);
    char *volatile inside = b + 32; /* not a block: a foreign pointer */
    free(inside);
    free(b);
    errno = 0;
    void *volatile q = malloc(huge);
    CHECK(q == NULL && errno == ENOMEM);
    CHECK(write(fd, "data\n", 5) == 5);
    /* Left open: the statistics are written after main returns. */
    return nkm_done();
}
