/* sync.h: MCS, ticket and reader-writer locks; the partitioned counter. */
#define _GNU_SOURCE
#include "check.h"
#include <pthread.h>

#define THREADS 4
/* Fewer rounds in the emulated guest: FIFO spin locks hand over once per
 * round, and a handover there waits for the host to run the next vCPU. */
static int ROUNDS = 20000;

static nkit_mcs_lock_t mcs;
static nkit_ticket_lock_t ticket;
static nkit_rws_lock_t rws;
static long plain_counter;
static long pair_a, pair_b;
static nkit_pcounter_t *pcounter;

static void *mcs_worker(void *arg) {
    (void)arg;
    nkit_mcs_node_t node;
    for (int i = 0; i < ROUNDS; i++) {
        nkit_mcs_lock(&mcs, &node);
        plain_counter++;
        nkit_mcs_unlock(&mcs, &node);
    }
    return NULL;
}

static void *ticket_worker(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        nkit_ticket_lock(&ticket);
        plain_counter++;
        nkit_ticket_unlock(&ticket);
    }
    return NULL;
}

static _Atomic int torn_reads;

static void *rws_writer(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS / 4; i++) {
        nkit_rws_write_lock(&rws);
        pair_a++;
        sched_yield();
        pair_b++;
        nkit_rws_write_unlock(&rws);
    }
    return NULL;
}

static void *rws_reader(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS / 4; i++) {
        nkit_rws_read_lock(&rws);
        if (pair_a != pair_b) torn_reads++;
        nkit_rws_read_unlock(&rws);
    }
    return NULL;
}

static void *pcounter_worker(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) nkit_pcounter_inc(pcounter);
    nkit_pcounter_add(pcounter, 10);
    nkit_pcounter_dec(pcounter);
    return NULL;
}

static void run(void *(*fn)(void *)) {
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, fn, NULL) == 0);
    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0);
}

int main(int argc, char **argv) {
    nk_nodes();
    if (getenv("NUMAKIT_IN_VM")) ROUNDS = 500;
    if (argc > 1) ROUNDS = atoi(argv[1]); /* to measure the locks in the guest */
    /* The C library's sizes (declared by value in C programs). */
    CHECK(sizeof(nkit_mcs_lock_t) == sizeof(void *));
    CHECK(sizeof(nkit_mcs_node_t) == 16);
    CHECK(sizeof(nkit_rws_lock_t) == 4);
    CHECK(sizeof(nkit_ticket_lock_t) == 128);
    CHECK(_Alignof(nkit_ticket_lock_t) == 64);

    nkit_mcs_init(&mcs);
    CHECK_OK();
    plain_counter = 0;
    run(mcs_worker);
    CHECK(plain_counter == (long)THREADS * ROUNDS);
    printf("mcs: %ld rounds\n", plain_counter);
    fflush(stdout);
    /* Free again: a lock and unlock from here do not wait. */
    nkit_mcs_node_t n1;
    nkit_mcs_lock(&mcs, &n1);
    nkit_mcs_unlock(&mcs, &n1);
    CHECK_OK();

    nkit_ticket_init(&ticket);
    CHECK_OK();
    plain_counter = 0;
    run(ticket_worker);
    CHECK(plain_counter == (long)THREADS * ROUNDS);
    printf("ticket: %ld rounds\n", plain_counter);
    fflush(stdout);

    nkit_rws_init(&rws);
    CHECK_OK();
    /* Readers share the lock. */
    nkit_rws_read_lock(&rws);
    nkit_rws_read_lock(&rws);
    nkit_rws_read_unlock(&rws);
    nkit_rws_read_unlock(&rws);
    CHECK_OK();
    pthread_t w[2], r[2];
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_create(&w[i], NULL, rws_writer, NULL) == 0);
        CHECK(pthread_create(&r[i], NULL, rws_reader, NULL) == 0);
    }
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_join(w[i], NULL) == 0);
        CHECK(pthread_join(r[i], NULL) == 0);
    }
    CHECK(torn_reads == 0);
    CHECK(pair_a == 2L * (ROUNDS / 4) && pair_b == pair_a);
    printf("rws: %ld writes\n", pair_a);
    fflush(stdout);

    pcounter = nkit_pcounter_create();
    CHECK(pcounter != NULL);
    CHECK_OK();
    if (pcounter) {
        CHECK(nkit_pcounter_read(pcounter) == 0);
        run(pcounter_worker);
        CHECK(nkit_pcounter_read(pcounter) == (int64_t)THREADS * (ROUNDS + 9));
        nkit_pcounter_add(pcounter, INT64_MIN / 2);
        CHECK(nkit_pcounter_read(pcounter) == (int64_t)THREADS * (ROUNDS + 9) + INT64_MIN / 2);
        nkit_pcounter_reset(pcounter);
        CHECK(nkit_pcounter_read(pcounter) == 0);
        nkit_pcounter_add(pcounter, 0);
        nkit_pcounter_dec(pcounter);
        CHECK(nkit_pcounter_read(pcounter) == -1);
        CHECK_OK();
        nkit_pcounter_destroy(pcounter);
        CHECK_OK();
    }

    /* NULL locks, nodes and counters are errors, not crashes. */
    nkit_mcs_node_t node;
    nkit_mcs_init(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_mcs_lock(NULL, &node);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_mcs_lock(&mcs, NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_mcs_unlock(NULL, &node);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_mcs_unlock(&mcs, NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_ticket_init(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_ticket_lock(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_ticket_unlock(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_rws_init(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_rws_read_lock(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_rws_read_unlock(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_rws_write_lock(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_rws_write_unlock(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_pcounter_add(NULL, 1);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_pcounter_inc(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_pcounter_dec(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    CHECK(nkit_pcounter_read(NULL) == 0);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_pcounter_reset(NULL);
    CHECK_ERR(NKIT_ERR_INVALID_ARGUMENT);
    nkit_pcounter_destroy(NULL);
    CHECK_OK();
    /* The locks still work after the refused calls. */
    nkit_mcs_lock(&mcs, &node);
    nkit_mcs_unlock(&mcs, &node);
    nkit_ticket_lock(&ticket);
    nkit_ticket_unlock(&ticket);
    nkit_rws_write_lock(&rws);
    nkit_rws_write_unlock(&rws);
    CHECK_OK();
    return nk_done("test_sync");
}
