/*
 * nd_dash_detect.c - detection from the dashboard's Inbound page:
 *
 *   POST /api/v1/inbound/ID/detect    body: one PNG image (Content-Type image/png)
 *
 * The admin uploads a local image; the node runs detection with received
 * bundle ID's model (nd_detect_with_bundle: its stored theta_opt, the
 * node's device) and answers with the heat map (image/png) and the result
 * in headers: X-Sldd-Decision (gastritis, non-gastritis, undetermined), X-Sldd-R
 * and X-Sldd-Patches ("I N P" patch counts).
 *
 * The upload is bounded (ND_DASH_DETECT_MAX), must be a PNG (signature,
 * IHDR with sides of at most 8192 pixels, then the decoder), may name itself (X-Sldd-Image-Name, made a safe base
 * name), and goes through nd_dash_api's session, CSRF and
 * origin checks like every POST.  Every detection is in the audit log with
 * the image's SHA-256 (action "detection", actor dashboard:ADMIN), and so
 * is a refused upload.  The image and the heat map live in a private
 * folder under NODE/tmp only for the request.  Detection runs on the
 * dashboard's thread: other dashboard requests wait for it; the peer
 * protocol does not.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd_audit.h"
#include "nd_dash_int.h"
#include "nd_detect.h"
#include "nd_state.h"
#include "sc_util.h"

#define ND_DASH_DETECT_MAX (16u << 20) /* bytes of one uploaded PNG */

#define ND_DASH_DETECT_MAX_SIDE 8192 /* pixels: a small file may decode to a huge image */

static const uint8_t PNG_SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* Why img is not an acceptable PNG (NULL when it may go to the decoder):
 * the signature, then the IHDR chunk's size, read before anything is
 * decoded. */
static const char *png_refusal(const uint8_t *img, size_t len)
{
    if (len < 24 || memcmp(img, PNG_SIG, sizeof PNG_SIG) || memcmp(img + 12, "IHDR", 4))
        return "not a PNG image";
    uint32_t w =
        (uint32_t)img[16] << 24 | (uint32_t)img[17] << 16 | (uint32_t)img[18] << 8 | img[19];
    uint32_t h =
        (uint32_t)img[20] << 24 | (uint32_t)img[21] << 16 | (uint32_t)img[22] << 8 | img[23];
    if (w == 0 || h == 0 || w > ND_DASH_DETECT_MAX_SIDE || h > ND_DASH_DETECT_MAX_SIDE)
        return "the image's width or height is 0 or above 8192 pixels";
    return NULL;
}

/* A refused upload in the audit log: the bytes' SHA-256 and why. */
static void audit_refused(nd_dash *d, const nd_dash_session *s, const char *bid, const uint8_t *img,
                          size_t len, const char *why)
{
    char actor[96], hex[65] = "-", detail[400];
    uint8_t h[32];
    sc_error e = {0, ""};
    if (img) {
        sc_sha256(h, img, len);
        nd_hex(hex, h, 32);
    }
    snprintf(actor, sizeof actor, "dashboard:%.64s", s->admin);
    snprintf(detail, sizeof detail, "uploaded image (%zu bytes, sha256 %s) refused: %.250s", len,
             hex, why);
    nd_audit_entry en = {actor, "detection", bid, "", "", "refused", detail};
    if (nd_audit_append(d->db, &en, NULL, &e) || nd_audit_anchor(d->db, d->c->cfg.dir, &e))
        nd_log(d->c, "error", "audit: %s", e.msg);
}

/* The id of an available received bundle named by idp (a unique prefix). */
static int inbound_id(nd_dash *d, const char *idp, char id[33], sc_error *e)
{
    char state[32] = "", dir[8] = "";
    int found = 0, rc;
    if ((rc = nd_bundle_resolve(d->db, idp, id, e)) ||
        (rc = nd_db_text(d->db, dir, sizeof dir, &found, e,
                         "SELECT direction FROM bundles WHERE id=?", "t", id)) ||
        (rc = nd_db_text(d->db, state, sizeof state, &found, e,
                         "SELECT state FROM bundles WHERE id=?", "t", id)))
        return rc;
    if (strcmp(dir, "in") || strcmp(state, "available"))
        return sc_error_set(e, SC_EINVAL,
                            "bundle %.12s is not a received bundle available for detection "
                            "(%s, %s)",
                            id, dir, state);
    return 0;
}

/* The file name the page gives (X-Sldd-Image-Name) as a safe base name:
 * letters, digits, '.', '-', '_' (anything else becomes '_'), at most 64
 * characters, ending in ".png"; "upload.png" without one.  It names the
 * image in the heat map's title and the audit entry; the SHA-256 says
 * what it was. */
static void image_name(struct evhttp_request *r, char out[80])
{
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(r), "X-Sldd-Image-Name");
    size_t n = 0;
    for (; h && h[n] && n < 64; n++) {
        char c = h[n];
        out[n] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                         c == '-' || c == '_' || (c == '.' && n > 0)
                     ? c
                     : '_';
    }
    out[n] = 0;
    if (!n)
        snprintf(out, 80, "upload.png");
    else if (n < 4 || strcmp(out + n - 4, ".png"))
        snprintf(out + n, 80 - n, ".png");
}

