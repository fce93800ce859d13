/*
 * nd_dicom_scp.h - on-arrival detection in `sldd serve` (docs/dicom.md,
 * "On-arrival detection"): a DICOM Storage SCP receives images from a
 * modality or the PACS, a worker detects on each with the configured model
 * and sends the heat map (Secondary Capture) and the report (TID 1500 SR)
 * to the PACS with a Storage SCU.
 *
 * Nothing is lost across a crash or restart: an object is fsync'd into
 * NODE/dicom/inbox before the SCP answers success; its results are written
 * to NODE/dicom/outbox/NAME/ (renamed into place when complete) and the
 * inbox file is removed only after the PACS has accepted both; a restart
 * picks up whatever is left, sending results already made without
 * detecting again.  The queue is bounded (max_queue objects in the inbox;
 * more are refused with 0xA700 so the sender keeps them); an object that
 * cannot be read goes to NODE/dicom/failed/ with an error in the log; a
 * PACS that does not answer is retried with back-off.  Associations
 * refused, objects stored, detections, sends and errors are counted and
 * logged; no log line or audit entry holds a DICOM attribute value (the
 * audit names the inbox file).
 */
#ifndef ND_DICOM_SCP_H
#define ND_DICOM_SCP_H

#include <pthread.h>
#include <stdatomic.h>

#include "nd_ctx.h"
#include "nd_dicom_net.h"
#include "nd_infer.h"

#define ND_DICOM_MAX_ALLOWED 16

typedef struct nd_dicom_service_opts {
    char listen_addr[64];
    int listen_port;                        /* 0: no DICOM listener */
    char ae_title[17];                      /* default SLDD */
    char allowed[ND_DICOM_MAX_ALLOWED][17]; /* calling AE titles; none: any */
    size_t n_allowed;
    char pacs_host[256], pacs_ae[17]; /* where results go */
    int pacs_port;
    char model[ND_PATH_MAX]; /* a payload file, or */
    char bundle[65];         /* a bundle the node holds */
    int max_queue;           /* default 64 */
    double delta;            /* decision threshold */
} nd_dicom_service_opts;

/* The command line's strings (any may be NULL except listen, pacs and one
 * of model and bundle). */
typedef struct nd_dicom_service_args {
    const char *listen; /* ADDR:PORT */
    const char *ae;     /* TITLE */
    const char *allow;  /* AE[,AE...] */
    const char *pacs;   /* HOST:PORT:AE */
    const char *model;  /* a payload path */
    const char *bundle; /* a bundle id */
    const char *queue;  /* objects waiting at most (1..100000) */
} nd_dicom_service_args;

/* Fill o from a.  0, or SC_EINVAL with e. */
int nd_dicom_service_parse(nd_dicom_service_opts *o, const nd_dicom_service_args *a,
                           sc_error *e) SC_WUR;

typedef struct nd_dicom_service {
    nd_ctx *c;
    nd_dicom_service_opts o;
    nd_dicom_scp *scp;
    sd_backend *be; /* the worker's */
    nd_infer inf;   /* the model, loaded at start */
    const char *allowed[ND_DICOM_MAX_ALLOWED];
    char inbox[ND_PATH_MAX + 32], outbox[ND_PATH_MAX + 32], failed[ND_PATH_MAX + 32];
    pthread_t listener, worker;
    int listener_started, worker_started;
    pthread_cond_t wake;
    int pending;
    atomic_long detected, sent, send_errors, failed_objects;
} nd_dicom_service;

/* Make the folders, load the model, bind the port and start both threads. */
int nd_dicom_service_start(nd_dicom_service *s, nd_ctx *c, const nd_dicom_service_opts *o,
                           sc_error *e) SC_WUR;
/* Stop the listener and the worker (after its current object) and join. */
void nd_dicom_service_stop(nd_dicom_service *s);

#endif
