/*
 * test_dicom_read.c - the DICOM reader (node/dicom/nd_dicom.h) against
 * fixtures written here with DCMTK (dicom_gen.h): display values for each
 * photometric, bit depth, sign, rescale, window and transfer syntax, the
 * physical grid, multi-frame objects, and every refusal.
 *
 * Expected values are computed in integers from the stored values, never
 * with the reader's own formula: the identity window (centre 32768, width
 * 65536) maps a modality value x to exactly x, so 16-bit cases must come
 * back bit for bit; min..max stretches are rounded half up in integers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dicom_gen.h"
#include "nd_dicom.h"
#include "nd_dicom_file.h"
#include "sd_test.h"

static char g_dir[256];

static char *fixture(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    return path;
}

/* A ramp with every value of 0..range-1 at least once, plus a pattern. */
static int32_t *ramp(int w, int h, int frames, int range, int offset)
{
    int32_t *v = malloc((size_t)w * h * frames * sizeof *v);
    for (int i = 0; i < w * h * frames; i++)
        v[i] = (int32_t)(((int64_t)i * 7919 + (i / (w * h)) * 101) % range) + offset;
    v[0] = offset;
    v[1] = offset + range - 1;
    return v;
}

/* Write g with stored values, read frame back through the file path. */
static int roundtrip(const char *name, const dicom_gen *g, const int32_t *stored, int frame,
                     double mm, uint16_t **pix, int *w, int *h, nd_dicom_info *info, sd_error *err)
{
    char msg[256];
    if (dicom_gen_write(fixture(name), g, stored, msg, sizeof msg)) {
        fprintf(stderr, "fixture %s: %s\n", name, msg);
        return -1;
    }
    return nd_dicom_load_image(fixture(name), frame, mm, pix, w, h, info, err);
}

static void expect_equal(const char *what, const uint16_t *got, const uint16_t *want, size_t n,
                         int tol)
{
    int worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        if (d > worst)
            worst = d, at = i;
    }
    CHECKF(worst <= tol, "%s: pixel %zu is %u, expected %u (tolerance %d)", what, at, got[at],
           want[at], tol);
}

static dicom_gen base(int w, int h)
{
    dicom_gen g;
    memset(&g, 0, sizeof g);
    g.w = w;
    g.h = h;
    g.frames = 1;
    g.window = 1;
    g.wc = 32768;
    g.ww = 65536;
    return g;
}

static void test_variant(const char *name, dicom_gen g, int32_t (*to_stored)(int32_t v), int tol)
{
    int w = g.w, h = g.h;
    size_t n = (size_t)w * h;
    int32_t *v = ramp(w, h, 1, 65536, 0), *s = malloc(n * sizeof *s);
    uint16_t *want = malloc(n * sizeof *want), *pix = NULL;
    for (size_t i = 0; i < n; i++) {
        s[i] = to_stored(v[i]);
        want[i] = (uint16_t)v[i];
    }
    nd_dicom_info info;
    sd_error err = {0};
    int ow = 0, oh = 0;
    int rc = roundtrip(name, &g, s, 0, 0, &pix, &ow, &oh, &info, &err);
    CHECKF(rc == 0, "%s: %s", name, err.msg);
    if (rc == 0) {
        CHECK(ow == w && oh == h);
        expect_equal(name, pix, want, n, tol);
    }
    free(v), free(s), free(want), free(pix);
}

static int32_t id16(int32_t v)
{
    return v;
}
static int32_t inv16(int32_t v)
{
    return 65535 - v;
}
static int32_t signed16(int32_t v)
{
    return v - 32768;
}

static void test_photometric_and_syntaxes(void)
{
    dicom_gen g = base(37, 29);
    test_variant("m2-16.dcm", g, id16, 0);
    g.xfer = "implicit";
    test_variant("m2-16-implicit.dcm", g, id16, 0);
    g.xfer = "big";
    test_variant("m2-16-big.dcm", g, id16, 0);
    g.xfer = "jpeg-lossless";
    test_variant("m2-16-jpegll.dcm", g, id16, 0);
    g.xfer = "jpeg-ls";
    test_variant("m2-16-jls.dcm", g, id16, 0);
    g.xfer = "rle";
    test_variant("m2-16-rle.dcm", g, id16, 0);
    /* MONOCHROME1: stored 65535 - v is displayed as v */
    g = base(37, 29);
    g.photometric = "MONOCHROME1";
    test_variant("m1-16.dcm", g, inv16, 0);
    g.xfer = "rle";
    test_variant("m1-16-rle.dcm", g, inv16, 0);
    /* signed, intercept 32768 */
    g = base(37, 29);
    g.pixel_rep = 1;
    g.rescale = 1;
    g.slope = 1;
    g.intercept = 32768;
    test_variant("s16.dcm", g, signed16, 0);
    g.xfer = "jpeg-ls";
    test_variant("s16-jls.dcm", g, signed16, 0);
}

