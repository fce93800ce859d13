/*
 * sd_models.c - the architectures: LeNet, the ConvNet family, AlexNet,
 * VGG16/19, ResNet18/34 and GoogLeNet, each with and without batch norm.
 *
 * Input channels, input size and class count are parameters.  AlexNet, VGG,
 * ResNet and GoogLeNet follow torchvision's module structure (and so its
 * parameter order and counts); the "-bn" variants of AlexNet add a BN after
 * every convolution, and the no-BN variants of ResNet and GoogLeNet give their
 * convolutions a bias in place of the removed BN.  See docs/models.md.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sd_model.h"

typedef struct builder {
    sd_model *m;
    sd_error *err;
    int rc;
} builder;

static int add(builder *b, sd_layer *l, const int *in, int n_in, const char *fmt, ...)
    SD_PRINTF(5, 6);

static int add(builder *b, sd_layer *l, const int *in, int n_in, const char *fmt, ...)
{
    if (b->rc)
        return -1;
    char name[48];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    l->eps = 1e-5;
    int idx = sd_model_add(b->m, l, in, n_in, name, b->err);
    if (idx < 0) {
        b->rc = idx;
        return -1;
    }
    return idx;
}

static int conv(builder *b, int x, int k, int r, int stride, int pad, int bias, const char *name)
{
    sd_layer l = {
        .kind = SD_LAYER_CONV, .k = k, .r = r, .s = r, .stride = stride, .pad = pad, .bias = bias};
    return add(b, &l, &x, 1, "%s", name);
}

static int simple(builder *b, sd_layer_kind kind, int x, const char *name)
{
    sd_layer l = {.kind = kind};
    return add(b, &l, &x, 1, "%s", name);
}

static int bn(builder *b, int x, const char *name)
{
    return simple(b, SD_LAYER_BN, x, name);
}
static int relu(builder *b, int x)
{
    return simple(b, SD_LAYER_RELU, x, "relu");
}

static int pool(builder *b, sd_layer_kind kind, int x, int k, int s, int p, int ceil_mode)
{
    sd_layer l = {.kind = kind,
                  .kh = k,
                  .kw = k,
                  .sh = s,
                  .sw = s,
                  .ph = p,
                  .pw = p,
                  .ceil_mode = ceil_mode,
                  .count_include_pad = 1};
    return add(b, &l, &x, 1, "%s", kind == SD_LAYER_MAXPOOL ? "maxpool" : "avgpool");
}

static int adaptive(builder *b, int x, int oh, int ow)
{
    sd_layer l = {.kind = SD_LAYER_ADAPTIVE_AVGPOOL};
    l.out.h = oh;
    l.out.w = ow;
    return add(b, &l, &x, 1, "avgpool");
}

static int linear(builder *b, int x, int out, const char *name)
{
    sd_layer l = {.kind = SD_LAYER_LINEAR, .out_features = out, .bias = 1};
    return add(b, &l, &x, 1, "%s", name);
}

static int dropout(builder *b, int x, double p)
{
    sd_layer l = {.kind = SD_LAYER_DROPOUT, .p_drop = p};
    return add(b, &l, &x, 1, "dropout");
}

/* conv (+ bn) + relu, with torchvision-style names prefix.conv / prefix.bn */
static int conv_bn_relu(builder *b, int x, int k, int r, int stride, int pad, int use_bn, int bias,
                        const char *prefix)
{
    char n1[48], n2[48];
    snprintf(n1, sizeof n1, "%s.conv", prefix);
    snprintf(n2, sizeof n2, "%s.bn", prefix);
    x = conv(b, x, k, r, stride, pad, bias, n1);
    if (use_bn)
        x = bn(b, x, n2);
    return relu(b, x);
}

/* ---------------------------------------------------------------- LeNet */
/* LeNet-5 as in the dataset-distillation literature: 28x28 inputs get
 * padding 2 in the first convolution so both convolutions see 32x32-like maps. */
static void build_lenet(builder *b)
{
    const sd_model_spec *s = &b->m->spec;
    int x = 0;
    x = conv(b, x, 6, 5, 1, s->in_h == 28 ? 2 : 0, 1, "conv1");
    if (s->bn)
        x = bn(b, x, "bn1");
    x = relu(b, x);
    x = pool(b, SD_LAYER_MAXPOOL, x, 2, 2, 0, 0);
    x = conv(b, x, 16, 5, 1, 0, 1, "conv2");
    if (s->bn)
        x = bn(b, x, "bn2");
    x = relu(b, x);
    x = pool(b, SD_LAYER_MAXPOOL, x, 2, 2, 0, 0);
    x = simple(b, SD_LAYER_FLATTEN, x, "flatten");
    x = relu(b, linear(b, x, 120, "fc1"));
    x = relu(b, linear(b, x, 84, "fc2"));
    linear(b, x, s->classes, "fc3");
}

