/*
 * dicom_gen.cc - the tests' DICOM fixture writer (dicom_gen.h), with DCMTK.
 */
#include "dcmtk/config/osconfig.h"

#include "dcmtk/dcmdata/dcrleerg.h"
#include "dcmtk/dcmdata/dcrlerp.h"
#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmjpeg/djencode.h"
#include "dcmtk/dcmjpeg/djrplol.h"
#include "dcmtk/dcmjpeg/djrploss.h"
#include "dcmtk/dcmjpls/djencode.h"
#include "dcmtk/dcmjpls/djrparam.h"
#include "dcmtk/oflog/oflog.h"

#include <stdio.h>
#include <string.h>

#include <vector>

#include "dicom_gen.h"

static void init_once()
{
    static bool done = false;
    if (done)
        return;
    done = true;
    OFLog::configure(OFLogger::ERROR_LOG_LEVEL);
    DJEncoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
}

static int fail(char *msg, size_t n, const char *what, const OFCondition &c)
{
    snprintf(msg, n, "%s: %s", what, c.text());
    return -1;
}

static void put_identity(DcmDataset *ds, const dicom_gen *g)
{
    char uid[100];
    ds->putAndInsertString(DCM_SOPClassUID, UID_DigitalXRayImageStorageForPresentation);
    ds->putAndInsertString(DCM_SOPInstanceUID,
                           g->sop_uid ? g->sop_uid : dcmGenerateUniqueIdentifier(uid));
    ds->putAndInsertString(DCM_StudyInstanceUID,
                           g->study_uid ? g->study_uid : dcmGenerateUniqueIdentifier(uid));
    ds->putAndInsertString(DCM_SeriesInstanceUID,
                           g->series_uid ? g->series_uid : dcmGenerateUniqueIdentifier(uid));
    ds->putAndInsertString(DCM_PatientName, g->patient_name ? g->patient_name : "Test^Phantom");
    ds->putAndInsertString(DCM_PatientID, g->patient_id ? g->patient_id : "PHANTOM");
    ds->putAndInsertString(DCM_PatientBirthDate, "19700101");
    ds->putAndInsertString(DCM_PatientSex, "O");
    ds->putAndInsertString(DCM_StudyDate, "20260101");
    ds->putAndInsertString(DCM_StudyTime, "120000");
    ds->putAndInsertString(DCM_StudyID, "1");
    ds->putAndInsertString(DCM_ReferringPhysicianName, "");
    ds->putAndInsertString(DCM_AccessionNumber, g->accession ? g->accession : "");
    ds->putAndInsertString(DCM_Modality, "DX");
    ds->putAndInsertString(DCM_SeriesNumber, "1");
    ds->putAndInsertString(DCM_InstanceNumber, "1");
    ds->putAndInsertString(DCM_Manufacturer, "sldd tests");
    if (g->institution)
        ds->putAndInsertString(DCM_InstitutionName, g->institution);
    if (g->private_value) {
        ds->putAndInsertString(DcmTag(0x0009, 0x0010, EVR_LO), "SLDD TEST PRIVATE");
        ds->putAndInsertString(DcmTag(0x0009, 0x1001, EVR_LO), g->private_value);
    }
}

static void put_geometry(DcmDataset *ds, const dicom_gen *g, int ba, int bs, int pr)
{
    char buf[64];
    ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
    ds->putAndInsertString(DCM_PhotometricInterpretation,
                           g->photometric ? g->photometric : "MONOCHROME2");
    ds->putAndInsertUint16(DCM_Rows, (Uint16)g->h);
    ds->putAndInsertUint16(DCM_Columns, (Uint16)g->w);
    ds->putAndInsertUint16(DCM_BitsAllocated, (Uint16)ba);
    ds->putAndInsertUint16(DCM_BitsStored, (Uint16)bs);
    ds->putAndInsertUint16(DCM_HighBit, (Uint16)(bs - 1));
    ds->putAndInsertUint16(DCM_PixelRepresentation, (Uint16)pr);
    if (g->frames > 1) {
        snprintf(buf, sizeof buf, "%d", g->frames);
        ds->putAndInsertString(DCM_NumberOfFrames, buf);
    }
    if (g->rescale) {
        snprintf(buf, sizeof buf, "%.10g", g->slope);
        ds->putAndInsertString(DCM_RescaleSlope, buf);
        snprintf(buf, sizeof buf, "%.10g", g->intercept);
        ds->putAndInsertString(DCM_RescaleIntercept, buf);
    }
    if (g->window) {
        snprintf(buf, sizeof buf, "%.10g", g->wc);
        ds->putAndInsertString(DCM_WindowCenter, buf);
        snprintf(buf, sizeof buf, "%.10g", g->ww);
        ds->putAndInsertString(DCM_WindowWidth, buf);
    }
    if (g->voi_function)
        ds->putAndInsertString(DCM_VOILUTFunction, g->voi_function);
    if (g->spacing_kind) {
        snprintf(buf, sizeof buf, "%.10g\\%.10g", g->spacing[0], g->spacing[1]);
        ds->putAndInsertString(g->spacing_kind == 1 ? DCM_PixelSpacing : DCM_ImagerPixelSpacing,
                               buf);
    }
    ds->putAndInsertString(DCM_PresentationIntentType, "FOR PRESENTATION");
}

