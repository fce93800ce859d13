/*
 * nd_dicom_impl.h - what the DICOM adapter's own files share (not for the
 * rest of the node): DCMTK's one-time setup and parsing from memory (C++
 * only), and the salted local id (C, nd_dicom_id.c).
 */
#ifndef ND_DICOM_IMPL_H
#define ND_DICOM_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "sd_error.h"

#ifdef __cplusplus
class DcmFileFormat;
/* Register the decoders and silence DCMTK's logger, once per process. */
void nd_dicom_init(void);
/* Parse len bytes of buf into ff; SD_EFORMAT naming `name` when it is not
 * DICOM, too large or truncated. */
int nd_dicom_parse(DcmFileFormat &ff, const uint8_t *buf, size_t len, const char *name,
                   sd_error *err);
extern "C" {
#endif

/* "dcm-" + the first 24 hex digits of SHA-256(salt || uid) into id. */
int nd_dicom_salted_id(const uint8_t *salt, size_t saltlen, const char *uid, char *id, size_t idlen,
                       sd_error *err);

#ifdef __cplusplus
}
#endif

#endif
