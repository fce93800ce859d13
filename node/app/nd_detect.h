/*
 * nd_detect.h - detection with a bundle held by a node (an imported bundle
 * available for detection, or one of the node's own): its classifier, a
 * bundle's theta_opt kept in the node's store, and one audit entry per
 * detection.  Used by the import (which stores theta_opt), by `sldd detect
 * --bundle ID --dir NODE` and by `sldd demo`.
 *
 * theta_opt is replayed once per bundle: the import stores it as a weights
 * file (nd_weights.h, source=payload) in NODE/objects/ and records it in the
 * theta_opt table beside the payload it came from; detection loads it on
 * the backend it is given instead of replaying.  A bundle without one (the
 * node's own, or imported before theta_opt was stored) is replayed once on
 * first use and its theta_opt stored then.
 */
#ifndef ND_DETECT_H
#define ND_DETECT_H

#include <stddef.h>

#include "nd_infer.h"
#include "nd_rebuild.h"
#include "nd_state.h"
#include "sd_detect.h"

/* Resolve bundle id (or unique prefix) in NODE and give the path of its
 * payload object.  An inbound bundle must have been imported (state
 * available).  0, or -1 with err. */
int nd_bundle_payload_path(const char *node_dir, const char *id_prefix, char *path, size_t pathlen,
                           char id_out[33], sd_error *err);

/* Write the classifier inf as a weights file into NODE's object store;
 * name_out gets its hash.  0, or an SC_E code with e. */
int nd_theta_opt_write(const char *node_dir, const nd_infer *inf, char name_out[65],
                       sc_error *e) SC_WUR;
/* The import's rebuild: payload object payload_sha256 of NODE (at most max
 * bytes) parsed once and replayed once on be into inf (info gets what the
 * payload says of itself), and written as theta_opt into the object store
 * (name_out).  The caller evaluates inf and records name_out with
 * nd_theta_opt_record in its transaction.  limits (may be NULL) is the
 * node's rebuild policy, checked after the parse and before anything of the
 * model is allocated.  0; 1 when the payload is unusable and 2 when the
 * policy refuses it (note says why: the import fails); an SC_E code with e
 * for trouble worth retrying (writing the object). */
int nd_theta_opt_rebuild(const char *node_dir, const char *payload_sha256, size_t max,
                         const nd_rebuild_limits *limits, sd_backend *be, nd_infer *inf,
                         nd_payload_info *info, char name_out[65], char *note, size_t notelen,
                         sc_error *e);
/* Record object `name` as bundle_id's theta_opt, replayed from payload
 * payload_sha256 on `device` (in the caller's transaction, if any). */
int nd_theta_opt_record(sqlite3 *db, const char *bundle_id, const char *name,
                        const char *payload_sha256, const char *device, sc_error *e) SC_WUR;

/* The classifier of bundle id_prefix in NODE on be: its stored theta_opt,
 * or the payload replayed (and its theta_opt stored) when there is none or
 * it no longer reads back.  id_out gets the full id; *replayed (may be
 * NULL) is 1 when this call replayed.  0, or -1 with err.  On success
 * err->msg is "" or a warning for people (a stored theta_opt that was unusable). */
int nd_bundle_classifier(const char *node_dir, const char *id_prefix, sd_backend *be, nd_infer *inf,
                         char id_out[33], int *replayed, sd_error *err);

/* SHA-256 of a file's bytes, lowercase hex. */
int nd_file_sha256_hex(const char *path, char hex[65], sc_error *e) SC_WUR;

/* The name of a detection's decision under task t (NULL or labels == 0:
 * gastric): "gastritis" / "non-gastritis", or the task's image class;
 * "undetermined" for no decision. */
const char *nd_decision_name(const sd_task *t, int decision);

/* Patch counts num[] as "I 3 N 4 P 5" (gastric) or with the task's class
 * names ("cat 1 dog 2 emu 0"), into out (cap bytes, truncated). */
void nd_patch_counts_text(const sd_task *t, const int *num, char *out, size_t cap);

/* Record one detection in NODE's audit log (action "detection"): the
 * bundle, its payload hash and sender, the image's name and SHA-256, the
 * decision, r and the patch counts, named by the model's task (NULL:
 * gastric). */
int nd_detection_audit(const char *node_dir, const char *bundle_id, const char *image,
                       const sd_task *task, int decision, double r, const int *num,
                       const char *actor, sd_error *err);

/* Detect on image with bundle id_prefix of NODE on the node's configured
 * device (node.conf), write the heat map (may be
 * NULL; `synthetic` puts the SYNTHETIC banner on it) and the audit entry.  res is filled (free with
 * sd_detect_result_free).  0, or -1 with err. */
int nd_detect_with_bundle(const char *node_dir, const char *id_prefix, const char *image,
                          const char *heatmap, int synthetic, const char *actor,
                          sd_detect_result *res, sd_error *err);

#endif