/* Detection on img (len bytes) with bundle id into a private folder under
 * NODE/tmp; the heat map's bytes into *map.  0, or an HTTP status with
 * msg. */
static int detect_upload(nd_dash *d, const nd_dash_session *s, const char *id, const char *name,
                         const uint8_t *img, size_t len, sd_detect_result *res, uint8_t **map,
                         size_t *mlen, char *msg, size_t msglen)
{
    char tmp[ND_PATH_MAX + 64], image[ND_PATH_MAX + 96], heat[ND_PATH_MAX + 96], actor[96];
    sc_error e = {0, ""};
    sd_error se = {0};
    int status = 0;
    *map = NULL;
    snprintf(tmp, sizeof tmp, "%s/tmp", d->c->cfg.dir);
    if (sc_mkdir(tmp, 0700, &e) == 0 &&
        snprintf(tmp, sizeof tmp, "%s/tmp/dash-detect-XXXXXX", d->c->cfg.dir) > 0 && !mkdtemp(tmp))
        sc_error_set(&e, SC_EIO, "%s: %s", tmp, strerror(errno));
    if (e.code) {
        snprintf(msg, msglen, "%s", e.msg);
        return 500;
    }
    snprintf(image, sizeof image, "%s/%s", tmp, name);
    snprintf(heat, sizeof heat, "%s/heatmap.png", tmp);
    snprintf(actor, sizeof actor, "dashboard:%.64s", s->admin);
    if (sc_file_create_excl(image, img, len, 0600, &e)) {
        snprintf(msg, msglen, "%s", e.msg);
        status = 500;
    } else if (nd_detect_with_bundle(d->c->cfg.dir, id, image, heat, 0, actor, res, &se)) {
        /* the decoder's refusal names the file: the browser gets its name,
         * not this node's folders */
        const char *m = se.msg;
        size_t tl = strlen(tmp);
        if (!strncmp(m, tmp, tl) && m[tl] == '/')
            m += tl + 1;
        snprintf(msg, msglen, "detection refused: %s", m);
        status = se.code == SD_EIO || se.code == SD_ENOMEM ? 500 : 400;
    } else if (sc_file_read(heat, 64u << 20, 0, map, mlen, &e)) {
        sd_detect_result_free(res);
        snprintf(msg, msglen, "heat map: %s", e.msg);
        status = 500;
    }
    unlink(image);
    unlink(heat);
    rmdir(tmp);
    return status;
}

int nd_dash_detect(nd_dash *d, struct evhttp_request *r, const nd_dash_session *s, const char *path)
{
    static const char *const names[] = {"non-gastritis", "gastritis"}; /* as the audit says */
    char idp[40], id[33], msg[700], num[64], rtxt[32], name[80];
    sc_error e = {0, ""};
    if (strncmp(path, "/v1/inbound/", 12))
        return 0;
    const char *rest = path + 12, *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : 0;
    if (!slash || strcmp(slash, "/detect") || n == 0 || n >= sizeof idp)
        return 0;
    memcpy(idp, rest, n);
    idp[n] = 0;
    if (inbound_id(d, idp, id, &e)) {
        nd_dash_text(d, r, e.code == SC_ENOTFOUND ? 404 : 400, e.msg);
        return 1;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(r);
    size_t len = evbuffer_get_length(in);
    const uint8_t *img = len ? evbuffer_pullup(in, -1) : NULL;
    const char *bad = len > ND_DASH_DETECT_MAX ? "the image is larger than 16 MiB"
                      : !img                   ? "not a PNG image"
                                               : png_refusal(img, len);
    if (bad) {
        int big = len > ND_DASH_DETECT_MAX;
        audit_refused(d, s, id, big ? NULL : img, len, bad);
        nd_dash_text(d, r, big ? 413 : 400, bad);
        return 1;
    }
    sd_detect_result res;
    uint8_t *map = NULL;
    size_t mlen = 0;
    image_name(r, name);
    int status = detect_upload(d, s, id, name, img, len, &res, &map, &mlen, msg, sizeof msg);
    if (status) {
        if (status == 400)
            audit_refused(d, s, id, img, len, msg);
        nd_dash_text(d, r, status, msg);
        return 1;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(r);
    snprintf(num, sizeof num, "%d %d %d", res.num[0], res.num[1], res.num[2]);
    snprintf(rtxt, sizeof rtxt, "%.6f", res.r);
    evhttp_add_header(h, "X-Sldd-Decision",
                      res.decision == SD_DETECT_UNDETERMINED ? "undetermined"
                                                             : names[res.decision != 0]);
    evhttp_add_header(h, "X-Sldd-R", rtxt);
    evhttp_add_header(h, "X-Sldd-Patches", num);
    nd_dash_send(d, r, 200, "image/png", map, mlen);
    free(map);
    sd_detect_result_free(&res);
    return 1;
}
