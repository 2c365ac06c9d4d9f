/* r2m/buf.h - growable byte buffer with a required ceiling.
 *
 * Every buffer is created with a maximum size; appends that would exceed it
 * fail with R2M_E_TOO_BIG and leave the buffer unchanged. The contents are
 * always followed by a NUL byte (not counted in len) so text can be passed
 * to C string functions. A zeroed struct is not valid: call r2m_buf_init. */
#ifndef R2M_BUF_H
#define R2M_BUF_H

#include <stddef.h>

struct r2m_buf {
    char *data; /* NULL until the first append; else NUL-terminated */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* ceiling for len */
};

void r2m_buf_init(struct r2m_buf *b, size_t max);
/* Releases the memory; the buffer may be re-initialised. Accepts NULL. */
void r2m_buf_free(struct r2m_buf *b);
/* Empties the buffer but keeps its memory for reuse. */
void r2m_buf_reset(struct r2m_buf *b);
int r2m_buf_append(struct r2m_buf *b, const void *p, size_t n);
int r2m_buf_puts(struct r2m_buf *b, const char *s);
int r2m_buf_putc(struct r2m_buf *b, char c);
int r2m_buf_printf(struct r2m_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Transfers ownership of the data (malloc'd, NUL-terminated, never NULL on
 * success) to the caller and resets the buffer. */
char *r2m_buf_take(struct r2m_buf *b);

/* Makes room for need elements of elem bytes in the malloc'd array whose
 * pointer is at arrp (a T **, passed as void *), doubling *cap from 16;
 * the array and *cap are unchanged on failure (R2M_E_NOMEM). */
int r2m_grow(void *arrp, size_t *cap, size_t need, size_t elem);

#endif
