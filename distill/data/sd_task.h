/*
 * sd_task.h - what a labelled image set is for: its image classes, whether
 * patches outside a masked region form a class of their own, and the rule
 * that turns patch votes into an image-level answer (docs/data.md).
 *
 * The gastric task is the default and the paper's: image labels
 * non-gastritis / gastritis, patch classes I (outside stomach), N and P, and
 * Eq. 9 (r = P/(N+P), gastritis iff r >= delta).  Any other set declares its
 * own task: K >= 2 named image classes, optionally a region-outside class
 * (patch class 0, labelled from the mask), and the rule: "ratio" for two
 * classes (r = votes for the second / votes for either, second iff r >=
 * delta, Eq. 9 with the set's names) or "majority" for any K (the class with
 * most patch votes, ties to the lower index; r = its share of the votes).
 *
 * A data set folder may hold DIR/task.json (written by `sldd dataset
 * prepare`); prepared.json carries a copy that every later command reads,
 * and a bundle carries it to the receiver so that its outputs use the
 * sender's class names.  Names are 1..31 characters of letters, digits,
 * space and . _ + - (they reach JSON, CSV and pictures unescaped).
 */
#ifndef SD_TASK_H
#define SD_TASK_H

#include <stdint.h>
#include <stdio.h>

#include "sd_error.h"

#define SD_TASK_MAX_CLASSES 10 /* patch classes, the region-outside one included */
#define SD_TASK_NAME_MAX    32

enum { SD_RULE_RATIO = 0, SD_RULE_MAJORITY = 1 };

/* How `sldd dataset prepare --val-fraction` made the split (recorded). */
typedef struct sd_split_record {
    int made;                           /* 0: the labels file gave every split */
    double val_fraction, test_fraction; /* shares of each class moved from train */
    uint64_t seed;                      /* Fisher-Yates shuffle seed */
    int moved[3][SD_TASK_MAX_CLASSES];  /* [train/val/test][label]: images per class */
} sd_split_record;

typedef struct sd_task {
    char name[SD_TASK_NAME_MAX]; /* "gastric" or the set's own */
    int labels;                  /* image classes K, 2..SD_TASK_MAX_CLASSES(-1 with outside) */
    char label[SD_TASK_MAX_CLASSES][SD_TASK_NAME_MAX]; /* "non-gastritis", "gastritis" */
    int outside;                                       /* 1: patch class 0 = region outside */
    char outside_name[SD_TASK_NAME_MAX];               /* "outside stomach" */
    int classes;                                       /* patch classes: labels + outside */
    char cls[SD_TASK_MAX_CLASSES][SD_TASK_NAME_MAX];   /* short patch class names: I, N, P */
    int rule;                                          /* SD_RULE_* */
    char rule_name[96];                                /* e.g. "Eq. 9: r = P/(N+P) >= delta" */
    sd_split_record split;
} sd_task;

/* The paper's task (the default of every command). */
void sd_task_gastric(sd_task *t);
int sd_task_is_gastric(const sd_task *t);

/* A declared task: name, K image class names, the region-outside class's
 * name (NULL: none).  The rule is "ratio" for K = 2, "majority" else. */
int sd_task_make(sd_task *t, const char *name, int k, const char *const *labels,
                 const char *outside, sd_error *err) SD_WUR;

/* 1 when s is a valid task or class name (see above). */
int sd_task_name_ok(const char *s);

/* Patch class of an image label (label + outside), and back (-1: outside). */
int sd_task_class_of_label(const sd_task *t, int label);
int sd_task_label_of_class(const sd_task *t, int cls);

/* The image-level answer from patch votes num[t->classes]: the label, or -1
 * (undetermined: no patch voted for any image class).  *r: the ratio
 * (rule "ratio") or the winner's share ("majority"), NaN when undetermined. */
int sd_task_decide(const sd_task *t, const int *num, double delta, double *r);

/* Image label from a labels-file field: a class name (case-insensitive) or
 * an integer 0..K-1, also written as a whole decimal such as "1.0".
 * -1 when it is neither. */
int sd_task_parse_label(const sd_task *t, const char *s);

/* JSON key for label i in count objects: the name with '-' as '_'
 * ("non_gastritis"), as prepared.json has always written them. */
void sd_task_label_key(const sd_task *t, int i, char *out, size_t cap);

/* The task as one JSON object (no trailing newline), indented by indent. */
void sd_task_write_json(FILE *f, const sd_task *t, int indent);
/* Parse the object written above (obj points at its '{'); what names the
 * file in messages. */
int sd_task_parse_json(sd_task *t, const char *obj, const char *what, sd_error *err) SD_WUR;

/* DIR/task.json: read (absent: the gastric task, 0) and write (atomic). */
int sd_task_read_dir(sd_task *t, const char *dir, sd_error *err) SD_WUR;
int sd_task_write_dir(const sd_task *t, const char *dir, sd_error *err) SD_WUR;

#endif
