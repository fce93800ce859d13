/*
 * test_backend_errors.c - a failing backend call reaches the caller as one
 * exact, wrapped message.
 *
 * A wrapper backend forwards every op to the CPU backend except conv_fwd,
 * which fails on its k-th call with a fixed message.  Failing the first call
 * hits the forward pass, failing the call after the forward's last one hits
 * the tangent pass of sd_exec_hvp; both messages are compared whole, so a
 * message formatted into itself (an overlapping vsnprintf) or a lost wrap
 * fails here.
 */
#include <stdlib.h>
#include <string.h>

#include "../sd_test.h"
#include "sd_backend.h"
#include "sd_model.h"

static int conv_calls, conv_fail_at;
static int (*cpu_conv_fwd)(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *x,
                           const sd_real *w, sd_real beta, sd_real *y, void *ws);

static int failing_conv_fwd(sd_backend *be, sd_error *err, const sd_conv_desc *d, const sd_real *x,
                            const sd_real *w, sd_real beta, sd_real *y, void *ws)
{
    if (++conv_calls == conv_fail_at)
        return sd_error_set(err, SD_EBACKEND, "injected failure %d", conv_calls);
    return cpu_conv_fwd(be, err, d, x, w, beta, y, ws);
}

static const char *run(sd_backend *be, sd_model *m, int fail_at, int hvp, int *rc_out)
{
    enum { N = 2 };
    sd_error err = {0};
    sd_exec *ex = NULL;
    static char msg[sizeof err.msg];
    size_t nt = m->n_theta, nx = (size_t)N * 28 * 28, ny = (size_t)N * 10;
    sd_real *th = calloc(nt, sizeof *th), *v = calloc(nt, sizeof *v), *hv = calloc(nt, sizeof *hv);
    sd_real *x = calloc(nx, sizeof *x), *y = calloc(ny, sizeof *y);
    msg[0] = '\0';
    *rc_out = -999;
    if (!th || !v || !hv || !x || !y || sd_exec_create(&ex, m, be, N, SD_EXEC_TANGENT, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
    } else {
        sd_exec_args a = {th, NULL, SD_BN_BATCH, SD_LABEL_SOFTMAX, x, y, N};
        double loss;
        conv_calls = 0;
        conv_fail_at = fail_at;
        /* a stale message must not survive into the result */
        sd_error_set(&err, SD_EIO, "stale");
        *rc_out = hvp ? sd_exec_hvp(ex, &a, v, &loss, NULL, hv, NULL, NULL, &err)
                      : sd_exec_forward(ex, &a, &err);
        snprintf(msg, sizeof msg, "%s", err.msg);
        if (*rc_out)
            CHECK(err.code == *rc_out);
    }
    sd_exec_destroy(ex);
    free(th), free(v), free(hv), free(x), free(y);
    return msg;
}

int main(void)
{
    sd_error err = {0};
    sd_backend *cpu = NULL;
    sd_model *m = NULL;
    sd_model_spec spec = {.in_c = 1, .in_h = 28, .in_w = 28, .classes = 10};
    if (sd_backend_cpu_create(&cpu, 1, &err) || sd_model_spec_parse_arch(&spec, "lenet", &err) ||
        sd_model_create(&m, &spec, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return 1;
    }
    sd_backend wrap = *cpu;
    cpu_conv_fwd = cpu->conv_fwd;
    wrap.conv_fwd = failing_conv_fwd;
    wrap.destroy = NULL;

    int rc;
    const char *msg = run(&wrap, m, 1, 0, &rc);
    printf("forward: [%s]\n", msg);
    CHECK(rc == SD_EBACKEND);
    CHECKF(!strcmp(msg, "forward of layer conv1: conv forward: injected failure 1"), "got [%s]",
           msg);

    /* count the forward's conv calls, then fail the first tangent one */
    msg = run(&wrap, m, 1000, 0, &rc);
    CHECK(rc == SD_OK);
    int per_forward = conv_calls;
    CHECK(per_forward == 2);
    msg = run(&wrap, m, per_forward + 1, 1, &rc);
    printf("hvp: [%s]\n", msg);
    CHECK(rc == SD_EBACKEND);
    CHECKF(!strcmp(msg, "tangent of layer conv1: conv forward_tangent: injected failure 3"),
           "got [%s]", msg);

    sd_model_destroy(m);
    sd_backend_destroy(cpu);
    return sd_test_finish();
}
