/*
 * nd_dicom_net.cc - DICOM networking with DCMTK (nd_dicom_net.h): a
 * Storage SCP that persists each object before it answers, and a Storage
 * SCU that sends files to a PACS.
 *
 * The SCP is DCMTK's DcmSCP with three decisions made here: who may
 * associate (the calling AE title must be on the allow-list, and a
 * loopback listener takes loopback peers only), what a C-STORE does (the
 * data set is received into a temporary file exactly as sent, fsync'd and
 * renamed into the inbox, and only then answered with success, so an
 * acknowledged object survives a crash), and when the queue is full (the
 * object is answered 0xA700 "out of resources" and not kept, so the sender
 * keeps it and retries).  Verification (C-ECHO) is answered too.  Log
 * lines name AE titles and counts, never an attribute value.
 */
#include "dcmtk/config/osconfig.h"

#include "dcmtk/dcmdata/dctk.h"
#include "dcmtk/dcmnet/diutil.h"
#include "dcmtk/dcmnet/scp.h"
#include "dcmtk/dcmnet/scu.h"

#include <atomic>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern "C" {
#include "sd_error.h" /* C declarations; included first so that they get C linkage */
}
#include "nd_dicom_impl.h"
#include "nd_dicom_net.h"

class NdStorageSCP;

struct nd_dicom_scp { /* the .cc's own; C sees an opaque pointer */
    nd_dicom_scp_config cfg;
    NdStorageSCP *scp;
    std::atomic<int> stop;
    std::atomic<long> stored, refused_assoc, refused_full, errors, seq;
};

static void logf(nd_dicom_scp *s, const char *level, const char *fmt, ...) SB_PRINTF(3, 4);
static void logf(nd_dicom_scp *s, const char *level, const char *fmt, ...)
{
    if (!s->cfg.on_log)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s->cfg.on_log(s->cfg.arg, level, buf);
}

/* Objects waiting in the inbox (*.dcm). */
static int inbox_count(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += l > 4 && !strcmp(e->d_name + l - 4, ".dcm");
    }
    closedir(d);
    return n;
}

/* fsync a file, give it its final name (never replacing one: a name taken
 * by an object still waiting gets the next number) and fsync the folder. */
static int persist(nd_dicom_scp *s, const char *tmp, const char *dir)
{
    int fd = open(tmp, O_RDONLY);
    if (fd < 0)
        return -1;
    int ok = fsync(fd) == 0;
    close(fd);
    char fin[4400];
    for (int tries = 0; ok; tries++) {
        snprintf(fin, sizeof fin, "%s/rx-%ld-%06ld.dcm", dir, (long)time(NULL), ++s->seq);
        if (link(tmp, fin) == 0)
            break;
        if (errno != EEXIST || tries == 1000)
            ok = 0;
    }
    if (!ok || unlink(tmp) != 0)
        return -1;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0)
        return -1;
    ok = fsync(dfd) == 0;
    close(dfd);
    return ok ? 0 : -1;
}

static int is_loopback(const char *addr)
{
    return !strncmp(addr, "127.", 4) || !strcmp(addr, "::1") || !strcmp(addr, "localhost");
}

class NdStorageSCP : public DcmSCP
{
  public:
    explicit NdStorageSCP(nd_dicom_scp *s) : s_(s)
    {
    }

  protected:
    void notifyAssociationRequest(const T_ASC_Parameters &params,
                                  DcmSCPActionType &desiredAction) override
    {
        const char *caller = params.DULparams.callingAPTitle;
        const char *host = params.DULparams.callingPresentationAddress;
        int ok = s_->cfg.n_allowed == 0;
        for (size_t i = 0; i < s_->cfg.n_allowed && !ok; i++)
            ok = !strcmp(caller, s_->cfg.allowed[i]);
        if (ok && is_loopback(s_->cfg.address) && !is_loopback(host))
            ok = 0;
        if (!ok) {
            desiredAction = DCMSCP_ACTION_REFUSE_ASSOCIATION;
            s_->refused_assoc++;
            logf(s_, "warn", "DICOM: association from AE '%.16s' refused (not allowed)", caller);
        }
    }

