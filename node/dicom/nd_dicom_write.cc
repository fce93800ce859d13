/*
 * nd_dicom_write.cc - detection results as DICOM objects a PACS files
 * under the source image's study (nd_dicom.h, docs/dicom.md "What is
 * written"): the heat map as a Secondary Capture image and the findings as
 * a Comprehensive SR following TID 1500 (Measurement Report), both with new
 * SOP Instance and Series UIDs, the Patient and General Study modules
 * copied from the source, and a reference to the source instance.
 *
 * These objects carry the patient's identity (copied from the source) and
 * are for the local PACS only: the node writes them where it is told and
 * sends them to the PACS it is configured with, never to a peer.  Codes
 * that DICOM does not define (r, the threshold, the decision, the
 * provenance) use the private coding scheme "99SLDD", as PS3.16 allows.
 */
#include "dcmtk/config/osconfig.h"

#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmsr/dsrdoc.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

extern "C" {
#include "sd_error.h" /* C declarations; included first so that they get C linkage */
#include "sd_task.h"
}
#include "nd_dicom.h"
#include "nd_dicom_impl.h"

#define SCHEME "99SLDD"

/* Patient and General Study attributes copied from the source. */
static const DcmTagKey k_copied[] = {DCM_PatientName,
                                     DCM_PatientID,
                                     DCM_IssuerOfPatientID,
                                     DCM_PatientBirthDate,
                                     DCM_PatientSex,
                                     DCM_StudyInstanceUID,
                                     DCM_StudyDate,
                                     DCM_StudyTime,
                                     DCM_ReferringPhysicianName,
                                     DCM_StudyID,
                                     DCM_AccessionNumber,
                                     DCM_StudyDescription,
                                     DCM_SpecificCharacterSet};

static void copy_study(DcmDataset *src, DcmDataset *dst)
{
    for (size_t i = 0; i < sizeof k_copied / sizeof k_copied[0]; i++) {
        DcmElement *e = NULL;
        if (src->findAndGetElement(k_copied[i], e).good() && e)
            dst->insert((DcmElement *)e->clone(), OFTrue);
        else if (k_copied[i] != DCM_IssuerOfPatientID && k_copied[i] != DCM_StudyDescription &&
                 k_copied[i] != DCM_SpecificCharacterSet)
            dst->insertEmptyElement(k_copied[i], OFTrue); /* type 2: present, empty */
    }
}

typedef struct source_ref {
    OFString sop_class, sop_instance, series, study;
} source_ref;

static int get_source(DcmDataset *ds, source_ref *s, const char *name, sd_error *err)
{
    if (ds->findAndGetOFString(DCM_SOPClassUID, s->sop_class).bad() ||
        ds->findAndGetOFString(DCM_SOPInstanceUID, s->sop_instance).bad() ||
        ds->findAndGetOFString(DCM_SeriesInstanceUID, s->series).bad() ||
        ds->findAndGetOFString(DCM_StudyInstanceUID, s->study).bad() || s->study.empty())
        return sd_error_set(err, SD_EFORMAT,
                            "%s: no SOP Class, SOP Instance, Series or Study Instance UID", name);
    return 0;
}

static void now_da_tm(char da[9], char tm[7])
{
    time_t t = time(NULL);
    struct tm g;
    gmtime_r(&t, &g);
    strftime(da, 9, "%Y%m%d", &g);
    strftime(tm, 7, "%H%M%S", &g);
}

static OFCondition put_series(DcmDataset *d, const char *modality, const char *series_no,
                              const char *descr)
{
    char uid[100], da[9], tm[7];
    now_da_tm(da, tm);
    OFCondition c = d->putAndInsertString(DCM_SeriesInstanceUID, dcmGenerateUniqueIdentifier(uid));
    if (c.good())
        c = d->putAndInsertString(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid));
    if (c.good())
        c = d->putAndInsertString(DCM_Modality, modality);
    if (c.good())
        c = d->putAndInsertString(DCM_SeriesNumber, series_no);
    if (c.good())
        c = d->putAndInsertString(DCM_InstanceNumber, "1");
    if (c.good())
        c = d->putAndInsertString(DCM_SeriesDescription, descr);
    if (c.good())
        c = d->putAndInsertString(DCM_ContentDate, da);
    if (c.good())
        c = d->putAndInsertString(DCM_ContentTime, tm);
    if (c.good())
        c = d->putAndInsertString(DCM_InstanceCreationDate, da);
    if (c.good())
        c = d->putAndInsertString(DCM_InstanceCreationTime, tm);
    if (c.good())
        c = d->putAndInsertString(DCM_Manufacturer, "sldd");
    return c;
}

