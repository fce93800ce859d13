/*
 * nd_dicom_read.cc - reading DICOM images with DCMTK (nd_dicom.h).
 *
 * DCMTK does what it is good at: parsing, the transfer syntaxes (its JPEG,
 * JPEG-LS and RLE decoders are registered once) and extracting stored
 * values (Bits Stored, High Bit, Pixel Representation, one frame at a time
 * with partial access).  DicomImage is asked for the stored values with its
 * modality transformation switched off; rescale, VOI and MONOCHROME1 are
 * applied here, in double precision, by the documented rules
 * (docs/dicom.md), so the policy is ours, exact and tested.
 *
 * DCMTK's own logger is switched off: its warnings may quote attribute
 * values, and nothing identifying may reach a log line.
 */
#include "dcmtk/config/osconfig.h"

#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmimgle/dcmimage.h"
#include "dcmtk/dcmimgle/dipixel.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/oflog/oflog.h"

#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "sd_error.h" /* C declarations; included first so that they get C linkage */
}
#include "nd_dicom.h"
#include "nd_dicom_impl.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void dicom_init_once(void)
{
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
}

void nd_dicom_init(void)
{
    pthread_once(&g_once, dicom_init_once);
}

extern "C" int nd_dicom_available(void)
{
    return 1;
}

extern "C" int nd_dicom_sniff(const uint8_t *buf, size_t len)
{
    return len >= 132 && memcmp(buf + 128, "DICM", 4) == 0;
}