    OFCondition handleIncomingCommand(T_DIMSE_Message *msg,
                                      const DcmPresentationContextInfo &info) override
    {
        if (msg->CommandField != DIMSE_C_STORE_RQ)
            return DcmSCP::handleIncomingCommand(msg, info);
        T_DIMSE_C_StoreRQ &req = msg->msg.CStoreRQ;
        char tmp[4400];
        snprintf(tmp, sizeof tmp, "%s/.rx-%ld-%ld.tmp", s_->cfg.inbox, (long)time(NULL), ++s_->seq);
        int full = s_->cfg.max_queue > 0 && inbox_count(s_->cfg.inbox) >= s_->cfg.max_queue;
        OFCondition c = receiveSTORERequest(req, info.presentationContextID, OFString(tmp));
        Uint16 status = STATUS_Success;
        if (c.bad()) {
            unlink(tmp);
            s_->errors++;
            logf(s_, "error", "DICOM: receiving an object failed: %s", c.text());
            return c;
        }
        if (full) {
            unlink(tmp);
            status = STATUS_STORE_Refused_OutOfResources;
            s_->refused_full++;
            logf(s_, "warn", "DICOM: queue full (%d objects); object refused, the sender keeps it",
                 s_->cfg.max_queue);
        } else if (persist(s_, tmp, s_->cfg.inbox) != 0) {
            unlink(tmp);
            status = STATUS_STORE_Refused_OutOfResources;
            s_->errors++;
            logf(s_, "error", "DICOM: cannot store a received object: %s", strerror(errno));
        } else {
            s_->stored++;
            if (s_->cfg.on_stored)
                s_->cfg.on_stored(s_->cfg.arg);
        }
        return sendSTOREResponse(info.presentationContextID, req, status);
    }

    OFBool stopAfterConnectionTimeout() override
    {
        return s_->stop.load() != 0;
    }
    OFBool stopAfterCurrentAssociation() override
    {
        return s_->stop.load() != 0;
    }

  private:
    nd_dicom_scp *s_;
};

static const char *const k_xfers[] = {UID_LittleEndianExplicitTransferSyntax,
                                      UID_LittleEndianImplicitTransferSyntax,
                                      UID_BigEndianExplicitTransferSyntax,
                                      UID_JPEGProcess1TransferSyntax,
                                      UID_JPEGProcess2_4TransferSyntax,
                                      UID_JPEGProcess14TransferSyntax,
                                      UID_JPEGProcess14SV1TransferSyntax,
                                      UID_JPEGLSLosslessTransferSyntax,
                                      UID_JPEGLSLossyTransferSyntax,
                                      UID_RLELosslessTransferSyntax,
                                      UID_DeflatedExplicitVRLittleEndianTransferSyntax};

/* The grayscale projection and cross-sectional image classes a modality or
 * PACS sends (DCMTK caps an SCP at 128 presentation contexts, fewer than
 * all storage classes); anything else is not accepted at negotiation. */
static const char *const k_classes[] = {
    UID_ComputedRadiographyImageStorage,
    UID_DigitalXRayImageStorageForPresentation,
    UID_DigitalXRayImageStorageForProcessing,
    UID_DigitalMammographyXRayImageStorageForPresentation,
    UID_DigitalMammographyXRayImageStorageForProcessing,
    UID_DigitalIntraOralXRayImageStorageForPresentation,
    UID_DigitalIntraOralXRayImageStorageForProcessing,
    UID_XRayAngiographicImageStorage,
    UID_EnhancedXAImageStorage,
    UID_XRayRadiofluoroscopicImageStorage,
    UID_EnhancedXRFImageStorage,
    UID_SecondaryCaptureImageStorage,
    UID_MultiframeGrayscaleByteSecondaryCaptureImageStorage,
    UID_MultiframeGrayscaleWordSecondaryCaptureImageStorage,
    UID_CTImageStorage,
    UID_MRImageStorage,
};

