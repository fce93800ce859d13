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

#endif
