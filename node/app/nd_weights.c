/*
 * nd_weights.c - reading and writing trained-weights files (see
 * nd_weights.h for the layout).  The reader trusts nothing: every size is
 * checked against the file length before it is used, and the model is built
 * from the header to confirm the parameter counts.
 */
#include "nd_buf.h"
#include "nd_weights.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_payload.h"
#include "sb_parse.h"

#define HEADER_MAX 65536

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_floats(uint8_t *p, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        put_u32(p + 4 * i, u);
    }
}

static void get_floats(float *v, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u = get_u32(p + 4 * i);
        memcpy(&v[i], &u, 4);
    }
}

static int sha256(const uint8_t *buf, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    return EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

/* header values must not break the line format */
static void clean(char *dst, size_t len, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < len; i++)
        dst[i] = src[i] == '\n' || src[i] == '\r' ? ' ' : src[i];
    dst[i] = '\0';
}

int nd_weights_encode(const nd_weights *w, uint8_t **out, size_t *len_out, sd_error *err)
{
    *out = NULL;
    *len_out = 0;
    char data[256], trained[256], source[16];
    clean(data, sizeof data, w->data);
    clean(trained, sizeof trained, w->trained);
    clean(source, sizeof source, w->source[0] ? w->source : "training");
    char header[2048];
    int hl = snprintf(header, sizeof header,
                      "format=sldd-weights\n"
                      "arch=%s\nbn=%d\ndepth=%d\nwidth=%d\n"
                      "in_c=%d\nin_h=%d\nin_w=%d\nclasses=%d\n"
                      "n_theta=%zu\nn_bn=%zu\n"
                      "norm_mean=%.17g\nnorm_std=%.17g\n"
                      "patch=%d\nstride=%d\npatch_resize=%d\n"
                      "synthetic=%d\nseed=%llu\ninit=philox-xavier-normal-v1\n"
                      "source=%s\ndata=%s\ntrained=%s\n",
                      w->spec.arch, w->spec.bn, w->spec.depth, w->spec.width, w->spec.in_c,
                      w->spec.in_h, w->spec.in_w, w->spec.classes, w->n_theta, w->n_bn,
                      w->norm_mean, w->norm_std, w->patch_size, w->patch_stride, w->patch_resize,
                      w->synthetic ? 1 : 0, (unsigned long long)w->seed, source, data, trained);
    if (hl > 0 && (size_t)hl < sizeof header && w->task.labels && !sd_task_is_gastric(&w->task)) {
        const sd_task *t = &w->task;
        hl += snprintf(header + hl, sizeof header - (size_t)hl, "task=%s|%s|", t->name,
                       t->outside ? t->outside_name : "");
        for (int i = 0; i < t->labels && (size_t)hl < sizeof header; i++)
            hl += snprintf(header + hl, sizeof header - (size_t)hl, "%s%s", i ? "," : "",
                           t->label[i]);
        if ((size_t)hl < sizeof header)
            hl += snprintf(header + hl, sizeof header - (size_t)hl, "\n");
    }
    if (hl < 0 || (size_t)hl >= sizeof header) {
        sd_error_set(err, SD_EINVAL, "weights header too long");
        return -1;
    }
    size_t len = 8 + 4 + (size_t)hl + 4 * (w->n_theta + w->n_bn) + 32;
    uint8_t *buf = malloc(len);
    if (!buf) {
        sd_error_set(err, SD_ENOMEM, "out of memory");
        return -1;
    }
    uint8_t *p = buf;
    memcpy(p, ND_WEIGHTS_MAGIC, 8);
    put_u32(p + 8, (uint32_t)hl);
    memcpy(p + 12, header, (size_t)hl);
    p += 12 + (size_t)hl;
    put_floats(p, w->theta, w->n_theta);
    p += 4 * w->n_theta;
    if (w->n_bn)
        put_floats(p, w->theta_bn, w->n_bn);
    p += 4 * w->n_bn;
    if (sha256(buf, (size_t)(p - buf), p)) {
        sd_error_set(err, SD_EINVAL, "SHA-256 failed");
        free(buf);
        return -1;
    }
    *out = buf;
    *len_out = len;
    return 0;
}

int nd_weights_write(const char *path, const nd_weights *w, sd_error *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (nd_weights_encode(w, &buf, &len, err))
        return -1;
    int rc = nd_file_write_atomic(path, buf, len, err) ? -1 : 0;
    free(buf);
    return rc;
}

void nd_weights_free(nd_weights *w)
{
    if (!w)
        return;
    free(w->theta);
    free(w->theta_bn);
    memset(w, 0, sizeof *w);
}

static int parse_dbl(const char *s, double *out)
{
    double v;
    if (sb_parse_double(s, -INFINITY, INFINITY, &v))
        return -1;
    *out = v;
    return 0;
}

