/*
 * test_node_rebuild.c - the receive-side rebuild policy (nd_rebuild.h):
 * a payload declaring a ConvNet of width 3,000 (162 M parameters) is
 * refused by the default limits before anything of the model is
 * allocated, and the refusal's peak memory is measured; the paper's
 * largest model and ordinary test payloads pass; each limit names its
 * node.conf key; node.conf sets the limits through nd_config_load.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "nd_config.h"
#include "nd_payload.h"
#include "nd_rebuild.h"
#include "nd_node.h"
#include "sd_test.h"
#include "sp_testbundle.h"

static char root[300];

static long peak_rss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

/* A test payload with a ConvNet of the given width on 8x8 inputs. */
static int payload(uint32_t depth, uint32_t width, uint32_t epochs, uint8_t **buf, size_t *len)
{
    sp_test_params p;
    sp_test_params_default(&p);
    p.created_unix = 1700000000;
    p.expires_unix = p.created_unix + 86400;
    p.depth = depth;
    p.width = width;
    p.height = p.width_px = 8;
    p.steps = 2;
    p.per_step = 3;
    p.epochs = epochs;
    return sp_test_bundle_build(&p, buf, len);
}

/* Build and parse a test payload: d as the import worker gets it. */
static void parsed(uint32_t depth, uint32_t width, uint32_t epochs, sd_distilled *d)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    nd_payload_info info;
    sd_error err = {0, ""};
    CHECK(payload(depth, width, epochs, &buf, &len) == 0);
    CHECKF(nd_payload_parse(buf, len, d, &info, &err) == 0, "%s", err.msg);
    free(buf);
}

static void test_wide_convnet_refused(void)
{
    sd_distilled d;
    nd_rebuild_limits l;
    nd_rebuild_cost cost;
    sd_error err = {0, ""};
    nd_rebuild_limits_default(&l);
    long before = peak_rss_kib();
    parsed(3, 3000, 2, &d);
    CHECK(nd_rebuild_cost_of(&d, &cost, &err) == 0);
    CHECKF(cost.params > 162000000 && cost.params < 163000000, "%llu",
           (unsigned long long)cost.params);
    const char *key = nd_rebuild_check(&l, &cost, &err);
    CHECKF(key && !strcmp(key, "rebuild-max-params"), "%s", err.msg);
    CHECKF(strstr(err.msg, "parameters 162,") && strstr(err.msg, "150,000,000"), "%s", err.msg);
    CHECK(nd_rebuild_admit(&l, &d, &err) != 0 && strstr(err.msg, "refused by the rebuild policy") &&
          strstr(err.msg, "rebuild-max-params"));
    long after = peak_rss_kib();
    /* the replay would allocate 2 x 162 M floats (1.3 GB) before it could
     * check theta_0's hash; the refusal costs the graph's descriptors */
    printf("wide ConvNet (%llu parameters, replay %.0f MiB) refused: peak RSS %ld KiB -> %ld "
           "KiB\n",
           (unsigned long long)cost.params, (double)cost.memory / 1048576.0, before, after);
    CHECKF(after - before < 16 * 1024, "the refusal raised the peak RSS by %ld KiB",
           after - before);
    sd_distilled_free(&d);
}

