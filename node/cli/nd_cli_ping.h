/*
 * nd_cli_ping.h - `sldd peer ping NAME`: is a peer reachable, and is it the
 * node we pinned?
 */
#ifndef ND_CLI_PING_H
#define ND_CLI_PING_H

/* argv[0] is "peer", argv[1] "ping".  Exit status 0 reachable with a
 * matching pin, 1 not, 2 usage. */
int nd_cli_peer_ping(int argc, char **argv);

#endif
