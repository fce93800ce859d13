/*
 * nd_ledger.h - the node's privacy ledger: what each outbound bundle costs
 * in differential privacy, composed per training record across releases,
 * against node.conf's budget (`max-epsilon`, `epsilon-delta`).
 *
 * A release is one outbound bundle.  Its cost is the RDP curve of its
 * distillation (sd_rdp.h: the Poisson-subsampled Gaussian mechanism over
 * its iterations) on the accountant's fixed grid of orders; a bundle made
 * without DP has no finite cost.  Each release lists the training records
 * it could have used (16-byte hashes of their content: a Fashion-MNIST
 * sample, or one image of a gastric data set), so the ledger is keyed by the
 * data itself, not by a path or a name: moving, renaming, re-splitting or
 * re-preparing the same images finds the same records.
 *
 * The cost already spent for a new release is the RDP sum of every spent
 * release that shares at least one record with it.  That sum bounds the
 * composed RDP of every shared record (a record outside a release pays
 * nothing for it), so the figure is conservative: it can only overstate.
 * RDP adds up at each order; the total is converted to (epsilon, delta) at
 * the budget's delta.
 *
 * A release is "pending" from the moment its bundle exists, "spent" when it
 * is approved (from then on its bytes may leave, whatever happens to the
 * delivery) and "void" when it is rejected.  A pending release whose total
 * would pass the budget cannot be approved (nd_approval.c); the check is
 * repeated at approval because another release may have been spent since.
 */
#ifndef ND_LEDGER_H
#define ND_LEDGER_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "nd_data.h"
#include "nd_distill.h"
#include "sc_error.h"
#include "sd_rdp.h"

#define ND_LEDGER_RECORD_BYTES 16

/* The training records of a data set. */
typedef struct nd_records {
    uint8_t (*h)[ND_LEDGER_RECORD_BYTES];
    size_t n;
    const char *unit; /* "sample" or "image" */
} nd_records;

/* The records of ds's training split: every training sample of
 * Fashion-MNIST (all of them even under --train-limit, which only narrows
 * the set), every training image of a gastric data set (the patches of one
 * image share its record). */
int nd_ledger_records(const nd_data *ds, nd_records *out, sc_error *e) SC_WUR;
void nd_records_free(nd_records *r);

/* What one release costs. */
typedef struct nd_ledger_cost {
    int dp;             /* 0: made without DP, no finite cost */
    double q, sigma;    /* sampling rate, noise multiplier */
    double delta;       /* the delta its own epsilon is stated at */
    int64_t iterations; /* outer iterations */
    double epsilon;     /* its own epsilon at delta (inf without DP) */
} nd_ledger_cost;

/* The cost of a distillation run with options o on ds (finished opts). */
int nd_ledger_cost_of(const nd_distill_opts *o, const nd_data *ds, nd_ledger_cost *c,
                      sc_error *e) SC_WUR;

/* The budget of node.conf; max_epsilon 0 = none set. */
typedef struct nd_ledger_budget {
    double max_epsilon, delta;
} nd_ledger_budget;

/* Record a new release of bundle bid as pending (inside the caller's
 * transaction when one is open). */
int nd_ledger_add(sqlite3 *db, const char *bid, const char *data_source, const nd_records *r,
                  const nd_ledger_cost *cost, sc_error *e) SC_WUR;

/* Move a release: to "spent" at approval, to "void" at rejection.  No row
 * (a bundle from before the ledger) is not an error. */
int nd_ledger_spend(sqlite3 *db, const char *bid, sc_error *e) SC_WUR;
int nd_ledger_void(sqlite3 *db, const char *bid, sc_error *e) SC_WUR;

/* A release against the budget, as the approver sees it. */
typedef struct nd_ledger_view {
    int found;             /* the bundle has a ledger row */
    char state[16];        /* pending, spent, void */
    nd_ledger_cost cost;   /* this release */
    int64_t records;       /* training records it could use */
    char unit[16];         /* "sample" or "image" */
    int prior, prior_nodp; /* spent releases sharing records (without DP) */
    double delta;          /* the delta of the figures below */
    double spent_epsilon;  /* those releases composed (0 when none) */
    double total_epsilon;  /* with this one */
    double budget_epsilon; /* 0: no budget */
    double left_epsilon;   /* budget - total (budget set only) */
    int over;              /* this release would pass the budget */
} nd_ledger_view;

int nd_ledger_view_of(sqlite3 *db, const char *bid, const nd_ledger_budget *b, nd_ledger_view *v,
                      sc_error *e) SC_WUR;

/* One line for logs, audit entries and errors. */
void nd_ledger_describe(const nd_ledger_view *v, char *buf, size_t len);

#endif
