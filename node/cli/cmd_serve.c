/*
 * cmd_serve.c - `sldd serve`: run a node in the foreground (nd_daemon.h).
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>

#include "commands.h"
#include "nd_cli_dir.h"
#include "nd_daemon.h"
#include "nd_dicom_scp.h"
#include "sb_parse.h"

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: sldd serve [--dir NODE] [--log FILE] [--log-format text|json] [--check]\n"
               "                  [--dashboard ADDR:PORT [--dashboard-idle SECONDS]]\n"
               "                  [--dicom-listen ADDR:PORT --dicom-pacs HOST:PORT:AE\n"
               "                   (--dicom-model PAYLOAD | --dicom-bundle ID)\n"
               "                   [--dicom-ae TITLE] [--dicom-allow AE[,AE...]]\n"
               "                   [--dicom-queue N]]\n"
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
               "  --dicom-listen ADDR:PORT  also run a DICOM Storage SCP: each image received\n"
               "               is detected with the model and its heat map (Secondary\n"
               "               Capture) and report (TID 1500 SR) are stored to the PACS\n"
               "               (docs/dicom.md); a loopback ADDR takes loopback peers only\n"
               "  --dicom-pacs HOST:PORT:AE  where results are sent (Storage SCU)\n"
               "  --dicom-model PAYLOAD      the model: a payload file, or\n"
               "  --dicom-bundle ID          a bundle this node holds\n"
               "  --dicom-ae TITLE           this node's AE title (SLDD)\n"
               "  --dicom-allow AE,...       calling AE titles allowed (default: any)\n"
               "  --dicom-queue N            objects waiting at most; more are refused\n"
               "                             (0xA700, the sender retries) (64)\n"
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
                                         {"dicom-listen", required_argument, 0, 'L'},
                                         {"dicom-pacs", required_argument, 0, 'P'},
                                         {"dicom-model", required_argument, 0, 'M'},
                                         {"dicom-bundle", required_argument, 0, 'B'},
                                         {"dicom-ae", required_argument, 0, 'A'},
                                         {"dicom-allow", required_argument, 0, 'W'},
                                         {"dicom-queue", required_argument, 0, 'Q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *log = NULL;
    nd_dicom_service_args da = {0};
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
        case 'L': da.listen = optarg; break;
        case 'P': da.pacs = optarg; break;
        case 'M': da.model = optarg; break;
        case 'B': da.bundle = optarg; break;
        case 'A': da.ae = optarg; break;
        case 'W': da.allow = optarg; break;
        case 'Q': da.queue = optarg; break;
        case 'h': serve_usage(stdout); return 0;
        default: serve_usage(stderr); return 2;
        }
    }
    dir = nd_cli_node_dir(dir);
    if (optind != argc) {
        serve_usage(stderr);
        return 2;
    }
    if (nd_cli_node_dir_check(check ? "sldd serve --check" : "sldd serve", dir))
        return 1;
    sc_error e = {0, ""};
    nd_dicom_service_opts dicom;
    int with_dicom = da.listen || da.pacs || da.model || da.bundle || da.ae || da.allow || da.queue;
    if (with_dicom && nd_dicom_service_parse(&dicom, &da, &e)) {
        fprintf(stderr, "sldd serve: %s\n", e.msg);
        return 2;
    }
    if (check) {
        if (nd_daemon_check(dir, &e)) {
            fprintf(stderr, "sldd serve --check: %s\n", e.msg);
            return 1;
        }
        printf("node state in %s is sound\n", dir);
        return 0;
    }
    nd_daemon_opts run = {log, fmt, &dash, with_dicom ? &dicom : NULL};
    if (nd_daemon_run_with(dir, &run, &e)) {
        fprintf(stderr, "sldd serve: %s\n", e.msg);
        return 1;
    }
    return 0;
}
