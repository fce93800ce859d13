/*
 * test_synth.c - the synthetic phantom generator: determinism, argument
 * checks, plausible masks, a texture statistic that differs between the
 * classes on average, and the dataset writer (labels, stratified splits,
 * README, thread-count independence, refusing to overwrite, the lowest
 * failing image reported).
 */
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../sd_test.h"
#include "data_testutil.h"
#include "sd_dataset.h"
#include "sd_png.h"
#include "sd_synth.h"

static void test_determinism(void)
{
    enum { W = 160, H = 120 };
    static uint8_t a[W * H], b[W * H], ma[W * H], mb[W * H];
    sd_error e = {0};
    sd_synth_opts o = {W, H, 1, 42};
    CHECK(sd_synth_generate(&o, a, ma, &e) == 0);
    CHECK(sd_synth_generate(&o, b, mb, &e) == 0);
    CHECK(!memcmp(a, b, sizeof a) && !memcmp(ma, mb, sizeof ma));
    o.seed = 43;
    CHECK(sd_synth_generate(&o, b, NULL, &e) == 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    o.seed = 42;
    o.label = 0;
    CHECK(sd_synth_generate(&o, b, mb, &e) == 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    /* the stomach's shape comes from the seed, not the label */
    CHECK(!memcmp(ma, mb, sizeof ma));

    o.width = 8;
    CHECK(sd_synth_generate(&o, a, NULL, &e) == SD_EINVAL);
    o.width = W;
    o.label = 2;
    CHECK(sd_synth_generate(&o, a, NULL, &e) == SD_EINVAL);
    CHECK(strstr(e.msg, "label 2") != NULL);
}

/* Standard deviation of a band-pass image (box 2 minus box 6) inside the
 * stomach, relative to the stomach's overall standard deviation: coarse
 * nodular gastritis texture puts more energy in this band. */
static double band_energy(const uint8_t *img, const uint8_t *mask, int n)
{
    double *ii = calloc((size_t)(n + 1) * (n + 1), sizeof *ii);
    double *mi = calloc((size_t)(n + 1) * (n + 1), sizeof *mi);
#define AT(t, y, x) t[(size_t)(y) * (n + 1) + (x)]
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            AT(ii, y + 1, x + 1) =
                img[y * n + x] + AT(ii, y, x + 1) + AT(ii, y + 1, x) - AT(ii, y, x);
            AT(mi, y + 1, x + 1) =
                (mask[y * n + x] != 0) + AT(mi, y, x + 1) + AT(mi, y + 1, x) - AT(mi, y, x);
        }
#define BOX(t, y, x, k)                                                                        \
    ((AT(t, (y) + (k), (x) + (k)) - AT(t, y, (x) + (k)) - AT(t, (y) + (k), x) + AT(t, y, x)) / \
     ((k) * (k)))
    double s1 = 0, s2 = 0, m1 = 0, m2 = 0;
    long cnt = 0, mc = 0;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++)
            if (mask[y * n + x]) {
                m1 += img[y * n + x];
                m2 += (double)img[y * n + x] * img[y * n + x];
                mc++;
            }
    for (int y = 0; y + 6 <= n; y++)
        for (int x = 0; x + 6 <= n; x++) {
            if (BOX(mi, y, x, 6) < 1)
                continue;
            double d = BOX(ii, y + 2, x + 2, 2) - BOX(ii, y, x, 6);
            s1 += d;
            s2 += d * d;
            cnt++;
        }
#undef BOX
#undef AT
    free(ii);
    free(mi);
    double sd = sqrt(s2 / cnt - (s1 / cnt) * (s1 / cnt));
    double msd = sqrt(m2 / mc - (m1 / mc) * (m1 / mc));
    return sd / msd;
}

static void test_classes(void)
{
    enum { N = 256, K = 8 };
    static uint8_t img[N * N], mask[N * N];
    sd_error e = {0};
    double mean[2] = {0, 0};
    for (int lab = 0; lab < 2; lab++)
        for (int s = 1; s <= K; s++) {
            sd_synth_opts o = {N, N, lab, (uint64_t)s};
            CHECK(sd_synth_generate(&o, img, mask, &e) == 0);
            long in = 0;
            for (int i = 0; i < N * N; i++)
                in += mask[i] != 0;
            /* the stomach fills a good part of the frame, not all of it */
            CHECKF(in > N * N / 7 && in < N * N * 7 / 10, "seed %d: stomach %ld px", s, in);
            /* and the mask is 0/255 only */
            int binary = 1;
            for (int i = 0; i < N * N; i++)
                binary &= mask[i] == 0 || mask[i] == 255;
            CHECK(binary);
            mean[lab] += band_energy(img, mask, N) / K;
        }
    /* measured: about 0.26 (non-gastritis) and 0.33 (gastritis), per-image
     * spread about 0.03 */
    CHECKF(mean[1] - mean[0] > 0.03, "band energy %.3f vs %.3f", mean[0], mean[1]);
}

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return (int)n;
}

static int same_file(const char *a, const char *b)
{
    static char x[1 << 16], y[1 << 16];
    int n = read_file(a, x, sizeof x), m = read_file(b, y, sizeof y);
    return n > 0 && n == m && !memcmp(x, y, (size_t)n);
}

