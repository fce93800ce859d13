/*
 * nd_detect.h - detection with a bundle held by a node: the payload found
 * through the node's store (an imported bundle available for detection, or
 * one of the node's own), the classifier rebuilt from it (nd_infer.h), and
 * one audit entry per detection.  Used by `sldd detect --bundle ID --dir
 * NODE` and by `sldd demo`.
 */
#ifndef ND_DETECT_H
#define ND_DETECT_H

#include <stddef.h>

#include "sd_detect.h"

/* Resolve bundle id (or unique prefix) in NODE and give the path of its
 * payload object.  An inbound bundle must have been imported (state
 * available).  0, or -1 with msg. */
int nd_bundle_payload_path(const char *node_dir, const char *id_prefix, char *path,
                           size_t pathlen, char id_out[33], char *msg, size_t msglen);

/* Record one detection in NODE's audit log (action "detection"). */
int nd_detection_audit(const char *node_dir, const char *bundle_id, const char *image,
                       int decision, double r, const int num[3], const char *actor, char *msg,
                       size_t msglen);

/* Detect on image with bundle id_prefix of NODE, write the heat map (may be
 * NULL; `synthetic` puts the SYNTHETIC banner on it) and the audit entry.  res is filled (free with
 * sd_detect_result_free).  0, or -1 with msg. */
int nd_detect_with_bundle(const char *node_dir, const char *id_prefix, const char *image,
                          const char *heatmap, int synthetic, const char *actor,
                          sd_detect_result *res, char *msg, size_t msglen);

#endif
