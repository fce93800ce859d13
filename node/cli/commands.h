/*
 * commands.h - the sldd subcommands.
 *
 * Each subcommand lives in its own node/cli/cmd_*.c file and has the signature
 * int cmd_NAME(int argc, char **argv), where argv[0] is the subcommand name.
 * It returns the process exit status (0 ok, 1 failure, 2 usage error).
 * The table in main.c lists them; add one line there per new command.
 */
#ifndef SLDD_COMMANDS_H
#define SLDD_COMMANDS_H

typedef struct sldd_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} sldd_command;

int cmd_models(int argc, char **argv);
int cmd_dataset(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_admin(int argc, char **argv);
int cmd_peer(int argc, char **argv);
int cmd_bundle(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_baseline(int argc, char **argv);
int cmd_detect(int argc, char **argv);
int cmd_evaluate(int argc, char **argv); /* also `replay` (argv[0] says which) */
int cmd_train(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_job(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_compression(int argc, char **argv);
int cmd_privacy(int argc, char **argv);

#endif
