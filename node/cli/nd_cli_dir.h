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

#endif