/* The Secondary Capture: RGB heat map, derived from the source image. */
static int write_sc(DcmDataset *src, const source_ref *s, const uint8_t *rgb, int w, int h,
                    const char *path, sd_error *err)
{
    DcmFileFormat ff;
    DcmDataset *d = ff.getDataset();
    copy_study(src, d);
    OFCondition c = d->putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
    if (c.good())
        c = put_series(d, "OT", "9901", "sldd detection heat map");
    if (c.good())
        c = d->putAndInsertString(DCM_ConversionType, "WSD");
    if (c.good())
        c = d->putAndInsertString(DCM_ImageType, "DERIVED\\SECONDARY");
    if (c.good())
        c = d->putAndInsertString(DCM_DerivationDescription,
                                  "sldd patch classes (N green, P red) over the source image");
    if (c.good())
        c = d->putAndInsertString(DCM_BurnedInAnnotation, "NO");
    if (c.good())
        c = d->insertEmptyElement(DCM_PatientOrientation);
    if (c.good()) /* type 2C: empty when unknown (the body part is not stated) */
        c = d->insertEmptyElement(DCM_Laterality);
    if (c.good())
        c = d->putAndInsertUint16(DCM_SamplesPerPixel, 3);
    if (c.good())
        c = d->putAndInsertString(DCM_PhotometricInterpretation, "RGB");
    if (c.good())
        c = d->putAndInsertUint16(DCM_PlanarConfiguration, 0);
    if (c.good())
        c = d->putAndInsertUint16(DCM_Rows, (Uint16)h);
    if (c.good())
        c = d->putAndInsertUint16(DCM_Columns, (Uint16)w);
    if (c.good())
        c = d->putAndInsertUint16(DCM_BitsAllocated, 8);
    if (c.good())
        c = d->putAndInsertUint16(DCM_BitsStored, 8);
    if (c.good())
        c = d->putAndInsertUint16(DCM_HighBit, 7);
    if (c.good())
        c = d->putAndInsertUint16(DCM_PixelRepresentation, 0);
    if (c.good())
        c = d->putAndInsertUint8Array(DCM_PixelData, rgb, (unsigned long)w * h * 3);
    DcmItem *ref = NULL;
    if (c.good())
        c = d->findOrCreateSequenceItem(DCM_SourceImageSequence, ref, 0);
    if (c.good())
        c = ref->putAndInsertString(DCM_ReferencedSOPClassUID, s->sop_class.c_str());
    if (c.good())
        c = ref->putAndInsertString(DCM_ReferencedSOPInstanceUID, s->sop_instance.c_str());
    if (c.good())
        c = ff.saveFile(path, EXS_LittleEndianExplicit);
    if (c.bad())
        return sd_error_set(err, SD_EIO, "%s: cannot write the Secondary Capture: %s", path,
                            c.text());
    return 0;
}

static DSRCodedEntryValue code(const char *v, const char *scheme, const char *meaning)
{
    return DSRCodedEntryValue(v, scheme, meaning);
}

/* Adds one item after the cursor; returns the condition. */
static OFCondition add(DSRDocumentTree &t, DSRTypes::E_RelationshipType rel,
                       DSRTypes::E_ValueType vt, const DSRCodedEntryValue &name, bool below)
{
    if (t.addContentItem(rel, vt, below ? DSRTypes::AM_belowCurrent : DSRTypes::AM_afterCurrent) ==
        0)
        return EC_IllegalCall;
    return t.getCurrentContentItem().setConceptName(name);
}