/* 12 bits stored in 16, slope 16: display 16 * stored; MONOCHROME1 12-bit
 * with min..max: (4095 - s) stretched to 0..65535. */
static void test_12bit(void)
{
    int w = 40, h = 30;
    size_t n = (size_t)w * h;
    int32_t *s = ramp(w, h, 1, 4096, 0);
    uint16_t *want = malloc(n * sizeof *want), *pix = NULL;
    dicom_gen g = base(w, h);
    g.bits_stored = 12;
    g.rescale = 1;
    g.slope = 16;
    g.intercept = 0;
    for (size_t i = 0; i < n; i++)
        want[i] = (uint16_t)(16 * s[i]);
    nd_dicom_info info;
    sd_error err = {0};
    int ow, oh;
    int rc = roundtrip("u12-slope16.dcm", &g, s, 0, 0, &pix, &ow, &oh, &info, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(info.bits_stored == 12 && info.high_bit == 11 && info.slope == 16);
        CHECK(info.voi == ND_DICOM_VOI_WINDOW);
        expect_equal("u12 slope 16", pix, want, n, 0);
    }
    free(pix);
    g = base(w, h);
    g.bits_stored = 12;
    g.window = 0;
    g.photometric = "MONOCHROME1";
    g.xfer = "jpeg-lossless";
    for (size_t i = 0; i < n; i++) /* 65535 * (4095 - s) / 4095, half up */
        want[i] = (uint16_t)((2 * 65535 * (int64_t)(4095 - s[i]) + 4095) / (2 * 4095));
    rc = roundtrip("m1-u12-minmax-jpegll.dcm", &g, s, 0, 0, &pix, &ow, &oh, &info, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(info.voi == ND_DICOM_VOI_MINMAX && info.wc == 0 && info.ww == 4095);
        expect_equal("m1 u12 min-max", pix, want, n, 0);
    }
    free(pix);
    /* signed 12-bit in 16 (values -2048..2047), min..max */
    g = base(w, h);
    g.bits_stored = 12;
    g.pixel_rep = 1;
    g.window = 0;
    int32_t *ss = ramp(w, h, 1, 4096, -2048);
    for (size_t i = 0; i < n; i++)
        want[i] = (uint16_t)((2 * 65535 * (int64_t)(ss[i] + 2048) + 4095) / (2 * 4095));
    rc = roundtrip("s12-minmax.dcm", &g, ss, 0, 0, &pix, &ow, &oh, &info, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc)
        expect_equal("s12 min-max", pix, want, n, 0);
    free(pix), free(ss), free(s), free(want);
}

/* 8-bit with a narrow window, and JPEG baseline (lossy) against it. */
static void test_8bit_window_and_baseline(void)
{
    int w = 64, h = 48;
    size_t n = (size_t)w * h;
    int32_t *s = malloc(n * sizeof *s);
    for (int y = 0; y < h; y++) /* smooth: what lossy JPEG is made for */
        for (int x = 0; x < w; x++)
            s[y * w + x] = 40 + x + 2 * y; /* 40..197 */
    dicom_gen g = base(w, h);
    g.bits_allocated = 8;
    g.wc = 128;
    g.ww = 101; /* LINEAR: (x - 127.5) / 100 + 0.5 -> x in 78..178 spans 0..1 */
    uint16_t *want = malloc(n * sizeof *want), *pix = NULL, *pix_jpeg = NULL;
    for (size_t i = 0; i < n; i++) {
        int64_t num = (int64_t)(s[i] - 78) * 65535; /* y = (x - 77.5)/100, in 1/200ths */
        int64_t v = s[i] <= 77 ? 0 : s[i] >= 178 ? 65535 : (2 * num + 65535 + 100) / 200;
        want[i] = (uint16_t)(v > 65535 ? 65535 : v);
    }
    nd_dicom_info info;
    sd_error err = {0};
    int ow, oh;
    int rc = roundtrip("u8-window.dcm", &g, s, 0, 0, &pix, &ow, &oh, &info, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc)
        expect_equal("u8 window", pix, want, n, 0);
    g.xfer = "jpeg-baseline";
    rc = roundtrip("u8-window-baseline.dcm", &g, s, 0, 0, &pix_jpeg, &ow, &oh, &info, &err);
    CHECKF(rc == 0, "%s", err.msg);
    /* quality 90 on a smooth ramp: within 2 stored levels = 2 * 65535/100 */
    if (!rc && pix)
        expect_equal("u8 JPEG baseline", pix_jpeg, pix, n, 2 * 656);
    free(pix), free(pix_jpeg), free(s), free(want);
}

