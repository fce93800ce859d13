/*
 * nd_cli_peer.h - the network side of `sldd peer`: where a peer listens and
 * which TLS key it must present (`peer address`), and `peer list` from a
 * running node (addresses, deliveries, receipts).  Key records stay with
 * cmd_peer.c (`peer add`, `peer show`).
 */
#ifndef ND_CLI_PEER_H
#define ND_CLI_PEER_H

int nd_cli_peer_wants(int argc, char **argv);
int nd_cli_peer(int argc, char **argv);

#include "sc_error.h"

/* Where peer id listens and its TLS pins (';'-separated): through the
 * running node's admin API when there is one, else straight into
 * NODE/state.db; source names where it came from ("cli", "card"). */
int nd_cli_peer_set_address(const char *dir, const char *id, const char *url, const char *pins,
                            const char *source, sc_error *e) SC_WUR;

#endif
