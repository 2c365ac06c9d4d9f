/* r2m/diag.h - FILE:LINE:COL diagnostics, quoted excerpts, "did you mean".
 *
 * A reader collects problems in a struct r2m_diag_list as it meets them,
 * each with its 1-based position (0, 0: about the whole file); at the end
 * r2m_diag_list_finish() sorts them into file order (reports at one
 * position keep the order they were made in) and hands at most 100 lines
 *     FILE:LINE:COL: error: WHAT. HINT
 * to the caller's struct r2m_diag, plus "N more errors not shown" and an
 * out-of-memory line when a step ran out. Bounded: at most 1000 reports are
 * kept, each at most 1023 bytes; all are counted. No I/O, no globals. */
#ifndef R2M_DIAG_H
#define R2M_DIAG_H

#include <stddef.h>

/* The finished lines handed to a caller, in file order. */
struct r2m_diag {
    char **lines; /* "file:line:col: error: ..." without trailing newline */
    size_t n;
};
void r2m_diag_free(struct r2m_diag *d); /* frees the lines, keeps d reusable; NULL ok */

/* Appends one finished line (printf format) to diag (NULL: dropped). Sets
 * *nomem when memory runs out. */
void r2m_diag_add(struct r2m_diag *diag, int *nomem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct r2m_diag_item;

/* Problems being collected. Zero-initialise, set file (borrowed, must
 * outlive the list); r2m_diag_list_finish() releases everything. */
struct r2m_diag_list {
    const char *file;
    struct r2m_diag_item *items;
    size_t n, cap;
    size_t n_err; /* all reports, also those beyond the 1000 kept */
    int nomem;    /* some step ran out of memory: the result is unusable */
};

/* Records one problem at line:col (printf format). */
void r2m_diag_error(struct r2m_diag_list *l, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sorts the reports into file order, appends them to diag (may be NULL)
 * and frees them; l can be used again afterwards. */
void r2m_diag_list_finish(struct r2m_diag_list *l, struct r2m_diag *diag);

/* A printable, shortened excerpt of user text for a message, in single
 * quotes: control characters become '?', more than ~64 bytes end in "..."
 * without cutting a UTF-8 sequence. */
struct r2m_excerpt {
    char s[72];
};
struct r2m_excerpt r2m_diag_quote(const char *s);

/* The word of words[0..n) closest to w (ASCII case-insensitive edit
 * distance with transpositions) when close enough to be a likely typo:
 * distance at most 1 for words up to 3 characters, 2 up to 6, else 3, and
 * less than w's length. NULL when none is. */
const char *r2m_diag_suggest(const char *w, const char *const *words, size_t n);

#endif