static OFCondition add_text(DSRDocumentTree &t, const char *v, const char *meaning,
                            const char *value)
{
    OFCondition c =
        add(t, DSRTypes::RT_contains, DSRTypes::VT_Text, code(v, SCHEME, meaning), false);
    return c.good() ? t.getCurrentContentItem().setStringValue(value) : c;
}

static OFCondition add_num(DSRDocumentTree &t, const DSRCodedEntryValue &name, double v,
                           const DSRCodedEntryValue &unit, bool below)
{
    OFCondition c = add(t, DSRTypes::RT_contains, DSRTypes::VT_Num, name, below);
    if (c.bad())
        return c;
    if (!isfinite(v)) /* undetermined: no value, a qualifier saying why */
        return t.getCurrentContentItem().setNumericValue(
            DSRNumericMeasurementValue(code("114006", "DCM", "Measurement failure")));
    char buf[32];
    snprintf(buf, sizeof buf, "%.6g", v);
    return t.getCurrentContentItem().setNumericValue(DSRNumericMeasurementValue(buf, unit));
}

/* TID 1500 header: language, observer (the device), procedure, image
 * library with the source image. */
static OFCondition sr_header(DSRDocumentTree &t, const source_ref *s, const char *device_uid)
{
    OFCondition c = add(t, DSRTypes::RT_isRoot, DSRTypes::VT_Container,
                        code("126000", "DCM", "Imaging Measurement Report"), false);
    if (c.good())
        c = t.setTemplateIdentification("1500", "DCMR");
    if (c.good())
        c = add(t, DSRTypes::RT_hasConceptMod, DSRTypes::VT_Code,
                code("121049", "DCM", "Language of Content Item and Descendants"), true);
    if (c.good())
        c = t.getCurrentContentItem().setCodeValue(code("eng", "RFC5646", "English"));
    if (c.good())
        c = add(t, DSRTypes::RT_hasObsContext, DSRTypes::VT_Code,
                code("121005", "DCM", "Observer Type"), false);
    if (c.good())
        c = t.getCurrentContentItem().setCodeValue(code("121007", "DCM", "Device"));
    if (c.good())
        c = add(t, DSRTypes::RT_hasObsContext, DSRTypes::VT_UIDRef,
                code("121012", "DCM", "Device Observer UID"), false);
    if (c.good())
        c = t.getCurrentContentItem().setStringValue(device_uid);
    if (c.good())
        c = add(t, DSRTypes::RT_hasObsContext, DSRTypes::VT_Text,
                code("121013", "DCM", "Device Observer Name"), false);
    if (c.good())
        c = t.getCurrentContentItem().setStringValue("sldd");
    if (c.good())
        c = add(t, DSRTypes::RT_hasConceptMod, DSRTypes::VT_Code,
                code("121058", "DCM", "Procedure reported"), false);
    if (c.good())
        c = t.getCurrentContentItem().setCodeValue(
            code("363680008", "SCT", "Radiographic imaging procedure"));
    if (c.good())
        c = add(t, DSRTypes::RT_contains, DSRTypes::VT_Container,
                code("111028", "DCM", "Image Library"), false);
    if (c.good())
        c = add(t, DSRTypes::RT_contains, DSRTypes::VT_Container,
                code("126200", "DCM", "Image Library Group"), true);
    if (c.good() &&
        t.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Image, DSRTypes::AM_belowCurrent) == 0)
        c = EC_IllegalCall;
    if (c.good())
        c = t.getCurrentContentItem().setImageReference(
            DSRImageReferenceValue(s->sop_class, s->sop_instance));
    if (c.good() && (t.goUp() == 0 || t.goUp() == 0))
        c = EC_IllegalCall;
    return c;
}

/* The measurements of a declared task (not gastric), after the group's
 * context: r under its rule, delta (rule "ratio"), the rule, the decision
 * as the image class (codes C0..C9, meaning its name) and the patch counts
 * by the task's class names (NUMC0..NUMC9). */
