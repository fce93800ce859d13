/*
 * main.c - the sldd binary: dispatches to subcommands (see commands.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "nd_cli_dir.h"
#include "nd_cli_words.h"
#include "sd_backend_cpu.h"

#ifdef SLDD_HAVE_CUDA
#include "sg_backend.h"
#endif

static const sldd_command commands[] = {
    {"models", cmd_models, "list the model architectures with parameter counts"},
    {"dataset", cmd_dataset, "make a synthetic data set; validate and prepare a data set"},
    {"init", cmd_init, "create a node directory with its key pairs and TLS certificate"},
    {"keys", cmd_keys, "this node's keys and TLS pin, its contact card, key rotation"},
    {"admin", cmd_admin, "add or list admin keys (passphrase-protected)"},
    {"peer", cmd_peer, "add (from a contact card), list, show or remove peer nodes"},
    {"bundle", cmd_bundle, "make, inspect, sign, approve, seal, open, verify bundles"},
    {"distill", cmd_distill, "distil a data set into a few soft-label images (Algorithm 1)"},
    {"baseline", cmd_baseline, "train theta_0 with the same steps on random real samples"},
    {"train", cmd_train, "ordinary training on real samples (SGD/Adam, per-class budget)"},
    {"replay", cmd_evaluate, "replay a payload (Algorithm 2) and evaluate it on data"},
    {"evaluate", cmd_evaluate, "Sen/Spe/HM, ROC and AUC of a payload, weights or received bundle"},
    {"privacy", cmd_privacy, "one-run membership audit of a distillation (canaries)"},
    {"detect", cmd_detect, "gastritis detection on X-ray images (one or a folder), heat maps"},
    {"serve", cmd_serve, "run the node: peers over mutual TLS, admin API, jobs, delivery"},
    {"status", cmd_status,
     "is the node's daemon running: pid, listeners, jobs, bundles, deliveries"},
    {"stop", cmd_stop, "stop the node's daemon cleanly and wait until it has finished"},
    {"job", cmd_job, "distillation jobs of a running node: submit, list, show, wait, cancel"},
    {"audit", cmd_audit, "show or verify the node's hash-chained audit log"},
    {"compression", cmd_compression, "full model size against bundle size per encoding (Table 4)"},
    {"demo", cmd_demo, "three hospitals on loopback exchange distilled data (synthetic)"},
};

/* OpenBLAS 0.3.21 (Debian 12) does not recognise newer x86 CPUs and falls
 * back to its generic SSE3 kernels, about 3x slower here.  It reads
 * OPENBLAS_CORETYPE only when it is loaded, so when the CPU backend reports
 * such a fallback and the variable is unset, set it and run this program
 * again, once.  SLDD_BLAS_AUTOTUNE=0 turns this off (docs/cpu-backend.md). */
static void blas_autotune(char **argv)
{
    const char *off = getenv("SLDD_BLAS_AUTOTUNE");
    if (getenv("OPENBLAS_CORETYPE") || (off && !strcmp(off, "0")))
        return;
    const char *core = sd_backend_cpu_blas_suggest();
    if (!core)
        return;
    if (setenv("OPENBLAS_CORETYPE", core, 1) || setenv("SLDD_BLAS_AUTOTUNE", "0", 1))
        return;
    execv("/proc/self/exe", argv);
    /* not re-run: carry on with the generic kernels */
    unsetenv("OPENBLAS_CORETYPE");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sldd [--version] [--help] <command> [<args>]\n"
               "\n"
               "SLDD node: soft-label dataset distillation of gastric X-ray patches,\n"
               "signed and encrypted bundle exchange between hospitals.\n"
               "\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nRun 'sldd <command> --help' or 'sldd help <command>' for the options of a\n"
            "command.  Commands that work on a node take --dir NODE; without it they\n"
            "use $SLDD_DIR, else %s.\n",
            ND_DEFAULT_NODE_DIR);
}

int main(int argc, char **argv)
{
    blas_autotune(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    enum { N_COMMANDS = sizeof commands / sizeof commands[0] };
    const char *names[N_COMMANDS + 2];
    for (size_t i = 0; i < N_COMMANDS; i++)
        names[i] = commands[i].name;
    names[N_COMMANDS] = "help";
    names[N_COMMANDS + 1] = NULL;
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        (!strcmp(argv[1], "help") && argc < 3)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "help")) { /* sldd help COMMAND: that command's help */
        if (argc > 3 || nd_cli_check_word("sldd help", "command", argv[2], names))
            return 2;
        if (!strcmp(argv[2], "help")) {
            usage(stdout);
            return 0;
        }
        char help[] = "--help";
        for (size_t i = 0; i < N_COMMANDS; i++)
            if (!strcmp(argv[2], commands[i].name)) {
                char *sub_argv[] = {argv[2], help, NULL};
                return commands[i].run(2, sub_argv);
            }
    }
    if (!strcmp(argv[1], "--version")) {
        printf("sldd %s\n", SLDD_VERSION);
#ifdef SLDD_HAVE_CUDA
        printf("backends: cpu, cuda (built with %s)\n", sg_build_info());
#else
        printf("backends: cpu (CUDA backend not built in)\n");
#endif
        /* the kernel set decides the CPU backend's last bits and much of its speed */
        const char *ct = getenv("OPENBLAS_CORETYPE");
        printf("OpenBLAS kernels: %s (%s)\n", sd_backend_cpu_blas_core(),
               ct ? "set by OPENBLAS_CORETYPE" : "OpenBLAS's choice for this CPU");
        const char *no_dnnl = sd_backend_cpu_dnnl_unusable();
        if (no_dnnl)
            printf("oneDNN convolutions: off (%s)\n", no_dnnl);
        else
            printf("oneDNN convolutions: on (layers of 16 or more input channels on maps of 4x4 "
                   "or more, and some passes of few-channel layers with 5x5 or larger kernels)\n");
        printf("direct convolution kernels: %s (few-channel 5x5 and larger layers)\n",
               sd_backend_cpu_direct_kernels());
        return 0;
    }
#ifdef SLDD_HAVE_CUDA
    /* makes --device cuda available; creating it still needs a GPU */
    if (sg_backend_register() != 0) {
        fprintf(stderr, "sldd: cannot register the CUDA backend\n");
        return 1;
    }
#endif
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    if (nd_cli_check_word("sldd", "command", argv[1], names) == 0)
        return 2; /* not reached: every name but help has returned above */
    fprintf(stderr, "see 'sldd --help'\n");
    return 2;
}
