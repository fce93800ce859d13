/*
 * proto_make_test.c - writes a test payload (sp_test_bundle_build) to a
 * file and, to stdout, the values an independent decoder must find in it:
 * one "name value" line per scalar and per array element.  Used by
 * protoc_decode.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sldd.pb-c.h"
#include "sp_encoding.h"
#include "sp_testbundle.h"

int main(int argc, char **argv)
{
    sp_test_params p;
    static const char *const aud[] = {"node-b", "node-c"};
    uint8_t *buf;
    size_t len;
    FILE *f;
    Sldd__V1__Bundle *b;
    if (argc != 3) {
        fprintf(stderr, "usage: proto_make_test OUT ENCODING\n");
        return 2;
    }
    sp_test_params_default(&p);
    p.audience = aud;
    p.n_audience = 2;
    p.sequence = 42;
    p.steps = 5;
    p.epochs = 2;
    p.height = p.width_px = 16;
    p.seed = 7;
    p.encoding = sp_encoding_parse(argv[2]);
    if (p.encoding < 0 || sp_test_bundle_build(&p, &buf, &len))
        return 1;
    f = fopen(argv[1], "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f))
        return 1;
    b = sldd__v1__bundle__unpack(NULL, len, buf);
    if (!b)
        return 1;
    printf("format_version %u\nsender %s\nsequence %llu\ncreated_unix %lld\nexpires_unix %lld\n",
           b->format_version, b->sender, (unsigned long long)b->sequence,
           (long long)b->created_unix, (long long)b->expires_unix);
    for (size_t i = 0; i < b->n_audience; i++)
        printf("audience %s\n", b->audience[i]);
    printf("arch %s\nclasses %u\nin_height %u\nsteps %u\nimages_per_step %u\nepochs %u\n",
           b->model->arch, b->model->classes, b->model->in_height, b->distilled->steps,
           b->distilled->images_per_step, b->distilled->epochs);
    printf("image_bytes %zu\n", b->distilled->images->data.len);
    for (size_t i = 0; i < b->distilled->n_label_logits; i++)
        printf("label_logits %.9g\n", (double)b->distilled->label_logits[i]);
    for (size_t i = 0; i < b->distilled->n_step_sizes; i++)
        printf("step_sizes %.9g\n", (double)b->distilled->step_sizes[i]);
    for (size_t i = 0; i < b->bn_stats->n_var; i++)
        printf("var %.9g\n", (double)b->bn_stats->var[i]);
    sldd__v1__bundle__free_unpacked(b, NULL);
    free(buf);
    return 0;
}
