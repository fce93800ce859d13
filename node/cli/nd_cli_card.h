/*
 * nd_cli_card.h - contact cards at the command line: `sldd keys
 * export-card` (this node's card, sc_card.h) and `sldd peer add --card`
 * (verify a peer's card and add everything in it in one step), and
 * `sldd peer remove`.  Every change and every refused card is written to
 * the audit log with the OS user who ran the command.
 */
#ifndef ND_CLI_CARD_H
#define ND_CLI_CARD_H

#include "nd_node.h"

/* `sldd keys export-card ...`; returns the exit status. */
int nd_cli_card_export(int argc, char **argv);
/* Add or update the peer a card describes; the exit status. */
int nd_cli_card_add(nd_node *n, const char *file);
/* Remove peer id (reason may be NULL); the exit status. */
int nd_cli_peer_remove(nd_node *n, const char *id, const char *reason);

#endif
