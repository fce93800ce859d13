/*
 * nd_dicom_net.h - DICOM networking (nd_dicom_net.cc over DCMTK): the
 * Storage SCP the daemon runs for on-arrival detection and the Storage SCU
 * that sends results to the PACS (docs/dicom.md, "On-arrival detection").
 */
#ifndef ND_DICOM_NET_H
#define ND_DICOM_NET_H

#include <stddef.h>

#include "sd_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nd_dicom_scp nd_dicom_scp;

typedef struct nd_dicom_scp_config {
    const char *address; /* as given; a loopback address takes loopback peers only */
    int port;
    const char *ae_title;       /* this node's AE title */
    const char *const *allowed; /* calling AE titles allowed (n_allowed 0: any) */
    size_t n_allowed;
    const char *inbox; /* received objects: inbox/rx-*.dcm, fsync'd before the answer */
    int max_queue;     /* objects in the inbox beyond which stores are refused (0xA700) */
    void (*on_stored)(void *arg);                                  /* may be NULL */
    void (*on_log)(void *arg, const char *level, const char *msg); /* may be NULL */
    void *arg;
} nd_dicom_scp_config;

typedef struct nd_dicom_scp_stats {
    long stored, refused_associations, refused_full, errors;
} nd_dicom_scp_stats;

/* Bind the port (so a busy port fails here).  The strings in cfg must
 * outlive the listener. */
int nd_dicom_scp_create(nd_dicom_scp **out, const nd_dicom_scp_config *cfg, sd_error *err) SD_WUR;
/* Serve associations until nd_dicom_scp_stop (noticed within a second). */
int nd_dicom_scp_run(nd_dicom_scp *s, sd_error *err);
void nd_dicom_scp_stop(nd_dicom_scp *s);
void nd_dicom_scp_counts(const nd_dicom_scp *s, nd_dicom_scp_stats *st);
void nd_dicom_scp_destroy(nd_dicom_scp *s); /* accepts NULL */

/* A PACS (or any Storage SCP). */
typedef struct nd_dicom_peer {
    const char *host;
    int port;
    const char *called_ae;  /* the PACS's AE title */
    const char *calling_ae; /* ours */
} nd_dicom_peer;

/* Send the files (Secondary Capture or Comprehensive SR objects) in one
 * association; every one must be answered with success. */
int nd_dicom_send(const nd_dicom_peer *peer, const char *const *files, int n, sd_error *err) SD_WUR;

#ifdef __cplusplus
}
#endif

#endif
