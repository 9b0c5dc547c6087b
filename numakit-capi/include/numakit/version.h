#ifndef NKIT_VERSION_H
#define NKIT_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

/* The version of these headers. */
#define NKIT_VERSION_MAJOR 0
#define NKIT_VERSION_MINOR 1
#define NKIT_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH */
#define NKIT_VERSION_NUMBER (NKIT_VERSION_MAJOR * 10000 + NKIT_VERSION_MINOR * 100 + NKIT_VERSION_PATCH)

/** The version of the library linked, "MAJOR.MINOR.PATCH" (static storage). */
const char *nkit_version(void);

/** The version of the library linked, as NKIT_VERSION_NUMBER states it. */
int nkit_version_number(void);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_VERSION_H */