/* ---------------------------------------------------------------- ConvNet */
/* The ConvNet of the distillation literature: depth x [conv3x3(width) (+BN)
 * + ReLU + avgpool 2], then one linear layer. */
static void build_convnet(builder *b)
{
    const sd_model_spec *s = &b->m->spec;
    int x = 0;
    char name[48];
    for (int d = 0; d < s->depth; d++) {
        snprintf(name, sizeof name, "features.%d", d);
        x = conv_bn_relu(b, x, s->width, 3, 1, 1, s->bn, 1, name);
        x = pool(b, SD_LAYER_AVGPOOL, x, 2, 2, 0, 0);
    }
    x = simple(b, SD_LAYER_FLATTEN, x, "flatten");
    linear(b, x, s->classes, "classifier");
}

/* ---------------------------------------------------------------- AlexNet */
static void build_alexnet(builder *b)
{
    const sd_model_spec *s = &b->m->spec;
    static const int ks[5] = {64, 192, 384, 256, 256}, rs[5] = {11, 5, 3, 3, 3},
                     st[5] = {4, 1, 1, 1, 1}, pd[5] = {2, 2, 1, 1, 1};
    int x = 0;
    char name[48];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "features.%d", i);
        x = conv_bn_relu(b, x, ks[i], rs[i], st[i], pd[i], s->bn, 1, name);
        if (i == 0 || i == 1 || i == 4)
            x = pool(b, SD_LAYER_MAXPOOL, x, 3, 2, 0, 0);
    }
    x = adaptive(b, x, 6, 6);
    x = simple(b, SD_LAYER_FLATTEN, x, "flatten");
    x = dropout(b, x, 0.5);
    x = relu(b, linear(b, x, 4096, "classifier.1"));
    x = dropout(b, x, 0.5);
    x = relu(b, linear(b, x, 4096, "classifier.4"));
    linear(b, x, s->classes, "classifier.6");
}

/* ---------------------------------------------------------------- VGG */
static void build_vgg(builder *b, int layers)
{
    const sd_model_spec *s = &b->m->spec;
    static const int cfg16[] = {64,  64,  0,   128, 128, 0,   256, 256, 256, 0,
                                512, 512, 512, 0,   512, 512, 512, 0,   -1};
    static const int cfg19[] = {64,  64,  0,   128, 128, 0,   256, 256, 256, 256, 0,
                                512, 512, 512, 512, 0,   512, 512, 512, 512, 0,   -1};
    const int *cfg = layers == 19 ? cfg19 : cfg16;
    int x = 0, i = 0;
    char name[48];
    for (; cfg[i] >= 0; i++) {
        if (cfg[i] == 0) {
            x = pool(b, SD_LAYER_MAXPOOL, x, 2, 2, 0, 0);
            continue;
        }
        snprintf(name, sizeof name, "features.%d", i);
        x = conv_bn_relu(b, x, cfg[i], 3, 1, 1, s->bn, 1, name);
    }
    x = adaptive(b, x, 7, 7);
    x = simple(b, SD_LAYER_FLATTEN, x, "flatten");
    x = relu(b, linear(b, x, 4096, "classifier.0"));
    x = dropout(b, x, 0.5);
    x = relu(b, linear(b, x, 4096, "classifier.3"));
    x = dropout(b, x, 0.5);
    linear(b, x, s->classes, "classifier.6");
}

/* ---------------------------------------------------------------- ResNet */
static int basic_block(builder *b, int x, int planes, int stride, const char *prefix)
{
    int use_bn = b->m->spec.bn, bias = !use_bn;
    int cin = b->rc ? 0 : b->m->layers[x].out.c;
    char n[64];
    snprintf(n, sizeof n, "%s.conv1", prefix);
    int y = conv(b, x, planes, 3, stride, 1, bias, n);
    if (use_bn) {
        snprintf(n, sizeof n, "%s.bn1", prefix);
        y = bn(b, y, n);
    }
    y = relu(b, y);
    snprintf(n, sizeof n, "%s.conv2", prefix);
    y = conv(b, y, planes, 3, 1, 1, bias, n);
    if (use_bn) {
        snprintf(n, sizeof n, "%s.bn2", prefix);
        y = bn(b, y, n);
    }
    int sc = x;
    if (stride != 1 || cin != planes) {
        snprintf(n, sizeof n, "%s.downsample.0", prefix);
        sc = conv(b, x, planes, 1, stride, 0, bias, n);
        if (use_bn) {
            snprintf(n, sizeof n, "%s.downsample.1", prefix);
            sc = bn(b, sc, n);
        }
    }
    sd_layer l = {.kind = SD_LAYER_ADD};
    int ins[2] = {y, sc};
    y = add(b, &l, ins, 2, "%s.add", prefix);
    return relu(b, y);
}

