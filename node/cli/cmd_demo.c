/*
 * cmd_demo.c - `sldd demo`: three hospitals on loopback exchange distilled
 * gastric data, start to finish, with SYNTHETIC data.
 *
 * Every step is the sldd command an operator would type (this binary run
 * as a child process), so the demo doubles as a walk-through: synthetic data
 * sets, node directories with keys and TLS certificates from one test CA,
 * admins, peer records, three `sldd serve` daemons, two distillation jobs,
 * the approver's view and the approval (a bundle whose sender HM is near 0
 * is rejected with its reason, as docs/admin.md asks), delivery, rebuild and evaluation at
 * the receivers, detection with heat maps, and a closing table.  The node
 * directories stay for inspection; the daemons are stopped at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "nd_admin_client.h"
#include "nd_buf.h"
#include "nd_detect.h"
#include "nd_distill.h"
#include "nd_json_get.h"
#include "sc_util.h"
#include "sn_x509.h"
#include "sb_parse.h"

#define N_HOSP       3
#define WAIT_SECONDS 1800

typedef struct hosp {
    char id[32], admin[32];
    char dir[1024], data[1024];
    char pin[SC_PIN_CURL_SIZE];
    pid_t pid;
    int port;
    int distils;
    long long job;
    char bundle[33];
    int rejected; /* its approver rejected it: not sent */
    double sender_hm;
} hosp;

/* The demo approver's rule for "HM near 0" (docs/admin.md, what to check):
 * such a model calls nearly every image one way and is of no use. */
#define DEMO_MIN_HM 0.2

typedef struct demo {
    char dir[1024], self[4096], log[1100], passfile[1100];
    int quick;
    hosp h[N_HOSP];
    /* settings */
    int count, size, patch, stride, resize;
    char distill[512];
} demo;