static void test_voi_functions(void)
{
    nd_dicom_info info;
    memset(&info, 0, sizeof info);
    double x[5] = {-10, 99.5, 100, 100.5, 300};
    uint16_t out[5];
    info.voi = ND_DICOM_VOI_WINDOW;
    info.wc = 100;
    info.ww = 1; /* LINEAR width 1: a step at c - 0.5 */
    nd_dicom_voi_apply(x, 5, &info, out);
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 65535 && out[4] == 65535);
    info.voi_function = ND_DICOM_VOI_LINEAR_EXACT;
    info.ww = 200; /* (x - 100) / 200 + 0.5 */
    nd_dicom_voi_apply(x, 5, &info, out);
    CHECK(out[0] == 0 && out[2] == 32768 && out[4] == 65535);
    info.voi_function = ND_DICOM_VOI_SIGMOID;
    nd_dicom_voi_apply(x, 5, &info, out);
    CHECK(out[2] == 32768 && out[0] > 0 && out[0] < 32768 && out[4] < 65535 && out[4] > 60000);
    info.monochrome1 = 1;
    nd_dicom_voi_apply(x, 5, &info, out);
    CHECK(out[2] == 32768 && out[4] < 5535 && out[0] > 32768);
}

/* Pixel Spacing 0.1 mm to a 0.2 mm grid: 2x2 block means, half up. */
static void test_spacing(void)
{
    int w = 40, h = 26;
    size_t n = (size_t)w * h;
    int32_t *s = ramp(w, h, 1, 65536, 0);
    dicom_gen g = base(w, h);
    g.spacing_kind = 1;
    g.spacing[0] = g.spacing[1] = 0.1;
    uint16_t *pix = NULL, *want = malloc(n / 4 * sizeof *want);
    for (int y = 0; y < h / 2; y++)
        for (int x = 0; x < w / 2; x++) {
            int64_t sum = s[2 * y * w + 2 * x] + s[2 * y * w + 2 * x + 1] +
                          s[(2 * y + 1) * w + 2 * x] + s[(2 * y + 1) * w + 2 * x + 1];
            want[y * (w / 2) + x] = (uint16_t)((sum + 2) / 4);
        }
    nd_dicom_info info;
    sd_error err = {0};
    int ow = 0, oh = 0;
    int rc = roundtrip("spacing01.dcm", &g, s, 0, 0.2, &pix, &ow, &oh, &info, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(ow == w / 2 && oh == h / 2);
        CHECK(info.spacing_kind == ND_DICOM_SPACING_PIXEL);
        expect_equal("0.1 mm -> 0.2 mm", pix, want, n / 4, 0);
    }
    free(pix);
    /* Imager Pixel Spacing is used when Pixel Spacing is absent; 0.2 mm
     * already on the grid is left as it is */
    g.spacing_kind = 2;
    g.spacing[0] = g.spacing[1] = 0.2;
    rc = roundtrip("imager02.dcm", &g, s, 0, 0.2, &pix, &ow, &oh, &info, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(ow == w && oh == h && info.spacing_kind == ND_DICOM_SPACING_IMAGER);
        CHECK(pix[0] == 0 && pix[1] == 65535 && pix[77] == (uint16_t)s[77]);
    }
    free(pix);
    /* no spacing: refused when a grid is asked for */
    g.spacing_kind = 0;
    rc = roundtrip("nospacing.dcm", &g, s, 0, 0.2, &pix, &ow, &oh, &info, &err);
    CHECK(rc != 0 && strstr(err.msg, "no Pixel Spacing") != NULL);
    free(pix), free(s), free(want);
}

