#ifndef NKIT_ERROR_H
#define NKIT_ERROR_H

/*
 * numakit's thread-local error.
 *
 * Every nkit_* function that can fail clears the calling thread's error when
 * it starts and sets it when it fails (returning NULL, -1, 0 or false as its
 * own documentation says). nkit_last_error() then tells a failure from a
 * legitimate NULL/0 result, and nkit_last_error_message() says what was
 * asked, what exists and what to do: the function's name, then the text of
 * numakit's Rust error (in C's terms where that names a Rust call). A call
 * that succeeds leaves no error, also when a callback it ran made a call
 * that failed. The error stays usable while the thread exits (calls from
 * pthread key destructors set it too).
 *
 * numakit never falls back: where the C library of the same design would
 * place memory elsewhere or ignore a placement request, these functions fail.
 */

#ifdef __cplusplus
extern "C" {
#endif

/** Error codes of nkit_last_error(). */
typedef enum {
    NKIT_OK = 0,                   /* the last call succeeded */
    NKIT_ERR_INVALID_ARGUMENT = 1, /* NULL handle/pointer, size or count out of range */
    NKIT_ERR_NO_SUCH_NODE = 2,     /* the node does not exist */
    NKIT_ERR_NO_SUCH_CPU = 3,      /* the CPU is not online */
    NKIT_ERR_OUT_OF_MEMORY = 4,    /* the node (or the arena/slab) cannot give the memory */
    NKIT_ERR_HUGEPAGES = 5,        /* the node's hugepage pool cannot provide the pages */
    NKIT_ERR_MISPLACED = 6,        /* pages are not on the node they must be on */
    NKIT_ERR_NOT_ALLOWED = 7,      /* the process may not use that node or CPU */
    NKIT_ERR_OS = 8,               /* a system call failed (the message names it) */
    NKIT_ERR_FULL = 9,             /* the ring is full */
    NKIT_ERR_EMPTY = 10,           /* the ring is empty */
    NKIT_ERR_NOT_FOUND = 11,       /* the key is not in the table */
    NKIT_ERR_TOPOLOGY = 12,        /* the topology could not be read */
    NKIT_ERR_UNSUPPORTED = 13,     /* cannot be done on this machine without a fallback */
    NKIT_ERR_PANIC = 14            /* a defect in numakit: the call was abandoned */
} nkit_error_e;

/** The calling thread's last error code (NKIT_OK after a successful call). */
int nkit_last_error(void);

/**
 * The calling thread's last error message: never NULL, "" after a successful
 * call. Valid until the thread's next nkit_* call.
 */
const char *nkit_last_error_message(void);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_ERROR_H */