static OFCondition sr_task_findings(DSRDocumentTree &t, const nd_dicom_findings *f)
{
    const sd_task *k = f->task;
    char meaning[128], value[16];
    DSRCodedEntryValue one = code("1", "UCUM", "no units"),
                       patches = code("{patches}", "UCUM", "patches");
    if (k->rule == SD_RULE_RATIO)
        snprintf(meaning, sizeof meaning, "Fraction of patch votes for %s", k->label[1]);
    else
        snprintf(meaning, sizeof meaning, "Share of patch votes for the decided class");
    OFCondition c = add_num(t, code("R", SCHEME, meaning), f->r, one, false);
    if (c.good() && k->rule == SD_RULE_RATIO)
        c = add_num(t, code("DELTA", SCHEME, "Decision threshold delta"), f->delta, one, false);
    if (c.good())
        c = add_text(t, "RULE", "Image-level rule", k->rule_name);
    if (c.good())
        c = add(t, DSRTypes::RT_contains, DSRTypes::VT_Code,
                code("DECISION", SCHEME, "Detection decision"), false);
    if (c.good() && f->decision >= 0 && f->decision < k->labels) {
        snprintf(value, sizeof value, "C%d", f->decision);
        c = t.getCurrentContentItem().setCodeValue(code(value, SCHEME, k->label[f->decision]));
    } else if (c.good()) {
        c = t.getCurrentContentItem().setCodeValue(
            code("UND", SCHEME, "Undetermined (no patch voted for an image class)"));
    }
    for (int j = 0; j < k->classes && j < SD_TASK_MAX_CLASSES && c.good(); j++) {
        snprintf(value, sizeof value, "NUMC%d", j);
        if (k->outside && j == 0)
            snprintf(meaning, sizeof meaning, "Patches of the region outside (%s)",
                     k->outside_name);
        else
            snprintf(meaning, sizeof meaning, "Patches classified %s", k->cls[j]);
        c = add_num(t, code(value, SCHEME, meaning), f->num[j], patches, false);
    }
    return c;
}

/* Imaging Measurements > Measurement Group (TID 1501) with the findings. */
static OFCondition sr_findings(DSRDocumentTree &t, const source_ref *s, const nd_dicom_findings *f)
{
    char uid[100], tracking[64] = "sldd gastritis detection";
    if (f->task)
        snprintf(tracking, sizeof tracking, "sldd %s detection", f->task->name);
    DSRCodedEntryValue one = code("1", "UCUM", "no units"),
                       patches = code("{patches}", "UCUM", "patches");
    OFCondition c = add(t, DSRTypes::RT_contains, DSRTypes::VT_Container,
                        code("126010", "DCM", "Imaging Measurements"), false);
    if (c.good())
        c = add(t, DSRTypes::RT_contains, DSRTypes::VT_Container,
                code("125007", "DCM", "Measurement Group"), true);
    if (c.good())
        c = add(t, DSRTypes::RT_hasObsContext, DSRTypes::VT_Text,
                code("112039", "DCM", "Tracking Identifier"), true);
    if (c.good())
        c = t.getCurrentContentItem().setStringValue(tracking);
    if (c.good())
        c = add(t, DSRTypes::RT_hasObsContext, DSRTypes::VT_UIDRef,
                code("112040", "DCM", "Tracking Unique Identifier"), false);
    if (c.good())
        c = t.getCurrentContentItem().setStringValue(dcmGenerateUniqueIdentifier(uid));
    if (c.good())
        c = add(t, DSRTypes::RT_contains, DSRTypes::VT_Image,
                code("121112", "DCM", "Source of Measurement"), false);
    if (c.good())
        c = t.getCurrentContentItem().setImageReference(
            DSRImageReferenceValue(s->sop_class, s->sop_instance));
    if (c.good() && f->task)
        return sr_task_findings(t, f);
    if (c.good())
        c = add_num(t, code("R", SCHEME, "Fraction of stomach patches classified P"), f->r, one,
                    false);
    if (c.good())
        c = add_num(t, code("DELTA", SCHEME, "Decision threshold delta"), f->delta, one, false);
    if (c.good())
        c = add(t, DSRTypes::RT_contains, DSRTypes::VT_Code,
                code("DECISION", SCHEME, "Detection decision"), false);
    if (c.good())
        c = t.getCurrentContentItem().setCodeValue(
            f->decision == 1   ? code("POS", SCHEME, "Gastritis suspected")
            : f->decision == 0 ? code("NEG", SCHEME, "No gastritis suspected")
                               : code("UND", SCHEME, "Undetermined (no stomach patch)"));
    static const char *const cls[3][2] = {{"NUMI", "Patches outside the stomach (I)"},
                                          {"NUMN", "Patches classified non-gastritis (N)"},
                                          {"NUMP", "Patches classified gastritis (P)"}};
    for (int k = 0; k < 3 && c.good(); k++)
        c = add_num(t, code(cls[k][0], SCHEME, cls[k][1]), f->num[k], patches, false);
    return c;
}