static void build_resnet(builder *b, const int blocks[4])
{
    const sd_model_spec *s = &b->m->spec;
    int w = s->width; /* 64 for torchvision's ResNets; smaller for tests */
    int x = conv(b, 0, w, 7, 2, 3, !s->bn, "conv1");
    if (s->bn)
        x = bn(b, x, "bn1");
    x = relu(b, x);
    x = pool(b, SD_LAYER_MAXPOOL, x, 3, 2, 1, 0);
    const int planes[4] = {w, 2 * w, 4 * w, 8 * w};
    char prefix[32];
    for (int li = 0; li < 4; li++)
        for (int bi = 0; bi < blocks[li]; bi++) {
            snprintf(prefix, sizeof prefix, "layer%d.%d", li + 1, bi);
            x = basic_block(b, x, planes[li], (li > 0 && bi == 0) ? 2 : 1, prefix);
        }
    x = adaptive(b, x, 1, 1);
    x = simple(b, SD_LAYER_FLATTEN, x, "flatten");
    linear(b, x, s->classes, "fc");
}

/* ---------------------------------------------------------------- GoogLeNet */
/* torchvision's BasicConv2d: conv without bias + BN + ReLU (the no-BN variant
 * uses a conv with bias). */
static int basic_conv(builder *b, int x, int k, int r, int stride, int pad, const char *prefix)
{
    return conv_bn_relu(b, x, k, r, stride, pad, b->m->spec.bn, !b->m->spec.bn, prefix);
}

static int inception(builder *b, int x, int c1, int c3r, int c3, int c5r, int c5, int pp,
                     const char *prefix)
{
    char n[64];
    snprintf(n, sizeof n, "%s.branch1", prefix);
    int b1 = basic_conv(b, x, c1, 1, 1, 0, n);
    snprintf(n, sizeof n, "%s.branch2.0", prefix);
    int b2 = basic_conv(b, x, c3r, 1, 1, 0, n);
    snprintf(n, sizeof n, "%s.branch2.1", prefix);
    b2 = basic_conv(b, b2, c3, 3, 1, 1, n);
    snprintf(n, sizeof n, "%s.branch3.0", prefix);
    int b3 = basic_conv(b, x, c5r, 1, 1, 0, n);
    snprintf(n, sizeof n, "%s.branch3.1", prefix); /* 3x3, as torchvision */
    b3 = basic_conv(b, b3, c5, 3, 1, 1, n);
    int b4 = pool(b, SD_LAYER_MAXPOOL, x, 3, 1, 1, 1);
    snprintf(n, sizeof n, "%s.branch4.1", prefix);
    b4 = basic_conv(b, b4, pp, 1, 1, 0, n);
    sd_layer l = {.kind = SD_LAYER_CONCAT};
    int ins[4] = {b1, b2, b3, b4};
    return add(b, &l, ins, 4, "%s.cat", prefix);
}

static void build_googlenet(builder *b)
{
    const sd_model_spec *s = &b->m->spec;
    int x = basic_conv(b, 0, 64, 7, 2, 3, "conv1");
    x = pool(b, SD_LAYER_MAXPOOL, x, 3, 2, 0, 1);
    x = basic_conv(b, x, 64, 1, 1, 0, "conv2");
    x = basic_conv(b, x, 192, 3, 1, 1, "conv3");
    x = pool(b, SD_LAYER_MAXPOOL, x, 3, 2, 0, 1);
    x = inception(b, x, 64, 96, 128, 16, 32, 32, "inception3a");
    x = inception(b, x, 128, 128, 192, 32, 96, 64, "inception3b");
    x = pool(b, SD_LAYER_MAXPOOL, x, 3, 2, 0, 1);
    x = inception(b, x, 192, 96, 208, 16, 48, 64, "inception4a");
    x = inception(b, x, 160, 112, 224, 24, 64, 64, "inception4b");
    x = inception(b, x, 128, 128, 256, 24, 64, 64, "inception4c");
    x = inception(b, x, 112, 144, 288, 32, 64, 64, "inception4d");
    x = inception(b, x, 256, 160, 320, 32, 128, 128, "inception4e");
    x = pool(b, SD_LAYER_MAXPOOL, x, 2, 2, 0, 1);
    x = inception(b, x, 256, 160, 320, 32, 128, 128, "inception5a");
    x = inception(b, x, 384, 192, 384, 48, 128, 128, "inception5b");
    x = adaptive(b, x, 1, 1);
    x = simple(b, SD_LAYER_FLATTEN, x, "flatten");
    x = dropout(b, x, 0.2);
    linear(b, x, s->classes, "fc");
}

