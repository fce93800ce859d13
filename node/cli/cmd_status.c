/*
 * cmd_status.c - `sldd status` and `sldd stop`: is the node's daemon up,
 * and stop it cleanly.
 *
 * Both ask the daemon over its admin API (nd_admin_api.h): status prints
 * GET /v1/status, stop sends POST /v1/stop (the daemon signals itself
 * SIGTERM, the same clean stop as systemd's).  A daemon that no longer
 * answers its admin API is sent SIGTERM by the pid in NODE/serve.json.
 * "Stopped" means the node lock (NODE/serve.lock, held by the daemon
 * until the end of its run) is free again, so stop returns only once
 * every worker has finished and the final audit anchor is written; the
 * process exits right after.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "nd_admin_client.h"
#include "nd_buf.h"
#include "nd_cli_dir.h"
#include "nd_daemon.h"
#include "nd_json_get.h"
#include "nd_state.h"
#include "sb_parse.h"
#include "sc_util.h"

/* LSB init-script convention, as `systemctl status` uses it */
#define EXIT_NOT_RUNNING 3

/* 1 while a daemon holds NODE/serve.lock, 0 when none does, -1 on error. */
static int lock_held(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, ND_LOCK_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    int held = 0;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        flock(fd, LOCK_UN);
    else
        held = errno == EWOULDBLOCK ? 1 : -1;
    close(fd);
    return held;
}

/* The pid NODE/serve.json names, 0 when it is absent or unreadable. */
static long info_pid(const char *dir)
{
    char path[4200];
    uint8_t *buf = NULL;
    size_t len = 0;
    sc_error e = {0, ""};
    snprintf(path, sizeof path, "%s/%s", dir, ND_SERVE_INFO);
    if (sc_file_read(path, 65536, 0, &buf, &len, &e))
        return 0;
    double pid = nd_json_num((const char *)buf, "pid", 0);
    int ok = pid > 1 && pid < 1e9;
    free(buf);
    return ok ? (long)pid : 0;
}

static int parse_common(int argc, char **argv, const char **dir, int *json, double *timeout,
                        void (*usage)(FILE *))
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"json", no_argument, 0, 'j'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "d:jt:h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': *dir = optarg; break;
        case 'j': *json = 1; break;
        case 't':
            if (!timeout || sb_parse_double(optarg, 0.1, 86400, timeout)) {
                fprintf(stderr, "sldd %s: --timeout wants seconds (0.1..86400), not '%s'\n",
                        argv[0], optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || (json && *json && timeout)) {
        usage(stderr);
        return 2;
    }
    *dir = nd_cli_node_dir(*dir);
    return -1;
}

static void status_usage(FILE *f)
{
    fprintf(f, "usage: sldd status [--dir NODE] [--json]\n"
               "\n"
               "Whether the node's daemon runs; when it does, its pid, uptime, listeners\n"
               "and the jobs, bundles and deliveries it holds by state (GET /v1/status).\n"
               "Exit status 0 running, 3 not running, 1 on an error.\n");
}

int cmd_status(int argc, char **argv)
{
    const char *dir = NULL;
    int json = 0;
    int rc = parse_common(argc, argv, &dir, &json, NULL, status_usage);
    if (rc >= 0)
        return rc;
    if (nd_api_available(dir))
        return nd_api_print(dir, json ? "/v1/status" : "/v1/status?format=text", "sldd status");
    char conf[4200];
    snprintf(conf, sizeof conf, "%s/node.conf", dir);
    if (access(conf, F_OK)) {
        fprintf(stderr, "sldd status: no node in %s (give --dir NODE or set SLDD_DIR)\n", dir);
        return 1;
    }
    int held = lock_held(dir);
    long pid = info_pid(dir);
    if (json) {
        printf("{\"running\":false,\"dir\":");
        fflush(stdout);
        nd_buf b;
        nd_buf_init(&b, 8192);
        nd_buf_json_str(&b, dir);
        fwrite(b.data, 1, b.len, stdout);
        nd_buf_free(&b);
        printf(",\"lock_held\":%s}\n", held == 1 ? "true" : "false");
    } else if (held == 1) {
        printf("node in %s: the node lock is held (pid %ld) but the admin API does not answer\n",
               dir, pid);
    } else {
        printf("node in %s: not running\n", dir);
    }
    return held == 1 ? 1 : EXIT_NOT_RUNNING;
}

static void stop_usage(FILE *f)
{
    fprintf(f, "usage: sldd stop [--dir NODE] [--timeout SECONDS]\n"
               "\n"
               "Stops the node's daemon cleanly (as SIGTERM: open requests finish, a running\n"
               "distillation writes a checkpoint) and waits until it has finished: every\n"
               "worker done, the node lock released (at most --timeout, default 180 s).\n"
               "A node that is not running is left as it is (exit status 0).\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cmd_stop(int argc, char **argv)
{
    const char *dir = NULL;
    int json = 0;
    double timeout = 180, t0 = now_s();
    int rc = parse_common(argc, argv, &dir, &json, &timeout, stop_usage);
    if (rc >= 0)
        return rc;
    int held = lock_held(dir);
    if (held < 0) {
        fprintf(stderr, "sldd stop: cannot read the node lock in %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (!held) {
        printf("node in %s is not running\n", dir);
        return 0;
    }
    nd_api_response r;
    sc_error e = {0, ""};
    if (nd_api_request(dir, "POST", "/v1/stop", NULL, NULL, 0, &r, &e) == 0 && r.status == 202) {
        fwrite(r.body, 1, r.len, stdout);
    } else {
        long pid = info_pid(dir);
        fprintf(stderr, "sldd stop: the admin API did not take the stop (%s); ",
                e.msg[0] ? e.msg : "unexpected answer");
        if (!pid || kill((pid_t)pid, SIGTERM)) {
            if (pid)
                fprintf(stderr, "cannot signal pid %ld: %s\n", pid, strerror(errno));
            else
                fprintf(stderr, "no daemon pid to signal in %s/%s\n", dir, ND_SERVE_INFO);
            if (!e.msg[0])
                nd_api_response_free(&r);
            return 1;
        }
        fprintf(stderr, "sent SIGTERM to pid %ld\n", pid);
    }
    if (!e.msg[0])
        nd_api_response_free(&r);
    fflush(stdout);
    while ((held = lock_held(dir)) == 1 && now_s() - t0 < timeout) {
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
    }
    if (held) {
        fprintf(stderr, "sldd stop: the node in %s still runs after %.0f s\n", dir, timeout);
        return 1;
    }
    printf("stopped (%.1f s)\n", now_s() - t0);
    return 0;
}
