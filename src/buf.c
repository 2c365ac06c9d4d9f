/* buf.c - growable byte buffer with a ceiling. */
#include "r2m/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/error.h"

void r2m_buf_init(struct r2m_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void r2m_buf_free(struct r2m_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void r2m_buf_reset(struct r2m_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for n more bytes plus the NUL. */
static int reserve(struct r2m_buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return R2M_E_TOO_BIG;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return R2M_E_NOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int r2m_buf_append(struct r2m_buf *b, const void *p, size_t n)
{
    int r = reserve(b, n);
    if (r)
        return r;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int r2m_buf_puts(struct r2m_buf *b, const char *s)
{
    return r2m_buf_append(b, s, strlen(s));
}

int r2m_buf_putc(struct r2m_buf *b, char c)
{
    return r2m_buf_append(b, &c, 1);
}

int r2m_buf_printf(struct r2m_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return R2M_E_INVALID;
    if ((size_t)n < sizeof small)
        return r2m_buf_append(b, small, (size_t)n);
    int r = reserve(b, (size_t)n);
    if (r)
        return r;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *r2m_buf_take(struct r2m_buf *b)
{
    char *p = b->data;
    if (!p) {
        p = malloc(1);
        if (!p)
            return NULL;
        p[0] = '\0';
    }
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

int r2m_grow(void *arrp, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    void *v;
    memcpy(&v, arrp, sizeof v);
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem)
            return R2M_E_NOMEM;
        c *= 2;
    }
    void *p = realloc(v, c * elem);
    if (!p)
        return R2M_E_NOMEM;
    memcpy(arrp, &p, sizeof p);
    *cap = c;
    return 0;
}
