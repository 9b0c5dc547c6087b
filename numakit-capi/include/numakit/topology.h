#ifndef NKIT_TOPOLOGY_H
#define NKIT_TOPOLOGY_H

#include <stddef.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @return The number of NUMA nodes (>= 1), or -1 when the topology cannot be read. */
int nkit_topo_num_nodes(void);

/** @return The number of online logical CPUs, or -1. */
int nkit_topo_num_cpus(void);

/** @return The number of online CPUs of node_id (0 for a CPU-less node), or -1 if it does not exist. */
int nkit_topo_cpus_on_node(int node_id);

/** @return The SLIT distance between two nodes (10 = local), or -1 if either does not exist. */
int nkit_topo_distance(int from_node, int to_node);

/**
 * @brief Total and free memory of a node, in bytes.
 * @param total_bytes Where to store the total (may be NULL).
 * @param free_bytes Where to store the free memory now (may be NULL).
 * @return 0, or -1 if the node does not exist (outputs untouched).
 */
int nkit_topo_node_memory(int node_id, size_t *total_bytes, size_t *free_bytes);

/**
 * @return 1 when the kernel's NUMA interface describes this machine (numakit
 * places memory through it, one node or many); 0 when it cannot be read
 * (error set): numakit then refuses placement requests instead of ignoring them.
 */
int nkit_topo_is_numa(void);

#ifdef __cplusplus
}
#endif

#endif /* NKIT_TOPOLOGY_H */