static void test_multiframe(void)
{
    int w = 20, h = 18, frames = 3;
    size_t n = (size_t)w * h;
    int32_t *s = ramp(w, h, frames, 65536, 0);
    dicom_gen g = base(w, h);
    g.frames = frames;
    for (int pass = 0; pass < 2; pass++) {
        g.xfer = pass ? "rle" : "explicit";
        for (int f = 0; f < frames; f++) {
            uint16_t *pix = NULL, *want = malloc(n * sizeof *want);
            for (size_t i = 0; i < n; i++)
                want[i] = (uint16_t)s[f * n + i];
            nd_dicom_info info;
            sd_error err = {0};
            int ow, oh;
            char name[64];
            snprintf(name, sizeof name, "multi-%d-%d.dcm", pass, f);
            int rc = roundtrip(name, &g, s, f, 0, &pix, &ow, &oh, &info, &err);
            CHECKF(rc == 0, "%s", err.msg);
            if (!rc) {
                CHECK(info.frames == frames);
                expect_equal(name, pix, want, n, 0);
            }
            free(pix), free(want);
        }
    }
    uint16_t *pix = NULL;
    nd_dicom_info info;
    sd_error err = {0};
    int ow, oh;
    CHECK(nd_dicom_load_image(fixture("multi-0-0.dcm"), 3, 0, &pix, &ow, &oh, &info, &err) != 0);
    CHECK(strstr(err.msg, "no frame 4") != NULL);
    free(s);
}