/* ---------------------------------------------------------------- specs */

static const char *const arch_names[] = {"lenet",    "convnet",  "alexnet",   "vgg16", "vgg19",
                                         "resnet18", "resnet34", "googlenet", NULL};

const char *const *sd_model_arch_names(void)
{
    return arch_names;
}

int sd_model_spec_parse_arch(sd_model_spec *spec, const char *name, sd_error *err)
{
    char buf[SD_ARCH_NAME_MAX + 8];
    size_t len = strlen(name);
    if (len >= sizeof buf)
        return sd_error_set(err, SD_EINVAL, "unknown architecture '%s'", name);
    memcpy(buf, name, len + 1);
    spec->bn = 0;
    if (len > 3 && !strcmp(buf + len - 3, "-bn")) {
        buf[len - 3] = '\0';
        spec->bn = 1;
    }
    for (int i = 0; arch_names[i]; i++)
        if (!strcmp(buf, arch_names[i])) {
            snprintf(spec->arch, sizeof spec->arch, "%s", arch_names[i]);
            return SD_OK;
        }
    return sd_error_set(err, SD_EINVAL,
                        "unknown architecture '%s' (known: lenet, convnet, alexnet, vgg16, "
                        "vgg19, resnet18, resnet34, googlenet; add -bn for batch norm)",
                        name);
}

int sd_model_spec_normalize(sd_model_spec *spec, sd_error *err)
{
    if (!strcmp(spec->arch, "convnet")) {
        if (spec->depth <= 0)
            spec->depth = 3;
        if (spec->width <= 0)
            spec->width = 128;
    } else if (!strncmp(spec->arch, "resnet", 6)) {
        spec->depth = 0;
        if (spec->width <= 0)
            spec->width = 64;
    } else {
        spec->depth = 0;
        spec->width = 0;
    }
    if (spec->in_c <= 0 || spec->in_h <= 0 || spec->in_w <= 0 || spec->classes < 2)
        return sd_error_set(err, SD_EINVAL,
                            "model input %dx%dx%d with %d classes: need positive sizes and at "
                            "least 2 classes",
                            spec->in_c, spec->in_h, spec->in_w, spec->classes);
    if (spec->in_c > 64 || spec->in_h > 8192 || spec->in_w > 8192 || spec->classes > 100000)
        return sd_error_set(err, SD_EINVAL, "model input or class count out of range");
    return SD_OK;
}

void sd_model_spec_label(const sd_model_spec *spec, char *buf, size_t len)
{
    if (!strcmp(spec->arch, "convnet"))
        snprintf(buf, len, "convnet%s(d%d,w%d)", spec->bn ? "-bn" : "", spec->depth, spec->width);
    else if (!strncmp(spec->arch, "resnet", 6) && spec->width != 64)
        snprintf(buf, len, "%s%s(w%d)", spec->arch, spec->bn ? "-bn" : "", spec->width);
    else
        snprintf(buf, len, "%s%s", spec->arch, spec->bn ? "-bn" : "");
}

int sd_model_create(sd_model **out, const sd_model_spec *spec_in, sd_error *err)
{
    *out = NULL;
    sd_model_spec spec = *spec_in;
    int rc = sd_model_spec_normalize(&spec, err);
    if (rc)
        return rc;
    sd_model *m;
    if ((rc = sd_model_begin(&m, &spec, err)))
        return rc;
    builder b = {m, err, 0};
    const char *a = spec.arch;
    if (!strcmp(a, "lenet"))
        build_lenet(&b);
    else if (!strcmp(a, "convnet"))
        build_convnet(&b);
    else if (!strcmp(a, "alexnet"))
        build_alexnet(&b);
    else if (!strcmp(a, "vgg16"))
        build_vgg(&b, 16);
    else if (!strcmp(a, "vgg19"))
        build_vgg(&b, 19);
    else if (!strcmp(a, "resnet18"))
        build_resnet(&b, (const int[4]){2, 2, 2, 2});
    else if (!strcmp(a, "resnet34"))
        build_resnet(&b, (const int[4]){3, 4, 6, 3});
    else if (!strcmp(a, "googlenet"))
        build_googlenet(&b);
    else
        b.rc = sd_error_set(err, SD_EINVAL, "unknown architecture '%s'", a);
    if (b.rc) {
        sd_model_destroy(m);
        return sd_error_wrap(err, "building %s for %dx%dx%d input", a, spec.in_c, spec.in_h,
                             spec.in_w);
    }
    *out = m;
    return SD_OK;
}
