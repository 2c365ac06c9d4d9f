/* expand.c - ${env:} and ${file:} references in values (see r2m/expand.h). */
#include "r2m/expand.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "r2m/error.h"

/* Where messages about the value being expanded go. */
struct at {
    struct r2m_diag_list *dl;
    int line, col;
};

#define TOO_LONG "the value is longer than %u MiB after expansion; shorten it"

int r2m_expand_read_file(const char *path, size_t max, int regular_only, struct r2m_buf *out,
                         const char **what)
{
    r2m_buf_init(out, max);
    int fd = open(path, O_RDONLY | O_CLOEXEC | (regular_only ? O_NONBLOCK | O_NOCTTY : 0));
    if (fd < 0)
        return R2M_E_IO;
    char chunk[16384];
    int rc = 0;
    struct stat st;
    if (regular_only) {
        if (fstat(fd, &st)) {
            rc = R2M_E_IO;
        } else if (!S_ISREG(st.st_mode)) {
            *what = S_ISDIR(st.st_mode)    ? "a directory"
                    : S_ISFIFO(st.st_mode) ? "a FIFO"
                    : S_ISSOCK(st.st_mode) ? "a socket"
                                           : "a device";
            rc = R2M_E_INVALID;
        } else if ((uint64_t)st.st_size > max) {
            rc = R2M_E_TOO_BIG;
        }
        if (rc)
            goto out;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = R2M_E_IO;
            break;
        }
        if (n == 0)
            break;
        rc = r2m_buf_append(out, chunk, (size_t)n);
        if (rc)
            break;
    }
out:;
    int saved = errno;
    close(fd);
    if (rc)
        r2m_buf_free(out);
    errno = saved;
    return rc;
}

static int valid_env_name(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

/* ${env:NAME}: name[0..nl) into b. 0 or R2M_E_CONFIG after reporting. */
static int expand_env(const struct at *a, const char *name, size_t nl, struct r2m_buf *b)
{
    char var[256];
    if (!valid_env_name(name, nl) || nl >= sizeof var) {
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(nl < 200 ? nl : 200), name);
        r2m_diag_error(a->dl, a->line, a->col,
                       "%s is not a valid environment variable name in ${env:...}; use letters, "
                       "digits and '_'",
                       r2m_diag_quote(tmp).s);
        return R2M_E_CONFIG;
    }
    memcpy(var, name, nl);
    var[nl] = '\0';
    const char *v = getenv(var);
    if (!v) {
        r2m_diag_error(a->dl, a->line, a->col,
                       "environment variable %s is not set; export it or remove the reference",
                       var);
        return R2M_E_CONFIG;
    }
    if (r2m_buf_puts(b, v)) {
        r2m_diag_error(a->dl, a->line, a->col, TOO_LONG, R2M_EXPAND_MAX_VALUE >> 20);
        return R2M_E_CONFIG;
    }
    return 0;
}

/* ${file:/path}: path[0..pl) into b. 0, R2M_E_CONFIG after reporting, or R2M_E_NOMEM. */
static int expand_file(const struct at *a, const char *p, size_t pl, struct r2m_buf *b)
{
    struct r2m_buf f;
    const char *what = "";
    int rc = R2M_E_CONFIG;
    r2m_buf_init(&f, 0);
    if (pl == 0) {
        r2m_diag_error(a->dl, a->line, a->col,
                       "${file:} needs a path, e.g. ${file:/run/secrets/mqtt_password}");
        return R2M_E_CONFIG;
    }
    char *path = malloc(pl + 1);
    if (!path) {
        a->dl->nomem = 1;
        return R2M_E_NOMEM;
    }
    memcpy(path, p, pl);
    path[pl] = '\0';
    int r = r2m_expand_read_file(path, R2M_EXPAND_MAX_FILE, 1, &f, &what);
    if (r == R2M_E_INVALID) {
        r2m_diag_error(a->dl, a->line, a->col,
                       "%s is %s, not a regular file; ${file:} reads regular files only",
                       r2m_diag_quote(path).s, what);
    } else if (r == R2M_E_IO) {
        r2m_diag_error(a->dl, a->line, a->col,
                       "cannot read %s for ${file:}: %s; check the path and its permissions",
                       r2m_diag_quote(path).s, strerror(errno));
    } else if (r == R2M_E_TOO_BIG) {
        r2m_diag_error(a->dl, a->line, a->col,
                       "%s is larger than 1 MiB; ${file:} is meant for small secrets",
                       r2m_diag_quote(path).s);
    } else if (r) {
        a->dl->nomem = 1;
        rc = R2M_E_NOMEM;
    } else {
        size_t len = f.len;
        /* files written by editors and `echo` end in one newline */
        if (len && f.data[len - 1] == '\n') {
            len--;
            if (len && f.data[len - 1] == '\r')
                len--;
        }
        if (len && r2m_buf_append(b, f.data, len))
            r2m_diag_error(a->dl, a->line, a->col, TOO_LONG, R2M_EXPAND_MAX_VALUE >> 20);
        else
            rc = 0;
        if (f.data)
            explicit_bzero(f.data, f.len);
    }
    r2m_buf_free(&f);
    free(path);
    return rc;
}

