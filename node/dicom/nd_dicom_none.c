/*
 * nd_dicom_none.c - nd_dicom.h in a build without DCMTK: every DICOM
 * operation is refused with one clear message (SD_EUNSUPPORTED), so the
 * commands say what is missing instead of failing obscurely.
 */
#include <string.h>

#include "nd_dicom.h"
#include "nd_dicom_net.h"

#define NO_DICOM(name)                                                                      \
    sd_error_set(err, SD_EUNSUPPORTED,                                                      \
                 "%s: this sldd was built without DICOM support (install libdcmtk-dev and " \
                 "rebuild)",                                                                \
                 name)

int nd_dicom_available(void)
{
    return 0;
}

int nd_dicom_sniff(const uint8_t *buf, size_t len)
{
    return len >= 132 && memcmp(buf + 128, "DICM", 4) == 0;
}

int nd_dicom_probe(const uint8_t *buf, size_t len, const char *name, nd_dicom_info *info,
                   sd_error *err)
{
    return NO_DICOM(name);
}

int nd_dicom_read_frame(const uint8_t *buf, size_t len, const char *name, int frame, uint16_t **pix,
                        nd_dicom_info *info, sd_error *err)
{
    *pix = NULL;
    return NO_DICOM(name);
}

void nd_dicom_voi_apply(const double *mod, size_t n, const nd_dicom_info *info, uint16_t *out)
{
    memset(out, 0, n * sizeof *out);
}

int nd_dicom_local_id(const uint8_t *buf, size_t len, const char *name, const uint8_t *salt,
                      size_t saltlen, char *id, size_t idlen, sd_error *err)
{
    return NO_DICOM(name);
}

int nd_dicom_uid_find(const uint8_t *buf, size_t len, const char *name, const char *const *keys,
                      int n, int *index, sd_error *err)
{
    *index = -1;
    return NO_DICOM(name);
}

int nd_dicom_write_results(const uint8_t *src, size_t srclen, const char *srcname,
                           const uint8_t *rgb, int w, int h, const nd_dicom_findings *f,
                           const char *sc_path, const char *sr_path, sd_error *err)
{
    return NO_DICOM(srcname);
}

int nd_dicom_scp_create(nd_dicom_scp **out, const nd_dicom_scp_config *cfg, sd_error *err)
{
    *out = NULL;
    return NO_DICOM("--dicom-listen");
}

int nd_dicom_scp_run(nd_dicom_scp *s, sd_error *err)
{
    return NO_DICOM("--dicom-listen");
}

void nd_dicom_scp_stop(nd_dicom_scp *s)
{
}

void nd_dicom_scp_counts(const nd_dicom_scp *s, nd_dicom_scp_stats *st)
{
    memset(st, 0, sizeof *st);
}

void nd_dicom_scp_destroy(nd_dicom_scp *s)
{
}

int nd_dicom_send(const nd_dicom_peer *peer, const char *const *files, int n, sd_error *err)
{
    return NO_DICOM("sending to the PACS");
}