extern "C" int dicom_gen_write(const char *path, const dicom_gen *g, const int32_t *stored,
                               char *msg, size_t msglen)
{
    init_once();
    int ba = g->bits_allocated ? g->bits_allocated : 16;
    int bs = g->bits_stored ? g->bits_stored : ba;
    int pr = g->pixel_rep;
    int frames = g->frames > 0 ? g->frames : 1;
    size_t n = (size_t)g->w * g->h * frames;
    DcmFileFormat ff;
    DcmDataset *ds = ff.getDataset();
    put_identity(ds, g);
    put_geometry(ds, g, ba, bs, pr);
    uint32_t mask = bs >= 32 ? 0xffffffffu : ((1u << bs) - 1u);
    OFCondition c = EC_Normal;
    if (!g->no_pixels && ba == 8) {
        std::vector<Uint8> v(n);
        for (size_t i = 0; i < n; i++)
            v[i] = (Uint8)((uint32_t)stored[i] & mask);
        c = ds->putAndInsertUint8Array(DCM_PixelData, v.data(), (unsigned long)n);
    } else if (!g->no_pixels) {
        std::vector<Uint16> v(n);
        for (size_t i = 0; i < n; i++)
            v[i] = (Uint16)((uint32_t)stored[i] & mask);
        c = ds->putAndInsertUint16Array(DCM_PixelData, v.data(), (unsigned long)n);
    }
    if (c.bad())
        return fail(msg, msglen, "pixel data", c);
    if (g->dicomdir) {
        DcmSequenceOfItems *seq = new DcmSequenceOfItems(DCM_DirectoryRecordSequence);
        ds->insert(seq);
        ff.getMetaInfo()->putAndInsertString(DCM_MediaStorageSOPClassUID,
                                             UID_MediaStorageDirectoryStorage);
    }
    const char *x = g->xfer ? g->xfer : "explicit";
    E_TransferSyntax xs = EXS_LittleEndianExplicit;
    DJ_RPLossless lossless(6, 0);
    DJ_RPLossy lossy(90);
    DJLSRepresentationParameter jls(0, OFTrue);
    DcmRLERepresentationParameter rle;
    const DcmRepresentationParameter *param = NULL;
    if (!strcmp(x, "implicit"))
        xs = EXS_LittleEndianImplicit;
    else if (!strcmp(x, "big"))
        xs = EXS_BigEndianExplicit;
    else if (!strcmp(x, "jpeg-lossless"))
        xs = EXS_JPEGProcess14SV1, param = &lossless;
    else if (!strcmp(x, "jpeg-baseline"))
        xs = EXS_JPEGProcess1, param = &lossy;
    else if (!strcmp(x, "jpeg-ls"))
        xs = EXS_JPEGLSLossless, param = &jls;
    else if (!strcmp(x, "rle") || !strcmp(x, "j2k-label"))
        xs = EXS_RLELossless, param = &rle;
    if (param) {
        c = ds->chooseRepresentation(xs, param);
        if (c.bad() || !ds->canWriteXfer(xs))
            return fail(msg, msglen, "compression", c.bad() ? c : EC_CannotChangeRepresentation);
    }
    E_FileWriteMode mode = EWM_fileformat;
    if (!strcmp(x, "j2k-label")) {
        /* RLE fragments labelled JPEG 2000: parses, cannot be decoded */
        ff.validateMetaInfo(xs);
        ff.getMetaInfo()->putAndInsertString(DCM_TransferSyntaxUID, UID_JPEG2000TransferSyntax);
        mode = EWM_dontUpdateMeta;
    }
    c = ff.saveFile(path, xs, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0, mode);
    return c.bad() ? fail(msg, msglen, path, c) : 0;
}