int nd_dicom_parse(DcmFileFormat &ff, const uint8_t *buf, size_t len, const char *name,
                   sd_error *err)
{
    nd_dicom_init();
    if (len > ND_DICOM_MAX_BYTES)
        return sd_error_set(err, SD_EFORMAT, "%s: %zu bytes, more than a DICOM file may hold (%zu)",
                            name, len, ND_DICOM_MAX_BYTES);
    if (!nd_dicom_sniff(buf, len))
        return sd_error_set(err, SD_EFORMAT,
                            "%s: not a DICOM file (no 'DICM' after the 128-byte preamble)", name);
    DcmInputBufferStream is;
    is.setBuffer(buf, (offile_off_t)len);
    is.setEos();
    ff.transferInit();
    OFCondition c = ff.read(is, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    ff.transferEnd();
    if (c.bad())
        return sd_error_set(err, SD_EFORMAT, "%s: corrupt or truncated DICOM file (%s)", name,
                            c.text());
    return 0;
}

/* Transfer syntaxes whose pixels this build decodes. */
static int xfer_supported(E_TransferSyntax x)
{
    switch (x) {
    case EXS_LittleEndianImplicit:
    case EXS_LittleEndianExplicit:
    case EXS_BigEndianExplicit:
    case EXS_DeflatedLittleEndianExplicit:
    case EXS_JPEGProcess1:
    case EXS_JPEGProcess2_4:
    case EXS_JPEGProcess14:
    case EXS_JPEGProcess14SV1:
    case EXS_JPEGLSLossless:
    case EXS_JPEGLSLossy:
    case EXS_RLELossless: return 1;
    default: return 0;
    }
}

static double get_f64(DcmItem *ds, const DcmTagKey &key, unsigned long pos, double dflt, int *found)
{
    Float64 v = 0;
    if (ds->findAndGetFloat64(key, v, pos).good() && isfinite(v)) {
        if (found)
            *found = 1;
        return v;
    }
    if (found)
        *found = 0;
    return dflt;
}

static void read_spacing(DcmDataset *ds, nd_dicom_info *info)
{
    static const DcmTagKey keys[2] = {DCM_PixelSpacing, DCM_ImagerPixelSpacing};
    for (int k = 0; k < 2; k++) {
        int f0 = 0, f1 = 0;
        double r = get_f64(ds, keys[k], 0, 0, &f0), c = get_f64(ds, keys[k], 1, 0, &f1);
        if (f0 && f1 && r > 0 && c > 0 && r < 1e3 && c < 1e3) {
            info->spacing[0] = r;
            info->spacing[1] = c;
            info->spacing_kind = k == 0 ? ND_DICOM_SPACING_PIXEL : ND_DICOM_SPACING_IMAGER;
            return;
        }
    }
}

static void read_window(DcmDataset *ds, nd_dicom_info *info)
{
    int fc = 0, fw = 0;
    double c = get_f64(ds, DCM_WindowCenter, 0, 0, &fc),
           w = get_f64(ds, DCM_WindowWidth, 0, 0, &fw);
    info->voi = ND_DICOM_VOI_MINMAX;
    info->voi_function = ND_DICOM_VOI_LINEAR;
    OFString fn;
    if (ds->findAndGetOFString(DCM_VOILUTFunction, fn).good()) {
        if (fn == "LINEAR_EXACT")
            info->voi_function = ND_DICOM_VOI_LINEAR_EXACT;
        else if (fn == "SIGMOID")
            info->voi_function = ND_DICOM_VOI_SIGMOID;
    }
    /* LINEAR needs a width of at least 1, the others more than 0 (PS3.3
     * C.11.2.1.2); a window that breaks the rule is ignored. */
    double wmin = info->voi_function == ND_DICOM_VOI_LINEAR ? 1.0 : 1e-12;
    if (fc && fw && w >= wmin) {
        info->voi = ND_DICOM_VOI_WINDOW;
        info->wc = c;
        info->ww = w;
    }
}

static const char *photometric_name(const OFString &p, int *mono1)
{
    static const char *known[] = {"MONOCHROME1", "MONOCHROME2",   "RGB",
                                  "YBR_FULL",    "YBR_FULL_422",  "YBR_ICT",
                                  "YBR_RCT",     "PALETTE COLOR", "YBR_PARTIAL_420"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (p == known[i]) {
            *mono1 = i == 0;
            return known[i];
        }
    return NULL;
}

/* One RLE segment (PS3.5 G.3.1, PackBits) walked without writing: it must
 * yield exactly `want` bytes from inside its own bytes (a trailing pad byte
 * may follow).  1 when sound. */
static int rle_segment_ok(const Uint8 *p, size_t n, size_t want)
{
    size_t i = 0, out = 0;
    while (out < want) {
        if (i >= n)
            return 0;
        int h = (Sint8)p[i++];
        if (h >= 0) {
            if ((size_t)h + 1 > n - i)
                return 0;
            i += (size_t)h + 1;
            out += (size_t)h + 1;
        } else if (h != -128) {
            if (i >= n)
                return 0;
            i++;
            out += (size_t)(1 - h);
        }
    }
    return out == want && n - i <= 1;
}

/* DCMTK's RLE decoder (3.6.7) has been seen to crash on corrupt fragments,
 * so every fragment is checked first: one fragment a frame, a 64-byte
 * header with 1 or 2 segments (8 or 16 bits allocated), offsets inside the
 * fragment and increasing, each segment decoding to exactly rows*columns
 * bytes. */
static int check_rle(DcmDataset *ds, const nd_dicom_info *info, const char *name, sd_error *err)
{
    DcmElement *el = NULL;
    DcmPixelSequence *seq = NULL;
    if (ds->findAndGetElement(DCM_PixelData, el).bad() || !el ||
        ((DcmPixelData *)el)->getEncapsulatedRepresentation(EXS_RLELossless, NULL, seq).bad() ||
        !seq || seq->card() != (unsigned long)info->frames + 1)
        return sd_error_set(err, SD_EFORMAT, "%s: RLE pixel data is not one fragment a frame",
                            name);
    size_t nseg = (size_t)info->bits_allocated / 8, want = (size_t)info->w * (size_t)info->h;
    for (unsigned long k = 1; k < seq->card(); k++) {
        DcmPixelItem *it = NULL;
        Uint8 *b = NULL;
        if (seq->getItem(it, k).bad() || !it || it->getUint8Array(b).bad() || !b)
            return sd_error_set(err, SD_EFORMAT, "%s: RLE frame %lu unreadable", name, k);
        size_t len = it->getLength();
        Uint32 off[16];
        for (int i = 0; len >= 64 && i < 16; i++)
            off[i] = (Uint32)b[4 * i] | (Uint32)b[4 * i + 1] << 8 | (Uint32)b[4 * i + 2] << 16 |
                     (Uint32)b[4 * i + 3] << 24;
        int ok = len >= 64 && off[0] == nseg && off[1] == 64;
        for (size_t i = 1; ok && i <= nseg; i++) {
            size_t end = i < nseg ? off[i + 1] : len;
            ok = off[i] < end && end <= len && rle_segment_ok(b + off[i], end - off[i], want);
        }
        if (!ok)
            return sd_error_set(err, SD_EFORMAT, "%s: corrupt RLE data in frame %lu", name, k);
    }
    return 0;
}

/* Everything about the pixels, checked; no pixel decoded. */
static int probe_dataset(DcmFileFormat &ff, const char *name, nd_dicom_info *info, sd_error *err)
{
    memset(info, 0, sizeof *info);
    DcmDataset *ds = ff.getDataset();
    DcmMetaInfo *meta = ff.getMetaInfo();
    OFString cls;
    if ((meta && meta->findAndGetOFString(DCM_MediaStorageSOPClassUID, cls).good() &&
         cls == UID_MediaStorageDirectoryStorage) ||
        ds->tagExists(DCM_DirectoryRecordSequence))
        return sd_error_set(err, SD_EFORMAT,
                            "%s: a DICOMDIR (a media directory), not an image; give the image "
                            "files it lists",
                            name);
    E_TransferSyntax xs = ds->getOriginalXfer();
    DcmXfer xf(xs);
    snprintf(info->xfer, sizeof info->xfer, "%s", xf.getXferName());
    if (ds->tagExists(DCM_FloatPixelData) || ds->tagExists(DCM_DoubleFloatPixelData))
        return sd_error_set(err, SD_EFORMAT,
                            "%s: floating-point pixel data is not read (integer Pixel Data only)",
                            name);
    if (!ds->tagExistsWithValue(DCM_PixelData))
        return sd_error_set(err, SD_EFORMAT, "%s: no pixel data (not an image object)", name);
    if (!xfer_supported(xs))
        return sd_error_set(err, SD_EFORMAT,
                            "%s: transfer syntax '%s' is not decoded here (read: uncompressed, "
                            "JPEG baseline/extended/lossless, JPEG-LS, RLE); convert it first, "
                            "e.g. with dcmdjpeg or gdcmconv --raw",
                            name, info->xfer);
    Uint16 rows = 0, cols = 0, spp = 1, ba = 0, bs = 0, hb = 0, pr = 0;
    if (ds->findAndGetUint16(DCM_Rows, rows).bad() || ds->findAndGetUint16(DCM_Columns, cols).bad())
        return sd_error_set(err, SD_EFORMAT, "%s: no Rows or Columns", name);
    (void)ds->findAndGetUint16(DCM_SamplesPerPixel, spp);
    if (ds->findAndGetUint16(DCM_BitsAllocated, ba).bad() ||
        ds->findAndGetUint16(DCM_BitsStored, bs).bad() ||
        ds->findAndGetUint16(DCM_HighBit, hb).bad() ||
        ds->findAndGetUint16(DCM_PixelRepresentation, pr).bad())
        return sd_error_set(err, SD_EFORMAT,
                            "%s: Bits Allocated, Bits Stored, High Bit or Pixel Representation "
                            "missing",
                            name);
    OFString phot;
    int mono1 = 0;
    const char *pn = ds->findAndGetOFString(DCM_PhotometricInterpretation, phot).good()
                         ? photometric_name(phot, &mono1)
                         : NULL;
    if (spp != 1 || !pn || strncmp(pn, "MONOCHROME", 10) != 0)
        return sd_error_set(err, SD_EFORMAT,
                            "%s: %s image; only grayscale (MONOCHROME1 or MONOCHROME2, one "
                            "sample per pixel) is read",
                            name, pn ? pn : "colour or unknown photometric");
    if (ds->tagExists(DCM_ModalityLUTSequence))
        return sd_error_set(err, SD_EFORMAT,
                            "%s: a Modality LUT Sequence is not applied here (Rescale Slope and "
                            "Intercept only)",
                            name);
    Sint32 frames = 1;
    if (ds->findAndGetSint32(DCM_NumberOfFrames, frames).bad())
        frames = 1;
    if (rows == 0 || cols == 0 || frames < 1 || frames > ND_DICOM_MAX_FRAMES ||
        (int64_t)rows * cols > ND_DICOM_MAX_FRAME_PIXELS)
        return sd_error_set(err, SD_EFORMAT,
                            "%s: absurd dimensions %ux%u, %ld frame(s) (at most %lld pixels a "
                            "frame and %d frames)",
                            name, (unsigned)cols, (unsigned)rows, (long)frames,
                            (long long)ND_DICOM_MAX_FRAME_PIXELS, ND_DICOM_MAX_FRAMES);
    if ((ba != 8 && ba != 16) || bs < 1 || bs > ba || hb != bs - 1 || pr > 1)
        return sd_error_set(err, SD_EFORMAT,
                            "%s: Bits Allocated %u, Bits Stored %u, High Bit %u, Pixel "
                            "Representation %u not read (8 or 16 allocated, High Bit = Bits "
                            "Stored - 1)",
                            name, (unsigned)ba, (unsigned)bs, (unsigned)hb, (unsigned)pr);
    info->w = cols;
    info->h = rows;
    info->frames = frames;
    info->bits_allocated = ba;
    info->bits_stored = bs;
    info->high_bit = hb;
    info->pixel_rep = pr;
    info->monochrome1 = mono1;
    info->slope = get_f64(ds, DCM_RescaleSlope, 0, 1.0, NULL);
    info->intercept = get_f64(ds, DCM_RescaleIntercept, 0, 0.0, NULL);
    if (info->slope == 0)
        return sd_error_set(err, SD_EFORMAT, "%s: Rescale Slope is 0", name);
    read_spacing(ds, info);
    read_window(ds, info);
    return xs == EXS_RLELossless ? check_rle(ds, info, name, err) : 0;
}

extern "C" int nd_dicom_probe(const uint8_t *buf, size_t len, const char *name, nd_dicom_info *info,
                              sd_error *err)
{
    try {
        DcmFileFormat ff;
        int rc = nd_dicom_parse(ff, buf, len, name, err);
        return rc ? rc : probe_dataset(ff, name, info, err);
    } catch (...) {
        return sd_error_set(err, SD_ENOMEM, "%s: out of memory reading DICOM", name);
    }
}

extern "C" void nd_dicom_voi_apply(const double *mod, size_t n, const nd_dicom_info *info,
                                   uint16_t *out)
{
    double lo = info->wc, hi = info->ww;
    for (size_t i = 0; i < n; i++) {
        double x = mod[i], y;
        if (info->voi == ND_DICOM_VOI_MINMAX) {
            y = hi > lo ? (x - lo) / (hi - lo) : 0.0;
        } else if (info->voi_function == ND_DICOM_VOI_SIGMOID) {
            y = 1.0 / (1.0 + exp(-4.0 * (x - info->wc) / info->ww));
        } else if (info->voi_function == ND_DICOM_VOI_LINEAR_EXACT) {
            y = (x - info->wc) / info->ww + 0.5;
        } else if (info->ww <= 1.0) {
            y = x > info->wc - 0.5 ? 1.0 : 0.0;
        } else {
            y = (x - (info->wc - 0.5)) / (info->ww - 1.0) + 0.5;
        }
        y = y < 0 ? 0 : y > 1 ? 1 : y;
        if (info->monochrome1)
            y = 1.0 - y;
        out[i] = (uint16_t)floor(y * 65535.0 + 0.5);
    }
}

template <typename T> static void rescale(const T *v, size_t n, double s, double b, double *mod)
{
    for (size_t i = 0; i < n; i++)
        mod[i] = v[i] * s + b;
}

/* Stored values of the frame in di (after DCMTK's bit extraction), times
 * slope plus intercept, into mod. */
static int modality_values(const DicomImage &di, const nd_dicom_info *info, double *mod, size_t n,
                           const char *name, sd_error *err)
{
    const DiPixel *px = di.getInterData();
    if (!px || !px->getData() || px->getCount() < n)
        return sd_error_set(err, SD_EFORMAT, "%s: pixel data could not be decoded", name);
    const void *d = px->getData();
    double s = info->slope, b = info->intercept;
    switch (px->getRepresentation()) {
    case EPR_Uint8: return rescale((const Uint8 *)d, n, s, b, mod), 0;
    case EPR_Sint8: return rescale((const Sint8 *)d, n, s, b, mod), 0;
    case EPR_Uint16: return rescale((const Uint16 *)d, n, s, b, mod), 0;
    case EPR_Sint16: return rescale((const Sint16 *)d, n, s, b, mod), 0;
    case EPR_Uint32: return rescale((const Uint32 *)d, n, s, b, mod), 0;
    case EPR_Sint32: return rescale((const Sint32 *)d, n, s, b, mod), 0;
    default: return sd_error_set(err, SD_EFORMAT, "%s: unexpected pixel representation", name);
    }
}

static int read_frame(DcmFileFormat &ff, const char *name, int frame, uint16_t **pix,
                      nd_dicom_info *info, sd_error *err)
{
    int rc = probe_dataset(ff, name, info, err);
    if (rc)
        return rc;
    if (frame < 0 || frame >= info->frames)
        return sd_error_set(err, SD_EINVAL, "%s: no frame %d (the object has %d)", name, frame + 1,
                            info->frames);
    DcmDataset *ds = ff.getDataset();
    DicomImage di(ds, ds->getOriginalXfer(),
                  CIF_IgnoreModalityTransformation | CIF_UsePartialAccessToPixelData,
                  (unsigned long)frame, 1);
    if (di.getStatus() != EIS_Normal)
        return sd_error_set(err, SD_EFORMAT, "%s: pixel data cannot be decoded (%s)", name,
                            DicomImage::getString(di.getStatus()));
    if ((int)di.getWidth() != info->w || (int)di.getHeight() != info->h)
        return sd_error_set(err, SD_EFORMAT, "%s: decoded size differs from Rows/Columns", name);
    size_t n = (size_t)info->w * (size_t)info->h;
    double *mod = (double *)calloc(n, sizeof *mod);
    uint16_t *out = (uint16_t *)malloc(n * sizeof *out);
    if (!mod || !out) {
        free(mod);
        free(out);
        return sd_error_set(err, SD_ENOMEM, "%s: out of memory", name);
    }
    rc = modality_values(di, info, mod, n, name, err);
    if (!rc && info->voi == ND_DICOM_VOI_MINMAX) {
        double lo = mod[0], hi = mod[0];
        for (size_t i = 1; i < n; i++) {
            lo = mod[i] < lo ? mod[i] : lo;
            hi = mod[i] > hi ? mod[i] : hi;
        }
        info->wc = lo;
        info->ww = hi;
    }
    if (!rc)
        nd_dicom_voi_apply(mod, n, info, out);
    free(mod);
    if (rc) {
        free(out);
        return rc;
    }
    *pix = out;
    return 0;
}

extern "C" int nd_dicom_read_frame(const uint8_t *buf, size_t len, const char *name, int frame,
                                   uint16_t **pix, nd_dicom_info *info, sd_error *err)
{
    *pix = NULL;
    try {
        DcmFileFormat ff;
        int rc = nd_dicom_parse(ff, buf, len, name, err);
        return rc ? rc : read_frame(ff, name, frame, pix, info, err);
    } catch (...) {
        return sd_error_set(err, SD_ENOMEM, "%s: out of memory reading DICOM", name);
    }
}

static int get_uid(DcmFileFormat &ff, const char *name, OFString &uid, sd_error *err)
{
    if (ff.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, uid).bad() || uid.empty())
        return sd_error_set(err, SD_EFORMAT, "%s: no SOP Instance UID", name);
    return 0;
}

static void wipe(OFString &s)
{
    if (!s.empty())
        OPENSSL_cleanse(&s[0], s.size());
}

extern "C" int nd_dicom_local_id(const uint8_t *buf, size_t len, const char *name,
                                 const uint8_t *salt, size_t saltlen, char *id, size_t idlen,
                                 sd_error *err)
{
    if (idlen < 29)
        return sd_error_set(err, SD_EINVAL, "local id buffer too small");
    try {
        DcmFileFormat ff;
        OFString uid;
        int rc = nd_dicom_parse(ff, buf, len, name, err);
        if (!rc)
            rc = get_uid(ff, name, uid, err);
        if (rc)
            return rc;
        rc = nd_dicom_salted_id(salt, saltlen, uid.c_str(), id, idlen, err);
        wipe(uid);
        return rc;
    } catch (...) {
        return sd_error_set(err, SD_ENOMEM, "%s: out of memory reading DICOM", name);
    }
}

extern "C" int nd_dicom_uid_find(const uint8_t *buf, size_t len, const char *name,
                                 const char *const *keys, int n, int *index, sd_error *err)
{
    *index = -1;
    try {
        DcmFileFormat ff;
        OFString uid;
        int rc = nd_dicom_parse(ff, buf, len, name, err);
        if (!rc)
            rc = get_uid(ff, name, uid, err);
        if (rc)
            return rc;
        for (int i = 0; i < n && *index < 0; i++)
            if (uid == keys[i])
                *index = i;
        wipe(uid);
        return 0;
    } catch (...) {
        return sd_error_set(err, SD_ENOMEM, "%s: out of memory reading DICOM", name);
    }
}
