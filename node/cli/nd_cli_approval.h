/*
 * nd_cli_approval.h - what an admin decides on, read from the very bytes
 * the admin is about to sign.
 *
 * Both ways of approving (`sldd bundle approve ID` through the running
 * node, `sldd bundle approve --in FILE` on files) pass the statement bytes
 * through nd_cli_statement_check before a key is touched: the statement
 * must parse strictly, carry a bundle payload that parses and validates and
 * comes from this node, and the summary the admin confirms is rendered from
 * that payload, not from anything the daemon says about it.
 */
#ifndef ND_CLI_APPROVAL_H
#define ND_CLI_APPROVAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sc_error.h"

/* The identity of the payload inside a statement. */
typedef struct nd_signed_payload {
    char bundle_id[33];      /* hex of Bundle.bundle_id */
    char payload_sha256[65]; /* hex of SHA-256 of the payload bytes */
} nd_signed_payload;

/* Check statement bytes (st, sl) as described above, with at most
 * parse_budget bytes for the payload, fill *p and, when out is not NULL,
 * print the summary of what an approval covers to out; when grid is not
 * NULL, also draw the payload's images with their soft labels and step
 * sizes into the PNG file grid.  0, or -1 with the reason in e (nothing
 * printed to out then). */
int nd_cli_statement_check(const uint8_t *st, size_t sl, const char *self, size_t parse_budget,
                           FILE *out, const char *grid, nd_signed_payload *p, sc_error *e);

/* Draw the image grid of payload bytes (parsed strictly, validated, with at
 * most parse_budget bytes) into the PNG file path: a received bundle's
 * images seen at the receiver, from the payload itself.  0, or -1 with e. */
int nd_cli_payload_grid(const uint8_t *payload, size_t len, size_t parse_budget, const char *path,
                        sc_error *e);

/* The bundle id and payload hash that a text bundle view (nd_view_bundle)
 * names: its "bundle ID" first line and its "payload sha256" line.  0, or
 * -1 when either is missing or malformed. */
int nd_cli_view_identity(const char *view, nd_signed_payload *p);

#endif