/* One reference ref[0..rl) (between "${" and "}") into b. */
static int expand_ref(const struct at *a, const char *ref, size_t rl, struct r2m_buf *b)
{
    if (rl >= 4 && !memcmp(ref, "env:", 4))
        return expand_env(a, ref + 4, rl - 4, b);
    if (rl >= 5 && !memcmp(ref, "file:", 5))
        return expand_file(a, ref + 5, rl - 5, b);
    const char *colon = memchr(ref, ':', rl);
    size_t shown_len = colon ? (size_t)(colon - ref) + 1 : rl;
    if (shown_len > 24)
        shown_len = 24;
    char tmp[40];
    snprintf(tmp, sizeof tmp, "${%.*s%s", (int)shown_len, ref, shown_len < rl ? "...}" : "}");
    r2m_diag_error(a->dl, a->line, a->col,
                   "unknown reference %s; use ${env:NAME} or ${file:/path}, or write '$${' for a "
                   "literal '${'",
                   r2m_diag_quote(tmp).s);
    return R2M_E_CONFIG;
}

int r2m_expand(const char *s, size_t len, struct r2m_diag_list *dl, int line, int col, char **out,
               int *secret)
{
    const struct at a = {dl, line, col};
    struct r2m_buf b;
    size_t i = 0;
    int rc = 0, ar = 0;

    *out = NULL;
    r2m_buf_init(&b, R2M_EXPAND_MAX_VALUE);
    while (i < len && !ar) {
        const char *dollar = memchr(s + i, '$', len - i);
        size_t lit = dollar ? (size_t)(dollar - (s + i)) : len - i;
        if ((ar = r2m_buf_append(&b, s + i, lit)))
            break;
        i += lit;
        if (!dollar)
            break;
        if (i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            ar = r2m_buf_puts(&b, "${");
            i += 3;
            continue;
        }
        if (i + 1 >= len || s[i + 1] != '{') {
            ar = r2m_buf_putc(&b, '$');
            i++;
            continue;
        }
        const char *ref = s + i + 2;
        const char *close = memchr(ref, '}', len - i - 2);
        if (!close) {
            r2m_diag_error(dl, line, col,
                           "unterminated '${' in the value; end the reference with '}', or "
                           "write '$${' for a literal '${'");
            rc = R2M_E_CONFIG;
            goto out;
        }
        *secret = 1;
        if ((rc = expand_ref(&a, ref, (size_t)(close - ref), &b)))
            goto out;
        i = (size_t)(close - s) + 1;
    }
    if (ar == R2M_E_TOO_BIG) {
        r2m_diag_error(dl, line, col, TOO_LONG, R2M_EXPAND_MAX_VALUE >> 20);
        rc = R2M_E_CONFIG;
        goto out;
    }
    if (ar) {
        dl->nomem = 1;
        rc = R2M_E_NOMEM;
        goto out;
    }
    if (b.data && memchr(b.data, '\0', b.len)) {
        r2m_diag_error(dl, line, col, "the value contains a NUL byte; remove it");
        rc = R2M_E_CONFIG;
        goto out;
    }
    *out = r2m_buf_take(&b);
    if (!*out) {
        dl->nomem = 1;
        rc = R2M_E_NOMEM;
    }
out:
    if (b.data && *secret)
        explicit_bzero(b.data, b.len);
    r2m_buf_free(&b);
    return rc;
}
