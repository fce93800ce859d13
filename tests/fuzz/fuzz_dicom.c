/*
 * fuzz_dicom.c - fuzz harness over the DICOM reader (node/dicom/nd_dicom.h):
 * any bytes are parsed, probed, decoded (up to three frames) and given a local
 * id; each call must either succeed or fail with a message, never crash,
 * hang or leak.  Seeds in corpus-dicom/ are small synthetic objects in each
 * transfer syntax (written by tests/dicom/dicom_gen.cc).  Built as a
 * libFuzzer binary with SLDD_FUZZ=ON (SLDD_FUZZ_TARGET=fuzz_dicom
 * scripts/fuzz), otherwise it replays the corpus in CTest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nd_dicom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nd_dicom_info info;
    sd_error err = {0};
    uint16_t *pix = NULL;
    char id[40];
    if (nd_dicom_probe(data, size, "fuzz", &info, &err) == 0 &&
        (int64_t)info.w * info.h <= ((int64_t)1 << 22)) {
        int frames = info.frames < 3 ? info.frames : 3;
        for (int f = 0; f < frames; f++) {
            sd_error e2 = {0};
            if (nd_dicom_read_frame(data, size, "fuzz", f, &pix, &info, &e2) != 0 && !e2.msg[0])
                abort(); /* a failure always says why */
            free(pix);
            pix = NULL;
        }
    } else if (!err.msg[0]) {
        abort();
    }
    if (nd_dicom_local_id(data, size, "fuzz", (const uint8_t *)"s", 1, id, sizeof id, &err) == 0 &&
        strncmp(id, "dcm-", 4) != 0)
        abort();
    return 0;
}
