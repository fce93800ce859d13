/*
 * nd_dicom_scp.c - on-arrival detection in `sldd serve` (nd_dicom_scp.h,
 * docs/dicom.md): the listener thread runs the Storage SCP; the worker
 * turns each object of the inbox into results in the outbox and sends
 * them to the PACS, in arrival order.
 */
#include "nd_dicom_scp.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nd_detect.h"
#include "nd_dicom_file.h"
#include "nd_dicom_results.h"
#include "sb_parse.h"

/* ---- options ---- */

static int valid_ae(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 16)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '\\')
            return 0;
    return 1;
}

/* "HOST:PORT" (the last colon) into host and *port. */
static int split_host_port(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    return sb_parse_int(colon + 1, 1, 65535, port) ? -1 : 0;
}

int nd_dicom_service_parse(nd_dicom_service_opts *o, const nd_dicom_service_args *a, sc_error *e)
{
    const char *listen = a->listen, *ae = a->ae, *allow = a->allow, *pacs = a->pacs,
               *model = a->model, *bundle = a->bundle;
    memset(o, 0, sizeof *o);
    snprintf(o->ae_title, sizeof o->ae_title, "SLDD");
    o->max_queue = 64;
    o->delta = SD_DETECT_DELTA;
    if (!listen || split_host_port(listen, o->listen_addr, sizeof o->listen_addr, &o->listen_port))
        return sc_error_set(e, SC_EINVAL, "--dicom-listen '%s' is not ADDR:PORT",
                            listen ? listen : "");
    if (ae && !valid_ae(ae))
        return sc_error_set(e, SC_EINVAL, "--dicom-ae '%s' is not an AE title (1-16 characters)",
                            ae);
    if (ae)
        snprintf(o->ae_title, sizeof o->ae_title, "%s", ae);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", allow ? allow : "");
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!valid_ae(t) || o->n_allowed == ND_DICOM_MAX_ALLOWED)
            return sc_error_set(e, SC_EINVAL,
                                "--dicom-allow: '%s' is not an AE title or more than %d were given",
                                t, ND_DICOM_MAX_ALLOWED);
        snprintf(o->allowed[o->n_allowed++], sizeof o->allowed[0], "%s", t);
    }
    char pb[512], *ae_part = NULL;
    snprintf(pb, sizeof pb, "%s", pacs ? pacs : "");
    if (pacs && (ae_part = strrchr(pb, ':')))
        *ae_part++ = '\0';
    if (!pacs || !ae_part || !valid_ae(ae_part) ||
        split_host_port(pb, o->pacs_host, sizeof o->pacs_host, &o->pacs_port))
        return sc_error_set(e, SC_EINVAL, "--dicom-pacs '%s' is not HOST:PORT:AE",
                            pacs ? pacs : "");
    snprintf(o->pacs_ae, sizeof o->pacs_ae, "%s", ae_part);
    if ((model != NULL) == (bundle != NULL))
        return sc_error_set(e, SC_EINVAL,
                            "give the model for DICOM detection: --dicom-model PAYLOAD or "
                            "--dicom-bundle ID");
    snprintf(o->model, sizeof o->model, "%s", model ? model : "");
    snprintf(o->bundle, sizeof o->bundle, "%s", bundle ? bundle : "");
    if (a->queue && sb_parse_int(a->queue, 1, 100000, &o->max_queue))
        return sc_error_set(e, SC_EINVAL, "--dicom-queue '%s' is not a number in 1..100000",
                            a->queue);
    return 0;
}

/* ---- folders ---- */

