/*
 * nd_cli_dir.h - which node directory a command works on, when --dir is
 * not given: $SLDD_DIR when it is set and not empty, else /var/lib/sldd
 * (the directory the Debian package's service uses, systemd's
 * StateDirectory=sldd).  Every command that takes --dir NODE resolves it
 * here, so the rule is the same everywhere (docs/operations.md).
 */
#ifndef ND_CLI_DIR_H
#define ND_CLI_DIR_H

#define ND_DEFAULT_NODE_DIR "/var/lib/sldd"

/* given (the --dir value) when not NULL, else $SLDD_DIR when set and not
 * empty, else ND_DEFAULT_NODE_DIR.  Never NULL. */
const char *nd_cli_node_dir(const char *given);

/* 0 when dir has a node.conf; else prints "PROG: DIR is not a node
 * directory (no node.conf); run sldd init" to stderr and returns -1, so a
 * mistyped --dir is named before anything else is tried in it.  Other
 * faults of node.conf are left to the command that reads it. */
int nd_cli_node_dir_check(const char *prog, const char *dir);

#endif