static OFCondition sr_provenance(DSRDocumentTree &t, const nd_dicom_findings *f)
{
    OFCondition c = EC_Normal;
    if (f->bundle_sha256 && f->bundle_sha256[0])
        c = add_text(t, "BUNDLE", "Bundle SHA-256", f->bundle_sha256);
    if (c.good() && f->sender && f->sender[0])
        c = add_text(t, "SENDER", "Sender node", f->sender);
    if (c.good() && f->model && f->model[0])
        c = add_text(t, "MODEL", "Model", f->model);
    if (c.good() && f->theta0 && f->theta0[0])
        c = add_text(t, "THETA0", "Initial weights hash", f->theta0);
    if (c.good() && isfinite(f->epsilon))
        c = add_num(t, code("EPSILON", SCHEME, "Differential privacy epsilon"), f->epsilon,
                    code("1", "UCUM", "no units"), false);
    return c;
}

static int write_sr(DcmDataset *src, const source_ref *s, const nd_dicom_findings *f,
                    const char *path, sd_error *err)
{
    DSRDocument doc(DSRTypes::DT_ComprehensiveSR);
    char dev[100];
    const char *device_uid =
        f->device_uid && f->device_uid[0] ? f->device_uid : dcmGenerateUniqueIdentifier(dev);
    OFCondition c = doc.createNewSeriesInStudy(s->study);
    if (c.good())
        c = doc.setManufacturer("sldd");
    if (c.good())
        c = doc.setSeriesDescription("sldd detection report");
    if (c.good())
        c = sr_header(doc.getTree(), s, device_uid);
    if (c.good())
        c = sr_findings(doc.getTree(), s, f);
    if (c.good())
        c = sr_provenance(doc.getTree(), f);
    if (c.good())
        c = doc.getCurrentRequestedProcedureEvidence().addItem(s->study, s->series, s->sop_class,
                                                               s->sop_instance);
    if (c.good())
        c = doc.completeDocument();
    DcmFileFormat ff;
    DcmDataset *d = ff.getDataset();
    if (c.good())
        c = doc.write(*d);
    if (c.good()) {
        copy_study(src, d);
        c = d->putAndInsertString(DCM_SeriesNumber, "9902");
    }
    if (c.good())
        c = ff.saveFile(path, EXS_LittleEndianExplicit);
    if (c.bad())
        return sd_error_set(err, SD_EIO, "%s: cannot write the structured report: %s", path,
                            c.text());
    return 0;
}

extern "C" int nd_dicom_write_results(const uint8_t *src, size_t srclen, const char *srcname,
                                      const uint8_t *rgb, int w, int h, const nd_dicom_findings *f,
                                      const char *sc_path, const char *sr_path, sd_error *err)
{
    if (w < 1 || h < 1 || w > 65535 || h > 65535)
        return sd_error_set(err, SD_EINVAL, "heat map of %dx%d pixels", w, h);
    try {
        DcmFileFormat ff;
        int rc = nd_dicom_parse(ff, src, srclen, srcname, err);
        source_ref s;
        if (!rc)
            rc = get_source(ff.getDataset(), &s, srcname, err);
        if (!rc && sc_path)
            rc = write_sc(ff.getDataset(), &s, rgb, w, h, sc_path, err);
        if (!rc && sr_path)
            rc = write_sr(ff.getDataset(), &s, f, sr_path, err);
        return rc;
    } catch (...) {
        return sd_error_set(err, SD_ENOMEM, "%s: out of memory writing DICOM", srcname);
    }
}