static int make_dir(const char *p, sc_error *e)
{
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return sc_error_set(e, SC_EIO, "%s: cannot create: %s", p, strerror(errno));
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir ending in suffix (and not starting with '.'), sorted;
 * *names malloc'ed (free each and the array). */
static int list_names(const char *dir, const char *suffix, char ***names)
{
    *names = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    size_t sl = strlen(suffix);
    struct dirent *en;
    while ((en = readdir(d))) {
        size_t l = strlen(en->d_name);
        if (en->d_name[0] == '.' || l <= sl || strcmp(en->d_name + l - sl, suffix))
            continue;
        char **nn = realloc(*names, (size_t)(n + 1) * sizeof *nn);
        if (!nn || !(nn[n] = strdup(en->d_name))) {
            if (nn)
                *names = nn;
            break;
        }
        *names = nn;
        n++;
    }
    closedir(d);
    if (n)
        qsort(*names, (size_t)n, sizeof **names, cmp_names);
    return n;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Remove what an interrupted run left half-made: unanswered receptions
 * (.rx-*.tmp in the inbox) and result folders not renamed into place. */
static void clean_partial(nd_dicom_service *s)
{
    char p[ND_PATH_MAX + 400];
    DIR *d = opendir(s->inbox);
    struct dirent *en;
    while (d && (en = readdir(d)))
        if (!strncmp(en->d_name, ".rx-", 4)) {
            snprintf(p, sizeof p, "%s/%s", s->inbox, en->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    char **names = NULL;
    int n = list_names(s->outbox, ".part", &names);
    for (int i = 0; i < n; i++) {
        const char *f[2] = {"heatmap-sc.dcm", "report-sr.dcm"};
        for (int k = 0; k < 2; k++) {
            snprintf(p, sizeof p, "%s/%s/%s", s->outbox, names[i], f[k]);
            unlink(p);
        }
        snprintf(p, sizeof p, "%s/%s", s->outbox, names[i]);
        rmdir(p);
    }
    free_names(names, n);
}

/* ---- the worker ---- */

/* Detect on inbox/name and write outbox/STEM/ (through STEM.part/).
 * 1 when the object is unusable (moved to failed/), 0 done, -1 trouble. */
static int detect_one(nd_dicom_service *s, const char *name, const char *stem)
{
    char src[ND_PATH_MAX + 300], part[ND_PATH_MAX + 300], fin[ND_PATH_MAX + 300];
    snprintf(src, sizeof src, "%s/%s", s->inbox, name);
    snprintf(part, sizeof part, "%s/%s.part", s->outbox, stem);
    snprintf(fin, sizeof fin, "%s/%s", s->outbox, stem);
    sd_error err = {0};
    nd_image im;
    sd_detect_result res = {0};
    char note[160];
    nd_infer *inf = &s->inf;
    int rc = nd_image_read(src, &im, &err);
    if (!rc && !im.dicom)
        rc = sd_error_set(&err, SD_EFORMAT, "%s: not DICOM", src);
    if (!rc)
        rc = nd_image_to_grid(&im, inf->mm_per_pixel, note, sizeof note, &err);
    if (!rc && (sd_patch_grid_dim(im.w, inf->psize, inf->stride) == 0 ||
                sd_patch_grid_dim(im.h, inf->psize, inf->stride) == 0))
        rc = sd_error_set(&err, SD_EFORMAT, "%s: %dx%d, smaller than one patch of the model", src,
                          im.w, im.h);
    if (!rc)
        rc = nd_infer_detect(inf, im.pix, im.w, im.h, s->o.delta, &res, &err);
    if (rc) {
        nd_image_free(&im);
        char dst[ND_PATH_MAX + 300];
        snprintf(dst, sizeof dst, "%s/%s", s->failed, name);
        nd_log(s->c, "error", "DICOM: %s; moved to %s", err.msg, dst);
        s->failed_objects++;
        return rename(src, dst) == 0 ? 1 : -1;
    }
    mkdir(part, 0700);
    nd_dicom_results_opts ro = {src, part, s->o.model[0] ? s->o.model : NULL,
                                s->o.bundle[0] ? s->o.bundle : NULL, NULL};
    rc = nd_dicom_results_write(&ro, inf, im.pix, im.w, im.h, &res, s->o.delta, &err);
    nd_image_free(&im);
    if (!rc && rename(part, fin) != 0)
        rc = sd_error_set(&err, SD_EIO, "%s: cannot rename: %s", part, strerror(errno));
    if (!rc && nd_detection_audit(s->c->cfg.dir, s->o.bundle, src, &inf->task, res.decision, res.r,
                                  res.num, "dicom", &err))
        nd_log(s->c, "error", "DICOM: audit: %s", err.msg);
    else if (rc)
        nd_log(s->c, "error", "DICOM: results for %s: %s", name, err.msg);
    else {
        char counts[400];
        nd_patch_counts_text(&inf->task, res.num, counts, sizeof counts);
        nd_log(s->c, "info", "DICOM: %s: %s, r %.4f, patches %s", name,
               nd_decision_name(&inf->task, res.decision), isfinite(res.r) ? res.r : 0.0, counts);
    }
    s->detected += !rc;
    sd_detect_result_free(&res);
    return rc ? -1 : 0;
}

/* Send outbox/STEM to the PACS; on success remove it and inbox/name. */
static int send_one(nd_dicom_service *s, const char *name, const char *stem)
{
    char sc[ND_PATH_MAX + 400], sr[ND_PATH_MAX + 400], dir[ND_PATH_MAX + 300];
    snprintf(dir, sizeof dir, "%s/%s", s->outbox, stem);
    snprintf(sc, sizeof sc, "%s/heatmap-sc.dcm", dir);
    snprintf(sr, sizeof sr, "%s/report-sr.dcm", dir);
    const char *files[2] = {sc, sr};
    nd_dicom_peer peer = {s->o.pacs_host, s->o.pacs_port, s->o.pacs_ae, s->o.ae_title};
    sd_error err = {0};
    if (nd_dicom_send(&peer, files, 2, &err)) {
        s->send_errors++;
        nd_log(s->c, "warn", "DICOM: results for %s not sent (kept; will retry): %s", name,
               err.msg);
        return -1;
    }
    char src[ND_PATH_MAX + 300];
    snprintf(src, sizeof src, "%s/%s", s->inbox, name);
    unlink(sc);
    unlink(sr);
    rmdir(dir);
    unlink(src);
    s->sent++;
    nd_log(s->c, "info", "DICOM: results for %s stored in the PACS %s:%d", name, s->o.pacs_host,
           s->o.pacs_port);
    return 0;
}

/* One pass over the inbox, oldest first; -1 when the PACS failed. */
static int work_once(nd_dicom_service *s)
{
    char **names = NULL;
    int n = list_names(s->inbox, ".dcm", &names), rc = 0;
    for (int i = 0; i < n && !rc && !atomic_load(&s->c->stopping); i++) {
        char stem[256], fin[ND_PATH_MAX + 300];
        snprintf(stem, sizeof stem, "%.*s", (int)strlen(names[i]) - 4, names[i]);
        snprintf(fin, sizeof fin, "%s/%s", s->outbox, stem);
        struct stat st;
        if (stat(fin, &st) != 0) {
            nd_test_hold(s->c, "dicom-before-detect");
            int d = detect_one(s, names[i], stem);
            if (d == 1)
                continue;
            if (d < 0) {
                rc = -1;
                break;
            }
        }
        nd_test_hold(s->c, "dicom-before-send");
        rc = send_one(s, names[i], stem);
    }
    free_names(names, n);
    return rc;
}

static void *worker_main(void *arg)
{
    nd_dicom_service *s = arg;
    int64_t backoff = 0;
    while (!atomic_load(&s->c->stopping)) {
        if (work_once(s) < 0)
            backoff = backoff ? (backoff * 2 > 30000 ? 30000 : backoff * 2) : 500;
        else
            backoff = 0;
        nd_wait(s->c, &s->wake, &s->pending, backoff ? backoff : 1000);
    }
    return NULL;
}

static void *listener_main(void *arg)
{
    nd_dicom_service *s = arg;
    sd_error err = {0};
    if (nd_dicom_scp_run(s->scp, &err))
        nd_log(s->c, "error", "%s", err.msg);
    return NULL;
}

static void on_stored(void *arg)
{
    nd_dicom_service *s = arg;
    nd_wake(s->c, &s->wake, &s->pending);
}

static void on_log(void *arg, const char *level, const char *msg)
{
    nd_dicom_service *s = arg;
    nd_log(s->c, level, "%s", msg);
}

static int load_model(nd_dicom_service *s, sc_error *e)
{
    sd_error err = {0};
    char id[33];
    const char *dev = s->c->cfg.device[0] ? s->c->cfg.device : "cpu";
    int rc = sd_backend_create(&s->be, dev, &err);
    if (!rc)
        rc = s->o.model[0]
                 ? nd_infer_from_payload_file(&s->inf, s->o.model, s->be, &err)
                 : nd_bundle_classifier(s->c->cfg.dir, s->o.bundle, s->be, &s->inf, id, NULL, &err);
    if (!rc)
        rc = nd_infer_check_gastric(&s->inf, &err);
    if (rc)
        return sc_error_set(e, SC_EINVAL, "DICOM detection model: %s", err.msg);
    return 0;
}

int nd_dicom_service_start(nd_dicom_service *s, nd_ctx *c, const nd_dicom_service_opts *o,
                           sc_error *e)
{
    memset(s, 0, sizeof *s);
    s->c = c;
    s->o = *o;
    char base[ND_PATH_MAX + 16];
    snprintf(base, sizeof base, "%s/dicom", c->cfg.dir);
    snprintf(s->inbox, sizeof s->inbox, "%s/inbox", base);
    snprintf(s->outbox, sizeof s->outbox, "%s/outbox", base);
    snprintf(s->failed, sizeof s->failed, "%s/failed", base);
    int rc;
    if ((rc = make_dir(base, e)) || (rc = make_dir(s->inbox, e)) || (rc = make_dir(s->outbox, e)) ||
        (rc = make_dir(s->failed, e)))
        return rc;
    clean_partial(s);
    if ((rc = load_model(s, e)))
        return rc;
    for (size_t i = 0; i < o->n_allowed; i++)
        s->allowed[i] = s->o.allowed[i];
    nd_dicom_scp_config cfg = {
        s->o.listen_addr, s->o.listen_port, s->o.ae_title, s->allowed, s->o.n_allowed,
        s->inbox,         s->o.max_queue,   on_stored,     on_log,     s};
    sd_error err = {0};
    if (nd_dicom_scp_create(&s->scp, &cfg, &err))
        return sc_error_set(e, SC_EIO, "%s", err.msg);
    pthread_cond_init(&s->wake, NULL);
    if (pthread_create(&s->worker, NULL, worker_main, s) != 0)
        return sc_error_set(e, SC_EIO, "cannot start the DICOM worker");
    s->worker_started = 1;
    if (pthread_create(&s->listener, NULL, listener_main, s) != 0)
        return sc_error_set(e, SC_EIO, "cannot start the DICOM listener");
    s->listener_started = 1;
    nd_log(c, "info",
           "DICOM: Storage SCP '%s' on %s:%d (%zu calling AE title(s) allowed%s), "
           "results to %s:%d '%s'",
           s->o.ae_title, s->o.listen_addr, s->o.listen_port, s->o.n_allowed,
           s->o.n_allowed ? "" : ": any", s->o.pacs_host, s->o.pacs_port, s->o.pacs_ae);
    return 0;
}

void nd_dicom_service_stop(nd_dicom_service *s)
{
    nd_dicom_scp_stop(s->scp);
    if (s->listener_started)
        pthread_join(s->listener, NULL);
    if (s->worker_started) {
        nd_wake(s->c, &s->wake, &s->pending);
        pthread_join(s->worker, NULL);
        pthread_cond_destroy(&s->wake);
    }
    if (s->scp) {
        nd_dicom_scp_stats st;
        nd_dicom_scp_counts(s->scp, &st);
        nd_log(s->c, "info",
               "DICOM: %ld stored, %ld associations refused, %ld refused (queue full), %ld "
               "errors; %ld detected, %ld sent, %ld send errors, %ld unreadable",
               st.stored, st.refused_associations, st.refused_full, st.errors,
               atomic_load(&s->detected), atomic_load(&s->sent), atomic_load(&s->send_errors),
               atomic_load(&s->failed_objects));
    }
    nd_dicom_scp_destroy(s->scp);
    s->scp = NULL;
    nd_infer_free(&s->inf);
    sd_backend_destroy(s->be);
    s->be = NULL;
}
