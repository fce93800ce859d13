/*
 * cmd_models.c - `sldd models`: the architectures and their parameter counts
 * for a given input shape and class count.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nd_buf.h"
#include "sd_model.h"
#include "sb_parse.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: sldd models [--in-channels C] [--size S] [--classes K]\n"
               "                   [--depth D] [--width W] [--json]\n"
               "\n"
               "List every architecture, with and without batch norm, and its number of\n"
               "parameters for C input channels, SxS inputs and K classes (defaults: 1,\n"
               "299, 3: the gastric patch setting).  --depth/--width shape the ConvNet.\n"
               "--json prints the same as a JSON array (name, parameters, layers, error).\n");
}

static void commas(size_t v, char *buf, size_t len)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%zu", v), o = 0;
    for (int i = 0; i < n && (size_t)o + 2 < len; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
}

/* A numeric option: a whole non-negative decimal integer, or a message. */
static int opt_int(const char *opt, const char *s, int *out)
{
    if (sb_parse_int(s, 0, INT_MAX, out) == 0)
        return 0;
    fprintf(stderr, "sldd models: %s '%s' is not a non-negative integer\n", opt, s);
    return -1;
}

int cmd_models(int argc, char **argv)
{
    sd_model_spec base = {.in_c = 1, .in_h = 299, .in_w = 299, .classes = 3};
    static const struct option opts[] = {{"in-channels", required_argument, 0, 'c'},
                                         {"size", required_argument, 0, 's'},
                                         {"classes", required_argument, 0, 'k'},
                                         {"depth", required_argument, 0, 'd'},
                                         {"width", required_argument, 0, 'w'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int o, json = 0, first = 1;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            if (opt_int("--in-channels", optarg, &base.in_c))
                return 2;
            break;
        case 's':
            if (opt_int("--size", optarg, &base.in_h))
                return 2;
            base.in_w = base.in_h;
            break;
        case 'k':
            if (opt_int("--classes", optarg, &base.classes))
                return 2;
            break;
        case 'd':
            if (opt_int("--depth", optarg, &base.depth))
                return 2;
            break;
        case 'w':
            if (opt_int("--width", optarg, &base.width))
                return 2;
            break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (json)
        printf("[");
    else
        printf("%-22s %15s %8s  (input %dx%dx%d, %d classes)\n", "model", "parameters", "layers",
               base.in_c, base.in_h, base.in_w, base.classes);
    for (const char *const *a = sd_model_arch_names(); *a; a++) {
        for (int bn = 0; bn < 2; bn++) {
            sd_model_spec spec = base;
            snprintf(spec.arch, sizeof spec.arch, "%s", *a);
            spec.bn = bn;
            sd_error err = {0};
            sd_model *m = NULL;
            char label[64], count[32];
            if (sd_model_spec_normalize(&spec, &err) == 0)
                sd_model_spec_label(&spec, label, sizeof label);
            else
                snprintf(label, sizeof label, "%s%s", *a, bn ? "-bn" : "");
            int bad = sd_model_create(&m, &spec, &err);
            if (json) {
                nd_buf b;
                nd_buf_init(&b, 0);
                nd_buf_str(&b, first ? "\n {\"name\":" : ",\n {\"name\":");
                nd_buf_json_str(&b, label);
                if (bad) {
                    nd_buf_str(&b, ",\"error\":");
                    nd_buf_json_str(&b, err.msg);
                } else {
                    nd_buf_printf(&b, ",\"parameters\":%zu,\"layers\":%d", m->n_theta,
                                  m->n_layers - 1);
                }
                nd_buf_str(&b, "}");
                if (!b.failed)
                    fwrite(b.data, 1, b.len, stdout);
                nd_buf_free(&b);
                first = 0;
            } else if (bad) {
                printf("%-22s %15s   (%s)\n", label, "-", err.msg);
            } else {
                commas(m->n_theta, count, sizeof count);
                printf("%-22s %15s %8d\n", label, count, m->n_layers - 1);
            }
            sd_model_destroy(m);
        }
    }
    if (json)
        printf("\n]\n");
    return 0;
}