static void test_normal_payloads_pass(void)
{
    sd_distilled d;
    nd_rebuild_limits l;
    sd_error err = {0, ""};
    nd_rebuild_limits_default(&l);
    parsed(3, 32, 3, &d);
    CHECKF(nd_rebuild_admit(&l, &d, &err) == 0, "%s", err.msg);
    sd_distilled_free(&d);

    /* the paper's largest model at the paper's patch size, 10 images per
     * step, T = 30: within the defaults with room to spare */
    sd_distilled v;
    nd_rebuild_cost cost;
    memset(&v, 0, sizeof v);
    snprintf(v.spec.arch, sizeof v.spec.arch, "vgg19");
    v.spec.bn = 1;
    v.spec.in_c = 1;
    v.spec.in_h = v.spec.in_w = 299;
    v.spec.classes = 3;
    v.steps = 10;
    v.images_per_step = 10;
    v.epochs_inner = 3;
    CHECK(nd_rebuild_cost_of(&v, &cost, &err) == 0);
    printf("vgg19-bn 1x299x299, S=10 n=10 E=3: %llu parameters, %.1f TFLOP, %.0f MiB\n",
           (unsigned long long)cost.params, cost.flop / 1e12, (double)cost.memory / 1048576.0);
    CHECK(cost.params == 139592387);
    CHECKF(!nd_rebuild_check(&l, &cost, &err), "%s", err.msg);
    CHECK(cost.flop * 4 < l.max_flop && cost.memory * 2 < l.max_memory);

    /* each limit is named by its key */
    v.epochs_inner = 1001; /* T = 10,010 */
    CHECK(nd_rebuild_cost_of(&v, &cost, &err) == 0 && cost.inner_steps == 10010);
    const char *key = nd_rebuild_check(&l, &cost, &err);
    CHECKF(key && !strcmp(key, "rebuild-max-inner-steps"), "%s", err.msg);
    v.epochs_inner = 3;
    v.images_per_step = 500;
    CHECK(nd_rebuild_cost_of(&v, &cost, &err) == 0);
    key = nd_rebuild_check(&l, &cost, &err);
    CHECKF(key && !strcmp(key, "rebuild-max-tflop") && strstr(err.msg, "TFLOP"), "%s", err.msg);
    v.images_per_step = 10;
    l.max_memory = 1024ull << 20;
    CHECK(nd_rebuild_cost_of(&v, &cost, &err) == 0);
    key = nd_rebuild_check(&l, &cost, &err);
    CHECKF(key && !strcmp(key, "rebuild-max-memory-mib") && strstr(err.msg, "> 1,024"), "%s",
           err.msg);
    /* a model that cannot be built is not admitted */
    snprintf(v.spec.arch, sizeof v.spec.arch, "nonesuch");
    CHECK(nd_rebuild_admit(&l, &v, &err) != 0 && strstr(err.msg, "cannot estimate"));
}

static void test_config_keys(void)
{
    char dir[400];
    nd_config c;
    sc_error e = {0, ""};
    snprintf(dir, sizeof dir, "%s/conf", root);
    CHECK(nd_node_init(dir, "node-r", &e) == 0);
    CHECK(nd_config_load(dir, &c, &e) == 0);
    CHECK(c.rebuild.max_params == ND_REBUILD_MAX_PARAMS &&
          c.rebuild.max_inner_steps == ND_REBUILD_MAX_INNER_STEPS &&
          c.rebuild.max_memory == ND_REBUILD_MAX_MEMORY_MIB << 20);
    CHECK(nd_config_append(dir,
                           "rebuild-max-params: 200000000\nrebuild-max-inner-steps: 50\n"
                           "rebuild-max-tflop: 7\nrebuild-max-memory-mib: 2048\n",
                           &e) == 0);
    CHECKF(nd_config_load(dir, &c, &e) == 0, "%s", e.msg);
    CHECK(c.rebuild.max_params == 200000000 && c.rebuild.max_inner_steps == 50 &&
          c.rebuild.max_flop == 7e12 && c.rebuild.max_memory == 2048ull << 20);
    CHECK(nd_config_append(dir, "rebuild-max-params: 0\n", &e) == 0);
    CHECK(nd_config_load(dir, &c, &e) == SC_EFORMAT && strstr(e.msg, "rebuild-max-params"));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    snprintf(root, sizeof root, "/tmp/sldd-test-rebuild-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_wide_convnet_refused();
    test_normal_payloads_pass();
    test_config_keys();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (!sd_test_failed_ && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return sd_test_finish();
}
