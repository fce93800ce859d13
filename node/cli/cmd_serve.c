/*
 * cmd_serve.c - `sldd serve`: run a node in the foreground (nd_daemon.h).
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>

#include "commands.h"
#include "nd_cli_dir.h"
#include "nd_daemon.h"
#include "sb_parse.h"

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: sldd serve [--dir NODE] [--log FILE] [--log-format text|json] [--check]\n"
               "                  [--dashboard ADDR:PORT [--dashboard-idle SECONDS]]\n"
               "\n"
               "Runs the node in the foreground: the peer protocol over mutual TLS 1.3\n"
               "(node.conf 'listen:'), the admin API on NODE/admin.sock, bundle delivery\n"
               "and import, and distillation jobs.  SIGTERM or SIGINT stop it cleanly (a\n"
               "running distillation writes a checkpoint and resumes at the next start);\n"
               "SIGHUP reloads node.conf.  Under systemd (Type=notify) it reports\n"
               "readiness and feeds the watchdog.\n"
               "\n"
               "  --log FILE   append the log to FILE instead of stderr\n"
               "  --log-format text|json\n"
               "               text lines (default) or JSON lines: ts, level, node, msg,\n"
               "               fields\n"
               "  --check      run the start-up checks (database, stored objects, audit\n"
               "               chain) and exit\n"
               "  --dashboard ADDR:PORT  also serve the web dashboard there (plain HTTP on\n"
               "               a loopback address such as 127.0.0.1:8080, or PORT alone;\n"
               "               any other address is served over TLS with the node's\n"
               "               certificate)\n"
               "  --dashboard-idle SECONDS  dashboard sessions end after this long\n"
               "               without a request (default 900)\n"
               "\n"
               "See docs/node.md (operator's guide) for node.conf and running as a service.\n");
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"log", required_argument, 0, 'l'},
                                         {"check", no_argument, 0, 'c'},
                                         {"log-format", required_argument, 0, 'F'},
                                         {"dashboard", required_argument, 0, 'D'},
                                         {"dashboard-idle", required_argument, 0, 'I'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *log = NULL;
    int check = 0, o;
    long long idle = 0;
    nd_log_format fmt = ND_LOG_TEXT;
    nd_dash_config dash = {NULL, 0};
    optind = 1;
    while ((o = getopt_long(argc, argv, "d:l:cF:hD:I:", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'l': log = optarg; break;
        case 'c': check = 1; break;
        case 'F':
            if (nd_log_format_parse(optarg, &fmt)) {
                fprintf(stderr, "sldd serve: --log-format is text or json, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'D': dash.listen = optarg; break;
        case 'I':
            if (sb_parse_i64(optarg, 1, INT_MAX, &idle)) {
                fprintf(stderr, "sldd serve: --dashboard-idle '%s' is not a number of seconds\n",
                        optarg);
                return 2;
            }
            dash.idle_seconds = (int)idle;
            break;
        case 'h': serve_usage(stdout); return 0;
        default: serve_usage(stderr); return 2;
        }
    }
    dir = nd_cli_node_dir(dir);
    if (optind != argc) {
        serve_usage(stderr);
        return 2;
    }
    sc_error e = {0, ""};
    if (check) {
        if (nd_daemon_check(dir, &e)) {
            fprintf(stderr, "sldd serve --check: %s\n", e.msg);
            return 1;
        }
        printf("node state in %s is sound\n", dir);
        return 0;
    }
    if (nd_daemon_run_dash(dir, log, fmt, &dash, &e)) {
        fprintf(stderr, "sldd serve: %s\n", e.msg);
        return 1;
    }
    return 0;
}
