/* diag.c - positioned diagnostics, excerpts and suggestions (see r2m/diag.h). */
#include "r2m/diag.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEPT  1000 /* reports held in memory */
#define MAX_SHOWN 100  /* reports handed to the caller */

struct r2m_diag_item {
    int line, col; /* 0, 0: about the whole file */
    size_t seq;    /* keeps reports about one position in the order they were made */
    char *msg;
};

void r2m_diag_free(struct r2m_diag *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->lines[i]);
    free(d->lines);
    d->lines = NULL;
    d->n = 0;
}

void r2m_diag_add(struct r2m_diag *diag, int *nomem, const char *fmt, ...)
{
    if (!diag)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *line = n >= 0 ? malloc((size_t)n + 1) : NULL;
    char **lines = line ? realloc(diag->lines, (diag->n + 1) * sizeof *lines) : NULL;
    if (!lines) {
        free(line);
        *nomem = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, (size_t)n + 1, fmt, ap);
    va_end(ap);
    diag->lines = lines;
    diag->lines[diag->n++] = line;
}

void r2m_diag_error(struct r2m_diag_list *l, int line, int col, const char *fmt, ...)
{
    l->n_err++;
    if (l->n >= MAX_KEPT)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct r2m_diag_item *d = realloc(l->items, cap * sizeof *d);
        if (!d) {
            l->nomem = 1;
            return;
        }
        l->items = d;
        l->cap = cap;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *m = strdup(msg);
    if (!m) {
        l->nomem = 1;
        return;
    }
    l->items[l->n] = (struct r2m_diag_item){line, col, l->n, m};
    l->n++;
}

static int item_cmp(const void *a, const void *b)
{
    const struct r2m_diag_item *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void r2m_diag_list_finish(struct r2m_diag_list *l, struct r2m_diag *diag)
{
    if (l->n)
        qsort(l->items, l->n, sizeof *l->items, item_cmp);
    for (size_t i = 0; i < l->n; i++) {
        struct r2m_diag_item *it = &l->items[i];
        if (i < MAX_SHOWN) {
            if (it->line > 0)
                r2m_diag_add(diag, &l->nomem, "%s:%d:%d: error: %s", l->file, it->line, it->col,
                             it->msg);
            else
                r2m_diag_add(diag, &l->nomem, "%s: error: %s", l->file, it->msg);
        }
        free(it->msg);
    }
    if (l->n_err > MAX_SHOWN)
        r2m_diag_add(diag, &l->nomem,
                     "%s: error: %zu more errors not shown; fix the ones above first", l->file,
                     l->n_err - MAX_SHOWN);
    if (l->nomem)
        r2m_diag_add(diag, &l->nomem, "%s: error: out of memory while reading the configuration",
                     l->file);
    free(l->items);
    l->items = NULL;
    l->n = l->cap = 0;
}

struct r2m_excerpt r2m_diag_quote(const char *s)
{
    struct r2m_excerpt e;
    size_t k = 0, i = 0, lim = sizeof e.s - 6;
    e.s[k++] = '\'';
    for (; s[i] && k < lim; i++) {
        unsigned char ch = (unsigned char)s[i];
        e.s[k++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (s[i]) {
        /* do not cut a UTF-8 sequence in half */
        while (k > 1 && ((unsigned char)e.s[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 1 && ((unsigned char)e.s[k - 1] & 0xC0) == 0xC0)
            k--;
        memcpy(e.s + k, "...", 3);
        k += 3;
    }
    e.s[k++] = '\'';
    e.s[k] = '\0';
    return e;
}

/* Optimal string alignment distance, ASCII case-insensitive; SIZE_MAX for long input. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + (ai != bj);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *r2m_diag_suggest(const char *w, const char *const *words, size_t n)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(w, words[i]), kl = strlen(words[i]);
        size_t limit = kl <= 3 ? 1 : kl <= 6 ? 2 : 3;
        if (d <= limit && d < strlen(w) && d < bestd) {
            best = words[i];
            bestd = d;
        }
    }
    return best;
}
