/*
 * test_node_weights.c - a bundle's theta_opt in a node's store, without a
 * daemon.  The import's rebuild (nd_theta_opt_rebuild, what the import
 * worker runs) parses the payload once and replays it once; detection with
 * the bundle (nd_bundle_classifier, what `sldd detect --bundle` and the
 * demo use) then neither parses nor replays, and its stored theta_opt gives
 * the same weights, theta_bn, geometry, label and detection, bit for bit,
 * as a fresh replay of the payload.  A bundle without a stored theta_opt (a
 * node's own, a version-1 database from before the theta_opt table, or a
 * damaged object) is replayed once, stored, and not replayed again.  The
 * one evaluation (nd_data_evaluate_weights) takes a payload's normalisation
 * explicitly, leaves the data set as it is, and gives what evaluating with
 * the data set's statistics swapped in gave.
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd_data.h"
#include "nd_detect.h"
#include "nd_infer.h"
#include "nd_objects.h"
#include "nd_payload.h"
#include "nd_state.h"
#include "sd_init.h"
#include "sd_synth.h"
#include "sd_test.h"

static char root[256];
static const char *const BID = "00112233445566778899aabbccddeeff";

/* A small gastric distilled set: ConvNet-BN on 12x12 patches cut 24px with
 * stride 12, two steps of three images, frozen batch norm so that theta_bn
 * takes part in the replay itself. */
static int make_payload(uint8_t **buf, size_t *len)
{
    sd_distilled d = {0};
    sd_model *m = NULL;
    sd_error err = {0};
    snprintf(d.spec.arch, sizeof d.spec.arch, "convnet");
    d.spec.bn = 1;
    d.spec.depth = 2;
    d.spec.width = 4;
    d.spec.in_c = 1;
    d.spec.in_h = d.spec.in_w = 12;
    d.spec.classes = 3;
    int rc = sd_model_create(&m, &d.spec, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc)
        return -1;
    d.seed = 11;
    d.steps = 2;
    d.images_per_step = 3;
    d.epochs_inner = 2;
    d.bn_mode = SD_BN_FROZEN;
    d.label_param = SD_LABEL_SOFTMAX;
    d.n_bn = m->n_bn;
    size_t M = 6, D = 144, K = 3, T = 4;
    d.images = malloc(M * D * sizeof(float));
    d.labels = malloc(M * K * sizeof(float));
    d.step_sizes = malloc(T * sizeof(float));
    d.theta_bn = malloc((m->n_bn + 1) * sizeof(float));
    sd_real *th0 = malloc(m->n_theta * sizeof *th0);
    rc = !d.images || !d.labels || !d.step_sizes || !d.theta_bn || !th0;
    CHECK(rc == 0);
    if (!rc)
        rc = sd_init_theta(m, d.seed, th0, &err) ||
             sd_theta_sha256(th0, m->n_theta, d.theta0_sha256, &err);
    if (!rc) {
        for (size_t i = 0; i < M * D; i++)
            d.images[i] = (float)sd_normal(3, 1, i);
        for (size_t i = 0; i < M * K; i++)
            d.labels[i] = (float)sd_normal(3, 2, i);
        for (size_t t = 0; t < T; t++)
            d.step_sizes[t] = 0.05f;
        for (size_t i = 0; i < m->n_bn; i++) /* means, then variances, per layer */
            d.theta_bn[i] = 0.5f + 0.1f * (float)fabs(sd_normal(3, 3, i));
        nd_payload_meta meta = {0};
        static const char *const aud[] = {"node-b"};
        meta.sender = "node-a";
        meta.audience = aud;
        meta.n_audience = 1;
        meta.created_unix = 1767225600;
        meta.expires_unix = meta.created_unix + 86400;
        meta.sequence = 1;
        meta.norm_mean = 0.3125;
        meta.norm_std = 0.1875;
        meta.patch_size = 24;
        meta.patch_stride = 12;
        meta.patch_resize = 12;
        meta.bn_count = 100;
        meta.metrics_split = "val";
        rc = nd_payload_build(&d, &meta, buf, len, &err);
        CHECKF(rc == 0, "%s", err.msg);
    }
    free(th0);
    sd_model_destroy(m);
    sd_distilled_free(&d);
    return rc ? -1 : 0;
}

