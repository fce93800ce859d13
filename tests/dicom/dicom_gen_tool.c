/*
 * dicom_gen_tool.c - DICOM fixtures for the shell tests, from a 16-bit PNG
 * (sldd dataset synth's images): each variant stores the PNG's values v so
 * that a correct reader displays them exactly, and --expect writes what it
 * must display (the PNG path's image) for the comparison.
 *
 *   dicom_gen_tool --png IN.png --out OUT.dcm [--variant m2|m1|s16|u12]
 *       [--xfer explicit|jpeg-lossless|jpeg-ls|rle|...] [--spacing MM]
 *       [--imager] [--frames N] [--down 2] [--expect OUT.png]
 *       [--patient-name S] [--patient-id S] [--institution S]
 *       [--accession S] [--private S] [--sop-uid UID] [--study-uid UID]
 *   dicom_gen_tool --mask-down IN.png OUT.png   (a mask 2x2-reduced as the
 *       reader's area rule does: in when at least 2 of 4 pixels are)
 *
 * m2: stored v, window centre 32768 width 65536 (the identity); m1:
 * MONOCHROME1, stored 65535 - v; s16: signed, stored v - 32768, intercept
 * 32768; u12: 12 bits stored, v >> 4, slope 16 (displays 16 * (v >> 4)).
 * --frames N: frame k stores (v + 4099 k) mod 65536.  --down 2: --expect
 * writes the 2x2 block means (half up), what a grid twice as coarse gives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dicom_gen.h"
#include "sb_parse.h"
#include "sd_png.h"

static int mask_down(const char *in, const char *out)
{
    uint16_t *m = NULL;
    int w, h;
    sd_error err = {0};
    if (sd_png_read_gray16(in, &m, &w, &h, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int ow = w / 2, oh = h / 2;
    uint8_t *o = malloc((size_t)ow * oh);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int n = !!m[2 * y * w + 2 * x] + !!m[2 * y * w + 2 * x + 1] +
                    !!m[(2 * y + 1) * w + 2 * x] + !!m[(2 * y + 1) * w + 2 * x + 1];
            o[y * ow + x] = n >= 2 ? 255 : 0;
        }
    int rc = sd_png_write(out, o, ow, oh, 1, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    free(m), free(o);
    return rc ? 1 : 0;
}

static int write_expect(const char *path, const uint16_t *v, int w, int h, int down)
{
    sd_error err = {0};
    int ow = w / down, oh = h / down;
    uint16_t *o = malloc((size_t)ow * oh * sizeof *o);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            if (down == 1) {
                o[y * ow + x] = v[y * w + x];
                continue;
            }
            long s = (long)v[2 * y * w + 2 * x] + v[2 * y * w + 2 * x + 1] +
                     v[(2 * y + 1) * w + 2 * x] + v[(2 * y + 1) * w + 2 * x + 1];
            o[y * ow + x] = (uint16_t)((s + 2) / 4);
        }
    int rc = sd_png_write_gray16(path, o, ow, oh, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    free(o);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--mask-down"))
        return mask_down(argv[2], argv[3]);
    const char *png = NULL, *out = NULL, *variant = "m2", *expect = NULL;
    dicom_gen g;
    memset(&g, 0, sizeof g);
    int down = 1, imager = 0;
    double spacing = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        int bad = 0;
        if (!strcmp(k, "--png"))
            png = v;
        else if (!strcmp(k, "--out"))
            out = v;
        else if (!strcmp(k, "--variant"))
            variant = v;
        else if (!strcmp(k, "--xfer"))
            g.xfer = v;
        else if (!strcmp(k, "--expect"))
            expect = v;
        else if (!strcmp(k, "--spacing"))
            bad = sb_parse_double(v, 1e-3, 100, &spacing);
        else if (!strcmp(k, "--imager"))
            bad = sb_parse_int(v, 0, 1, &imager);
        else if (!strcmp(k, "--frames"))
            bad = sb_parse_int(v, 1, 64, &g.frames);
        else if (!strcmp(k, "--down"))
            bad = sb_parse_int(v, 1, 2, &down);
        else if (!strcmp(k, "--patient-name"))
            g.patient_name = v;
        else if (!strcmp(k, "--patient-id"))
            g.patient_id = v;
        else if (!strcmp(k, "--institution"))
            g.institution = v;
        else if (!strcmp(k, "--accession"))
            g.accession = v;
        else if (!strcmp(k, "--private"))
            g.private_value = v;
        else if (!strcmp(k, "--sop-uid"))
            g.sop_uid = v;
        else if (!strcmp(k, "--study-uid"))
            g.study_uid = v;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "dicom_gen_tool: bad option %s %s\n", k, v);
            return 2;
        }
    }
    if (!png || !out) {
        fprintf(stderr, "dicom_gen_tool: --png and --out are required\n");
        return 2;
    }
    uint16_t *v = NULL;
    int w, h;
    sd_error err = {0};
    if (sd_png_read_gray16(png, &v, &w, &h, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    g.w = w, g.h = h;
    g.frames = g.frames ? g.frames : 1;
    g.window = 1, g.wc = 32768, g.ww = 65536;
    if (spacing > 0) {
        g.spacing_kind = imager ? 2 : 1;
        g.spacing[0] = g.spacing[1] = spacing;
    }
    size_t n = (size_t)w * h;
    int32_t *s = malloc(n * g.frames * sizeof *s);
    for (int f = 0; f < g.frames; f++)
        for (size_t i = 0; i < n; i++) {
            int32_t x = (int32_t)((v[i] + 4099L * f) % 65536);
            if (!strcmp(variant, "m1")) {
                g.photometric = "MONOCHROME1";
                x = 65535 - x;
            } else if (!strcmp(variant, "s16")) {
                g.pixel_rep = 1, g.rescale = 1, g.slope = 1, g.intercept = 32768;
                x -= 32768;
            } else if (!strcmp(variant, "u12")) {
                g.bits_stored = 12, g.rescale = 1, g.slope = 16, g.intercept = 0;
                x >>= 4;
                if (f == 0)
                    v[i] = (uint16_t)(16 * x);
            }
            s[f * n + i] = x;
        }
    char msg[256];
    int rc = dicom_gen_write(out, &g, s, msg, sizeof msg);
    if (rc)
        fprintf(stderr, "dicom_gen_tool: %s\n", msg);
    if (!rc && expect)
        rc = write_expect(expect, v, w, h, down);
    free(v), free(s);
    return rc ? 1 : 0;
}
