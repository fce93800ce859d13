/*
 * test_dnnl_wx.c - the CPU backend in a process that may not make memory
 * executable after writing it, as under the packaged service unit
 * (systemd's MemoryDenyWriteExecute=yes): oneDNN generates its kernels at
 * run time and cannot run there, so the `dnnl` path must turn itself off
 * with a reason, and convolutions of every shape must still run, on the
 * engine's own paths, with the bits those paths give anywhere.
 *
 * The sandbox is the kernel's own: prctl(PR_SET_MDWE,
 * PR_MDWE_REFUSE_EXEC_GAIN) (Linux 6.3; what systemd uses where it can).
 * Exit 77 where the kernel lacks it or the build has no oneDNN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "../sd_test.h"
#include "sd_backend.h"
#include "sd_backend_cpu.h"

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

/* y = conv(x, w) on path p; 0 or the backend's status */
static int conv(sd_backend *be, sd_cpu_conv_path p, const sd_conv_desc *d, const float *x,
                const float *w, float *y, sd_error *err)
{
    void *wsp = NULL;
    int rc = sd_backend_cpu_set_conv_path(be, p);
    size_t ws = rc ? 0 : be->conv_workspace(be, d);
    if (!rc && ws)
        rc = be->alloc(be, err, ws, &wsp);
    if (!rc)
        rc = be->conv_fwd(be, err, d, x, w, 0, y, wsp);
    be->free(be, wsp);
    return rc;
}

int main(void)
{
#ifndef SLDD_TEST_HAVE_DNNL
    printf("SKIP: this build has no oneDNN path\n");
    return 77;
#else
    if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) != 0) {
        printf("SKIP: the kernel has no PR_SET_MDWE\n");
        return 77;
    }
    sd_backend *be = NULL;
    sd_error err = {0};
    if (sd_backend_cpu_create(&be, 2, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    CHECK(!sd_backend_cpu_has_dnnl());
    const char *why = sd_backend_cpu_dnnl_unusable();
    CHECKF(why && strstr(why, "dnnl_primitive_create"), "reason: %s", why ? why : "(none)");
    printf("oneDNN off under W^X denial: %s\n", why ? why : "(none)");

    /* a layer the automatic rule gives oneDNN where it can run */
    sd_conv_desc d = {.n = 4,
                      .c = 16,
                      .h = 12,
                      .w = 12,
                      .k = 16,
                      .r = 3,
                      .s = 3,
                      .stride = 1,
                      .pad = 1,
                      .oh = 12,
                      .ow = 12};
    size_t nx = (size_t)d.n * d.c * d.h * d.w, nw = (size_t)d.k * d.c * d.r * d.s;
    size_t ny = (size_t)d.n * d.k * d.oh * d.ow;
    float *x = NULL, *w = NULL, *ya = NULL, *yb = NULL;
    CHECK(be->alloc(be, &err, nx * sizeof *x, (void **)&x) == 0 &&
          be->alloc(be, &err, nw * sizeof *w, (void **)&w) == 0 &&
          be->alloc(be, &err, ny * sizeof *ya, (void **)&ya) == 0 &&
          be->alloc(be, &err, ny * sizeof *yb, (void **)&yb) == 0);
    if (x && w && ya && yb) {
        for (size_t i = 0; i < nx; i++)
            x[i] = (float)((i * 37 % 101) - 50) / 50.0f;
        for (size_t i = 0; i < nw; i++)
            w[i] = (float)((i * 53 % 89) - 44) / 88.0f;
        for (int pass = SD_CPU_CONV_FWD; pass <= SD_CPU_CONV_BWD_FILTER; pass++)
            CHECK(sd_backend_cpu_conv_path(be, &d, (sd_cpu_conv_pass)pass) != SD_CPU_CONV_DNNL);
        /* automatic and forced dnnl both run, on the engine's path, same bits */
        CHECKF(conv(be, SD_CPU_CONV_AUTO, &d, x, w, ya, &err) == 0, "auto: %s", err.msg);
        CHECKF(conv(be, SD_CPU_CONV_DNNL, &d, x, w, yb, &err) == 0, "forced dnnl: %s", err.msg);
        CHECK(memcmp(ya, yb, ny * sizeof *ya) == 0);
        CHECKF(conv(be, SD_CPU_CONV_IM2COL, &d, x, w, yb, &err) == 0, "im2col: %s", err.msg);
        CHECK(memcmp(ya, yb, ny * sizeof *ya) == 0);
    }
    be->free(be, x);
    be->free(be, w);
    be->free(be, ya);
    be->free(be, yb);
    sd_backend_destroy(be);
    return sd_test_finish();
#endif
}
