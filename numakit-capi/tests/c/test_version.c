/* version.h: the header's version and the library's agree. */
#include "check.h"

int main(void) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", NKIT_VERSION_MAJOR, NKIT_VERSION_MINOR,
             NKIT_VERSION_PATCH);
    CHECK(nkit_version() != NULL);
    CHECK(strcmp(nkit_version(), want) == 0);
    CHECK(nkit_version_number() == NKIT_VERSION_NUMBER);
    CHECK(NKIT_VERSION_NUMBER == NKIT_VERSION_MAJOR * 10000 + NKIT_VERSION_MINOR * 100 + NKIT_VERSION_PATCH);
    return nk_done("test_version");
}
