/*
 * test_detect.c - Eq. 9 detection: the grid, batching and patch contents
 * handed to the classifier, r and the decision at delta, "undetermined",
 * classifier failures, and the heat map.
 */
#include <math.h>
#include <string.h>

#include "../sd_test.h"
#include "data_testutil.h"
#include "sd_dataset.h"
#include "sd_detect.h"
#include "sd_png.h"

enum { W = 300, H = 200, PS = 50, ST = 25, OS = 10 };

typedef struct mock {
    const uint16_t *pix;
    const sd_detect_params *p;
    int calls, seen, max_n, content_ok;
    const int *answer; /* class for patch k (row-major) */
    int fail_at;       /* return an error on this call (0 = never) */
    int bad_class;
} mock;

static int classify(void *ctx, const sd_real *patches, int n, int *out)
{
    mock *m = ctx;
    m->calls++;
    if (m->fail_at && m->calls == m->fail_at)
        return SD_EBACKEND;
    if (n > m->max_n)
        m->max_n = n;
    /* the patches must be the grid windows in row-major order */
    int gw = sd_patch_grid_dim(W, PS, ST);
    sd_real ref[OS * OS];
    for (int k = 0; k < n; k++) {
        int g = m->seen + k;
        int32_t y = g / gw * ST, x = g % gw * ST;
        sd_error e = {0};
        if (sd_patch_cut_image(m->pix, W, H, &y, &x, 1, PS, OS, m->p->mean, m->p->std, ref, &e))
            m->content_ok = 0;
        if (memcmp(ref, patches + (size_t)k * OS * OS, sizeof ref))
            m->content_ok = 0;
        out[k] = m->bad_class ? 5 : m->answer[g];
    }
    m->seen += n;
    return 0;
}

int main(void)
{
    tu_scratch("detect");
    static uint16_t pix[W * H];
    for (int i = 0; i < W * H; i++)
        pix[i] = (uint16_t)((i % W) * 200 + (i / W) * 7);
    sd_detect_params p = {PS, ST, OS, 0.3, 0.2, SD_DETECT_DELTA, 10, NULL};
    int gh = sd_patch_grid_dim(H, PS, ST), gw = sd_patch_grid_dim(W, PS, ST);
    CHECK(gh == 7 && gw == 11);
    int total = gh * gw, answer[7 * 11];
    /* 20 I, 33 N, 24 P -> r = 24/57 = 0.421 >= 0.4 */
    for (int k = 0; k < total; k++)
        answer[k] = k < 20 ? 0 : k < 53 ? 1 : 2;
    mock m = {pix, &p, 0, 0, 0, 1, answer, 0, 0};
    sd_detect_result res;
    sd_error e = {0};
    CHECK(sd_detect_image(pix, W, H, &p, classify, &m, &res, &e) == 0);
    CHECK(res.gh == 7 && res.gw == 11);
    CHECK(res.num[0] == 20 && res.num[1] == 33 && res.num[2] == 24);
    CHECK(fabs(res.r - 24.0 / 57) < 1e-15);
    CHECK(res.decision == SD_DETECT_POSITIVE);
    CHECK(m.calls == 8 && m.max_n == 10 && m.seen == 77); /* batches of 10 */
    CHECK(m.content_ok);
    CHECK(res.classes[0] == 0 && res.classes[76] == 2);
    char path[512];
    tu_path(path, sizeof path, "heat.png");
    CHECK(sd_detect_heatmap_png(path, pix, W, H, &p, &res, "test image", 1, 0, &e) == 0);
    sd_png_info info;
    CHECK(sd_png_read_info(path, &info, &e) == 0 && info.channels == 3);
    sd_detect_result_free(&res);

    /* the same counts below the threshold */
    p.delta = 0.5;
    m = (mock){pix, &p, 0, 0, 0, 1, answer, 0, 0};
    CHECK(sd_detect_image(pix, W, H, &p, classify, &m, &res, &e) == 0);
    CHECK(res.decision == SD_DETECT_NEGATIVE);
    sd_detect_result_free(&res);

    /* r exactly at delta is gastritis */
    double r;
    CHECK(sd_detect_decide(3, 2, 0.4, &r) == SD_DETECT_POSITIVE && fabs(r - 0.4) < 1e-15);
    CHECK(sd_detect_decide(4, 0, 0.4, &r) == SD_DETECT_NEGATIVE && r == 0);
    CHECK(sd_detect_decide(0, 0, 0.4, &r) == SD_DETECT_UNDETERMINED && isnan(r));

    /* only I patches: undetermined, never a guess */
    int all_i[7 * 11] = {0};
    m = (mock){pix, &p, 0, 0, 0, 1, all_i, 0, 0};
    CHECK(sd_detect_image(pix, W, H, &p, classify, &m, &res, &e) == 0);
    CHECK(res.decision == SD_DETECT_UNDETERMINED && isnan(res.r) && res.num[0] == 77);
    tu_path(path, sizeof path, "heat_und.png");
    CHECK(sd_detect_heatmap_png(path, pix, W, H, &p, &res, NULL, 0, 64, &e) == 0);
    sd_detect_result_free(&res);

    /* classifier failure and nonsense classes are errors */
    m = (mock){pix, &p, 0, 0, 0, 1, answer, 3, 0};
    CHECK(sd_detect_image(pix, W, H, &p, classify, &m, &res, &e) == SD_EBACKEND);
    CHECK(res.classes == NULL);
    m = (mock){pix, &p, 0, 0, 0, 1, answer, 0, 1};
    CHECK(sd_detect_image(pix, W, H, &p, classify, &m, &res, &e) == SD_EINVAL);
    CHECK(strstr(e.msg, "class 5") != NULL);

    /* bad parameters */
    sd_detect_params q = p;
    q.osize = PS + 1;
    CHECK(sd_detect_image(pix, W, H, &q, classify, &m, &res, &e) == SD_EINVAL);
    q = p;
    q.std = 0;
    CHECK(sd_detect_image(pix, W, H, &q, classify, &m, &res, &e) == SD_EINVAL);
    q = p;
    q.psize = 250;
    q.osize = 10;
    CHECK(sd_detect_image(pix, W, H, &q, classify, &m, &res, &e) == SD_EINVAL);
    CHECK(strstr(e.msg, "smaller than one") != NULL);

    /* the paper's geometry: 2048 x 2048 with 299/50 is 35 x 35 = 1225 patches */
    CHECK(sd_patch_grid_dim(2048, 299, 50) == 35);
    return sd_test_finish();
}
