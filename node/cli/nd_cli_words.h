/*
 * nd_cli_words.h - unknown commands and subcommands named, with the nearest
 * known word: `sldd job lsit` says "unknown subcommand 'lsit' (did you mean
 * 'list'?)" instead of printing the usage alone.  Every dispatcher of the
 * sldd binary checks its first word here, so the message is the same
 * everywhere.
 */
#ifndef ND_CLI_WORDS_H
#define ND_CLI_WORDS_H

/* The word of words (NULL-terminated) nearest to word by edit distance
 * (insertions, deletions, substitutions, adjacent swaps), or NULL when none
 * is close: at most 2 edits, and fewer than the word's length. */
const char *nd_cli_nearest(const char *word, const char *const *words);

/* 0 when word is one of words; else prints to stderr
 *   "PROG: unknown WHAT 'word' (did you mean 'x'?)"
 * or, with no near word, "... (one of: a, b, c)" and returns -1. */
int nd_cli_check_word(const char *prog, const char *what, const char *word,
                      const char *const *words);

#endif
