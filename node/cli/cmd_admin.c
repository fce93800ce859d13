/*
 * cmd_admin.c - `sldd admin add|list`: admin signing keys of this node,
 * each encrypted under its own passphrase (Argon2id).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "nd_cli_words.h"
#include "nd_audit.h"
#include "nd_cli_dir.h"
#include "sc_keys.h"
#include "nd_buf.h"
#include "nd_node.h"
#include "sc_util.h"
#include "sp_check.h"

static void admin_usage(FILE *f)
{
    fprintf(f, "usage: sldd admin add --dir NODE --name ADMIN [--passphrase-file FILE]\n"
               "                      [--kdf interactive|moderate|sensitive]\n"
               "       sldd admin list --dir NODE [--json]\n"
               "\n"
               "The passphrase comes from --passphrase-file (first line), else the\n"
               "environment variable SLDD_PASSPHRASE, else a prompt on the terminal.\n"
               "--kdf sets the Argon2id cost (moderate: 256 MiB, the default).\n");
}

int cmd_admin(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"name", required_argument, 0, 'n'},
                                         {"passphrase-file", required_argument, 0, 'p'},
                                         {"kdf", required_argument, 0, 'k'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *name = NULL, *passfile = NULL, *sub;
    sc_kdf_strength kdf = SC_KDF_MODERATE;
    sc_error e = {0, ""};
    nd_node *n = NULL;
    int c, rc = 1, json = 0;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        admin_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    static const char *const subs[] = {"add", "list", NULL};
    if (nd_cli_check_word("sldd admin", "subcommand", sub, subs))
        return 2;
    optind = 2;
    while ((c = getopt_long(argc, argv, "d:n:p:k:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'n': name = optarg; break;
        case 'p': passfile = optarg; break;
        case 'k':
            if (!strcmp(optarg, "interactive"))
                kdf = SC_KDF_INTERACTIVE;
            else if (!strcmp(optarg, "moderate"))
                kdf = SC_KDF_MODERATE;
            else if (!strcmp(optarg, "sensitive"))
                kdf = SC_KDF_SENSITIVE;
            else {
                admin_usage(stderr);
                return 2;
            }
            break;
        case 'j': json = 1; break;
        case 'h': admin_usage(stdout); return 0;
        default: admin_usage(stderr); return 2;
        }
    }
    dir = nd_cli_node_dir(dir);
    if (optind != argc || (strcmp(sub, "add") && strcmp(sub, "list")) ||
        (!strcmp(sub, "add") && (!name || json))) {
        admin_usage(stderr);
        return 2;
    }
    if (nd_node_open(dir, 0, &n, &e)) {
        fprintf(stderr, "sldd admin: %s\n", e.msg);
        return 1;
    }
    if (!strcmp(sub, "add")) {
        char *pass = NULL, prompt[128], fp[64];
        size_t plen = 0;
        uint8_t pk[32];
        if (!sp_valid_id(name)) {
            fprintf(stderr,
                    "sldd admin add: '%s' is not a valid name (1-64 of A-Z a-z 0-9 . _ -)\n", name);
            nd_node_close(n);
            return 2;
        }
        snprintf(prompt, sizeof prompt, "new passphrase for admin %s: ", name);
        if (sc_passphrase_get(passfile, prompt, 1, &pass, &plen, &e) == 0 &&
            sc_admin_key_create(dir, n->cfg.id, name, pass, plen, kdf, pk, &e) == 0) {
            char detail[200];
            sc_fingerprint_text(fp, pk);
            printf("admin '%s' of node '%s' created\n  fingerprint %s\n", name, n->cfg.id, fp);
            snprintf(detail, sizeof detail, "admin %s added, key %s", name, fp);
            if (nd_audit_record_user(dir, "admin-add", "", "ok", detail, &e))
                fprintf(stderr, "sldd admin add: audit log: %s\n", e.msg);
            rc = 0;
        } else {
            fprintf(stderr, "sldd admin add: %s\n", e.msg);
        }
        sc_secret_free(pass, plen + 1);
    } else {
        sc_peer self;
        if (n->trust->peer_get(n->trust, n->cfg.id, &self, &e)) {
            fprintf(stderr, "sldd admin list: %s\n", e.msg);
        } else {
            nd_buf b;
            nd_buf_init(&b, 0);
            nd_buf_str(&b, json ? "[" : "");
            for (size_t i = 0; i < self.n_admins; i++) {
                char fp[64];
                sc_fingerprint_text(fp, self.admins[i].pk);
                if (!json) {
                    nd_buf_printf(&b, "%-20s %s\n", self.admins[i].name, fp);
                    continue;
                }
                nd_buf_str(&b, i ? ",\n {\"name\":" : "\n {\"name\":");
                nd_buf_json_str(&b, self.admins[i].name);
                nd_buf_str(&b, ",\"fingerprint\":");
                nd_buf_json_str(&b, fp);
                nd_buf_str(&b, "}");
            }
            nd_buf_str(&b, json ? "\n]\n" : "");
            if (!b.failed && b.len)
                fwrite(b.data, 1, b.len, stdout);
            rc = b.failed;
            nd_buf_free(&b);
        }
    }
    nd_node_close(n);
    return rc;
}