/* a 96x80 image with a bright disc (the "stomach") and some texture */
static uint16_t *make_image(int w, int h)
{
    uint16_t *p = malloc((size_t)w * (size_t)h * sizeof *p);
    for (int y = 0; p && y < h; y++)
        for (int x = 0; x < w; x++) {
            double r = hypot(x - w / 2.0, y - h / 2.0), v = r < 30 ? 0.6 : 0.1;
            v += 0.2 * (double)sd_uniform_u32(5, 1, (uint64_t)(y * w + x)) / 4294967296.0;
            p[y * w + x] = (uint16_t)(v * 65535 / 1.2);
        }
    return p;
}

static void add_bundle(sqlite3 *db, const char *ph, size_t len)
{
    sc_error e = {0, ""};
    int rc = nd_db_run(db, &e,
                       "INSERT INTO bundles(id,direction,sender,sequence,state,payload_sha256,"
                       "payload_size,statement_obj,created_unix,expires_unix,updated_unix) "
                       "VALUES(?,'in','node-a',1,'stored',?,?,'',1,2,1)",
                       "tti", BID, ph, (int64_t)len);
    CHECKF(rc == 0, "%s", e.msg);
}

static void set_available(sqlite3 *db)
{
    sc_error e = {0, ""};
    CHECK(nd_db_run(db, &e, "UPDATE bundles SET state='available' WHERE id=?", "t", BID) == 0);
}

/* Detection on img with inf: the patch classes and r. */
static int detect(nd_infer *inf, const uint16_t *img, int w, int h, sd_detect_result *res)
{
    sd_error err = {0};
    int rc = nd_infer_detect(inf, img, w, h, SD_DETECT_DELTA, res, &err);
    CHECKF(rc == 0, "%s", err.msg);
    return rc;
}

/* Same weights, theta_bn, geometry, label, and detection on img, bit for bit. */
static void check_same(nd_infer *a, nd_infer *b, const uint16_t *img, int w, int h)
{
    const sd_model *m = a->m;
    CHECK(b->m->n_theta == m->n_theta && b->m->n_bn == m->n_bn);
    float *ta = malloc(m->n_theta * sizeof *ta), *tb = malloc(m->n_theta * sizeof *tb);
    sd_error err = {0};
    CHECK(ta && tb && sd_weights_download(a->w, ta, &err) == 0 &&
          sd_weights_download(b->w, tb, &err) == 0);
    CHECK(ta && tb && memcmp(ta, tb, m->n_theta * sizeof *ta) == 0);
    CHECK(m->n_bn && !memcmp(a->w->theta_bn_host, b->w->theta_bn_host, m->n_bn * sizeof(float)));
    CHECK(a->psize == b->psize && a->stride == b->stride && a->osize == b->osize);
    CHECK(a->mean == b->mean && a->std == b->std && a->synthetic == b->synthetic);
    CHECKF(!strcmp(a->label, b->label) && !strcmp(a->kind, b->kind), "'%s' vs '%s'", a->label,
           b->label);
    free(ta);
    free(tb);
    sd_detect_result ra = {0}, rb = {0};
    if (!detect(a, img, w, h, &ra) && !detect(b, img, w, h, &rb)) {
        CHECK(ra.gw == rb.gw && ra.gh == rb.gh && ra.gw * ra.gh > 0);
        CHECK(!memcmp(ra.classes, rb.classes, (size_t)ra.gw * (size_t)ra.gh * sizeof *ra.classes));
        CHECK(!memcmp(ra.num, rb.num, sizeof ra.num) && ra.decision == rb.decision);
        CHECK((isnan(ra.r) && isnan(rb.r)) || ra.r == rb.r);
    }
    sd_detect_result_free(&ra);
    sd_detect_result_free(&rb);
}

static int same_eval(const nd_eval *a, const nd_eval *b)
{
    return a->accuracy == b->accuracy && !memcmp(a->confusion, b->confusion, sizeof a->confusion) &&
           a->samples == b->samples && a->images == b->images &&
           a->undetermined == b->undetermined && !memcmp(&a->sen, &b->sen, 5 * sizeof(double));
}

/* A small prepared gastric data set (24px patches, stride 12, input 12) and
 * the evaluation of w on it with a payload's normalisation. */
