/*
 * nd_cli_words.c - the nearest known word to a mistyped one (see
 * nd_cli_words.h).  Optimal string alignment distance over short words;
 * words longer than WORD_MAX are never near anything.
 */
#include "nd_cli_words.h"

#include <stdio.h>
#include <string.h>

#define WORD_MAX 32

static size_t min3(size_t a, size_t b, size_t c)
{
    size_t m = a < b ? a : b;
    return m < c ? m : c;
}

/* edit distance with adjacent transpositions; la, lb <= WORD_MAX */
static size_t distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t d[WORD_MAX + 1][WORD_MAX + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1;
        }
    return d[la][lb];
}

const char *nd_cli_nearest(const char *word, const char *const *words)
{
    size_t lw = strlen(word), best = 3;
    const char *near = NULL;
    if (lw == 0 || lw > WORD_MAX)
        return NULL;
    for (size_t i = 0; words[i]; i++) {
        size_t lk = strlen(words[i]);
        if (lk > WORD_MAX)
            continue;
        size_t dist = distance(word, lw, words[i], lk);
        if (dist < best && dist < lw) {
            best = dist;
            near = words[i];
        }
    }
    return near;
}

int nd_cli_check_word(const char *prog, const char *what, const char *word,
                      const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (!strcmp(word, words[i]))
            return 0;
    const char *near = nd_cli_nearest(word, words);
    if (near) {
        fprintf(stderr, "%s: unknown %s '%s' (did you mean '%s'?)\n", prog, what, word, near);
        return -1;
    }
    fprintf(stderr, "%s: unknown %s '%s' (one of:", prog, what, word);
    for (size_t i = 0; words[i]; i++)
        fprintf(stderr, "%s %s", i ? "," : "", words[i]);
    fprintf(stderr, ")\n");
    return -1;
}
