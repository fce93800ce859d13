/*
 * sd_init.c - Philox4x32-10, Xavier-normal initial weights and the theta_0
 * hash (see sd_init.h for the exact scheme).
 */
#include "sd_init.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

void sd_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    /* Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC'11). */
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += W0;
        k1 += W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static void block(uint64_t seed, uint32_t stream, uint64_t index, uint32_t out[4])
{
    uint32_t ctr[4] = {(uint32_t)index, (uint32_t)(index >> 32), stream, 0};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    sd_philox4x32(ctr, key, out);
}

double sd_normal(uint64_t seed, uint32_t stream, uint64_t index)
{
    uint32_t w[4];
    block(seed, stream, index, w);
    double u1 = ((double)w[0] + 0.5) / 4294967296.0;
    double u2 = ((double)w[1] + 0.5) / 4294967296.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925286766559 * u2);
}

uint32_t sd_uniform_u32(uint64_t seed, uint32_t stream, uint64_t index)
{
    uint32_t w[4];
    block(seed, stream, index, w);
    return w[0];
}

int sd_init_theta(const sd_model *m, uint64_t seed, sd_real *theta, sd_error *err)
{
    for (int i = 1; i < m->n_layers; i++) {
        const sd_layer *l = &m->layers[i];
        sd_real *p = theta + l->theta_off;
        size_t nw = 0, nb = 0;
        double fan_in = 0, fan_out = 0;
        switch (l->kind) {
        case SD_LAYER_CONV:
            nw = (size_t)l->k * (size_t)l->in[0].c * (size_t)l->r * (size_t)l->s;
            fan_in = (double)l->in[0].c * l->r * l->s;
            fan_out = (double)l->k * l->r * l->s;
            nb = l->bias ? (size_t)l->k : 0;
            break;
        case SD_LAYER_LINEAR:
            fan_in = (double)sd_layer_in_size(l, 0);
            fan_out = (double)l->out_features;
            nw = (size_t)fan_in * (size_t)l->out_features;
            nb = l->bias ? (size_t)l->out_features : 0;
            break;
        case SD_LAYER_BN:
            for (int c = 0; c < l->out.c; c++) {
                p[c] = 1;
                p[l->out.c + c] = 0;
            }
            continue;
        default: continue;
        }
        if (nw + nb != l->theta_len)
            return sd_error_set(err, SD_EINVAL, "layer %s: %zu parameters, expected %zu",
                                m->names[i], l->theta_len, nw + nb);
        double std = sqrt(2.0 / (fan_in + fan_out));
        for (size_t j = 0; j < nw; j++)
            p[j] = (sd_real)(float)(std * sd_normal(seed, SD_STREAM_THETA, l->theta_off + j));
        for (size_t j = 0; j < nb; j++)
            p[nw + j] = 0;
    }
    return SD_OK;
}

void sd_init_theta_bn(const sd_model *m, sd_real *theta_bn)
{
    for (int i = 1; i < m->n_layers; i++) {
        const sd_layer *l = &m->layers[i];
        if (l->kind != SD_LAYER_BN)
            continue;
        for (int c = 0; c < l->out.c; c++) {
            theta_bn[l->bn_off + (size_t)c] = 0;
            theta_bn[l->bn_off + (size_t)l->out.c + (size_t)c] = 1;
        }
    }
}

int sd_theta_sha256(const sd_real *theta, size_t n, uint8_t out[32], sd_error *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return sd_error_set(err, SD_ENOMEM, "EVP_MD_CTX_new failed");
    int rc = SD_OK;
    unsigned char buf[4096];
    size_t fill = 0;
    unsigned int len = 0;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = sd_error_set(err, SD_EBACKEND, "SHA-256 init failed");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        float f = (float)theta[i];
        uint32_t u;
        memcpy(&u, &f, 4);
        buf[fill++] = (unsigned char)u;
        buf[fill++] = (unsigned char)(u >> 8);
        buf[fill++] = (unsigned char)(u >> 16);
        buf[fill++] = (unsigned char)(u >> 24);
        if (fill == sizeof buf || i + 1 == n) {
            if (EVP_DigestUpdate(ctx, buf, fill) != 1) {
                rc = sd_error_set(err, SD_EBACKEND, "SHA-256 update failed");
                goto out;
            }
            fill = 0;
        }
    }
    if (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != 32)
        rc = sd_error_set(err, SD_EBACKEND, "SHA-256 final failed");
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

void sd_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[bytes[i] >> 4];
        out[2 * i + 1] = d[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}
