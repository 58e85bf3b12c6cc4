/* kvmlab-net's lease and forward parts of show --json, built with jansson
 * (net/cli_json_lease.c): plain data from kl_net_show in, json_t out. */
#ifndef KVMLAB_CLI_LEASE_H
#define KVMLAB_CLI_LEASE_H
#include <jansson.h>
#include "net.h"

/* {"dns": {"servers": [..], "from": "network"|"host"},
 *  "leases": [{"vm", "mac", "address", "state", "reserved", "pid",
 *              "start"}],
 *  "forwards": [{"proto", "port", "to_address", "to_port", "vm"}]}
 * leases and forwards are null when they could not be read (no
 * CAP_NET_ADMIN). NULL when out of memory. */
json_t *cli_json_lease(const struct kl_show_net *n);
#endif