enum {
    K_ARCH = 1 << 0,
    K_BN = 1 << 1,
    K_DEPTH = 1 << 2,
    K_WIDTH = 1 << 3,
    K_INC = 1 << 4,
    K_INH = 1 << 5,
    K_INW = 1 << 6,
    K_CLASSES = 1 << 7,
    K_NTHETA = 1 << 8,
    K_NBN = 1 << 9
};
#define K_REQUIRED 0x3ff

/* One "key=value" line into w; *seen collects the required keys. */
/* task=NAME|OUTSIDE|LABEL,LABEL,... (see nd_weights.h) */
static int parse_task(const char *v, sd_task *t, sd_error *err)
{
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%s", v);
    char *bar1 = strchr(buf, '|'), *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
    const char *labels[SD_TASK_MAX_CLASSES];
    int k = 0;
    if (bar2) {
        *bar1 = *bar2 = '\0';
        for (char *tok = strtok_r(bar2 + 1, ",", &save); tok && k < SD_TASK_MAX_CLASSES;
             tok = strtok_r(NULL, ",", &save))
            labels[k++] = tok;
    }
    if (!bar2 || sd_task_make(t, buf, k, labels, bar1[1] ? bar1 + 1 : NULL, err)) {
        sd_error_set(err, SD_EFORMAT, "bad task '%.80s'", v);
        return -1;
    }
    return 0;
}

static int header_line(nd_weights *w, char *line, unsigned *seen, sd_error *err)
{
    char *eq = strchr(line, '=');
    if (!eq) {
        sd_error_set(err, SD_EFORMAT, "header line '%.40s' has no '='", line);
        return -1;
    }
    *eq = '\0';
    const char *k = line, *v = eq + 1;
    long long n;
    double d;
    static const struct {
        const char *key;
        unsigned bit;
        long long lo, hi;
    } ints[] = {{"bn", K_BN, 0, 1},
                {"depth", K_DEPTH, 0, 64},
                {"width", K_WIDTH, 0, 65536},
                {"in_c", K_INC, 1, 64},
                {"in_h", K_INH, 1, 8192},
                {"in_w", K_INW, 1, 8192},
                {"classes", K_CLASSES, 2, 100000},
                {"n_theta", K_NTHETA, 1, (long long)1 << 40},
                {"n_bn", K_NBN, 0, (long long)1 << 40},
                {"patch", 0, 0, 1 << 20},
                {"stride", 0, 0, 1 << 20},
                {"patch_resize", 0, 0, 1 << 20},
                {"synthetic", 0, 0, 1}};
    if (!strcmp(k, "arch")) {
        if (strlen(v) == 0 || strlen(v) >= sizeof w->spec.arch) {
            sd_error_set(err, SD_EFORMAT, "bad arch '%.40s'", v);
            return -1;
        }
        snprintf(w->spec.arch, sizeof w->spec.arch, "%s", v);
        *seen |= K_ARCH;
        return 0;
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(k, ints[i].key))
            continue;
        if (nd_parse_int(v, ints[i].lo, ints[i].hi, &n)) {
            sd_error_set(err, SD_EFORMAT, "bad value '%.40s' for %s", v, k);
            return -1;
        }
        switch (i) {
        case 0: w->spec.bn = (int)n; break;
        case 1: w->spec.depth = (int)n; break;
        case 2: w->spec.width = (int)n; break;
        case 3: w->spec.in_c = (int)n; break;
        case 4: w->spec.in_h = (int)n; break;
        case 5: w->spec.in_w = (int)n; break;
        case 6: w->spec.classes = (int)n; break;
        case 7: w->n_theta = (size_t)n; break;
        case 8: w->n_bn = (size_t)n; break;
        case 9: w->patch_size = (int)n; break;
        case 10: w->patch_stride = (int)n; break;
        case 11: w->patch_resize = (int)n; break;
        default: w->synthetic = (int)n; break;
        }
        *seen |= ints[i].bit;
        return 0;
    }
    if (!strcmp(k, "norm_mean") || !strcmp(k, "norm_std")) {
        if (parse_dbl(v, &d) || (!strcmp(k, "norm_std") && !(d > 0))) {
            sd_error_set(err, SD_EFORMAT, "bad value '%.40s' for %s", v, k);
            return -1;
        }
        *(k[5] == 'm' ? &w->norm_mean : &w->norm_std) = d;
        return 0;
    }
    if (!strcmp(k, "seed")) {
        if (nd_parse_int(v, 0, INT64_MAX, &n)) {
            sd_error_set(err, SD_EFORMAT, "bad seed '%.40s'", v);
            return -1;
        }
        w->seed = (uint64_t)n;
        return 0;
    }
    if (!strcmp(k, "format") && strcmp(v, "sldd-weights")) {
        sd_error_set(err, SD_EFORMAT, "format '%.40s' is not sldd-weights", v);
        return -1;
    }
    if (!strcmp(k, "source")) {
        if (strcmp(v, "training") && strcmp(v, "payload")) {
            sd_error_set(err, SD_EFORMAT, "source '%.40s' is neither training nor payload", v);
            return -1;
        }
        snprintf(w->source, sizeof w->source, "%s", v);
    } else if (!strcmp(k, "task")) {
        if (parse_task(v, &w->task, err))
            return -1;
    } else if (!strcmp(k, "data"))
        snprintf(w->data, sizeof w->data, "%s", v);
    else if (!strcmp(k, "trained"))
        snprintf(w->trained, sizeof w->trained, "%s", v);
    return 0; /* other keys: ignored */
}