static void step(const char *fmt, ...) SC_PRINTF(1, 2);
static void step(const char *fmt, ...)
{
    va_list ap;
    printf("\n== ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* Run this binary with args; quiet sends its output to the demo log. */
static int run(demo *d, int quiet, const char *const *args)
{
    char *argv[40];
    int n = 0;
    argv[n++] = (char *)"sldd";
    for (; args[n - 1] && n < 39; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    if (!quiet) {
        printf("$ sldd");
        for (int i = 1; i < n; i++)
            printf(" %s", argv[i]);
        printf("\n");
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (quiet) {
            int fd = open(d->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
        }
        execv(d->self, argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define RUN(d, quiet, ...)                                                                   \
    do {                                                                                     \
        const char *a_[] = {__VA_ARGS__, NULL};                                              \
        if (run(d, quiet, a_) != 0) {                                                        \
            fprintf(stderr, "sldd demo: '%s %s' failed (see %s)\n", a_[0], a_[1], (d)->log); \
            return -1;                                                                       \
        }                                                                                    \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int api_json(const char *dir, const char *path, nd_api_response *r)
{
    sc_error e = {0, ""};
    if (nd_api_request(dir, "GET", path, NULL, NULL, 0, r, &e)) {
        fprintf(stderr, "sldd demo: %s: %s\n", dir, e.msg);
        return -1;
    }
    if (r->status != 200) {
        fprintf(stderr, "sldd demo: %s %s: %s", dir, path, (char *)r->body);
        nd_api_response_free(r);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- setup */

static int write_text(const char *path, const char *text, unsigned mode)
{
    sc_error e = {0, ""};
    if (sc_file_write_atomic(path, text, strlen(text), mode, &e)) {
        fprintf(stderr, "sldd demo: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int setup(demo *d)
{
    char ca[1100], conf[1200], peerf[N_HOSP][1100], seed[16], count[16], size[16], patch[16],
        stride[16], resize[16];
    step("1. Three hospitals, each with its own SYNTHETIC gastric X-ray data set");
    snprintf(count, sizeof count, "%d", d->count);
    snprintf(size, sizeof size, "%d", d->size);
    snprintf(patch, sizeof patch, "%d", d->patch);
    snprintf(stride, sizeof stride, "%d", d->stride);
    snprintf(resize, sizeof resize, "%d", d->resize);
    for (int i = 0; i < N_HOSP; i++) {
        hosp *h = &d->h[i];
        snprintf(seed, sizeof seed, "%d", 101 + i);
        RUN(d, 1, "dataset", "synth", "--out", h->data, "--count", count, "--size", size, "--seed",
            seed);
        RUN(d, 1, "dataset", "prepare", "--data", h->data, "--patch", patch, "--stride", stride,
            "--patch-resize", resize);
        printf("%s: %s images of %spx (seed %s) in %s, %spx patches every %spx -> %spx input\n",
               h->id, count, size, seed, h->data, patch, stride, resize);
    }
    step("2. Node directories: keys, an admin each, TLS certificates from one test CA");
    snprintf(ca, sizeof ca, "%s/federation-ca", d->dir);
    if (write_text(d->passfile, "demo passphrase - not for real use\n", 0600))
        return -1;
    for (int i = 0; i < N_HOSP; i++) {
        hosp *h = &d->h[i];
        RUN(d, 1, "init", "--dir", h->dir, "--id", h->id, "--data", h->data, "--tls", "--ca-dir",
            ca, "--listen", "127.0.0.1:0");
        RUN(d, 1, "admin", "add", "--dir", h->dir, "--name", h->admin, "--passphrase-file",
            d->passfile, "--kdf", "interactive");
        snprintf(peerf[i], sizeof peerf[i], "%s/%s.peer", d->dir, h->id);
        RUN(d, 1, "keys", "export", "--dir", h->dir, "--out", peerf[i]);
        char cert[1200];
        unsigned char pin[SC_PIN_LEN];
        sc_error e = {0, ""};
        snprintf(cert, sizeof cert, "%s/tls/node.pem", h->dir);
        if (sn_x509_spki_pin_file(cert, pin, &e) ||
            sn_x509_pin_to_curl(pin, h->pin, sizeof h->pin)) {
            fprintf(stderr, "sldd demo: %s\n", e.msg);
            return -1;
        }
        snprintf(conf, sizeof conf,
                 "\n# sldd demo: small CPU settings\ndistill: %s\nretry-base-ms: 500\n"
                 "retry-max-ms: 5000\n",
                 d->distill);
        char path[1200];
        snprintf(path, sizeof path, "%s/node.conf", h->dir);
        FILE *f = fopen(path, "a");
        if (!f || fputs(conf, f) < 0 || fclose(f)) {
            fprintf(stderr, "sldd demo: cannot write %s\n", path);
            return -1;
        }
        printf("%s: node %s, admin %s, TLS pin %.24s...\n", h->id, h->dir, h->admin, h->pin);
    }
    step("3. Each hospital adds the others' public keys (compare fingerprints in real life)");
    for (int i = 0; i < N_HOSP; i++)
        for (int j = 0; j < N_HOSP; j++)
            if (i != j)
                RUN(d, 1, "peer", "add", "--dir", d->h[i].dir, "--file", peerf[j]);
    printf("every node knows the other two nodes' signing, encryption and admin keys\n");
    return 0;
}

static int start_nodes(demo *d)
{
    step("4. Start the three nodes (sldd serve), mutual TLS 1.3 on 127.0.0.1");
    for (int i = 0; i < N_HOSP; i++) {
        hosp *h = &d->h[i];
        char log[1200], info[1200];
        snprintf(log, sizeof log, "%s/serve.log", h->dir);
        snprintf(info, sizeof info, "%s/serve.json", h->dir);
        fflush(stdout);
        h->pid = fork();
        if (h->pid < 0)
            return -1;
        if (h->pid == 0) {
            char *argv2[] = {(char *)"sldd",
                             (char *)"serve",
                             (char *)"--dir",
                             h->dir,
                             (char *)"--log",
                             log,
                             NULL};
            int fd = open("/dev/null", O_RDWR);
            if (fd >= 0) {
                dup2(fd, 0);
                dup2(fd, 1);
            }
            execv(d->self, argv2);
            _exit(127);
        }
        for (int t = 0;; t++) {
            uint8_t *buf = NULL;
            size_t len = 0;
            sc_error e = {0, ""};
            int st;
            if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
                h->pid = 0;
                fprintf(stderr, "sldd demo: %s did not start; see %s\n", h->id, log);
                return -1;
            }
            if (sc_file_read(info, 65536, 0, &buf, &len, &e) == 0) {
                char v[32];
                long long pid = 0;
                if (!nd_json_get((char *)buf, "pid", v, sizeof v) ||
                    sb_parse_i64(v, 1, LLONG_MAX, &pid))
                    pid = 0;
                if (pid == h->pid)
                    h->port = (int)nd_json_num((char *)buf, "port", 0);
                free(buf);
                if (h->port)
                    break;
            }
            if (t > 600) {
                fprintf(stderr, "sldd demo: %s did not start within a minute; see %s\n", h->id,
                        log);
                return -1;
            }
            sleep_ms(100);
        }
        printf("%s: pid %ld, peers on https://127.0.0.1:%d, admin API %s/admin.sock, log %s\n",
               h->id, (long)h->pid, h->port, h->dir, log);
    }
    printf("each node learns where the others listen and which TLS key they hold:\n");
    for (int i = 0; i < N_HOSP; i++)
        for (int j = 0; j < N_HOSP; j++) {
            if (i == j)
                continue;
            char url[64];
            snprintf(url, sizeof url, "https://127.0.0.1:%d", d->h[j].port);
            RUN(d, 1, "peer", "address", "--dir", d->h[i].dir, "--id", d->h[j].id, "--url", url,
                "--tls-pin", d->h[j].pin);
        }
    return run(d, 0, (const char *[]){"peer", "list", "--dir", d->h[0].dir, NULL});
}

static void stop_nodes(demo *d)
{
    for (int i = 0; i < N_HOSP; i++)
        if (d->h[i].pid > 0)
            kill(d->h[i].pid, SIGTERM);
    for (int i = 0; i < N_HOSP; i++)
        if (d->h[i].pid > 0) {
            int st;
            while (waitpid(d->h[i].pid, &st, 0) < 0 && errno == EINTR)
                ;
            d->h[i].pid = 0;
        }
}

/* ---------------------------------------------------------------- distil */

static int distil(demo *d)
{
    step("5. Hospitals A and B distil their data (Algorithm 1) for the other two");
    printf("options (node.conf 'distill:'): %s\n", d->distill);
    for (int i = 0; i < N_HOSP; i++) {
        hosp *h = &d->h[i];
        if (!h->distils)
            continue;
        char to[80], body[256];
        nd_api_response r;
        sc_error e = {0, ""};
        snprintf(to, sizeof to, "%s,%s", d->h[(i + 1) % N_HOSP].id, d->h[(i + 2) % N_HOSP].id);
        snprintf(body, sizeof body, "to: %s\noptions: \n", to);
        printf("$ sldd job distill --dir %s --to %s\n", h->dir, to);
        if (nd_api_request(h->dir, "POST", "/v1/jobs", "text/plain", body, strlen(body), &r, &e) ||
            r.status != 201) {
            fprintf(stderr, "sldd demo: %s: %s\n", h->id, e.msg[0] ? e.msg : (char *)r.body);
            nd_api_response_free(&r);
            return -1;
        }
        /* the answer is the job id on a line of its own, as for `sldd job distill` */
        ((char *)r.body)[strcspn((char *)r.body, "\n")] = '\0';
        if (sb_parse_i64((char *)r.body, 1, LLONG_MAX, &h->job)) {
            fprintf(stderr, "sldd demo: %s: job id '%.40s' is not a number\n", h->id,
                    (char *)r.body);
            nd_api_response_free(&r);
            return -1;
        }
        nd_api_response_free(&r);
        printf("job %lld queued at %s\n", h->job, h->id);
    }
    double last[N_HOSP];
    for (int i = 0; i < N_HOSP; i++)
        last[i] = -100;
    time_t t0 = time(NULL);
    for (;;) {
        int running = 0;
        for (int i = 0; i < N_HOSP; i++) {
            hosp *h = &d->h[i];
            if (!h->distils || h->bundle[0])
                continue;
            char path[64], state[32] = "", et[32] = "-";
            nd_api_response r;
            snprintf(path, sizeof path, "/v1/jobs/%lld", h->job);
            if (api_json(h->dir, path, &r))
                return -1;
            const char *j = (const char *)r.body;
            nd_json_get(j, "state", state, sizeof state);
            double pct = nd_json_num(j, "percent", 0), eta = nd_json_num(j, "eta_seconds", NAN);
            if (isfinite(eta))
                nd_fmt_duration(eta, et, sizeof et);
            if (pct >= last[i] + 10 || !strcmp(state, "done")) {
                printf("%s job %lld: %-8s %5.1f%%  iteration %4.0f/%-4.0f  loss %.4f  "
                       "val acc %.3f  val HM %.3f  ETA %s\n",
                       h->id, h->job, state, pct, nd_json_num(j, "iter", 0),
                       nd_json_num(j, "total", 0), nd_json_num(j, "loss", NAN),
                       nd_json_num(j, "val_acc", NAN), nd_json_num(j, "val_hm", NAN), et);
                fflush(stdout);
                last[i] = pct;
            }
            if (!strcmp(state, "done")) {
                nd_json_get(j, "bundle", h->bundle, sizeof h->bundle);
            } else if (!strcmp(state, "failed") || !strcmp(state, "canceled")) {
                char err[400] = "";
                nd_json_get(j, "error", err, sizeof err);
                fprintf(stderr, "sldd demo: %s job %s: %s\n", h->id, state, err);
                nd_api_response_free(&r);
                return -1;
            } else {
                running = 1;
            }
            nd_api_response_free(&r);
        }
        if (!running)
            break;
        if (time(NULL) - t0 > WAIT_SECONDS) {
            fprintf(stderr, "sldd demo: distillation did not finish in %d s\n", WAIT_SECONDS);
            return -1;
        }
        sleep_ms(500);
    }
    return 0;
}

/* The value of key inside the object that follows `after` in json. */
static double json_after(const char *json, const char *after, const char *key)
{
    const char *p = strstr(json, after);
    return p ? nd_json_num(p, key, NAN) : NAN;
}

static int approve(demo *d)
{
    for (int i = 0; i < N_HOSP; i++) {
        hosp *h = &d->h[i];
        if (!h->distils)
            continue;
        char path[80], reason[200];
        nd_api_response r;
        snprintf(path, sizeof path, "/v1/bundles/%s", h->bundle);
        if (api_json(h->dir, path, &r))
            return -1;
        h->sender_hm = json_after((const char *)r.body, "\"sender_metrics\":", "hm");
        nd_api_response_free(&r);
        h->rejected = isfinite(h->sender_hm) && h->sender_hm < DEMO_MIN_HM;
        step("6%c. What the approver at %s sees, and the %s (signed with %s's key)",
             'a' + (h == &d->h[0] ? 0 : 1), h->id, h->rejected ? "rejection" : "approval",
             h->admin);
        printf("(non-interactive here: --yes and a passphrase file; without them sldd asks on "
               "the terminal)\n");
        if (!h->rejected) {
            RUN(d, 0, "bundle", "approve", h->bundle, "--dir", h->dir, "--admin", h->admin,
                "--passphrase-file", d->passfile, "--yes");
            continue;
        }
        snprintf(reason, sizeof reason,
                 "sender HM %.3f: the model calls (nearly) every image one way, not worth "
                 "sending",
                 h->sender_hm);
        printf("The sender's own HM is %.3f (below %.1f): docs/admin.md says to reject such\n"
               "a bundle, so the demo's approver does, with the reason in the audit log.\n",
               h->sender_hm, DEMO_MIN_HM);
        RUN(d, 0, "bundle", "reject", h->bundle, "--dir", h->dir, "--admin", h->admin,
            "--passphrase-file", d->passfile, "--yes", "--reason", reason);
    }
    return 0;
}

/* Wait until every receiver has imported every bundle meant for it. */
static int wait_imports(demo *d)
{
    step("7. Delivery (sealed per recipient, signed receipts) and import at the receivers");
    time_t t0 = time(NULL);
    for (;;) {
        int missing = 0;
        for (int i = 0; i < N_HOSP; i++) {
            nd_api_response r;
            if (api_json(d->h[i].dir, "/v1/bundles", &r))
                return -1;
            for (int s = 0; s < N_HOSP; s++) {
                if (s == i || !d->h[s].bundle[0] || d->h[s].rejected)
                    continue;
                const char *p = strstr((char *)r.body, d->h[s].bundle);
                char state[32] = "";
                while (p && p > (char *)r.body && *p != '{')
                    p--; /* the bundle's own object in the list */
                if (p)
                    nd_json_get(p, "state", state, sizeof state);
                if (!strcmp(state, "import-failed")) {
                    fprintf(stderr,
                            "sldd demo: %s could not import %s's bundle (see %s/serve.log)\n",
                            d->h[i].id, d->h[s].id, d->h[i].dir);
                    nd_api_response_free(&r);
                    return -1;
                }
                if (strcmp(state, "available"))
                    missing++;
            }
            nd_api_response_free(&r);
        }
        if (!missing)
            break;
        if (time(NULL) - t0 > WAIT_SECONDS) {
            fprintf(stderr, "sldd demo: bundles not imported within %d s\n", WAIT_SECONDS);
            return -1;
        }
        sleep_ms(300);
    }
    for (int i = 0; i < N_HOSP; i++) {
        printf("\n%s:\n", d->h[i].id);
        fflush(stdout);
        if (run(d, 0, (const char *[]){"bundle", "list", "--dir", d->h[i].dir, NULL}))
            return -1;
    }
    return 0;
}

/* Two test images of a hospital's own data (one of each label when it can). */
static int sample_images(const hosp *h, char out[2][1200])
{
    char path[1200];
    uint8_t *buf = NULL;
    size_t len = 0;
    sc_error e = {0, ""};
    int have[2] = {0, 0}, n = 0;
    snprintf(path, sizeof path, "%s/labels.csv", h->data);
    if (sc_file_read(path, 1 << 20, 0, &buf, &len, &e))
        return 0;
    char *save = NULL;
    for (char *line = strtok_r((char *)buf, "\n", &save); line && n < 2;
         line = strtok_r(NULL, "\n", &save)) {
        char id[128];
        int label;
        char split[16];
        if (sscanf(line, "%127[^,],%d,%15s", id, &label, split) != 3 || strcmp(split, "test") ||
            label < 0 || label > 1 || have[label])
            continue;
        have[label] = 1;
        snprintf(out[n++], 1200, "%s/images/%s.png", h->data, id);
    }
    free(buf);
    return n;
}

static int detect(demo *d)
{
    step("8. Detection at every node with what it received (paper Eq. 9, delta 0.4)");
    for (int i = 0; i < N_HOSP; i++) {
        hosp *h = &d->h[i];
        char imgs[2][1200], dir[1200];
        int n = sample_images(h, imgs);
        snprintf(dir, sizeof dir, "%s/detections", h->dir);
        if (mkdir(dir, 0755) && errno != EEXIST)
            return -1;
        for (int s = 0; s < N_HOSP; s++) {
            if (s == i || !d->h[s].bundle[0] || d->h[s].rejected)
                continue;
            for (int k = 0; k < n; k++) {
                char heat[2600];
                sd_error derr = {0, ""};
                const char *base = strrchr(imgs[k], '/');
                sd_detect_result res;
                snprintf(heat, sizeof heat, "%s/%.12s-%.200s", dir, d->h[s].bundle,
                         base ? base + 1 : imgs[k]);
                if (nd_detect_with_bundle(h->dir, d->h[s].bundle, imgs[k], heat, 1, "demo", &res,
                                          &derr)) {
                    fprintf(stderr, "sldd demo: %s: %s\n", h->id, derr.msg);
                    return -1;
                }
                printf("%s, bundle from %s, image %s: %s (r %.3f; I %d N %d P %d)\n  heat map %s\n",
                       h->id, d->h[s].id, base ? base + 1 : imgs[k],
                       res.decision == SD_DETECT_POSITIVE   ? "GASTRITIS"
                       : res.decision == SD_DETECT_NEGATIVE ? "no gastritis"
                                                            : "undetermined",
                       isfinite(res.r) ? res.r : NAN, res.num[0], res.num[1], res.num[2], heat);
                sd_detect_result_free(&res);
            }
        }
    }
    printf("(each detection is an entry in the node's audit log: sldd audit show --dir NODE)\n");
    return 0;
}

static int table(demo *d)
{
    step("9. Who sent what, and how well it works at the sender and at each receiver");
    printf("%-12s %-11s %-23s %9s %9s %9s", "bundle", "from", "to", "payload", "envelope",
           "HM sender");
    for (int i = 0; i < N_HOSP; i++)
        printf(" %12s", d->h[i].id);
    printf("\n");
    for (int s = 0; s < N_HOSP; s++) {
        hosp *h = &d->h[s];
        if (!h->bundle[0])
            continue;
        char path[80], to[80];
        nd_api_response r;
        snprintf(path, sizeof path, "/v1/bundles/%s", h->bundle);
        if (api_json(h->dir, path, &r))
            return -1;
        const char *j = (const char *)r.body;
        double size = nd_json_num(j, "payload_size", NAN),
               env = json_after(j, "\"deliveries\":", "envelope_size"),
               hm = json_after(j, "\"sender_metrics\":", "hm");
        nd_json_get(j, "audience", to, sizeof to);
        nd_api_response_free(&r);
        if (h->rejected) {
            printf("%-12.12s %-11s %-23s %9.0f %9s %9.3f   rejected by %s (sender HM below %.1f): "
                   "not sent\n",
                   h->bundle, h->id, to, size, "-", hm, h->admin, DEMO_MIN_HM);
            continue;
        }
        printf("%-12.12s %-11s %-23s %9.0f %9.0f %9.3f", h->bundle, h->id, to, size, env, hm);
        for (int i = 0; i < N_HOSP; i++) {
            if (i == s) {
                printf(" %12s", "(sender)");
                continue;
            }
            if (api_json(d->h[i].dir, path, &r))
                return -1;
            printf(" %12.3f", json_after((char *)r.body, "\"evaluation\":", "hm"));
            nd_api_response_free(&r);
        }
        printf("\n");
    }
    printf("\nHM: harmonic mean of sensitivity and specificity over each site's own validation "
           "images\n(the sender's figure is what it measured and signed; the others are "
           "measured by each receiver\non its own images after rebuilding the model from the "
           "bundle).  Sizes in bytes.\n");
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sldd demo [--dir DIR] [--quick]\n"
               "\n"
               "Three hospitals on loopback, each with its own SYNTHETIC gastric X-ray data,\n"
               "keys and TLS certificate: two distil their data, an admin approves each\n"
               "bundle after seeing it, the nodes exchange them over mutual TLS, every\n"
               "node rebuilds and evaluates what it received and runs detection on sample\n"
               "images (heat maps).  Ends with a table of who sent what, sizes and HM at the\n"
               "sender and at each receiver.  The node directories stay in DIR (default\n"
               "./sldd-demo, which must not exist yet); a log of every step is DIR/demo.log.\n"
               "\n"
               "  --quick   smaller images and fewer iterations (well under a minute)\n");
}

int cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"quick", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    demo *d = calloc(1, sizeof *d);
    const char *dir = "sldd-demo";
    int o;
    if (!d)
        return 1;
    optind = 1;
    while ((o = getopt_long(argc, argv, "d:qh", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'q': d->quick = 1; break;
        case 'h':
            usage(stdout);
            free(d);
            return 0;
        default:
            usage(stderr);
            free(d);
            return 2;
        }
    }
    if (optind != argc || strlen(dir) > 200) {
        usage(stderr);
        free(d);
        return 2;
    }
    ssize_t n = readlink("/proc/self/exe", d->self, sizeof d->self - 1);
    if (n <= 0) {
        fprintf(stderr, "sldd demo: cannot find this program (/proc/self/exe)\n");
        free(d);
        return 1;
    }
    d->self[n] = 0;
    if (mkdir(dir, 0755)) {
        fprintf(stderr, "sldd demo: cannot create %s: %s%s\n", dir, strerror(errno),
                errno == EEXIST ? " (remove it, or give another --dir)" : "");
        free(d);
        return 1;
    }
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    snprintf(d->log, sizeof d->log, "%s/demo.log", dir);
    snprintf(d->passfile, sizeof d->passfile, "%s/passphrase", dir);
    if (d->quick) {
        d->count = 32;
        d->size = 128;
        d->patch = 32;
        d->stride = 16;
        d->resize = 16;
        snprintf(d->distill, sizeof d->distill,
                 "--arch convnet-bn --width 8 --depth 2 --images-per-step 3 --iterations 60 "
                 "--real-batch 64 --eval-every 20 --checkpoint-every 20");
    } else {
        /* 80 images leave 16 for validation: enough for an HM that means
         * something; SLDD(3) labels (one image per class) in 3 steps */
        d->count = 80;
        d->size = 256;
        d->patch = 32;
        d->stride = 16;
        d->resize = 16;
        snprintf(d->distill, sizeof d->distill,
                 "--arch convnet-bn --width 16 --depth 3 --images-per-step 3 --steps 3 "
                 "--iterations 300 --real-batch 64 --eval-every 50 --checkpoint-every 50");
    }
    static const char *const names[N_HOSP] = {"hospital-a", "hospital-b", "hospital-c"};
    for (int i = 0; i < N_HOSP; i++) {
        hosp *h = &d->h[i];
        snprintf(h->id, sizeof h->id, "%s", names[i]);
        snprintf(h->admin, sizeof h->admin, "admin-%c", 'a' + i);
        snprintf(h->dir, sizeof h->dir, "%s/%s", dir, names[i]);
        snprintf(h->data, sizeof h->data, "%s/data/%s", dir, names[i]);
        h->distils = i < 2;
    }
    char datadir[1100];
    snprintf(datadir, sizeof datadir, "%s/data", dir);
    mkdir(datadir, 0755);
    printf("SLDD demo: three hospitals on 127.0.0.1 exchange soft-label distilled data.\n"
           "ALL DATA HERE IS SYNTHETIC (generated stomach phantoms), never patient data.\n"
           "Directory %s; every command's output is also in %s.\n",
           dir, d->log);
    time_t t0 = time(NULL);
    int rc = setup(d);
    if (!rc)
        rc = start_nodes(d);
    if (!rc)
        rc = distil(d);
    if (!rc)
        rc = approve(d);
    if (!rc)
        rc = wait_imports(d);
    if (!rc)
        rc = detect(d);
    if (!rc)
        rc = table(d);
    step("10. Stopping the nodes (SIGTERM); their directories stay in %s", dir);
    stop_nodes(d);
    if (!rc) {
        printf("done in %ld s.  Look around:\n"
               "  sldd bundle list --dir %s/hospital-b\n"
               "  sldd audit show --dir %s/hospital-a\n"
               "  sldd audit verify --dir %s/hospital-c\n"
               "  %s/hospital-a/bundles/*/grid.png and privacy.png, %s/*/detections/*.png\n",
               (long)(time(NULL) - t0), dir, dir, dir, dir, dir);
    } else {
        fprintf(stderr,
                "sldd demo: stopped after an error; the node directories and logs are "
                "in %s\n",
                dir);
    }
    free(d);
    return rc ? 1 : 0;
}
