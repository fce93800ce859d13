/*
 * nd_cli_bundle.h - the daemon-backed verbs of `sldd bundle`: list, show,
 * approve ID, reject ID, resend ID (through the admin API).  The file-based verbs
 * (make-test, inspect, sign, approve --in, seal, open, verify) stay in
 * cmd_bundle.c.
 */
#ifndef ND_CLI_BUNDLE_H
#define ND_CLI_BUNDLE_H

/* 1 when argv is one of the daemon-backed verbs. */
int nd_cli_bundle_wants(int argc, char **argv);
int nd_cli_bundle(int argc, char **argv);
void nd_cli_bundle_usage(void *file);

#endif
