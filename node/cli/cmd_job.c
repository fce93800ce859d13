/*
 * cmd_job.c - `sldd job ...`: distillation jobs of a running node, through
 * the admin API (nd_jobs.h): submit, list, show, cancel, wait.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "nd_cli_words.h"
#include "nd_cli_dir.h"
#include "nd_admin_client.h"
#include "nd_buf.h"
#include "nd_distill.h"
#include "nd_json_get.h"
#include "nd_state.h"
#include "nd_views.h"
#include "sb_parse.h"

static void job_usage(FILE *f)
{
    fprintf(f,
            "usage: sldd job distill --dir NODE [--to PEER,PEER...] [--wait] [DISTILL OPTIONS]\n"
            "       sldd job list --dir NODE [--json]\n"
            "       sldd job show N --dir NODE [--json]\n"
            "       sldd job wait N --dir NODE [--quiet]\n"
            "       sldd job cancel N --dir NODE\n"
            "\n"
            "distill   queue a distillation of the node's data set (node.conf 'data:')\n"
            "          for the given peers (default: every peer).  The result is a\n"
            "          bundle pending approval (sldd bundle show / approve).\n"
            "wait      follow a job until it ends, printing its progress; exits 0 when\n"
            "          it finished, 1 when it failed or was canceled.\n"
            "\n"
            "DISTILL OPTIONS are those of 'sldd distill', on top of node.conf 'distill:':\n%s",
            nd_distill_opts_help());
}

static int job_wait(const char *dir, const char *id, int quiet)
{
    char path[64], state[32] = "", last[32] = "";
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    double last_pct = -1, last_ahead = -1;
    for (;;) {
        nd_api_response r;
        sc_error e = {0, ""};
        if (nd_api_request(dir, "GET", path, NULL, NULL, 0, &r, &e)) {
            fprintf(stderr, "sldd job wait: %s\n", e.msg);
            return 1;
        }
        if (r.status != 200) {
            fprintf(stderr, "sldd job wait: %s", (char *)r.body);
            nd_api_response_free(&r);
            return 1;
        }
        const char *j = (const char *)r.body;
        nd_json_get(j, "state", state, sizeof state);
        double pct = nd_json_num(j, "percent", 0), loss = nd_json_num(j, "loss", NAN),
               hm = nd_json_num(j, "val_hm", NAN), eta = nd_json_num(j, "eta_seconds", NAN);
        double ahead = nd_json_num(j, "ahead", 0); /* a queued job has no progress yet */
        if (!strcmp(state, "queued")) {
            if (!quiet && ahead != last_ahead) {
                if (ahead > 0)
                    printf("job %s queued (%.0f job%s ahead)\n", id, ahead, ahead == 1 ? "" : "s");
                else
                    printf("job %s queued, waiting to start\n", id);
                fflush(stdout);
            }
            last_ahead = ahead;
            snprintf(last, sizeof last, "%s", state);
        } else if (!strcmp(state, "running") && nd_json_num(j, "total", 0) <= 0) {
            if (!quiet && strcmp(last, "starting")) {
                printf("job %s running, starting (reading the data set)\n", id);
                fflush(stdout);
            }
            snprintf(last, sizeof last, "starting"); /* the first progress line follows */
        } else if (!quiet && (strcmp(state, last) || pct >= last_pct + 5)) {
            char et[32] = "-", bundle[40] = "", err[300] = "";
            if (isfinite(eta))
                nd_fmt_duration(eta, et, sizeof et);
            nd_json_get(j, "bundle", bundle, sizeof bundle);
            nd_json_get(j, "error", err, sizeof err);
            printf("job %s %-8s %5.1f%%  iteration %.0f/%.0f  loss %.4f  val HM %.4f  ETA %s"
                   "%s%s%s%s\n",
                   id, state, pct, nd_json_num(j, "iter", 0), nd_json_num(j, "total", 0), loss, hm,
                   et, bundle[0] ? "  bundle " : "", bundle, err[0] ? "  " : "", err);
            fflush(stdout);
            last_pct = pct;
            snprintf(last, sizeof last, "%s", state);
        }
        nd_api_response_free(&r);
        if (!strcmp(state, "done"))
            return 0;
        if (!strcmp(state, "failed") || !strcmp(state, "canceled"))
            return 1;
        struct timespec ts = {0, 300000000L};
        nanosleep(&ts, NULL);
    }
}