static void test_evaluation(const sd_weights *w, const sd_weights *w2)
{
    char dir[300], path[400];
    sd_error err = {0};
    snprintf(dir, sizeof dir, "%s/data", root);
    sd_synth_dataset_opts so = {dir, 8, 64, 7, 0.5, {0.5, 0.25, 0.25}, 1, 0, NULL, NULL};
    sd_prepared pr = {.version = 1,
                      .psize = 24,
                      .stride = 12,
                      .osize = 12,
                      .mean = 0.40625,
                      .std = 0.21875,
                      .synthetic = 1};
    memset(pr.labels_sha256, '0', 64);
    snprintf(path, sizeof path, "%s/prepared.json", dir);
    nd_data ds;
    if (sd_synth_dataset_write(&so, &err) || sd_prepared_write(path, &pr, &err) ||
        nd_data_open(&ds, dir, 0, &err)) {
        CHECKF(0, "data set: %s", err.msg);
        return;
    }
    nd_norm sender = {0.3125, 0.1875};
    nd_eval ev, ref, own, ev2;
    CHECKF(nd_data_evaluate_weights(&ds, w, &sender, SD_SPLIT_VAL, &ev, &err) == 0, "%s", err.msg);
    CHECK(ds.prep.mean == pr.mean && ds.prep.std == pr.std);
    CHECK(ds.src[SD_SPLIT_VAL].mean == pr.mean && ds.src[SD_SPLIT_VAL].std == pr.std);
    CHECKF(ev.images == 2 && ev.samples > 0, "%d images, %lld patches", ev.images,
           (long long)ev.samples);
    /* what the import did before: the sender's statistics swapped into the
     * data set for the evaluation */
    ds.prep.mean = ds.src[SD_SPLIT_VAL].mean = sender.mean;
    ds.prep.std = ds.src[SD_SPLIT_VAL].std = sender.std;
    CHECK(nd_data_evaluate_weights(&ds, w, NULL, SD_SPLIT_VAL, &ref, &err) == 0);
    ds.prep.mean = ds.src[SD_SPLIT_VAL].mean = pr.mean;
    ds.prep.std = ds.src[SD_SPLIT_VAL].std = pr.std;
    CHECK(same_eval(&ev, &ref));
    /* the data set's own statistics cut different inputs */
    CHECK(nd_data_evaluate_weights(&ds, w, NULL, SD_SPLIT_VAL, &own, &err) == 0);
    nd_norm mine = {pr.mean, pr.std};
    CHECK(nd_data_evaluate_weights(&ds, w, &mine, SD_SPLIT_VAL, &ref, &err) == 0 &&
          same_eval(&own, &ref));
    /* stored theta_opt and fresh replay evaluate alike */
    CHECK(nd_data_evaluate_weights(&ds, w2, &sender, SD_SPLIT_VAL, &ev2, &err) == 0 &&
          same_eval(&ev, &ev2));
    nd_data_close(&ds);
}

/* nd_bundle_classifier, counting what it parsed and replayed */
static sd_error warning;

