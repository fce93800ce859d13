/*
 * cmd_init.c - `sldd init`: create a node directory with its signing and
 * encryption key pairs and a default node.conf.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "sc_keys.h"
#include "sc_node.h"

static void init_usage(FILE *f)
{
    fprintf(f, "usage: sldd init --dir NODE --id NAME\n"
               "\n"
               "Creates NODE (mode 0700) with separate Ed25519 signing and X25519\n"
               "encryption key pairs (secret files 0600, never overwritten), node.conf\n"
               "and empty admins/ and peers/ folders.  NAME: 1-64 of A-Z a-z 0-9 . _ -\n");
}

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'}, {"id", required_argument, 0, 'i'},
        {"help", no_argument, 0, 'h'},      {0, 0, 0, 0}};
    const char *dir = NULL, *id = NULL;
    uint8_t spk[32], epk[32];
    char fs[64], fe[64];
    sc_error e = {0, ""};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'i': id = optarg; break;
        case 'h': init_usage(stdout); return 0;
        default: init_usage(stderr); return 2;
        }
    }
    if (!dir || !id || optind != argc) {
        init_usage(stderr);
        return 2;
    }
    if (sc_node_init(dir, id, &e) || sc_node_keys_load_public(dir, spk, epk, &e)) {
        fprintf(stderr, "sldd init: %s\n", e.msg);
        return 1;
    }
    sc_fingerprint_text(fs, spk);
    sc_fingerprint_text(fe, epk);
    printf("initialised node '%s' in %s\n  signing key    %s\n  encryption key %s\n"
           "Next: 'sldd admin add --dir %s --name ADMIN', then hand 'sldd keys export' to peers.\n",
           id, dir, fs, fe, dir);
    return 0;
}
