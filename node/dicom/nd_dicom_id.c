/*
 * nd_dicom_id.c - the only trace of a DICOM object's identity the node
 * keeps: a salted SHA-256 of its SOP Instance UID, cut to 96 bits, as the
 * image's local id (docs/dicom.md, "What never leaves").  The salt is the
 * data set's own random secret (DIR/dicom-salt), so the id cannot be
 * recomputed from a UID by anyone without the folder.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "nd_dicom_impl.h"

int nd_dicom_salted_id(const uint8_t *salt, size_t saltlen, const char *uid, char *id, size_t idlen,
                       sd_error *err)
{
    if (idlen < 29)
        return sd_error_set(err, SD_EINVAL, "local id buffer too small");
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(c, salt, saltlen) == 1 &&
             EVP_DigestUpdate(c, uid, strlen(uid)) == 1 && EVP_DigestFinal_ex(c, md, &mdlen) == 1 &&
             mdlen == 32;
    EVP_MD_CTX_free(c);
    if (!ok)
        return sd_error_set(err, SD_EBACKEND, "SHA-256 failed (OpenSSL)");
    memcpy(id, "dcm-", 4);
    for (int i = 0; i < 12; i++)
        snprintf(id + 4 + 2 * i, 3, "%02x", md[i]);
    return 0;
}