static int classifier(const char *dir, sd_backend *be, nd_infer *inf, uint64_t *parses,
                      uint64_t *replays, int *replayed)
{
    char id[33];
    sd_error_clear(&warning);
    uint64_t p0 = nd_debug_parse_count(), r0 = sd_debug_replay_count();
    int rc = nd_bundle_classifier(dir, BID, be, inf, id, replayed, &warning);
    CHECKF(rc == 0, "%s", warning.msg);
    CHECK(rc || !strcmp(id, BID));
    *parses = nd_debug_parse_count() - p0;
    *replays = sd_debug_replay_count() - r0;
    return rc;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    snprintf(root, sizeof root, "/tmp/sldd-test-node-weights-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    sd_backend *be = NULL;
    sd_error err = {0};
    sc_error e = {0, ""};
    sqlite3 *db = NULL;
    uint8_t *pay = NULL;
    size_t plen = 0;
    char ph[65], wname[65], note[600], ppath[4300];
    const int W = 96, H = 80;
    uint16_t *img = make_image(W, H);
    if (!img || sd_backend_create(&be, "cpu", &err) || make_payload(&pay, &plen) ||
        nd_db_open(root, 1, &db, &e) || nd_object_put(root, pay, plen, ph, &e)) {
        fprintf(stderr, "setup: %s %s\n", err.msg, e.msg);
        return 1;
    }
    add_bundle(db, ph, plen);

    /* the import: one parse, one replay, theta_opt stored and recorded */
    nd_infer imp = {0}, fresh = {0}, got = {0};
    nd_payload_info info;
    uint64_t p0 = nd_debug_parse_count(), r0 = sd_debug_replay_count();
    nd_rebuild_limits lim;
    nd_rebuild_limits_default(&lim);
    int rc = nd_theta_opt_rebuild(root, ph, (size_t)1 << 30, &lim, be, &imp, &info, wname, note,
                                  sizeof note, &e);
    CHECKF(rc == 0, "%s %s", note, e.msg);
    CHECK(nd_debug_parse_count() - p0 == 1);
    CHECK(sd_debug_replay_count() - r0 == 1);
    CHECK(!strcmp(info.sender, "node-a") && info.patch_size == 24);
    CHECK(nd_object_check(root, wname, &e) == 0);
    CHECK(nd_theta_opt_record(db, BID, wname, ph, be->name, &e) == 0);
    set_available(db);

    /* detection with the bundle: no parse, no replay, the same as a fresh replay */
    CHECK(nd_object_path(root, ph, ppath, sizeof ppath, &e) == 0);
    CHECK(nd_infer_from_payload_file(&fresh, ppath, be, &err) == 0);
    uint64_t parses = 9, replays = 9;
    int replayed = 9;
    if (!classifier(root, be, &got, &parses, &replays, &replayed)) {
        CHECKF(parses == 0 && replays == 0 && replayed == 0,
               "detection with an imported bundle parsed %llu and replayed %llu time(s)",
               (unsigned long long)parses, (unsigned long long)replays);
        CHECKF(!warning.msg[0], "%s", warning.msg);
        check_same(&fresh, &got, img, W, H);
        check_same(&imp, &got, img, W, H);
        test_evaluation(fresh.w, got.w);
    }
    nd_infer_free(&got);

    /* a bundle without a stored theta_opt (the node's own, or imported
     * before theta_opt was kept): replayed once, stored, then loaded */
    CHECK(nd_db_run(db, &e, "DELETE FROM theta_opt", "") == 0);
    if (!classifier(root, be, &got, &parses, &replays, &replayed)) {
        CHECK(parses == 1 && replays == 1 && replayed == 1);
        CHECKF(!warning.msg[0], "%s", warning.msg);
        check_same(&fresh, &got, img, W, H);
    }
    nd_infer_free(&got);
    if (!classifier(root, be, &got, &parses, &replays, &replayed))
        CHECK(parses == 0 && replays == 0 && replayed == 0);
    nd_infer_free(&got);

    /* a version-1 database (before the theta_opt table): opening it adds
     * the table and keeps the bundle; the first detection replays once */
    CHECK(nd_db_exec(db, "DROP TABLE theta_opt; PRAGMA user_version=1;", &e) == 0);
    nd_db_close(db);
    db = NULL;
    CHECKF(nd_db_open(root, 0, &db, &e) == 0, "%s", e.msg);
    int64_t ver = 0, n = -1;
    CHECK(nd_db_int(db, &ver, NULL, &e, "PRAGMA user_version", "") == 0 &&
          ver == ND_SCHEMA_VERSION);
    CHECK(nd_db_int(db, &n, NULL, &e, "SELECT count(*) FROM theta_opt", "") == 0 && n == 0);
    if (!classifier(root, be, &got, &parses, &replays, &replayed)) {
        CHECK(parses == 1 && replays == 1 && replayed == 1);
        check_same(&fresh, &got, img, W, H);
    }
    nd_infer_free(&got);
    CHECK(nd_db_int(db, &n, NULL, &e, "SELECT count(*) FROM theta_opt", "") == 0 && n == 1);

    /* a damaged (truncated) theta_opt object is not used: replayed and
     * written again */
    char wpath[4300];
    CHECK(nd_object_path(root, wname, wpath, sizeof wpath, &e) == 0 && truncate(wpath, 100) == 0);
    if (!classifier(root, be, &got, &parses, &replays, &replayed)) {
        CHECK(replays == 1 && replayed == 1);
        CHECKF(strstr(warning.msg, "stored theta_opt was unusable") &&
                   strstr(warning.msg, "damaged"),
               "%s", warning.msg);
        check_same(&fresh, &got, img, W, H);
    }
    nd_infer_free(&got);
    CHECK(nd_object_check(root, wname, &e) == 0);

    /* an inbound bundle that is not available yet is refused */
    CHECK(nd_db_run(db, &e, "UPDATE bundles SET state='stored' WHERE id=?", "t", BID) == 0);
    char id[33];
    sd_error cerr = {0, ""};
    CHECK(nd_bundle_classifier(root, BID, be, &got, id, NULL, &cerr) != 0 &&
          strstr(cerr.msg, "not available"));

    nd_infer_free(&imp);
    nd_infer_free(&fresh);
    nd_db_close(db);
    sd_backend_destroy(be);
    free(pay);
    free(img);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (!sd_test_failed_ && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return sd_test_finish();
}