static void expect_refusal(const char *name, const char *needle)
{
    uint16_t *pix = NULL;
    nd_dicom_info info;
    sd_error err = {0};
    int w, h;
    int rc = nd_dicom_load_image(fixture(name), 0, 0, &pix, &w, &h, &info, &err);
    CHECKF(rc != 0 && pix == NULL, "%s was accepted", name);
    CHECKF(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", name, err.msg, needle);
    CHECKF(strstr(err.msg, fixture(name)) != NULL, "%s: message does not name the file", name);
    free(pix);
}

static void write_bytes(const char *name, const void *b, size_t n)
{
    FILE *f = fopen(fixture(name), "wb");
    CHECK(f && fwrite(b, 1, n, f) == n);
    if (f)
        fclose(f);
}

static void test_refusals(void)
{
    int w = 16, h = 16;
    int32_t *s = ramp(w, h, 1, 65536, 0);
    char msg[256];
    dicom_gen g = base(w, h);
    CHECK(dicom_gen_write(fixture("good.dcm"), &g, s, msg, sizeof msg) == 0);
    /* truncated: half the file */
    FILE *f = fopen(fixture("good.dcm"), "rb");
    static uint8_t buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    write_bytes("truncated.dcm", buf, n / 2);
    expect_refusal("truncated.dcm", "corrupt or truncated");
    write_bytes("preamble-only.dcm", buf, 132);
    expect_refusal("preamble-only.dcm", "");
    write_bytes("empty.dcm", buf, 0);
    expect_refusal("empty.dcm", "not a DICOM file");
    write_bytes("png.dcm", "\x89PNG\r\n\x1a\n", 8);
    expect_refusal("png.dcm", "not a DICOM file");
    g.xfer = "j2k-label";
    CHECK(dicom_gen_write(fixture("j2k.dcm"), &g, s, msg, sizeof msg) == 0);
    expect_refusal("j2k.dcm", "JPEG 2000");
    g = base(w, h);
    g.no_pixels = 1;
    CHECK(dicom_gen_write(fixture("nopixels.dcm"), &g, s, msg, sizeof msg) == 0);
    expect_refusal("nopixels.dcm", "no pixel data");
    g = base(w, h);
    g.dicomdir = 1;
    CHECK(dicom_gen_write(fixture("DICOMDIR"), &g, s, msg, sizeof msg) == 0);
    expect_refusal("DICOMDIR", "DICOMDIR");
    g = base(w, h);
    g.photometric = "RGB";
    CHECK(dicom_gen_write(fixture("rgb.dcm"), &g, s, msg, sizeof msg) == 0);
    expect_refusal("rgb.dcm", "RGB image");
    /* absurd dimensions: Rows x Columns of 65535 x 65535 with 16x16 pixels */
    g = base(65535, 65535);
    g.no_pixels = 1;
    CHECK(dicom_gen_write(fixture("huge-nopix.dcm"), &g, s, msg, sizeof msg) == 0);
    expect_refusal("huge-nopix.dcm", "no pixel data");
    g = base(16, 16);
    g.bits_stored = 17; /* more than allocated */
    CHECK(dicom_gen_write(fixture("bits17.dcm"), &g, s, msg, sizeof msg) == 0);
    expect_refusal("bits17.dcm", "Bits Stored 17");
    free(s);
}

/* Rows x Columns far beyond the pixel data: refused before decoding. */
static void test_absurd_dimensions(void)
{
    int32_t s[256] = {0};
    char msg[256];
    dicom_gen g = base(16, 16);
    CHECK(dicom_gen_write(fixture("absurd.dcm"), &g, s, msg, sizeof msg) == 0);
    /* patch Rows (0028,0010) US 16 to 65535 and Columns (0028,0011) too */
    FILE *f = fopen(fixture("absurd.dcm"), "r+b");
    static uint8_t buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    int patched = 0;
    for (size_t i = 0; i + 10 <= n; i++)
        if (buf[i] == 0x28 && buf[i + 1] == 0 && (buf[i + 2] == 0x10 || buf[i + 2] == 0x11) &&
            buf[i + 3] == 0 && buf[i + 4] == 'U' && buf[i + 5] == 'S') {
            buf[i + 8] = 0xff, buf[i + 9] = 0xff;
            patched++;
        }
    CHECK(patched == 2);
    if (f) {
        rewind(f);
        CHECK(fwrite(buf, 1, n, f) == n);
        fclose(f);
    }
    expect_refusal("absurd.dcm", "absurd dimensions 65535x65535");
}

/* RLE fragments are checked before DCMTK decodes them (its 3.6.7 decoder
 * crashed on a corrupt one): a segment offset past the fragment's end and
 * a segment cut short are refused with a message. */
static void test_corrupt_rle(void)
{
    int32_t *s = ramp(16, 16, 1, 65536, 0);
    char msg[256];
    dicom_gen g = base(16, 16);
    g.xfer = "rle";
    for (int kind = 0; kind < 2; kind++) {
        CHECK(dicom_gen_write(fixture("rle-bad.dcm"), &g, s, msg, sizeof msg) == 0);
        FILE *f = fopen(fixture("rle-bad.dcm"), "r+b");
        static uint8_t buf[1 << 16];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        static const uint8_t hdr[8] = {2, 0, 0, 0, 64, 0, 0, 0};
        size_t at = 0;
        for (size_t i = 0; i + 64 <= n && !at; i++)
            if (!memcmp(buf + i, hdr, 8))
                at = i;
        CHECK(at > 0);
        if (kind == 0) /* second segment starts far past the end */
            buf[at + 8] = 0xff, buf[at + 9] = 0xff, buf[at + 10] = 0x00, buf[at + 11] = 0x01;
        else /* first run header of segment 1 asks for 128 literal bytes ... repeated */
            memset(buf + at + 64, 0x7f, 8);
        if (f) {
            rewind(f);
            CHECK(fwrite(buf, 1, n, f) == n);
            fclose(f);
        }
        expect_refusal("rle-bad.dcm", "corrupt RLE data in frame 1");
    }
    free(s);
}

static void test_local_id(void)
{
    int32_t s[16] = {0};
    char msg[256];
    dicom_gen g = base(4, 4);
    g.sop_uid = "1.2.826.0.1.3680043.8.498.12345";
    CHECK(dicom_gen_write(fixture("uid.dcm"), &g, s, msg, sizeof msg) == 0);
    uint8_t *buf = NULL;
    size_t len = 0;
    sd_error err = {0};
    CHECK(nd_dicom_file_read(fixture("uid.dcm"), NULL, &buf, &len, &err) == 0);
    char a[40], b[40], c[40];
    CHECK(nd_dicom_local_id(buf, len, "uid.dcm", (const uint8_t *)"salt1", 5, a, sizeof a, &err) ==
          0);
    CHECK(nd_dicom_local_id(buf, len, "uid.dcm", (const uint8_t *)"salt1", 5, b, sizeof b, &err) ==
          0);
    CHECK(nd_dicom_local_id(buf, len, "uid.dcm", (const uint8_t *)"salt2", 5, c, sizeof c, &err) ==
          0);
    CHECK(strlen(a) == 28 && !strncmp(a, "dcm-", 4) && !strcmp(a, b) && strcmp(a, c));
    CHECK(strstr(a, "12345") == NULL);
    const char *keys[3] = {"1.2.3", "1.2.826.0.1.3680043.8.498.12345", "x"};
    int at = -2;
    CHECK(nd_dicom_uid_find(buf, len, "uid.dcm", keys, 3, &at, &err) == 0 && at == 1);
    CHECK(nd_dicom_uid_find(buf, len, "uid.dcm", keys, 1, &at, &err) == 0 && at == -1);
    free(buf);
}

/* Mutated objects (bytes changed, cut short) in every compressed syntax:
 * each is read or refused with a message, never a crash (the sanitizer
 * build checks memory as well); a small stand-in for tests/fuzz/fuzz_dicom.c
 * in every build. */
/* Under AddressSanitizer the mutants' large (refused or short-lived)
 * allocations cost ~60x: 80 per syntax there, 400 elsewhere; the fuzz
 * harness (tests/fuzz/fuzz_dicom.c) goes further. */
#ifdef __SANITIZE_ADDRESS__
#define MUTANTS_PER_SYNTAX 80
#else
#define MUTANTS_PER_SYNTAX 400
#endif

static void test_mutations(void)
{
    static const char *xfers[] = {"explicit", "jpeg-lossless", "jpeg-ls", "rle", "big"};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int32_t *s = ramp(24, 20, 2, 65536, 0);
    int accepted = 0, refused = 0, silent = 0;
    for (size_t k = 0; k < sizeof xfers / sizeof xfers[0]; k++) {
        dicom_gen g = base(24, 20);
        g.frames = 2;
        g.xfer = xfers[k];
        char msg[256];
        if (dicom_gen_write(fixture("mut.dcm"), &g, s, msg, sizeof msg))
            continue;
        uint8_t *buf = NULL, *m = NULL;
        size_t len = 0;
        sd_error err = {0};
        if (nd_dicom_file_read(fixture("mut.dcm"), NULL, &buf, &len, &err))
            continue;
        m = malloc(len);
        for (int it = 0; it < MUTANTS_PER_SYNTAX; it++) {
            memcpy(m, buf, len);
            size_t n = len;
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            int flips = 1 + (int)(x >> 60);
            for (int f = 0; f < flips; f++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                size_t at = 132 + (size_t)((x >> 20) % (len - 132));
                m[at] = (uint8_t)(x >> 8);
            }
            if (it % 5 == 0)
                n = 132 + (size_t)((x >> 33) % (len - 132));
            nd_dicom_info info;
            uint16_t *pix = NULL;
            sd_error e2 = {0};
            int rc = nd_dicom_read_frame(m, n, "mutant", (int)(x & 1), &pix, &info, &e2);
            accepted += rc == 0;
            refused += rc != 0;
            silent += rc != 0 && !e2.msg[0];
            free(pix);
        }
        free(m), free(buf);
    }
    free(s);
    printf("mutants: %d read, %d refused\n", accepted, refused);
    CHECK(accepted + refused == 5 * MUTANTS_PER_SYNTAX);
    CHECK(refused > 0 && silent == 0);
}

int main(void)
{
    if (!nd_dicom_available())
        return SD_TEST_SKIP;
    snprintf(g_dir, sizeof g_dir, "/tmp/sldd-dicom-read-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_photometric_and_syntaxes();
    test_12bit();
    test_8bit_window_and_baseline();
    test_voi_functions();
    test_spacing();
    test_multiframe();
    test_refusals();
    test_absurd_dimensions();
    test_local_id();
    test_corrupt_rle();
    test_mutations();
    int rc = sd_test_finish();
    if (rc == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g_dir);
    }
    return rc;
}