int nd_weights_read(const char *path, nd_weights *w, sd_error *err)
{
    memset(w, 0, sizeof *w);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (nd_file_read(path, ND_WEIGHTS_MAX_BYTES, &buf, &len, err))
        return -1;
    int rc = nd_weights_decode(buf, len, path, w, err);
    free(buf);
    return rc;
}

int nd_weights_decode(const uint8_t *buf, size_t len, const char *path, nd_weights *w,
                      sd_error *err)
{
    memset(w, 0, sizeof *w);
    w->norm_std = 1;
    snprintf(w->source, sizeof w->source, "training");
    int rc = -1;
    char *header = NULL;
    sd_model *m = NULL;
    if (len < 12 + 32 || memcmp(buf, ND_WEIGHTS_MAGIC, 8)) {
        sd_error_set(err, SD_EFORMAT, "%s: not an sldd weights file (no %s magic)", path,
                     ND_WEIGHTS_MAGIC);
        goto out;
    }
    uint8_t md[32];
    if (sha256(buf, len - 32, md) || memcmp(md, buf + len - 32, 32)) {
        sd_error_set(err, SD_EFORMAT, "%s: checksum mismatch (file damaged or truncated)", path);
        goto out;
    }
    size_t hl = get_u32(buf + 8);
    if (hl > HEADER_MAX || 12 + hl + 32 > len) {
        sd_error_set(err, SD_EFORMAT, "%s: bad header length %zu", path, hl);
        goto out;
    }
    header = malloc(hl + 1);
    if (!header) {
        sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(header, buf + 12, hl);
    header[hl] = '\0';
    if (strlen(header) != hl) {
        sd_error_set(err, SD_EFORMAT, "%s: header contains a NUL byte", path);
        goto out;
    }
    unsigned seen = 0;
    for (char *line = header, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (!*line)
            continue;
        if (header_line(w, line, &seen, err)) {
            sd_error_wrap(err, "%s", path);
            goto out;
        }
    }
    if ((seen & K_REQUIRED) != K_REQUIRED) {
        sd_error_set(err, SD_EFORMAT,
                     "%s: header lacks required keys (arch, bn, depth, width, in_c, "
                     "in_h, in_w, classes, n_theta, n_bn)",
                     path);
        goto out;
    }
    size_t body = len - 12 - hl - 32;
    if (w->n_theta > body / 4 || w->n_bn > body / 4 - w->n_theta ||
        4 * (w->n_theta + w->n_bn) != body) {
        sd_error_set(err, SD_EFORMAT, "%s: %zu bytes of values, the header says %zu + %zu floats",
                     path, body, w->n_theta, w->n_bn);
        goto out;
    }
    if (sd_model_create(&m, &w->spec, err)) {
        sd_error_wrap(err, "%s: model", path);
        goto out;
    }
    if (m->n_theta != w->n_theta || m->n_bn != w->n_bn) {
        sd_error_set(err, SD_EFORMAT,
                     "%s: %s has %zu parameters and %zu BN values, the file %zu and %zu", path,
                     w->spec.arch, m->n_theta, m->n_bn, w->n_theta, w->n_bn);
        goto out;
    }
    w->spec = m->spec;
    w->theta = malloc(w->n_theta * sizeof *w->theta);
    w->theta_bn = malloc((w->n_bn ? w->n_bn : 1) * sizeof *w->theta_bn);
    if (!w->theta || !w->theta_bn) {
        sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    get_floats(w->theta, buf + 12 + hl, w->n_theta);
    get_floats(w->theta_bn, buf + 12 + hl + 4 * w->n_theta, w->n_bn);
    for (size_t i = 0; i < w->n_theta; i++)
        if (!isfinite(w->theta[i])) {
            sd_error_set(err, SD_EFORMAT, "%s: parameter %zu is not finite", path, i);
            goto out;
        }
    /* per BN layer: mean (c values) then variance (c values) */
    for (int l = 0; l < m->n_layers; l++) {
        const sd_layer *ly = &m->layers[l];
        if (ly->kind != SD_LAYER_BN)
            continue;
        int c = ly->out.c;
        for (int j = 0; j < 2 * c; j++) {
            float v = w->theta_bn[ly->bn_off + (size_t)j];
            if (!isfinite(v) || (j >= c && !(v > 0))) {
                sd_error_set(err, SD_EFORMAT, "%s: batch-norm statistic %zu is %s", path,
                             ly->bn_off + (size_t)j, isfinite(v) ? "not positive" : "not finite");
                goto out;
            }
        }
    }
    rc = 0;
out:
    if (rc)
        nd_weights_free(w);
    sd_model_destroy(m);
    free(header);
    return rc;
}