/* POST the distillation job; with wait, follow it to its end. */
static int job_submit(const char *dir, const char *to, const nd_buf *opts, int wait, int quiet)
{
    nd_buf body;
    nd_api_response r;
    sc_error e = {0, ""};
    int status = 1;
    nd_buf_init(&body, 8192);
    nd_buf_printf(&body, "to: %s\noptions: %s\n", to, opts->data ? opts->data : "");
    if (body.failed || strchr(to, '\n')) {
        fprintf(stderr, "sldd job distill: options too long\n");
        nd_buf_free(&body);
        return 2;
    }
    if (nd_api_request(dir, "POST", "/v1/jobs", "text/plain", body.data, body.len, &r, &e)) {
        fprintf(stderr, "sldd job distill: %s\n", e.msg);
    } else if (r.status != 201) {
        fprintf(stderr, "sldd job distill: %s", (char *)r.body);
    } else {
        char jid[32];
        snprintf(jid, sizeof jid, "%.*s", (int)strcspn((char *)r.body, "\n"), (char *)r.body);
        printf("job %s queued\n", jid);
        fflush(stdout);
        status = wait ? job_wait(dir, jid, quiet) : 0;
    }
    nd_api_response_free(&r);
    nd_buf_free(&body);
    return status;
}

/* job list / job show ID when no daemon runs: the state database. */
static int job_offline(const char *dir, const char *id, int json)
{
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    nd_buf b;
    long long jid = 0;
    int status = 1;
    if (id && nd_parse_int(id, 0, INT64_MAX, &jid)) {
        fprintf(stderr, "sldd job: '%s' is not a job number\n", id);
        return 1;
    }
    nd_buf_init(&b, 0);
    if (nd_db_open(dir, 0, &db, &e) == 0 &&
        (id ? nd_view_job(db, jid, &b, json, &e) : nd_view_jobs(db, &b, json, &e)) == 0 &&
        !b.failed) {
        fwrite(b.data ? b.data : "", 1, b.len, stdout);
        status = 0;
    } else {
        fprintf(stderr, "sldd job: %s\n", e.msg);
    }
    nd_buf_free(&b);
    nd_db_close(db);
    return status;
}

static int job_cancel(const char *dir, const char *id)
{
    char path[64];
    nd_api_response r;
    sc_error e = {0, ""};
    int status = 1;
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    if (nd_api_request(dir, "POST", path, NULL, "", 0, &r, &e))
        fprintf(stderr, "sldd job cancel: %s\n", e.msg);
    else {
        fputs((char *)r.body, r.status == 200 ? stdout : stderr);
        status = r.status == 200 ? 0 : 1;
    }
    nd_api_response_free(&r);
    return status;
}

/* The verb on the parsed arguments. */
static int job_run(const char *sub, const char *dir, const char *id, const char *to,
                   const nd_buf *opts, int json, int wait, int quiet)
{
    char path[64];
    if (!strcmp(sub, "distill") && !id)
        return job_submit(dir, to, opts, wait, quiet);
    if ((!strcmp(sub, "list") && !id) || (!strcmp(sub, "show") && id && !nd_api_available(dir))) {
        if (!nd_api_available(dir))
            return job_offline(dir, id, json);
        return nd_api_print(dir, json ? "/v1/jobs" : "/v1/jobs?format=text", "sldd job list");
    }
    if (!(!strcmp(sub, "show") || !strcmp(sub, "wait") || !strcmp(sub, "cancel")) || !id ||
        strspn(id, "0123456789") != strlen(id) || strlen(id) >= 19) {
        job_usage(stderr);
        return 2;
    }
    if (!strcmp(sub, "wait"))
        return job_wait(dir, id, quiet);
    if (!strcmp(sub, "cancel"))
        return job_cancel(dir, id);
    snprintf(path, sizeof path, "/v1/jobs/%s%s", id, json ? "" : "?format=text");
    return nd_api_print(dir, path, "sldd job show");
}

int cmd_job(int argc, char **argv)
{
    const char *dir = NULL, *to = "", *id = NULL;
    int json = 0, wait = 0, quiet = 0;
    nd_buf opts;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        job_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    static const char *const subs[] = {"distill", "list", "show", "wait", "cancel", NULL};
    if (nd_cli_check_word("sldd job", "subcommand", sub, subs))
        return 2;
    nd_buf_init(&opts, 4096);
    /* our own options; everything else is a distillation option for the daemon */
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strncmp(a, "--dir=", 6))
            dir = a + 6;
        else if (!strcmp(a, "--to") && i + 1 < argc)
            to = argv[++i];
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--wait"))
            wait = 1;
        else if (!strcmp(a, "--quiet"))
            quiet = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            job_usage(stdout);
            nd_buf_free(&opts);
            return 0;
        } else if (!strncmp(a, "--", 2) && !strcmp(sub, "distill")) {
            nd_buf_printf(&opts, "%s%s", opts.len ? " " : "", a);
            const char *name = a + 2;
            if (!strchr(name, '=') && !nd_distill_opt_is_flag(name) && i + 1 < argc)
                nd_buf_printf(&opts, " %s", argv[++i]);
        } else if (!id && a[0] != '-') {
            id = a;
        } else {
            fprintf(stderr, "sldd job: unexpected '%s'\n", a);
            nd_buf_free(&opts);
            return 2;
        }
    }
    int status = 2;
    dir = nd_cli_node_dir(dir);
    if (opts.failed)
        job_usage(stderr);
    else
        status = job_run(sub, dir, id, to, &opts, json, wait, quiet);
    nd_buf_free(&opts);
    return status;
}