extern "C" int nd_dicom_scp_create(nd_dicom_scp **out, const nd_dicom_scp_config *cfg,
                                   sd_error *err)
{
    *out = NULL;
    nd_dicom_init();
    nd_dicom_scp *s = new (std::nothrow) nd_dicom_scp();
    if (!s)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    s->cfg = *cfg;
    s->stop = 0;
    s->stored = s->refused_assoc = s->refused_full = s->errors = s->seq = 0;
    s->scp = new (std::nothrow) NdStorageSCP(s);
    if (!s->scp) {
        delete s;
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    }
    DcmSCP *p = s->scp;
    p->setPort((Uint16)cfg->port);
    p->setAETitle(cfg->ae_title);
    p->setConnectionBlockingMode(DUL_NOBLOCK);
    p->setConnectionTimeout(1);
    p->setACSETimeout(30);
    p->setDIMSETimeout(60);
    p->setHostLookupEnabled(OFFalse);
    OFList<OFString> xs;
    for (const char *x : k_xfers)
        xs.push_back(x);
    OFCondition c = p->addPresentationContext(UID_VerificationSOPClass, xs);
    for (size_t i = 0; c.good() && i < sizeof k_classes / sizeof k_classes[0]; i++)
        c = p->addPresentationContext(k_classes[i], xs);
    if (c.good())
        c = p->openListenPort();
    if (c.bad()) {
        delete s->scp;
        delete s;
        return sd_error_set(err, SD_EIO, "DICOM listener on port %d: %s", cfg->port, c.text());
    }
    *out = s;
    return 0;
}

extern "C" int nd_dicom_scp_run(nd_dicom_scp *s, sd_error *err)
{
    OFCondition c = s->scp->acceptAssociations();
    if (c.bad() && !s->stop.load())
        return sd_error_set(err, SD_EIO, "DICOM listener stopped: %s", c.text());
    return 0;
}

extern "C" void nd_dicom_scp_stop(nd_dicom_scp *s)
{
    if (s)
        s->stop = 1;
}

extern "C" void nd_dicom_scp_counts(const nd_dicom_scp *s, nd_dicom_scp_stats *st)
{
    st->stored = s->stored.load();
    st->refused_associations = s->refused_assoc.load();
    st->refused_full = s->refused_full.load();
    st->errors = s->errors.load();
}

extern "C" void nd_dicom_scp_destroy(nd_dicom_scp *s)
{
    if (!s)
        return;
    delete s->scp;
    delete s;
}

/* ---- Storage SCU ---- */

static int send_files(DcmSCU &scu, const char *const *files, int n, sd_error *err)
{
    for (int i = 0; i < n; i++) {
        DcmFileFormat ff;
        OFString cls;
        if (ff.loadFile(files[i]).bad() ||
            ff.getDataset()->findAndGetOFString(DCM_SOPClassUID, cls).bad())
            return sd_error_set(err, SD_EIO, "%s: cannot read it to send", files[i]);
        T_ASC_PresentationContextID id = scu.findPresentationContextID(cls, "");
        Uint16 status = 0xffff;
        OFCondition c = id ? scu.sendSTORERequest(id, files[i], NULL, status) : EC_IllegalCall;
        if (c.bad() || status != STATUS_Success)
            return sd_error_set(err, SD_EIO, "sending %s: %s (status 0x%04x)", files[i],
                                c.bad() ? c.text() : "refused by the PACS", (unsigned)status);
    }
    return 0;
}

extern "C" int nd_dicom_send(const nd_dicom_peer *peer, const char *const *files, int n,
                             sd_error *err)
{
    nd_dicom_init();
    try {
        DcmSCU scu;
        scu.setAETitle(peer->calling_ae);
        scu.setPeerAETitle(peer->called_ae);
        scu.setPeerHostName(peer->host);
        scu.setPeerPort((Uint16)peer->port);
        scu.setACSETimeout(10);
        scu.setDIMSETimeout(30);
        scu.setConnectionTimeout(10);
        OFList<OFString> xs;
        xs.push_back(UID_LittleEndianExplicitTransferSyntax);
        xs.push_back(UID_LittleEndianImplicitTransferSyntax);
        OFCondition c = scu.addPresentationContext(UID_SecondaryCaptureImageStorage, xs);
        if (c.good())
            c = scu.addPresentationContext(UID_ComprehensiveSRStorage, xs);
        if (c.good())
            c = scu.initNetwork();
        if (c.good())
            c = scu.negotiateAssociation();
        if (c.bad())
            return sd_error_set(err, SD_EIO, "PACS %s:%d (AE %s): %s", peer->host, peer->port,
                                peer->called_ae, c.text());
        int rc = send_files(scu, files, n, err);
        scu.releaseAssociation();
        return rc;
    } catch (...) {
        return sd_error_set(err, SD_ENOMEM, "out of memory sending DICOM");
    }
}
