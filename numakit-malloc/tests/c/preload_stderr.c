/* A program whose fd 2 ends up as a file of its own: started with stderr
 * closed, or closing it itself (with "close"), it opens FILE, which the
 * kernel numbers 2, and writes its data there. The statistics at exit
 * (NUMAKIT_MALLOC_STATS=1) must not go into FILE; the test driver reads
 * it after the program has exited.
 *
 * Usage: preload_stderr FILE [close] */
#include "check.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: preload_stderr FILE [close]\n");
        return 2;
    }
    if (argc > 2 && strcmp(argv[2], "close") == 0) close(2);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd == 2);
    void *p = malloc(100);
    CHECK(p != NULL);
    free(p);
    CHECK(write(fd, "data\n", 5) == 5);
    /* Left open: the statistics are written after main returns. */
    return nkm_done();
}