static void test_dataset_writer(void)
{
    char d1[512], d2[512], path[600], path2[600];
    tu_path(d1, sizeof d1, "ds1");
    tu_path(d2, sizeof d2, "ds2/nested");
    sd_error e = {0};
    sd_synth_dataset_opts o = {0};
    o.out_dir = d1;
    o.count = 10;
    o.size = 64;
    o.seed = 7;
    o.gastritis_fraction = 0.3;
    o.split[0] = 0.6;
    o.split[1] = 0.2;
    o.split[2] = 0.2;
    o.threads = 1;
    CHECK(sd_synth_dataset_write(&o, &e) == 0);
    o.out_dir = d2;
    o.threads = 4;
    CHECK(sd_synth_dataset_write(&o, &e) == 0);
    /* same bytes whatever the thread count */
    snprintf(path, sizeof path, "%s/labels.csv", d1);
    snprintf(path2, sizeof path2, "%s/labels.csv", d2);
    CHECK(same_file(path, path2));
    snprintf(path, sizeof path, "%s/images/synth0003.png", d1);
    snprintf(path2, sizeof path2, "%s/images/synth0003.png", d2);
    CHECK(same_file(path, path2));
    snprintf(path, sizeof path, "%s/masks/synth0009.png", d1);
    snprintf(path2, sizeof path2, "%s/masks/synth0009.png", d2);
    CHECK(same_file(path, path2));

    char buf[4096];
    snprintf(path, sizeof path, "%s/README.txt", d1);
    CHECK(read_file(path, buf, sizeof buf) > 0 && !strncmp(buf, "SYNTHETIC", 9));

    /* 3 gastritis of 10; splits stratified by largest remainders:
     * label 0 (7): 4/2/1, label 1 (3): 2/1/0 */
    sd_dataset *ds = NULL;
    CHECK(sd_dataset_open(&ds, d1, SD_LOAD_TRAIN, &e) == 0);
    if (ds) {
        CHECK(ds->n == 10 && ds->synthetic);
        CHECK(ds->count[SD_SPLIT_TRAIN][0] == 4 && ds->count[SD_SPLIT_TRAIN][1] == 2);
        CHECK(ds->count[SD_SPLIT_VAL][0] == 2 && ds->count[SD_SPLIT_VAL][1] == 1);
        CHECK(ds->count[SD_SPLIT_TEST][0] == 1 && ds->count[SD_SPLIT_TEST][1] == 0);
        CHECK(!strcmp(ds->img[0].id, "synth0000") && ds->img[0].w == 64);
        CHECK(ds->img[0].has_mask && ds->img[0].bit_depth == 8);
    }
    sd_dataset_destroy(ds);

    /* refuses to overwrite without force */
    o.out_dir = d1;
    CHECK(sd_synth_dataset_write(&o, &e) == SD_EINVAL);
    CHECK(strstr(e.msg, "already exists") != NULL);
    o.force = 1;
    CHECK(sd_synth_dataset_write(&o, &e) == 0);

    o.count = 0;
    CHECK(sd_synth_dataset_write(&o, &e) == SD_EINVAL);
    o.count = 3;
    o.gastritis_fraction = 1.5;
    CHECK(sd_synth_dataset_write(&o, &e) == SD_EINVAL);
    o.gastritis_fraction = 0.5;
    o.split[0] = o.split[1] = o.split[2] = 0;
    CHECK(sd_synth_dataset_write(&o, &e) == SD_EINVAL);

    char id[32];
    sd_synth_image_id(id, 7, 10);
    CHECK(!strcmp(id, "synth0007"));
    sd_synth_image_id(id, 12345, 100000); /* ids 0..99999: five digits */
    CHECK(!strcmp(id, "synth12345"));
    sd_synth_image_id(id, 12345, 100001);
    CHECK(!strcmp(id, "synth012345"));
}

/* A failing image stops the writer with that image's error: the lowest
 * failing one whatever the thread count, and no labels.csv is written. */
static void test_dataset_writer_failure(void)
{
    for (int threads = 1; threads <= 4; threads++) {
        char dir[512], path[700], sub[64];
        snprintf(sub, sizeof sub, "fail%d", threads);
        tu_path(dir, sizeof dir, sub);
        /* directories where images 2 and 9 should go: those writes fail */
        snprintf(path, sizeof path, "%s", dir);
        CHECK(mkdir(path, 0755) == 0);
        snprintf(path, sizeof path, "%s/images", dir);
        CHECK(mkdir(path, 0755) == 0);
        snprintf(path, sizeof path, "%s/images/synth0002.png", dir);
        CHECK(mkdir(path, 0755) == 0);
        snprintf(path, sizeof path, "%s/images/synth0009.png", dir);
        CHECK(mkdir(path, 0755) == 0);
        sd_error e = {0};
        sd_synth_dataset_opts o = {0};
        o.out_dir = dir;
        o.count = 12;
        o.size = 16;
        o.seed = 3;
        o.gastritis_fraction = 0.5;
        o.split[0] = 1;
        o.threads = threads;
        int rc = sd_synth_dataset_write(&o, &e);
        CHECKF(rc != 0 && strstr(e.msg, "synth0002") && !strstr(e.msg, "synth0009"),
               "%d threads: rc %d, %s", threads, rc, e.msg);
        snprintf(path, sizeof path, "%s/labels.csv", dir);
        CHECK(access(path, F_OK) != 0);
    }
}

int main(void)
{
    tu_scratch("synth");
    test_determinism();
    test_classes();
    test_dataset_writer();
    test_dataset_writer_failure();
    return sd_test_finish();
}
