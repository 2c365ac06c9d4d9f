/* config.c - YAML configuration: libyaml events -> small tree -> checked r2m_config.
 *
 * Three stages. (1) libyaml's event parser feeds a tree of scalars, mappings
 * and sequences that records 1-based positions. Anchors, aliases and tags are
 * refused and nesting depth and node count are bounded, so hostile input
 * ("billion laughs", 1e6 nested brackets) costs linear time and memory.
 * (2) The tree is walked with one table of valid keys per mapping. A scalar
 * is expanded (${env:}, ${file:}) only when a known key reads it, so a
 * misspelt key yields one "unknown key" error, not an expansion error too.
 * (3) Each endpoint entry is merged with `defaults:`.
 * Diagnostics carry their position and are sorted into file order at the
 * end, because the walk visits `defaults:` before `endpoints:` whatever the
 * order in the file. */
#include "r2m/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#include <arpa/inet.h>

#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/json.h"
#include "r2m/log.h"
#include "r2m/topic.h"

#define MAX_DEPTH    32          /* the schema needs 4 levels */
#define MAX_NODES    1000000     /* ~30 nodes per endpoint: room for 10,000+ endpoints */
#define MAX_FILE     (32u << 20) /* configuration file */
#define MAX_SECRET   (1u << 20)  /* one ${file:} */
#define MAX_VALUE    (4u << 20)  /* one scalar after expansion */
#define MAX_HEADERS  100         /* per headers: mapping; keeps duplicate checks cheap */
#define MAX_KEPT     1000        /* diagnostics held in memory */
#define MAX_SHOWN    100         /* diagnostics handed to the caller */
#define NAME_MAX_LEN 64

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the tree ---------------------------------------------------------- */

enum { N_SCALAR, N_MAP, N_SEQ, N_ALIAS };

struct node {
    int type;
    int line, col;
    int plain;  /* unquoted scalar: "", "~" and "null" mean no value */
    char *text; /* scalar as written (escapes resolved), NUL-terminated */
    size_t len;
    struct node **kid; /* MAP: key, value, key, value, ...; SEQ: items */
    size_t n, cap;
    /* expansion, done once on first read and cached */
    int state;  /* 0 not yet, 1 done, 2 failed (already reported) */
    int secret; /* the value came through ${env:} or ${file:}: never echo it */
    char *val;
};

struct ditem {
    int line, col; /* 0, 0: about the whole file */
    size_t seq;    /* keeps reports about one position in the order they were made */
    char *msg;
};

struct ctx {
    const char *file;
    const char *text;
    size_t len;
    struct ditem *d;
    size_t nd, capd;
    size_t n_err; /* all errors, also those beyond MAX_KEPT */
    size_t n_nodes;
    int nomem;
};

/* ---- diagnostics ------------------------------------------------------- */

static void verr(struct ctx *c, int line, int col, const char *fmt, va_list ap)
{
    c->n_err++;
    if (c->nd >= MAX_KEPT)
        return;
    if (c->nd == c->capd) {
        size_t cap = c->capd ? c->capd * 2 : 16;
        struct ditem *d = realloc(c->d, cap * sizeof *d);
        if (!d) {
            c->nomem = 1;
            return;
        }
        c->d = d;
        c->capd = cap;
    }
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char *m = strdup(msg);
    if (!m) {
        c->nomem = 1;
        return;
    }
    c->d[c->nd] = (struct ditem){line, col, c->nd, m};
    c->nd++;
}

__attribute__((format(printf, 4, 5))) static void err_pos(struct ctx *c, int line, int col,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr(c, line, col, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void err_at(struct ctx *c, const struct node *n,
                                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr(c, n->line, n->col, fmt, ap);
    va_end(ap);
}

static int ditem_cmp(const void *a, const void *b)
{
    const struct ditem *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Appends one finished line to the caller's diag. */
__attribute__((format(printf, 3, 4))) static void diag_add(struct r2m_diag *diag, int *nomem,
                                                           const char *fmt, ...)
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

/* Sorts the collected reports into file order and hands them over. */
static void diag_flush(struct ctx *c, struct r2m_diag *diag)
{
    if (c->nd)
        qsort(c->d, c->nd, sizeof *c->d, ditem_cmp);
    for (size_t i = 0; i < c->nd; i++) {
        struct ditem *it = &c->d[i];
        if (i < MAX_SHOWN) {
            if (it->line > 0)
                diag_add(diag, &c->nomem, "%s:%d:%d: error: %s", c->file, it->line, it->col,
                         it->msg);
            else
                diag_add(diag, &c->nomem, "%s: error: %s", c->file, it->msg);
        }
        free(it->msg);
    }
    if (c->n_err > MAX_SHOWN)
        diag_add(diag, &c->nomem, "%s: error: %zu more errors not shown; fix the ones above first",
                 c->file, c->n_err - MAX_SHOWN);
    if (c->nomem)
        diag_add(diag, &c->nomem, "%s: error: out of memory while reading the configuration",
                 c->file);
    free(c->d);
    c->d = NULL;
    c->nd = c->capd = 0;
}

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

/* A printable, shortened excerpt of user text for a message, quoted. */
struct excerpt {
    char s[72];
};

static struct excerpt quote(const char *s)
{
    struct excerpt e;
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

/* The value of n for "got ..." in a message; values that came from the
 * environment or a file may be secrets and are never shown. */
static struct excerpt shown(const struct node *n, const char *s)
{
    if (n->secret) {
        struct excerpt e;
        snprintf(e.s, sizeof e.s, "a value from ${env:} or ${file:} (not shown)");
        return e;
    }
    return quote(s);
}

/* URLs can carry credentials in the user part or the query: show the scheme only. */
static struct excerpt shown_url(const struct node *n, const char *s)
{
    const char *sep = strstr(s, "://");
    if (!n->secret && !sep && strchr(s, '@')) {
        struct excerpt e;
        snprintf(e.s, sizeof e.s, "a value that may hold credentials (not shown)");
        return e;
    }
    if (n->secret)
        return shown(n, s);
    if (!sep || sep[3] == '\0')
        return quote(s);
    char tmp[32];
    size_t k = (size_t)(sep - s) + 3;
    if (k > 20)
        return quote(s);
    memcpy(tmp, s, k);
    memcpy(tmp + k, "...", 4);
    struct excerpt e = quote(tmp);
    return e;
}

static const char *kind(const struct node *n)
{
    switch (n->type) {
    case N_MAP:
        return "a mapping";
    case N_SEQ:
        return "a list";
    default:
        return "a single value";
    }
}

/* ---- files -------------------------------------------------------------- */

/* Reads a whole file of at most max bytes into out (initialised here).
 * With regular_only the open never blocks (a FIFO without writer would
 * hang `check` and a reload for ever) and anything but a regular file is
 * R2M_E_INVALID, *what naming it. 0, R2M_E_IO (errno kept), R2M_E_TOO_BIG,
 * R2M_E_INVALID or R2M_E_NOMEM. */
static int read_all(const char *path, size_t max, int regular_only, struct r2m_buf *out,
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
        if (rc) {
            int saved = errno;
            close(fd);
            errno = saved;
            return rc;
        }
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
    int saved = errno;
    close(fd);
    if (rc)
        r2m_buf_free(out);
    errno = saved;
    return rc;
}

/* ---- stage 1: events -> tree ------------------------------------------- */

static void node_free(struct node *n)
{
    if (!n)
        return;
    /* recursion is bounded by MAX_DEPTH */
    for (size_t i = 0; i < n->n; i++)
        node_free(n->kid[i]);
    free(n->kid);
    free(n->text);
    if (n->val && n->secret)
        explicit_bzero(n->val, strlen(n->val));
    free(n->val);
    free(n);
}

static int node_add(struct node *parent, struct node *n)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        struct node **k = realloc(parent->kid, cap * sizeof *k);
        if (!k)
            return R2M_E_NOMEM;
        parent->kid = k;
        parent->cap = cap;
    }
    parent->kid[parent->n++] = n;
    return 0;
}

/* Line and column (1-based, in characters) of a byte offset of the input. */
static void offset_pos(const struct ctx *c, size_t off, int *line, int *col)
{
    int l = 1, k = 1;
    if (off > c->len)
        off = c->len;
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)c->text[i];
        if (ch == '\n') {
            l++;
            k = 1;
        } else if ((ch & 0xC0) != 0x80) {
            k++;
        }
    }
    *line = l;
    *col = k;
}

static void syntax_error(struct ctx *c, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) {
        c->nomem = 1;
        return;
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_READER_ERROR) {
        int line, col;
        offset_pos(c, p->problem_offset, &line, &col);
        if (p->problem_value >= 0)
            err_pos(c, line, col,
                    "%s (byte 0x%02x); save the file as UTF-8 text without control characters",
                    problem, (unsigned)p->problem_value & 0xffu);
        else
            err_pos(c, line, col, "%s; save the file as UTF-8 text without control characters",
                    problem);
        return;
    }
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    if (p->context)
        err_pos(c, line, col,
                "%s %s started at line %d, column %d; check the indentation, the ':' after "
                "each key and the quotes",
                problem, p->context, (int)p->context_mark.line + 1,
                (int)p->context_mark.column + 1);
    else
        err_pos(c, line, col, "%s; check the indentation, the ':' after each key and the quotes",
                problem);
}

static const char anchor_hint[] =
    "YAML anchors and aliases are not supported; repeat the value or use defaults:";

/* Reports anchors and tags on a node event; the node itself stays usable. */
static void refuse_decorations(struct ctx *c, const yaml_event_t *ev, const yaml_char_t *anchor,
                               const yaml_char_t *tag)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    if (anchor)
        err_pos(c, line, col, "%s (anchor &%s)", anchor_hint, quote((const char *)anchor).s);
    if (tag)
        err_pos(c, line, col,
                "YAML tags are not supported (%s); remove the tag, and quote the value if it "
                "must stay text",
                quote((const char *)tag).s);
}

/* Builds the tree of the (single) document. Returns 0 when the tree is
 * complete enough to be checked; anchors and aliases are reported but keep
 * the tree usable (an alias becomes an N_ALIAS placeholder the checks skip). */
static int build_tree(struct ctx *c, struct node **root_out)
{
    yaml_parser_t p;
    yaml_event_t ev;
    struct node *stack[MAX_DEPTH];
    size_t depth = 0;
    struct node *root = NULL;
    int docs = 0, done = 0, rc = 0;

    *root_out = NULL;
    if (!yaml_parser_initialize(&p)) {
        c->nomem = 1;
        return R2M_E_NOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)c->text, c->len);
    while (!done) {
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(c, &p);
            rc = R2M_E_CONFIG;
            break;
        }
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        struct node *n = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (docs++) {
                /* the first document is complete: still check it */
                err_pos(c, line, col,
                        "only one YAML document is allowed; remove this '---' and what "
                        "follows, or merge it into the first document");
                done = 1;
            }
            break;
        case YAML_ALIAS_EVENT:
            err_pos(c, line, col, "%s (alias *%s)", anchor_hint,
                    quote((const char *)ev.data.alias.anchor).s);
            n = calloc(1, sizeof *n);
            if (n)
                n->type = N_ALIAS;
            break;
        case YAML_SCALAR_EVENT:
            refuse_decorations(c, &ev, ev.data.scalar.anchor, ev.data.scalar.tag);
            n = calloc(1, sizeof *n);
            if (!n)
                break;
            n->type = N_SCALAR;
            n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            n->len = ev.data.scalar.length;
            n->text = malloc(n->len + 1);
            if (!n->text) {
                free(n);
                n = NULL;
                break;
            }
            memcpy(n->text, ev.data.scalar.value, n->len);
            n->text[n->len] = '\0';
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (ev.type == YAML_SEQUENCE_START_EVENT)
                refuse_decorations(c, &ev, ev.data.sequence_start.anchor,
                                   ev.data.sequence_start.tag);
            else
                refuse_decorations(c, &ev, ev.data.mapping_start.anchor, ev.data.mapping_start.tag);
            if (depth == MAX_DEPTH) {
                err_pos(c, line, col,
                        "nesting deeper than %d levels; a rest2mqtt configuration needs only a "
                        "few, so check the structure",
                        MAX_DEPTH);
                rc = R2M_E_CONFIG;
                done = 1;
                break;
            }
            n = calloc(1, sizeof *n);
            if (n)
                n->type = ev.type == YAML_SEQUENCE_START_EVENT ? N_SEQ : N_MAP;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth)
                depth--;
            break;
        default:
            break;
        }
        if (n) {
            n->line = line;
            n->col = col;
            if (++c->n_nodes > MAX_NODES) {
                err_pos(c, line, col,
                        "more than %d YAML values; split the configuration or remove unused "
                        "parts",
                        MAX_NODES);
                node_free(n);
                rc = R2M_E_CONFIG;
                done = 1;
            } else if (depth == 0) {
                /* one document, so one root */
                node_free(root);
                root = n;
            } else if (node_add(stack[depth - 1], n)) {
                node_free(n);
                c->nomem = 1;
                rc = R2M_E_NOMEM;
                done = 1;
            }
            if (!rc && (n->type == N_SEQ || n->type == N_MAP))
                stack[depth++] = n;
        } else if (!done &&
                   (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_ALIAS_EVENT ||
                    ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)) {
            c->nomem = 1;
            rc = R2M_E_NOMEM;
            done = 1;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc) {
        node_free(root);
        return rc;
    }
    *root_out = root;
    return 0;
}

/* ---- stage 2: reading values ------------------------------------------- */

static char *dup_str(struct ctx *c, const char *s)
{
    char *d = strdup(s);
    if (!d)
        c->nomem = 1;
    return d;
}

static void set_str(struct ctx *c, char **field, const char *s)
{
    char *d = dup_str(c, s);
    if (!d)
        return;
    free(*field);
    *field = d;
}

static int is_null(const struct node *n)
{
    return n->type == N_SCALAR && n->plain &&
           (n->len == 0 || !strcmp(n->text, "~") || !strcmp(n->text, "null") ||
            !strcmp(n->text, "Null") || !strcmp(n->text, "NULL"));
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

/* Expands one ${env:NAME} or ${file:/path} reference (ref[0..rl)) into b.
 * 0, or -1 after reporting. */
static int expand_ref(struct ctx *c, struct node *n, const char *ref, size_t rl, struct r2m_buf *b)
{
    char name[256];
    if (rl >= 4 && !memcmp(ref, "env:", 4)) {
        if (!valid_env_name(ref + 4, rl - 4) || rl - 4 >= sizeof name) {
            char tmp[300];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(rl - 4 < 200 ? rl - 4 : 200), ref + 4);
            err_at(c, n,
                   "%s is not a valid environment variable name in ${env:...}; use letters, "
                   "digits and '_'",
                   quote(tmp).s);
            return -1;
        }
        memcpy(name, ref + 4, rl - 4);
        name[rl - 4] = '\0';
        const char *v = getenv(name);
        if (!v) {
            err_at(c, n, "environment variable %s is not set; export it or remove the reference",
                   name);
            return -1;
        }
        if (r2m_buf_puts(b, v)) {
            err_at(c, n, "the value is longer than %u MiB after expansion; shorten it",
                   MAX_VALUE >> 20);
            return -1;
        }
        return 0;
    }
    if (rl >= 5 && !memcmp(ref, "file:", 5)) {
        if (rl == 5) {
            err_at(c, n, "${file:} needs a path, e.g. ${file:/run/secrets/mqtt_password}");
            return -1;
        }
        char *path = malloc(rl - 5 + 1);
        if (!path) {
            c->nomem = 1;
            return -1;
        }
        memcpy(path, ref + 5, rl - 5);
        path[rl - 5] = '\0';
        struct r2m_buf f;
        const char *what = "";
        int r = read_all(path, MAX_SECRET, 1, &f, &what);
        int rc = -1;
        if (r == R2M_E_INVALID) {
            err_at(c, n, "%s is %s, not a regular file; ${file:} reads regular files only",
                   quote(path).s, what);
        } else if (r == R2M_E_IO) {
            err_at(c, n, "cannot read %s for ${file:}: %s; check the path and its permissions",
                   quote(path).s, strerror(errno));
        } else if (r == R2M_E_TOO_BIG) {
            err_at(c, n, "%s is larger than 1 MiB; ${file:} is meant for small secrets",
                   quote(path).s);
        } else if (r) {
            c->nomem = 1;
        } else {
            size_t len = f.len;
            /* files written by editors and `echo` end in one newline */
            if (len && f.data[len - 1] == '\n') {
                len--;
                if (len && f.data[len - 1] == '\r')
                    len--;
            }
            if (len && r2m_buf_append(b, f.data, len))
                err_at(c, n, "the value is longer than %u MiB after expansion; shorten it",
                       MAX_VALUE >> 20);
            else
                rc = 0;
            if (f.data)
                explicit_bzero(f.data, f.len);
        }
        r2m_buf_free(&f);
        free(path);
        return rc;
    }
    const char *colon = memchr(ref, ':', rl);
    size_t shown_len = colon ? (size_t)(colon - ref) + 1 : rl;
    if (shown_len > 24)
        shown_len = 24;
    char tmp[40];
    snprintf(tmp, sizeof tmp, "${%.*s%s", (int)shown_len, ref, shown_len < rl ? "...}" : "}");
    err_at(c, n,
           "unknown reference %s; use ${env:NAME} or ${file:/path}, or write '$${' for a "
           "literal '${'",
           quote(tmp).s);
    return -1;
}

/* Expands n's text into n->val once. 0, or -1 (reported, also on later calls). */
static int expand(struct ctx *c, struct node *n)
{
    if (n->state)
        return n->state == 1 ? 0 : -1;
    struct r2m_buf b;
    r2m_buf_init(&b, MAX_VALUE);
    const char *s = n->text;
    size_t len = n->len, i = 0;
    int rc = -1, ar = 0;
    while (i < len) {
        const char *dollar = memchr(s + i, '$', len - i);
        size_t lit = dollar ? (size_t)(dollar - (s + i)) : len - i;
        if ((ar = r2m_buf_append(&b, s + i, lit)))
            goto append_failed;
        i += lit;
        if (!dollar)
            break;
        if (i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            if ((ar = r2m_buf_puts(&b, "${")))
                goto append_failed;
            i += 3;
            continue;
        }
        if (i + 1 >= len || s[i + 1] != '{') {
            if ((ar = r2m_buf_putc(&b, '$')))
                goto append_failed;
            i++;
            continue;
        }
        const char *ref = s + i + 2;
        const char *close = memchr(ref, '}', len - i - 2);
        if (!close) {
            err_at(c, n,
                   "unterminated '${' in the value; end the reference with '}', or write '$${' "
                   "for a literal '${'");
            goto out;
        }
        n->secret = 1;
        if (expand_ref(c, n, ref, (size_t)(close - ref), &b))
            goto out;
        i = (size_t)(close - s) + 1;
    }
    if (b.data && memchr(b.data, '\0', b.len)) {
        err_at(c, n, "the value contains a NUL byte; remove it");
        goto out;
    }
    n->val = r2m_buf_take(&b);
    if (!n->val) {
        c->nomem = 1;
        goto out;
    }
    rc = 0;
    goto out;
append_failed:
    if (ar == R2M_E_TOO_BIG)
        err_at(c, n, "the value is longer than %u MiB after expansion; shorten it",
               MAX_VALUE >> 20);
    else
        c->nomem = 1;
out:
    if (b.data && n->secret)
        explicit_bzero(b.data, b.len);
    r2m_buf_free(&b);
    n->state = rc ? 2 : 1;
    return rc;
}

/* The expanded text of the scalar v (read for `key`), or NULL after reporting why not.
 * `expect` completes "expected ..." in messages. */
static const char *get_scalar(struct ctx *c, struct node *v, const char *key, const char *expect)
{
    if (v->type == N_ALIAS)
        return NULL;
    if (v->type != N_SCALAR) {
        err_at(c, v, "%s: expected %s, got %s", key, expect, kind(v));
        return NULL;
    }
    if (is_null(v)) {
        err_at(c, v, "%s: expected %s, got nothing; give a value or remove the key", key, expect);
        return NULL;
    }
    if (expand(c, v))
        return NULL;
    return v->val;
}

static int get_string(struct ctx *c, struct node *v, const char *key, int nonempty, char **out)
{
    const char *s = get_scalar(c, v, key, "a text value");
    if (!s)
        return -1;
    if (nonempty && !*s) {
        err_at(c, v, "%s: must not be empty; give a value or remove the key", key);
        return -1;
    }
    set_str(c, out, s);
    return c->nomem ? -1 : 0;
}

static int get_bool(struct ctx *c, struct node *v, const char *key, int *out)
{
    const char *s = get_scalar(c, v, key, "true or false");
    if (!s)
        return -1;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = 0;
    else {
        err_at(c, v, "%s: expected true or false, got %s", key, shown(v, s).s);
        return -1;
    }
    return 0;
}

/* Digits only: no sign, no spaces, no trailing junk. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return R2M_E_INVALID;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return R2M_E_INVALID;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return R2M_E_INVALID;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int get_uint(struct ctx *c, struct node *v, const char *key, const char *expect,
                    uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = get_scalar(c, v, key, expect);
    if (!s)
        return -1;
    uint64_t u;
    if (parse_u64(s, &u) || u < min || u > max) {
        err_at(c, v, "%s: expected %s, got %s", key, expect, shown(v, s).s);
        return -1;
    }
    *out = u;
    return 0;
}

static const char duration_expect[] = "a duration like 30s or 250ms";

static int get_duration(struct ctx *c, struct node *v, const char *key, int64_t min, int64_t *out)
{
    const char *s = get_scalar(c, v, key, duration_expect);
    if (!s)
        return -1;
    int64_t ms;
    if (r2m_parse_duration(s, &ms)) {
        err_at(c, v, "%s: expected %s (units ms, s, m, h, d; combined like 1m30s), got %s", key,
               duration_expect, shown(v, s).s);
        return -1;
    }
    if (ms > R2M_DURATION_MAX_MS) {
        err_at(c, v, "%s: must be at most 365d, got %s", key, shown(v, s).s);
        return -1;
    }
    if (ms < min) {
        if (min == 1)
            err_at(c, v, "%s: must be longer than 0, got %s", key, shown(v, s).s);
        else
            err_at(c, v, "%s: must be at least %lldms, got %s", key, (long long)min, shown(v, s).s);
        return -1;
    }
    *out = ms;
    return 0;
}

/* ---- durations and sizes ------------------------------------------------ */

int r2m_parse_duration(const char *s, int64_t *ms)
{
    /* largest unit first; each unit at most once, so "1m30s" but not "30s1m" */
    static const struct {
        const char *unit;
        int64_t mul;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    if (!s || !*s)
        return R2M_E_INVALID;
    int64_t total = 0;
    int last = -1;
    while (*s) {
        if (*s < '0' || *s > '9')
            return R2M_E_INVALID;
        int64_t v = 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            int d = *s - '0';
            if (v > (INT64_MAX - d) / 10)
                return R2M_E_INVALID;
            v = v * 10 + d;
        }
        int u;
        if (s[0] == 'm' && s[1] == 's')
            u = 4;
        else if (*s == 'd')
            u = 0;
        else if (*s == 'h')
            u = 1;
        else if (*s == 'm')
            u = 2;
        else if (*s == 's')
            u = 3;
        else
            return R2M_E_INVALID;
        if (u <= last)
            return R2M_E_INVALID;
        last = u;
        s += strlen(units[u].unit);
        if (v > INT64_MAX / units[u].mul)
            return R2M_E_INVALID;
        v *= units[u].mul;
        if (total > INT64_MAX - v)
            return R2M_E_INVALID;
        total += v;
    }
    *ms = total;
    return 0;
}

int r2m_parse_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {
        {"", 1},
        {"B", 1},
        {"KB", 1000ull},
        {"MB", 1000000ull},
        {"GB", 1000000000ull},
        {"TB", 1000000000000ull},
        {"KiB", 1ull << 10},
        {"MiB", 1ull << 20},
        {"GiB", 1ull << 30},
        {"TiB", 1ull << 40},
    };
    if (!s || *s < '0' || *s > '9')
        return R2M_E_INVALID;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return R2M_E_INVALID;
        v = v * 10 + d;
    }
    for (size_t i = 0; i < ARRAY_LEN(units); i++) {
        if (strcmp(s, units[i].unit))
            continue;
        if (v > UINT64_MAX / units[i].mul)
            return R2M_E_INVALID;
        *bytes = v * units[i].mul;
        return 0;
    }
    return R2M_E_INVALID;
}

/* "10%" or "2.5%" -> percent; -1 when not of that form. */
static double parse_percent(const char *s)
{
    double v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (*s - '0');
        if (v > 1e6)
            return -1;
    }
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return -1;
        double scale = 1;
        long frac = 0;
        for (int k = 0; *s >= '0' && *s <= '9'; s++, k++)
            if (k < 9) {
                frac = frac * 10 + (*s - '0');
                scale *= 10;
            }
        v += (double)frac / scale;
    }
    if (s[0] != '%' || s[1] != '\0')
        return -1;
    return v;
}

/* ---- keys --------------------------------------------------------------- */

struct slot {
    struct node *key, *val;
};

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

/* The valid key closest to k, when close enough to be a likely typo. */
static const char *suggest(const char *k, const char *const *keys, size_t nk)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    for (size_t i = 0; i < nk; i++) {
        size_t d = edit_distance(k, keys[i]), kl = strlen(keys[i]);
        size_t limit = kl <= 3 ? 1 : kl <= 6 ? 2 : 3;
        if (d <= limit && d < strlen(k) && d < bestd) {
            best = keys[i];
            bestd = d;
        }
    }
    return best;
}

static const char *const top_keys[] = {
    "instance",         "mqtt",    "state",          "defaults",    "endpoints", "log",
    "shutdown_timeout", "metrics", "max_concurrent", "max_per_host"};
enum {
    T_INSTANCE,
    T_MQTT,
    T_STATE,
    T_DEFAULTS,
    T_ENDPOINTS,
    T_LOG,
    T_SHUTDOWN,
    T_METRICS,
    T_MAX_CONCURRENT,
    T_MAX_PER_HOST,
    T__N
};
static const char *const mqtt_keys[] = {
    "url",       "client_id",    "username",     "password", "version",        "qos",
    "keepalive", "topic_prefix", "status_topic", "tls",      "max_packet_size"};
enum {
    M_URL,
    M_CLIENT_ID,
    M_USERNAME,
    M_PASSWORD,
    M_VERSION,
    M_QOS,
    M_KEEPALIVE,
    M_PREFIX,
    M_STATUS,
    M_TLS,
    M_MAX_PACKET,
    M__N
};
static const char *const tls_keys[] = {"ca_file", "cert_file", "key_file", "insecure"};
enum { L_CA, L_CERT, L_KEY, L_INSECURE, L__N };
static const char *const state_keys[] = {"path", "outbox_max", "sync"};
static const char *const log_keys[] = {"level", "format"};
static const char *const endpoint_keys[] = {
    "name",         "url",      "method",        "body",      "headers",     "interval",
    "timeout",      "jitter",   "max_body",      "max_depth", "ignore",      "topic",
    "items",        "key",      "payload",       "initial",   "state_topic", "auth",
    "content_type", "tls",      "accept_status", "error_if",  "max_backoff", "paginate",
    "max_pages",    "redirects"};
enum {
    E_NAME,
    E_URL,
    E_METHOD,
    E_BODY,
    E_HEADERS,
    E_INTERVAL,
    E_TIMEOUT,
    E_JITTER,
    E_MAX_BODY,
    E_MAX_DEPTH,
    E_IGNORE,
    E_TOPIC,
    E_ITEMS,
    E_KEY,
    E_PAYLOAD,
    E_INITIAL,
    E_STATE_TOPIC,
    E_AUTH,
    E_CONTENT_TYPE,
    E_TLS,
    E_ACCEPT,
    E_ERROR_IF,
    E_MAX_BACKOFF,
    E_PAGINATE,
    E_MAX_PAGES,
    E_REDIRECTS,
    E__N
};

/* Keys DESIGN.md describes that a version does not implement yet get a
 * specific message instead of "unknown key" (collect()'s `later` list);
 * every key of DESIGN.md section 3 is implemented now, so the lists are
 * empty. */

static int in_table(const char *k, const char *const *keys, size_t nk)
{
    for (size_t i = 0; i < nk; i++)
        if (!strcmp(k, keys[i]))
            return 1;
    return 0;
}

/* For a key written at the top level that belongs to a section: where it goes,
 * e.g. "defaults: or an endpoint entry". NULL when it belongs nowhere. */
static const char *placement(const char *k, char *out, size_t outlen)
{
    static const struct {
        const char *section;
        const char *const *keys;
        size_t nk;
    } sections[] = {
        {"mqtt:", mqtt_keys, ARRAY_LEN(mqtt_keys)},
        {"mqtt.tls:", tls_keys, ARRAY_LEN(tls_keys)},
        {"state:", state_keys, ARRAY_LEN(state_keys)},
        {"log:", log_keys, ARRAY_LEN(log_keys)},
        {"defaults: or an endpoint entry", endpoint_keys, ARRAY_LEN(endpoint_keys)},
    };
    size_t off = 0, found = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ARRAY_LEN(sections); i++) {
        if (!in_table(k, sections[i].keys, sections[i].nk))
            continue;
        if (off < outlen)
            off += (size_t)snprintf(out + off, outlen - off, "%s%s", found ? " or " : "",
                                    sections[i].section);
        found++;
    }
    return found ? out : NULL;
}

/* Sorts the pairs of mapping `map` into slots by the table `keys`; reports
 * unknown, not-yet-supported and duplicate keys. `where` completes
 * "unknown key 'x' ...", e.g. "in endpoint 'shipments'". */
static void collect(struct ctx *c, struct node *map, const char *const *keys, size_t nk,
                    struct slot *slots, const char *where, const char *const *later, size_t nl)
{
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        struct node *k = map->kid[i], *v = map->kid[i + 1];
        if (k->type == N_ALIAS)
            continue;
        if (k->type != N_SCALAR) {
            err_at(c, k,
                   "keys must be plain words like 'url', got %s as a key %s; check the "
                   "indentation",
                   kind(k), where);
            continue;
        }
        size_t j = 0;
        while (j < nk && (strlen(k->text) != k->len || strcmp(k->text, keys[j])))
            j++;
        if (j < nk) {
            if (slots[j].key)
                err_at(c, k, "duplicate key '%s' %s (first at line %d); remove one of them",
                       keys[j], where, slots[j].key->line);
            else
                slots[j] = (struct slot){k, v};
            continue;
        }
        size_t l = 0;
        while (l < nl && strcmp(k->text, later[l]))
            l++;
        if (l < nl) {
            err_at(c, k,
                   "'%s' is not supported by this version of rest2mqtt yet; remove it, or "
                   "upgrade to a version that documents it",
                   later[l]);
            continue;
        }
        const char *s = suggest(k->text, keys, nk);
        char place[128];
        if (keys == top_keys && placement(k->text, place, sizeof place)) {
            err_at(c, k, "unknown key %s at the top level; it belongs under %s", quote(k->text).s,
                   place);
        } else if (s) {
            err_at(c, k, "unknown key %s %s; did you mean '%s'?", quote(k->text).s, where, s);
        } else {
            char list[512];
            size_t off = 0;
            for (size_t m = 0; m < nk && off < sizeof list; m++)
                off +=
                    (size_t)snprintf(list + off, sizeof list - off, "%s%s", m ? ", " : "", keys[m]);
            err_at(c, k, "unknown key %s %s; valid keys here are: %s", quote(k->text).s, where,
                   list);
        }
    }
}

/* Accepts a mapping (or nothing, treated as an empty one). 1 to read it, 0 to skip. */
static int want_map(struct ctx *c, struct node *v, const char *key)
{
    if (v->type == N_MAP)
        return 1;
    if (v->type == N_ALIAS || is_null(v))
        return 0;
    err_at(c, v, "%s: expected a mapping (indented 'key: value' lines), got %s", key, kind(v));
    return 0;
}

/* ---- endpoints ---------------------------------------------------------- */

/* What one endpoint entry (or defaults:) says; merged later. */
struct ep_part {
    struct node *map;
    struct node *name_node, *body_node, *method_node, *topic_node, *key_node;
    char *name, *url, *method, *body, *topic, *items, *state_topic;
    char **key;
    size_t n_key;
    int payload, initial_emit;
    struct r2m_auth auth;
    char *content_type;
    char *tls_ca, *tls_cert, *tls_key;
    int tls_insecure;
    int *accept;
    size_t n_accept;
    char *err_ptr, *err_equals;
    int64_t max_backoff_ms;
    int page_kind;
    char *page_ptr, *page_param;
    int64_t page_start;
    unsigned max_pages;
    int redirects;
    struct r2m_header *headers;
    size_t n_headers;
    char **ignore;
    size_t n_ignore;
    int64_t interval_ms, timeout_ms;
    double jitter;
    uint64_t max_body;
    unsigned max_depth;
    unsigned set;     /* 1 << E_*: given and valid */
    unsigned present; /* 1 << E_*: key given, valid or not */
};

static void headers_free(struct r2m_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        if (h[i].value)
            explicit_bzero(h[i].value, strlen(h[i].value));
        free(h[i].value);
    }
    free(h);
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void secret_free(char *v)
{
    if (v)
        explicit_bzero(v, strlen(v));
    free(v);
}

static void auth_free(struct r2m_auth *a)
{
    free(a->username);
    secret_free(a->password);
    secret_free(a->token);
    free(a->name);
    secret_free(a->value);
    free(a->token_url);
    free(a->client_id);
    secret_free(a->client_secret);
    free(a->scope);
    memset(a, 0, sizeof *a);
}

static void part_free(struct ep_part *p)
{
    free(p->name);
    free(p->url);
    free(p->method);
    free(p->body);
    free(p->topic);
    free(p->items);
    free(p->state_topic);
    headers_free(p->headers, p->n_headers);
    strv_free(p->ignore, p->n_ignore);
    strv_free(p->key, p->n_key);
    auth_free(&p->auth);
    free(p->content_type);
    free(p->tls_ca);
    free(p->tls_cert);
    free(p->tls_key);
    free(p->accept);
    free(p->err_ptr);
    free(p->err_equals);
    free(p->page_ptr);
    free(p->page_param);
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* RFC 9110 token characters. */
static int valid_header_name(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch))))
            return 0;
    }
    return 1;
}

/* Values that become part of a request (URLs, header names and values,
 * credentials) must not hold CR or LF: a line break would end the header
 * or request line and start one the server takes for another header. NUL
 * is refused for every value by expand(). 0, or -1 after reporting. */
static int one_line(struct ctx *c, const struct node *n, const char *key, const char *s)
{
    if (!strpbrk(s, "\r\n"))
        return 0;
    err_at(c, n,
           "%s: the value contains a line break (CR or LF), which would reach the request; put "
           "it on one line%s",
           key,
           n->secret ? " (one line break at the end of a ${file:} file is dropped; more are not)"
                     : "");
    return -1;
}

static void read_headers(struct ctx *c, struct ep_part *p, struct node *v)
{
    if (!want_map(c, v, "headers"))
        return;
    size_t n = v->n / 2;
    if (n > MAX_HEADERS) {
        err_at(c, v, "headers: more than %d headers; keep only the ones the API needs",
               MAX_HEADERS);
        return;
    }
    p->headers = calloc(n ? n : 1, sizeof *p->headers);
    if (!p->headers) {
        c->nomem = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct node *k = v->kid[2 * i], *val = v->kid[2 * i + 1];
        if (k->type == N_ALIAS)
            continue;
        if (k->type != N_SCALAR || !valid_header_name(k->text, k->len)) {
            err_at(c, k,
                   "headers: %s is not a valid header name; use letters, digits and '-' like "
                   "X-Api-Key",
                   k->type == N_SCALAR ? quote(k->text).s : kind(k));
            continue;
        }
        size_t first = 0;
        while (first < i && (v->kid[2 * first]->type != N_SCALAR ||
                             strcasecmp(v->kid[2 * first]->text, k->text)))
            first++;
        if (first < i) {
            err_at(c, k,
                   "headers: duplicate header %s (first at line %d; names are "
                   "case-insensitive); remove one of them",
                   quote(k->text).s, v->kid[2 * first]->line);
            continue;
        }
        char what[96];
        snprintf(what, sizeof what, "header %s", quote(k->text).s);
        const char *s = get_scalar(c, val, what, "a text value");
        if (!s)
            continue;
        if (one_line(c, val, what, s))
            continue;
        struct r2m_header *h = &p->headers[p->n_headers++];
        h->name = dup_str(c, k->text);
        h->value = dup_str(c, s);
        if (c->nomem)
            return;
    }
}

static void read_ignore(struct ctx *c, struct ep_part *p, struct node *v)
{
    struct node *one[1] = {v};
    struct node **items = one;
    size_t n = 1;
    if (v->type == N_ALIAS || is_null(v))
        return;
    if (v->type == N_SEQ) {
        items = v->kid;
        n = v->n;
    } else if (v->type != N_SCALAR) {
        err_at(c, v, "ignore: expected a list of JSON Pointers like [/updatedAt, /meta/*], got %s",
               kind(v));
        return;
    }
    p->ignore = calloc(n ? n : 1, sizeof *p->ignore);
    if (!p->ignore) {
        c->nomem = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = get_scalar(c, items[i], "ignore", "a JSON Pointer like /updatedAt");
        if (!s)
            continue;
        char err[256] = "";
        if (r2m_json_pointer_check(s, err, sizeof err)) {
            err_at(c, items[i],
                   "ignore: %s is not a valid JSON Pointer pattern (%s); write "
                   "pointers like /updatedAt or /meta/*",
                   shown(items[i], s).s, err);
            continue;
        }
        char *d = dup_str(c, s);
        if (d)
            p->ignore[p->n_ignore++] = d;
    }
}

/* The raw text of the first `name:` value in an entry, to name it in messages. */
static const char *const auth_keys[] = {"type",          "username", "password",  "token",
                                        "name",          "value",    "token_url", "client_id",
                                        "client_secret", "scope"};
enum { A_TYPE, A_USER, A_PASS, A_TOKEN, A_NAME, A_VALUE, A_URL, A_ID, A_SECRET, A_SCOPE, A__N };

/* auth: { type: basic|bearer|header|query|oauth2, ... } with exactly the
 * fields its type needs. */
static int read_auth(struct ctx *c, struct ep_part *p, struct node *v, const char *where)
{
    struct slot s[A__N] = {{0}};
    if (!want_map(c, v, "auth"))
        return -1;
    char w[160];
    snprintf(w, sizeof w, "in auth %s", where);
    collect(c, v, auth_keys, A__N, s, w, NULL, 0);
    if (!s[A_TYPE].val) {
        err_at(c, v, "auth: needs type: basic, bearer, header, query or oauth2");
        return -1;
    }
    const char *t =
        get_scalar(c, s[A_TYPE].val, "auth.type", "basic, bearer, header, query or oauth2");
    if (!t)
        return -1;
    static const struct {
        const char *name;
        int type;
        unsigned need; /* fields required, as 1 << A_* */
    } types[] = {
        {"basic", R2M_AUTH_BASIC, 1u << A_USER | 1u << A_PASS},
        {"bearer", R2M_AUTH_BEARER, 1u << A_TOKEN},
        {"header", R2M_AUTH_HEADER, 1u << A_NAME | 1u << A_VALUE},
        {"query", R2M_AUTH_QUERY, 1u << A_NAME | 1u << A_VALUE},
        {"oauth2", R2M_AUTH_OAUTH2, 1u << A_URL | 1u << A_ID | 1u << A_SECRET},
    };
    size_t k = 0;
    while (k < ARRAY_LEN(types) && strcmp(types[k].name, t))
        k++;
    if (k == ARRAY_LEN(types)) {
        err_at(c, s[A_TYPE].val,
               "auth.type: expected basic, bearer, header, query or oauth2, got %s",
               shown(s[A_TYPE].val, t).s);
        return -1;
    }
    unsigned allowed = types[k].need | (types[k].type == R2M_AUTH_OAUTH2 ? 1u << A_SCOPE : 0);
    int bad = 0;
    for (int f = A_USER; f < A__N; f++) {
        if (s[f].key && !(allowed & (1u << f))) {
            err_at(c, s[f].key, "auth: '%s' does not apply to type %s; remove it", auth_keys[f], t);
            bad = 1;
        } else if (!s[f].key && (types[k].need & (1u << f))) {
            err_at(c, v, "auth: type %s needs '%s'", t, auth_keys[f]);
            bad = 1;
        }
    }
    if (bad)
        return -1;
    struct r2m_auth *a = &p->auth;
    a->type = types[k].type;
    char **fields[A__N] = {NULL,      &a->username,  &a->password,  &a->token,         &a->name,
                           &a->value, &a->token_url, &a->client_id, &a->client_secret, &a->scope};
    for (int f = A_USER; f < A__N; f++) {
        char key[32];
        snprintf(key, sizeof key, "auth.%s", auth_keys[f]);
        if (s[f].val &&
            (get_string(c, s[f].val, key, 1, fields[f]) || one_line(c, s[f].val, key, *fields[f])))
            bad = 1;
    }
    if (!bad && a->type == R2M_AUTH_HEADER && !valid_header_name(a->name, strlen(a->name))) {
        err_at(c, s[A_NAME].val, "auth.name: %s is not a valid header name; e.g. X-Api-Key",
               quote(a->name).s);
        bad = 1;
    }
    if (!bad && a->token_url && strncasecmp(a->token_url, "http://", 7) &&
        strncasecmp(a->token_url, "https://", 8)) {
        err_at(c, s[A_URL].val, "auth.token_url: expected an http:// or https:// URL");
        bad = 1;
    }
    if (bad)
        auth_free(a);
    return bad ? -1 : 0;
}

static const char *const eptls_keys[] = {"ca_file", "cert_file", "key_file", "insecure"};

/* A TLS file must be readable now, not at the first connection: 0, or -1
 * after reporting. Opened without blocking, like ${file:}. */
static int tls_file(struct ctx *c, const struct node *n, const char *key, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        err_at(c, n, "%s: cannot read %s: %s; check the path and its permissions", key,
               shown(n, path).s, strerror(errno));
        return -1;
    }
    int reg = !fstat(fd, &st) && S_ISREG(st.st_mode);
    close(fd);
    if (!reg) {
        err_at(c, n, "%s: %s is not a regular file; give the path of a PEM file", key,
               shown(n, path).s);
        return -1;
    }
    return 0;
}

static int read_ep_tls(struct ctx *c, struct ep_part *p, struct node *v, const char *where)
{
    struct slot s[4] = {{0}};
    if (!want_map(c, v, "tls"))
        return -1;
    char w[160];
    snprintf(w, sizeof w, "in tls %s", where);
    collect(c, v, eptls_keys, 4, s, w, NULL, 0);
    int bad = 0;
    if (s[0].val && (get_string(c, s[0].val, "tls.ca_file", 1, &p->tls_ca) ||
                     tls_file(c, s[0].val, "tls.ca_file", p->tls_ca)))
        bad = 1;
    if (s[1].val && (get_string(c, s[1].val, "tls.cert_file", 1, &p->tls_cert) ||
                     tls_file(c, s[1].val, "tls.cert_file", p->tls_cert)))
        bad = 1;
    if (s[2].val && (get_string(c, s[2].val, "tls.key_file", 1, &p->tls_key) ||
                     tls_file(c, s[2].val, "tls.key_file", p->tls_key)))
        bad = 1;
    if (s[3].val && get_bool(c, s[3].val, "tls.insecure", &p->tls_insecure))
        bad = 1;
    if (s[2].val && !s[1].val) {
        err_at(c, s[2].key, "tls.key_file needs cert_file too; add the client certificate");
        bad = 1;
    }
    return bad ? -1 : 0;
}

static int read_accept(struct ctx *c, struct ep_part *p, struct node *v)
{
    if (v->type != N_SEQ || v->n == 0 || v->n > 32) {
        err_at(c, v, "accept_status: expected a list of 1 to 32 HTTP statuses like [200, 203]");
        return -1;
    }
    p->accept = calloc(v->n, sizeof *p->accept);
    if (!p->accept) {
        c->nomem = 1;
        return -1;
    }
    for (size_t i = 0; i < v->n; i++) {
        uint64_t st;
        if (get_uint(c, v->kid[i], "accept_status", "an HTTP status from 100 to 599", 100, 599,
                     &st))
            return -1;
        p->accept[p->n_accept++] = (int)st;
    }
    return 0;
}

static const char *const errif_keys[] = {"pointer", "equals"};

static int read_error_if(struct ctx *c, struct ep_part *p, struct node *v)
{
    struct slot s[2] = {{0}};
    if (!want_map(c, v, "error_if"))
        return -1;
    collect(c, v, errif_keys, 2, s, "in error_if", NULL, 0);
    if (!s[0].val || !s[1].val) {
        err_at(c, v,
               "error_if: needs pointer: and equals:, e.g. { pointer: /status, equals: "
               "error }");
        return -1;
    }
    const char *ptr = get_scalar(c, s[0].val, "error_if.pointer", "a JSON Pointer like /status");
    if (!ptr)
        return -1;
    char err[256] = "";
    if (r2m_json_pointer_check(ptr, err, sizeof err) || strstr(ptr, "/*")) {
        err_at(c, s[0].val, "error_if.pointer: %s is not a JSON Pointer (%s)",
               shown(s[0].val, ptr).s, err[0] ? err : "'*' is not allowed");
        return -1;
    }
    const char *eq = get_scalar(c, s[1].val, "error_if.equals", "a value like error or 500");
    if (!eq)
        return -1;
    p->err_ptr = dup_str(c, ptr);
    p->err_equals = dup_str(c, eq);
    return p->err_ptr && p->err_equals ? 0 : -1;
}

static const char *const page_keys[] = {"next", "cursor", "param", "start"};

/* paginate: { next: link } | { next: /pointer } | { cursor: /pointer, param: cursor }
 *         | { param: page, start: 1 } */
static int read_paginate(struct ctx *c, struct ep_part *p, struct node *v)
{
    struct slot s[4] = {{0}};
    if (!want_map(c, v, "paginate"))
        return -1;
    collect(c, v, page_keys, 4, s, "in paginate", NULL, 0);
    const char *next =
        s[0].val ? get_scalar(c, s[0].val, "paginate.next", "link or a JSON Pointer") : NULL;
    const char *cur =
        s[1].val ? get_scalar(c, s[1].val, "paginate.cursor", "a JSON Pointer") : NULL;
    const char *param =
        s[2].val ? get_scalar(c, s[2].val, "paginate.param", "a query parameter name") : NULL;
    if ((s[0].val && !next) || (s[1].val && !cur) || (s[2].val && !param))
        return -1;
    if (param && (!*param || strpbrk(param, "&=?# /"))) {
        err_at(c, s[2].val, "paginate.param: %s is not a plain query parameter name",
               shown(s[2].val, param).s);
        return -1;
    }
    char err[256] = "";
    if (next) {
        if (s[1].val || s[2].val || s[3].val) {
            err_at(c, v, "paginate: next: cannot be combined with cursor:, param: or start:");
            return -1;
        }
        if (!strcmp(next, "link")) {
            p->page_kind = R2M_PAGE_LINK;
            return 0;
        }
        if (r2m_json_pointer_check(next, err, sizeof err) || !*next || strstr(next, "/*")) {
            err_at(c, s[0].val,
                   "paginate.next: expected link (the Link: rel=\"next\" header) or a JSON "
                   "Pointer to the next page's URL like /links/next, got %s",
                   shown(s[0].val, next).s);
            return -1;
        }
        p->page_kind = R2M_PAGE_NEXT;
        return (p->page_ptr = dup_str(c, next)) ? 0 : -1;
    }
    if (cur) {
        if (!param || s[3].val) {
            err_at(c, v,
                   "paginate: cursor: needs param: (the query parameter that carries the "
                   "cursor) and takes no start:");
            return -1;
        }
        if (r2m_json_pointer_check(cur, err, sizeof err) || !*cur || strstr(cur, "/*")) {
            err_at(c, s[1].val, "paginate.cursor: expected a JSON Pointer like /next_cursor");
            return -1;
        }
        p->page_kind = R2M_PAGE_CURSOR;
        p->page_ptr = dup_str(c, cur);
        p->page_param = dup_str(c, param);
        return p->page_ptr && p->page_param ? 0 : -1;
    }
    if (param) {
        uint64_t start = 1;
        if (s[3].val && get_uint(c, s[3].val, "paginate.start", "a page number like 0 or 1", 0,
                                 1000000, &start))
            return -1;
        p->page_kind = R2M_PAGE_NUMBER;
        p->page_start = (int64_t)start;
        return (p->page_param = dup_str(c, param)) ? 0 : -1;
    }
    err_at(c, v,
           "paginate: expected { next: link }, { next: /pointer }, { cursor: /pointer, "
           "param: cursor } or { param: page, start: 1 }");
    return -1;
}

/* key: one JSON Pointer or a list of them (composite key). */
static int read_key(struct ctx *c, struct ep_part *p, struct node *v)
{
    struct node *one[1] = {v};
    struct node **items = one;
    size_t n = 1;
    if (v->type == N_ALIAS)
        return -1;
    if (v->type == N_SEQ) {
        items = v->kid;
        n = v->n;
    } else if (v->type != N_SCALAR) {
        err_at(c, v,
               "key: expected a JSON Pointer like /id, or a list like [/order, /line], got %s",
               kind(v));
        return -1;
    }
    if (n == 0 || n > 8) {
        err_at(c, v, "key: expected 1 to 8 JSON Pointers, got %zu", n);
        return -1;
    }
    p->key = calloc(n, sizeof *p->key);
    if (!p->key) {
        c->nomem = 1;
        return -1;
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = get_scalar(c, items[i], "key", "a JSON Pointer like /id");
        if (!s) {
            bad = 1;
            continue;
        }
        char err[256] = "";
        if (!*s || r2m_json_pointer_check(s, err, sizeof err) || strstr(s, "/*")) {
            err_at(c, items[i], "key: %s is not a JSON Pointer into an item (%s); write e.g. /id",
                   shown(items[i], s).s,
                   err[0] ? err
                   : *s   ? "'*' is not allowed"
                          : "empty");
            bad = 1;
            continue;
        }
        char *d = dup_str(c, s);
        if (d)
            p->key[p->n_key++] = d;
    }
    return bad ? -1 : 0;
}

static struct node *find_key(struct node *map, const char *key)
{
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (map->kid[i]->type == N_SCALAR && !strcmp(map->kid[i]->text, key))
            return map->kid[i + 1];
    return NULL;
}

/* Reads one endpoint entry (index >= 1) or the defaults: mapping (index 0). */
static void read_endpoint(struct ctx *c, struct ep_part *p, struct node *map, size_t index)
{
    char where[128];
    struct slot s[E__N] = {{0}};

    if (map->type == N_ALIAS)
        return;
    if (index == 0 && !want_map(c, map, "defaults"))
        return;
    if (map->type != N_MAP) {
        err_at(c, map,
               "endpoints: expected a mapping for each endpoint (name: ..., url: ...), "
               "got %s",
               kind(map));
        return;
    }
    p->map = map;

    if (index) {
        /* the name first, so that every other message can say which endpoint */
        struct node *nv = find_key(map, "name");
        if (nv) {
            p->present |= 1u << E_NAME;
            p->name_node = nv;
            const char *name = get_scalar(c, nv, "name", "a name like 'shipments'");
            if (name && !valid_name(name))
                err_at(c, nv,
                       "name: expected 1 to %d characters of a-z, 0-9, '_' and '-', got %s; "
                       "use lower case, e.g. 'flight-lh123'",
                       NAME_MAX_LEN, shown(nv, name).s);
            else if (name && (p->name = dup_str(c, name)))
                p->set |= 1u << E_NAME;
        }
        if (p->name)
            snprintf(where, sizeof where, "in endpoint '%s'", p->name);
        else
            snprintf(where, sizeof where, "in endpoint #%zu", index);
    } else {
        snprintf(where, sizeof where, "in defaults");
    }

    collect(c, map, endpoint_keys, E__N, s, where, NULL, 0);
    if (index == 0 && s[E_NAME].key)
        err_at(c, s[E_NAME].key,
               "'name' cannot be set in defaults:; give each endpoint its own name");

    for (int k = E_NAME + 1; k < E__N; k++) { /* the name was read above */
        struct node *v = s[k].val;
        if (!v)
            continue;
        p->present |= 1u << k;
        int ok = -1;
        const char *str;
        switch (k) {
        case E_URL:
            str = get_scalar(c, v, "url", "a URL like https://api.example/items");
            if (!str)
                break;
            if (strncasecmp(str, "http://", 7) && strncasecmp(str, "https://", 8) &&
                strncasecmp(str, "file://", 7))
                err_at(c, v,
                       "url: expected a URL starting with http://, https:// or file://, "
                       "got %s",
                       shown_url(v, str).s);
            else if (!strcmp(strstr(str, "://"), "://"))
                err_at(c, v,
                       "url: the URL has nothing after the scheme; write e.g. "
                       "https://api.example/items");
            else if (!one_line(c, v, "url", str))
                ok = (p->url = dup_str(c, str)) ? 0 : -1;
            break;
        case E_METHOD:
            p->method_node = v;
            str = get_scalar(c, v, "method", "GET or POST");
            if (!str)
                break;
            if (!strcasecmp(str, "GET") || !strcasecmp(str, "POST"))
                ok =
                    (p->method = dup_str(c, toupper((unsigned char)str[0]) == 'G' ? "GET" : "POST"))
                        ? 0
                        : -1;
            else
                err_at(c, v, "method: expected GET or POST, got %s", shown(v, str).s);
            break;
        case E_BODY:
            p->body_node = v;
            ok = get_string(c, v, "body", 0, &p->body);
            break;
        case E_HEADERS:
            read_headers(c, p, v);
            ok = 0;
            break;
        case E_INTERVAL:
            ok = get_duration(c, v, "interval", 10, &p->interval_ms);
            break;
        case E_TIMEOUT:
            ok = get_duration(c, v, "timeout", 1, &p->timeout_ms);
            break;
        case E_JITTER: {
            str = get_scalar(c, v, "jitter", "a percentage like 10%");
            if (!str)
                break;
            double pct = parse_percent(str);
            if (pct < 0 || pct > 100)
                err_at(c, v, "jitter: expected a percentage from 0%% to 100%% like 10%%, got %s",
                       shown(v, str).s);
            else {
                p->jitter = pct / 100.0;
                ok = 0;
            }
            break;
        }
        case E_MAX_BODY: {
            str = get_scalar(c, v, "max_body", "a size like 512KiB or 32MiB");
            if (!str)
                break;
            uint64_t b;
            if (r2m_parse_size(str, &b) || b < 1 || b > (4ull << 30))
                err_at(c, v,
                       "max_body: expected a size from 1 byte to 4GiB like 512KiB or 32MiB "
                       "(units B, KB, MB, GB, KiB, MiB, GiB), got %s",
                       shown(v, str).s);
            else {
                p->max_body = b;
                ok = 0;
            }
            break;
        }
        case E_MAX_DEPTH: {
            uint64_t d;
            ok = get_uint(c, v, "max_depth", "a whole number from 1 to 1000", 1, 1000, &d);
            if (!ok)
                p->max_depth = (unsigned)d;
            break;
        }
        case E_IGNORE:
            read_ignore(c, p, v);
            ok = 0;
            break;
        case E_TOPIC: {
            str = get_scalar(c, v, "topic", "a topic template like \"{prefix}/{endpoint}\"");
            if (!str)
                break;
            char err[256] = "";
            p->topic_node = v;
            if (r2m_topic_check(str, 1, err, sizeof err))
                err_at(c, v, "topic: %s", err);
            else
                ok = (p->topic = dup_str(c, str)) ? 0 : -1;
            break;
        }
        case E_STATE_TOPIC: {
            str = get_scalar(c, v, "state_topic",
                             "a topic template like \"{prefix}/{endpoint}/{key}/state\"");
            if (!str)
                break;
            char err[256] = "";
            if (r2m_topic_check(str, 1, err, sizeof err))
                err_at(c, v, "state_topic: %s", err);
            else
                ok = (p->state_topic = dup_str(c, str)) ? 0 : -1;
            break;
        }
        case E_ITEMS: {
            str = get_scalar(c, v, "items", "a JSON Pointer like /data/items (\"\" = the root)");
            if (!str)
                break;
            char err[256] = "";
            if (r2m_json_pointer_check(str, err, sizeof err) || strstr(str, "/*"))
                err_at(c, v,
                       "items: %s is not a JSON Pointer (%s); write e.g. /data/items, or \"\" "
                       "when the document itself is the list",
                       shown(v, str).s, err[0] ? err : "'*' is not allowed here");
            else
                ok = (p->items = dup_str(c, str)) ? 0 : -1;
            break;
        }
        case E_KEY:
            p->key_node = v;
            ok = read_key(c, p, v);
            break;
        case E_AUTH:
            ok = read_auth(c, p, v, where);
            break;
        case E_CONTENT_TYPE:
            ok = get_string(c, v, "content_type", 1, &p->content_type);
            if (!ok && one_line(c, v, "content_type", p->content_type))
                ok = -1;
            break;
        case E_TLS:
            ok = read_ep_tls(c, p, v, where);
            break;
        case E_ACCEPT:
            ok = read_accept(c, p, v);
            break;
        case E_ERROR_IF:
            ok = read_error_if(c, p, v);
            break;
        case E_MAX_BACKOFF:
            ok = get_duration(c, v, "max_backoff", 10, &p->max_backoff_ms);
            break;
        case E_PAGINATE:
            ok = read_paginate(c, p, v);
            break;
        case E_MAX_PAGES: {
            uint64_t n;
            ok = get_uint(c, v, "max_pages", "a whole number from 1 to 100000", 1, 100000, &n);
            if (!ok)
                p->max_pages = (unsigned)n;
            break;
        }
        case E_REDIRECTS:
            str = get_scalar(c, v, "redirects", "same-origin, any or none");
            if (!str)
                break;
            if (!strcmp(str, "same-origin"))
                p->redirects = R2M_REDIRECTS_SAME_ORIGIN;
            else if (!strcmp(str, "any"))
                p->redirects = R2M_REDIRECTS_ANY;
            else if (!strcmp(str, "none"))
                p->redirects = R2M_REDIRECTS_NONE;
            else {
                err_at(c, v,
                       "redirects: expected same-origin (follow redirects within the URL's "
                       "origin), any (follow anywhere, without credentials off the origin) or "
                       "none, got %s",
                       shown(v, str).s);
                break;
            }
            ok = 0;
            break;
        case E_PAYLOAD:
            str = get_scalar(c, v, "payload", "full, patch or after");
            if (!str)
                break;
            if (!strcmp(str, "full"))
                p->payload = R2M_PAYLOAD_FULL;
            else if (!strcmp(str, "patch"))
                p->payload = R2M_PAYLOAD_PATCH;
            else if (!strcmp(str, "after"))
                p->payload = R2M_PAYLOAD_AFTER;
            else {
                err_at(c, v, "payload: expected full, patch or after, got %s", shown(v, str).s);
                break;
            }
            ok = 0;
            break;
        case E_INITIAL:
            str = get_scalar(c, v, "initial", "snapshot or emit");
            if (!str)
                break;
            if (!strcmp(str, "snapshot") || !strcmp(str, "emit")) {
                p->initial_emit = str[0] == 'e';
                ok = 0;
            } else
                err_at(c, v,
                       "initial: expected snapshot (first poll is a silent baseline) or emit "
                       "(first poll emits created for every item), got %s",
                       shown(v, str).s);
            break;
        }
        if (!ok)
            p->set |= 1u << k;
    }
}

static char *pick_str(struct ctx *c, const char *ep, const char *def, const char *builtin)
{
    const char *s = ep ? ep : def ? def : builtin;
    return s ? dup_str(c, s) : NULL;
}

/* Builds the final endpoint from the built-in defaults, defaults: and the entry. */
static void merge(struct ctx *c, struct r2m_endpoint_cfg *e, const struct ep_part *d,
                  const struct ep_part *p, size_t index)
{
    const struct node *map = p->map;
    e->line = map->line;
    e->column = map->col;
    char label[96];
    if (p->name)
        snprintf(label, sizeof label, "endpoint '%s'", p->name);
    else
        snprintf(label, sizeof label, "endpoint #%zu", index);

    if (!(p->present & (1u << E_NAME)))
        err_at(c, map,
               "%s has no name; add name: with a-z, 0-9, '_' and '-', e.g. "
               "name: shipments",
               label);
    if (!((p->present | d->present) & (1u << E_URL)))
        err_at(c, map, "%s has no url; add url: https://... (or file://...)", label);

    e->name = pick_str(c, p->name, NULL, NULL);
    e->url = pick_str(c, p->url, d->url, NULL);
    e->method = pick_str(c, p->method, d->method, "GET");
    e->body = pick_str(c, p->body, d->body, NULL);
    e->items = pick_str(c, p->items, d->items, NULL);
    e->topic = pick_str(c, p->topic, d->topic,
                        e->items ? "{prefix}/{endpoint}/{key}/{op}" : "{prefix}/{endpoint}");
    e->state_topic = pick_str(c, p->state_topic, d->state_topic, NULL);
    e->content_type = pick_str(c, p->content_type, d->content_type, NULL);
    {
        /* units: auth, tls, error_if, paginate and accept_status come whole
         * from the endpoint, else whole from defaults */
        const struct ep_part *u = (p->set & (1u << E_AUTH)) ? p : d;
        if (u->set & (1u << E_AUTH)) {
            const struct r2m_auth *a = &u->auth;
            e->auth.type = a->type;
            e->auth.username = pick_str(c, a->username, NULL, NULL);
            e->auth.password = pick_str(c, a->password, NULL, NULL);
            e->auth.token = pick_str(c, a->token, NULL, NULL);
            e->auth.name = pick_str(c, a->name, NULL, NULL);
            e->auth.value = pick_str(c, a->value, NULL, NULL);
            e->auth.token_url = pick_str(c, a->token_url, NULL, NULL);
            e->auth.client_id = pick_str(c, a->client_id, NULL, NULL);
            e->auth.client_secret = pick_str(c, a->client_secret, NULL, NULL);
            e->auth.scope = pick_str(c, a->scope, NULL, NULL);
        }
        u = (p->set & (1u << E_TLS)) ? p : d;
        if (u->set & (1u << E_TLS)) {
            e->tls.ca_file = pick_str(c, u->tls_ca, NULL, NULL);
            e->tls.cert_file = pick_str(c, u->tls_cert, NULL, NULL);
            e->tls.key_file = pick_str(c, u->tls_key, NULL, NULL);
            e->tls.insecure = u->tls_insecure;
        }
        u = (p->set & (1u << E_ERROR_IF)) ? p : d;
        if (u->set & (1u << E_ERROR_IF)) {
            e->error_if.pointer = pick_str(c, u->err_ptr, NULL, NULL);
            e->error_if.equals = pick_str(c, u->err_equals, NULL, NULL);
        }
        u = (p->set & (1u << E_PAGINATE)) ? p : d;
        if (u->set & (1u << E_PAGINATE)) {
            e->paginate.kind = u->page_kind;
            e->paginate.pointer = pick_str(c, u->page_ptr, NULL, NULL);
            e->paginate.param = pick_str(c, u->page_param, NULL, NULL);
            e->paginate.start = u->page_start;
        }
        u = (p->set & (1u << E_ACCEPT)) ? p : d;
        if ((u->set & (1u << E_ACCEPT)) && u->n_accept) {
            e->accept_status = malloc(u->n_accept * sizeof *e->accept_status);
            if (!e->accept_status) {
                c->nomem = 1;
                return;
            }
            memcpy(e->accept_status, u->accept, u->n_accept * sizeof *e->accept_status);
            e->n_accept_status = u->n_accept;
        }
    }
    if (e->paginate.kind && !e->items)
        err_at(c, map,
               "%s has paginate: but no items:; pages are merged into one collection, so add "
               "items: (the JSON Pointer to each page's list) and key:",
               label);
    if (e->content_type && (!e->method || strcmp(e->method, "POST")))
        err_at(c, map,
               "%s has content_type: but its method is not POST; content_type describes "
               "the POST body",
               label);
    {
        const struct ep_part *src = p->n_key ? p : d;
        if (src->n_key) {
            e->key = calloc(src->n_key, sizeof *e->key);
            if (!e->key) {
                c->nomem = 1;
                return;
            }
            for (size_t i = 0; i < src->n_key; i++)
                e->key[e->n_key++] = dup_str(c, src->key[i]);
        }
    }
    if (e->n_key && !e->items)
        err_at(c, p->key_node ? p->key_node : map,
               "%s has key: but no items:; key: names the identity of each item of a "
               "collection, so add items: (a JSON Pointer to the list, \"\" for the root)",
               label);
    if (!e->items) {
        char err[256] = "";
        if (e->topic && r2m_topic_check(e->topic, 0, err, sizeof err))
            err_at(c, p->topic_node ? p->topic_node : map, "topic: %s", err);
        if (e->state_topic && r2m_topic_check(e->state_topic, 0, err, sizeof err))
            err_at(c, map, "state_topic: %s", err);
    }
    if (e->body && e->method && strcmp(e->method, "POST")) {
        const struct node *at = p->body_node ? p->body_node : p->method_node ? p->method_node : map;
        err_at(c, at, "%s has a body but its method is %s; set method: POST or remove body", label,
               e->method);
    }

#define PICK(bit, field, builtin)                                                                  \
    ((p->set & (1u << (bit))) ? p->field : (d->set & (1u << (bit))) ? d->field : (builtin))
    e->interval_ms = PICK(E_INTERVAL, interval_ms, 30000);
    e->timeout_ms = PICK(E_TIMEOUT, timeout_ms, 10000);
    e->jitter = PICK(E_JITTER, jitter, 0.1);
    e->max_body = PICK(E_MAX_BODY, max_body, 32ull << 20);
    e->max_depth = PICK(E_MAX_DEPTH, max_depth, 64u);
    e->payload = PICK(E_PAYLOAD, payload, R2M_PAYLOAD_FULL);
    e->max_backoff_ms = PICK(E_MAX_BACKOFF, max_backoff_ms, 300000);
    e->max_pages = PICK(E_MAX_PAGES, max_pages, 100u);
    e->initial_emit = PICK(E_INITIAL, initial_emit, 0);
    e->redirects = PICK(E_REDIRECTS, redirects, R2M_REDIRECTS_SAME_ORIGIN);
#undef PICK

    /* headers: defaults first, then the entry's, replacing by case-insensitive name */
    size_t nh = d->n_headers + p->n_headers;
    if (nh) {
        e->headers = calloc(nh, sizeof *e->headers);
        if (!e->headers) {
            c->nomem = 1;
            return;
        }
        for (size_t i = 0; i < nh; i++) {
            const struct r2m_header *h =
                i < d->n_headers ? &d->headers[i] : &p->headers[i - d->n_headers];
            size_t j = 0;
            while (j < e->n_headers && strcasecmp(e->headers[j].name, h->name))
                j++;
            if (j == e->n_headers)
                e->n_headers++;
            free(e->headers[j].name);
            free(e->headers[j].value);
            e->headers[j].name = dup_str(c, h->name);
            e->headers[j].value = dup_str(c, h->value);
            if (c->nomem)
                return; /* a NULL name must not reach strcasecmp */
        }
    }

    /* ignore: both lists apply */
    size_t ni = d->n_ignore + p->n_ignore;
    if (ni) {
        e->ignore = calloc(ni, sizeof *e->ignore);
        if (!e->ignore) {
            c->nomem = 1;
            return;
        }
        for (size_t i = 0; i < ni; i++)
            e->ignore[e->n_ignore++] =
                dup_str(c, i < d->n_ignore ? d->ignore[i] : p->ignore[i - d->n_ignore]);
    }
}

struct seen_name {
    const char *name;
    const struct node *node;
};

static int seen_cmp(const void *a, const void *b)
{
    const struct seen_name *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    if (r)
        return r;
    if (x->node->line != y->node->line)
        return x->node->line < y->node->line ? -1 : 1;
    return (x->node->col > y->node->col) - (x->node->col < y->node->col);
}

static void read_endpoints(struct ctx *c, struct r2m_config *cfg, struct node *v,
                           const struct ep_part *defs)
{
    if (v->type == N_ALIAS)
        return;
    if (is_null(v) || (v->type == N_SEQ && v->n == 0)) {
        err_at(c, v,
               "endpoints: the list is empty; add at least one endpoint with name: and "
               "url:");
        return;
    }
    if (v->type != N_SEQ) {
        err_at(c, v, "endpoints: expected a list of endpoints (lines starting with '- '), got %s",
               kind(v));
        return;
    }
    cfg->endpoints = calloc(v->n, sizeof *cfg->endpoints);
    struct seen_name *seen = calloc(v->n, sizeof *seen);
    if (!cfg->endpoints || !seen) {
        free(seen);
        c->nomem = 1;
        return;
    }
    cfg->n_endpoints = v->n;
    size_t n_seen = 0;
    for (size_t i = 0; i < v->n && !c->nomem; i++) {
        struct ep_part p = {0};
        read_endpoint(c, &p, v->kid[i], i + 1);
        if (p.map && !c->nomem)
            merge(c, &cfg->endpoints[i], defs, &p, i + 1);
        if (cfg->endpoints[i].name)
            seen[n_seen++] = (struct seen_name){cfg->endpoints[i].name, p.name_node};
        part_free(&p);
    }
    /* sorting finds duplicates in n log n even with 10,000 endpoints */
    qsort(seen, n_seen, sizeof *seen, seen_cmp);
    for (size_t i = 1, first = 0; i < n_seen; i++) {
        if (strcmp(seen[i].name, seen[first].name)) {
            first = i;
            continue;
        }
        err_at(c, seen[i].node,
               "duplicate endpoint name '%s' (first used at line %d); endpoint names must be "
               "unique because they name the state and the topics",
               seen[i].name, seen[first].node->line);
    }
    free(seen);
}

/* ---- the other sections ------------------------------------------------- */

static void read_tls(struct ctx *c, struct r2m_config *cfg, struct node *v)
{
    struct slot s[L__N] = {{0}};
    if (!want_map(c, v, "mqtt.tls"))
        return;
    collect(c, v, tls_keys, L__N, s, "in mqtt.tls", NULL, 0);
    if (s[L_CA].val && !get_string(c, s[L_CA].val, "mqtt.tls.ca_file", 1, &cfg->mqtt.ca_file))
        tls_file(c, s[L_CA].val, "mqtt.tls.ca_file", cfg->mqtt.ca_file);
    if (s[L_CERT].val &&
        !get_string(c, s[L_CERT].val, "mqtt.tls.cert_file", 1, &cfg->mqtt.cert_file))
        tls_file(c, s[L_CERT].val, "mqtt.tls.cert_file", cfg->mqtt.cert_file);
    if (s[L_KEY].val && !get_string(c, s[L_KEY].val, "mqtt.tls.key_file", 1, &cfg->mqtt.key_file))
        tls_file(c, s[L_KEY].val, "mqtt.tls.key_file", cfg->mqtt.key_file);
    if (s[L_INSECURE].val)
        get_bool(c, s[L_INSECURE].val, "mqtt.tls.insecure", &cfg->mqtt.insecure);
    if (s[L_KEY].val && !s[L_CERT].val)
        err_at(c, s[L_KEY].key,
               "mqtt.tls.key_file needs cert_file too; add the client certificate or remove "
               "key_file");
}

static void read_mqtt(struct ctx *c, struct r2m_config *cfg, struct node *v)
{
    struct slot s[M__N] = {{0}};
    const char *str;
    if (!want_map(c, v, "mqtt"))
        return;
    collect(c, v, mqtt_keys, M__N, s, "in mqtt", NULL, 0);

    if (s[M_URL].val && (str = get_scalar(c, s[M_URL].val, "mqtt.url",
                                          "a broker URL like mqtt://127.0.0.1:1883"))) {
        static const char *const schemes[] = {"mqtt://", "mqtts://", "tcp://",
                                              "ssl://",  "ws://",    "wss://"};
        size_t i = 0;
        while (i < ARRAY_LEN(schemes) && strncasecmp(str, schemes[i], strlen(schemes[i])))
            i++;
        if (i == ARRAY_LEN(schemes))
            err_at(c, s[M_URL].val,
                   "mqtt.url: expected a URL starting with mqtt://, mqtts://, tcp://, ssl://, "
                   "ws:// or wss://, got %s",
                   shown_url(s[M_URL].val, str).s);
        else if (str[strlen(schemes[i])] == '\0')
            err_at(c, s[M_URL].val,
                   "mqtt.url: the URL has no host; write e.g. mqtt://broker.example:1883");
        else if (!one_line(c, s[M_URL].val, "mqtt.url", str)) {
            set_str(c, &cfg->mqtt.url, str);
            /* paho matches schemes case-sensitively: "MQTTS://" would be
             * taken for a plaintext host name */
            for (char *q = cfg->mqtt.url; q && *q != ':'; q++)
                *q = (char)tolower((unsigned char)*q);
        }
    }
    if (s[M_CLIENT_ID].val)
        get_string(c, s[M_CLIENT_ID].val, "mqtt.client_id", 1, &cfg->mqtt.client_id);
    if (s[M_USERNAME].val)
        get_string(c, s[M_USERNAME].val, "mqtt.username", 0, &cfg->mqtt.username);
    if (s[M_PASSWORD].val)
        get_string(c, s[M_PASSWORD].val, "mqtt.password", 0, &cfg->mqtt.password);
    if (s[M_VERSION].val && (str = get_scalar(c, s[M_VERSION].val, "mqtt.version", "5 or 3.1.1"))) {
        if (!strcmp(str, "5"))
            cfg->mqtt.version = 5;
        else if (!strcmp(str, "3.1.1"))
            cfg->mqtt.version = 4;
        else
            err_at(c, s[M_VERSION].val, "mqtt.version: expected 5 or 3.1.1, got %s",
                   shown(s[M_VERSION].val, str).s);
    }
    if (s[M_QOS].val && (str = get_scalar(c, s[M_QOS].val, "mqtt.qos", "0, 1 or 2"))) {
        if (strlen(str) == 1 && str[0] >= '0' && str[0] <= '2')
            cfg->mqtt.qos = str[0] - '0';
        else
            err_at(c, s[M_QOS].val, "mqtt.qos: expected 0, 1 or 2, got %s",
                   shown(s[M_QOS].val, str).s);
    }
    if (s[M_KEEPALIVE].val) {
        int64_t ms;
        /* MQTT carries the keep-alive as 16-bit seconds */
        if (!get_duration(c, s[M_KEEPALIVE].val, "mqtt.keepalive", 0, &ms)) {
            if (ms > 65535 * 1000LL)
                err_at(c, s[M_KEEPALIVE].val,
                       "mqtt.keepalive: must be at most 18h12m15s (65535s, the MQTT limit)");
            else
                cfg->mqtt.keepalive_ms = ms;
        }
    }
    if (s[M_PREFIX].val &&
        (str = get_scalar(c, s[M_PREFIX].val, "mqtt.topic_prefix", "a topic like rest2mqtt"))) {
        if (!*str)
            err_at(c, s[M_PREFIX].val,
                   "mqtt.topic_prefix: must not be empty; write e.g. rest2mqtt or site/a");
        else if (strpbrk(str, "+#"))
            err_at(c, s[M_PREFIX].val,
                   "mqtt.topic_prefix: must not contain '+' or '#' (MQTT wildcards); use "
                   "plain topic levels like rest2mqtt or site/a");
        else if (str[0] == '$')
            err_at(c, s[M_PREFIX].val,
                   "mqtt.topic_prefix: must not start with '$' (reserved for broker topics); "
                   "write e.g. rest2mqtt");
        else
            set_str(c, &cfg->mqtt.topic_prefix, str);
    }
    if (s[M_STATUS].val && (str = get_scalar(c, s[M_STATUS].val, "mqtt.status_topic",
                                             "a topic template like \"{prefix}/status\""))) {
        char err[256] = "";
        if (r2m_topic_check(str, 0, err, sizeof err))
            err_at(c, s[M_STATUS].val, "mqtt.status_topic: %s", err);
        else
            set_str(c, &cfg->mqtt.status_topic, str);
    }
    if (s[M_TLS].val) {
        read_tls(c, cfg, s[M_TLS].val);
        const char *u = cfg->mqtt.url ? cfg->mqtt.url : "";
        if (!strncmp(u, "mqtt://", 7) || !strncmp(u, "tcp://", 6) || !strncmp(u, "ws://", 5))
            err_at(c, s[M_TLS].key,
                   "mqtt.tls: set, but mqtt.url (%.*s...) is plaintext: the broker would get the "
                   "password unencrypted; use mqtts://, ssl:// or wss://, or remove tls:",
                   (int)(strchr(u, ':') - u) + 3, u);
    }
    if (s[M_MAX_PACKET].val &&
        (str = get_scalar(c, s[M_MAX_PACKET].val, "mqtt.max_packet_size", "a size like 256KiB"))) {
        /* MQTT 3.1.1 brokers announce no limit and drop the connection over
         * a packet too big; MQTT 5 ones announce it and the smaller wins */
        uint64_t b;
        if (r2m_parse_size(str, &b) || b < 128 || b > R2M_MQTT_MAX_PACKET_SIZE)
            err_at(c, s[M_MAX_PACKET].val,
                   "mqtt.max_packet_size: expected a size from 128 bytes to 256MiB (the MQTT "
                   "limit) like 256KiB, the broker's largest packet, got %s",
                   shown(s[M_MAX_PACKET].val, str).s);
        else
            cfg->mqtt.max_packet_size = b;
    }
}

static void read_state(struct ctx *c, struct r2m_config *cfg, struct node *v)
{
    struct slot s[3] = {{0}};
    if (!want_map(c, v, "state"))
        return;
    collect(c, v, state_keys, 3, s, "in state", NULL, 0);
    if (s[0].val)
        get_string(c, s[0].val, "state.path", 1, &cfg->state.path);
    if (s[1].val)
        get_uint(c, s[1].val, "state.outbox_max", "a whole number of events (at least 1)", 1,
                 UINT64_MAX, &cfg->state.outbox_max);
    const char *sync;
    if (s[2].val && (sync = get_scalar(c, s[2].val, "state.sync", "normal or full"))) {
        if (!strcmp(sync, "normal") || !strcmp(sync, "full"))
            cfg->state.sync_full = sync[0] == 'f';
        else
            err_at(c, s[2].val,
                   "state.sync: expected normal (survives a crash of rest2mqtt) or full (also "
                   "survives a power loss, at one disk flush per poll with changes), got %s",
                   shown(s[2].val, sync).s);
    }
}

static void read_log(struct ctx *c, struct r2m_config *cfg, struct node *v)
{
    struct slot s[2] = {{0}};
    const char *str;
    if (!want_map(c, v, "log"))
        return;
    collect(c, v, log_keys, 2, s, "in log", NULL, 0);
    if (s[0].val &&
        (str = get_scalar(c, s[0].val, "log.level", "one of error, warn, info, debug"))) {
        int l = r2m_log_level_parse(str);
        if (l < 0)
            err_at(c, s[0].val, "log.level: expected one of error, warn, info, debug, got %s",
                   shown(s[0].val, str).s);
        else
            cfg->log.level = l;
    }
    if (s[1].val && (str = get_scalar(c, s[1].val, "log.format", "text or json"))) {
        if (!strcmp(str, "text"))
            cfg->log.format = R2M_LOG_TEXT;
        else if (!strcmp(str, "json"))
            cfg->log.format = R2M_LOG_JSON;
        else
            err_at(c, s[1].val, "log.format: expected text or json, got %s",
                   shown(s[1].val, str).s);
    }
}

static struct r2m_config *config_new(struct ctx *c)
{
    struct r2m_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        c->nomem = 1;
        return NULL;
    }
    char host[256] = "";
    char id[300] = "rest2mqtt";
    if (gethostname(host, sizeof host - 1) == 0 && host[0]) {
        host[sizeof host - 1] = '\0';
        snprintf(id, sizeof id, "rest2mqtt-%s", host);
    }
    cfg->file = dup_str(c, c->file);
    cfg->mqtt.url = dup_str(c, "mqtt://127.0.0.1:1883");
    cfg->mqtt.client_id = dup_str(c, id);
    cfg->mqtt.version = 5;
    cfg->mqtt.qos = 1;
    cfg->mqtt.keepalive_ms = 30000;
    cfg->mqtt.topic_prefix = dup_str(c, "rest2mqtt");
    cfg->state.path = dup_str(c, "./rest2mqtt.db");
    cfg->state.outbox_max = 100000;
    cfg->log.level = R2M_LOG_INFO;
    cfg->log.format = R2M_LOG_TEXT;
    cfg->shutdown_timeout_ms = 10000;
    cfg->max_concurrent = 256;
    cfg->max_per_host = 8;
    return cfg;
}

/* Fills cfg from the tree; problems go to c. */
static const char *const metrics_keys[] = {"listen"};

/* metrics: { listen: 127.0.0.1:9464 } - host (IPv4 literal) and port. */
static void read_metrics(struct ctx *c, struct r2m_config *cfg, struct node *v)
{
    struct slot s[1] = {{0}};
    if (!want_map(c, v, "metrics"))
        return;
    collect(c, v, metrics_keys, 1, s, "in metrics", NULL, 0);
    if (!s[0].val)
        return;
    const char *str = get_scalar(c, s[0].val, "metrics.listen", "an address like 127.0.0.1:9464");
    if (!str)
        return;
    const char *colon = strrchr(str, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    char host[64];
    struct in_addr a;
    if (!colon || colon == str || (size_t)(colon - str) >= sizeof host || !end || *end ||
        port < 1 || port > 65535) {
        err_at(c, s[0].val, "metrics.listen: expected HOST:PORT like 127.0.0.1:9464, got %s",
               shown(s[0].val, str).s);
        return;
    }
    memcpy(host, str, (size_t)(colon - str));
    host[colon - str] = '\0';
    if (inet_pton(AF_INET, host, &a) != 1) {
        err_at(c, s[0].val,
               "metrics.listen: %s is not an IPv4 address; use 127.0.0.1 (local only) or "
               "0.0.0.0 (all interfaces, e.g. in a container)",
               quote(host).s);
        return;
    }
    set_str(c, &cfg->metrics.listen, str);
}

static void read_config(struct ctx *c, struct r2m_config *cfg, struct node *root)
{
    struct slot s[T__N] = {{0}};
    struct ep_part defs = {0};

    if (!root) {
        err_pos(c, 1, 1,
                "the configuration is empty; it needs at least an endpoints: list "
                "with one endpoint (name:, url:)");
        return;
    }
    if (root->type != N_MAP) {
        if (root->type != N_ALIAS)
            err_at(c, root, "expected a mapping at the top level (mqtt:, endpoints:, ...), got %s",
                   kind(root));
        return;
    }
    collect(c, root, top_keys, T__N, s, "at the top level", NULL, 0);
    if (s[T_MQTT].val)
        read_mqtt(c, cfg, s[T_MQTT].val);
    if (s[T_STATE].val)
        read_state(c, cfg, s[T_STATE].val);
    if (s[T_LOG].val)
        read_log(c, cfg, s[T_LOG].val);
    if (s[T_SHUTDOWN].val)
        get_duration(c, s[T_SHUTDOWN].val, "shutdown_timeout", 0, &cfg->shutdown_timeout_ms);
    if (s[T_INSTANCE].val)
        get_string(c, s[T_INSTANCE].val, "instance", 1, &cfg->instance);
    if (s[T_METRICS].val)
        read_metrics(c, cfg, s[T_METRICS].val);
    if (s[T_MAX_CONCURRENT].val) {
        uint64_t n;
        if (!get_uint(c, s[T_MAX_CONCURRENT].val, "max_concurrent",
                      "a whole number of requests from 1 to 100000", 1, 100000, &n))
            cfg->max_concurrent = (unsigned)n;
    }
    /* 8 per origin by default: a legacy API behind one small server must not
     * see hundreds of parallel requests from us, and 8 still lets many
     * endpoints on one host be polled side by side (browsers use 6) */
    cfg->max_per_host = cfg->max_concurrent < 8 ? cfg->max_concurrent : 8;
    if (s[T_MAX_PER_HOST].val) {
        uint64_t n;
        if (!get_uint(c, s[T_MAX_PER_HOST].val, "max_per_host",
                      "a whole number of requests from 1 to 100000", 1, 100000, &n)) {
            if (n > cfg->max_concurrent)
                err_at(c, s[T_MAX_PER_HOST].val,
                       "max_per_host: %llu is more than max_concurrent (%u); lower it or raise "
                       "max_concurrent",
                       (unsigned long long)n, cfg->max_concurrent);
            else
                cfg->max_per_host = (unsigned)n;
        }
    }
    if (!cfg->instance)
        cfg->instance = dup_str(c, cfg->mqtt.client_id ? cfg->mqtt.client_id : "rest2mqtt");
    /* defaults: first whatever the file order, so endpoints can inherit from it */
    if (s[T_DEFAULTS].val)
        read_endpoint(c, &defs, s[T_DEFAULTS].val, 0);
    if (c->nomem)
        goto out;
    if (s[T_ENDPOINTS].val)
        read_endpoints(c, cfg, s[T_ENDPOINTS].val, &defs);
    else
        err_at(c, root,
               "no endpoints: list; add endpoints: with at least one entry "
               "(name:, url:)");
out:
    part_free(&defs);
}

/* ---- entry points ------------------------------------------------------- */

int r2m_config_parse(const char *name, const char *text, size_t len, struct r2m_config **out,
                     struct r2m_diag *diag)
{
    struct ctx c = {.file = name ? name : "<config>", .text = text ? text : "", .len = len};
    struct node *root = NULL;
    struct r2m_config *cfg = NULL;
    int rc;

    *out = NULL;
    if (!text)
        c.len = 0;
    cfg = config_new(&c);
    if (cfg && build_tree(&c, &root) == 0)
        read_config(&c, cfg, root);
    node_free(root);
    if (c.nomem)
        rc = R2M_E_NOMEM;
    else if (c.n_err)
        rc = R2M_E_CONFIG;
    else
        rc = 0;
    diag_flush(&c, diag);
    if (rc) {
        r2m_config_free(cfg);
        goto out;
    }
    *out = cfg;
out:
    return rc;
}

int r2m_config_load(const char *path, struct r2m_config **out, struct r2m_diag *diag)
{
    struct r2m_buf b;
    int nomem = 0;
    const char *what = "";
    int rc = read_all(path, MAX_FILE, 0, &b, &what);

    *out = NULL;
    if (rc == R2M_E_IO) {
        diag_add(diag, &nomem, "%s: error: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (rc == R2M_E_TOO_BIG) {
        diag_add(diag, &nomem,
                 "%s: error: the file is larger than %u MiB; split it or remove unused parts", path,
                 MAX_FILE >> 20);
        rc = R2M_E_CONFIG;
        goto out;
    }
    if (rc) {
        diag_add(diag, &nomem, "%s: error: out of memory while reading the file", path);
        goto out;
    }
    rc = r2m_config_parse(path, b.data ? b.data : "", b.len, out, diag);
out:
    r2m_buf_free(&b);
    return rc;
}

static void endpoint_free(struct r2m_endpoint_cfg *e)
{
    free(e->name);
    free(e->url);
    free(e->method);
    if (e->body)
        explicit_bzero(e->body, strlen(e->body));
    free(e->body);
    headers_free(e->headers, e->n_headers);
    strv_free(e->ignore, e->n_ignore);
    strv_free(e->key, e->n_key);
    free(e->topic);
    free(e->items);
    free(e->state_topic);
    auth_free(&e->auth);
    free(e->content_type);
    free(e->tls.ca_file);
    free(e->tls.cert_file);
    free(e->tls.key_file);
    free(e->accept_status);
    free(e->error_if.pointer);
    free(e->error_if.equals);
    free(e->paginate.pointer);
    free(e->paginate.param);
}

void r2m_config_free(struct r2m_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->file);
    free(cfg->instance);
    free(cfg->mqtt.url);
    free(cfg->mqtt.client_id);
    free(cfg->mqtt.username);
    if (cfg->mqtt.password)
        explicit_bzero(cfg->mqtt.password, strlen(cfg->mqtt.password));
    free(cfg->mqtt.password);
    free(cfg->mqtt.topic_prefix);
    free(cfg->mqtt.status_topic);
    free(cfg->mqtt.ca_file);
    free(cfg->mqtt.cert_file);
    free(cfg->mqtt.key_file);
    free(cfg->state.path);
    free(cfg->metrics.listen);
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        endpoint_free(&cfg->endpoints[i]);
    free(cfg->endpoints);
    free(cfg);
}

/* Writes a string field as tag, length and bytes, so no two different
 * configurations serialise alike; NULL differs from "". */
static void hash_str(XXH3_state_t *st, char tag, const char *v)
{
    uint64_t n = v ? strlen(v) : UINT64_MAX;
    XXH3_64bits_update(st, &tag, 1);
    XXH3_64bits_update(st, &n, sizeof n);
    if (v)
        XXH3_64bits_update(st, v, strlen(v));
}

static void hash_num(XXH3_state_t *st, char tag, int64_t v)
{
    XXH3_64bits_update(st, &tag, 1);
    XXH3_64bits_update(st, &v, sizeof v);
}

uint64_t r2m_config_endpoint_hash(const struct r2m_endpoint_cfg *e)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    hash_str(&st, 'n', e->name);
    hash_str(&st, 'u', e->url);
    hash_str(&st, 'm', e->method);
    hash_str(&st, 'b', e->body);
    for (size_t i = 0; i < e->n_headers; i++) {
        hash_str(&st, 'h', e->headers[i].name);
        hash_str(&st, 'v', e->headers[i].value);
    }
    hash_num(&st, 'i', e->interval_ms);
    hash_num(&st, 't', e->timeout_ms);
    double j = e->jitter;
    XXH3_64bits_update(&st, &j, sizeof j);
    hash_num(&st, 'x', (int64_t)e->max_body);
    hash_num(&st, 'd', e->max_depth);
    for (size_t i = 0; i < e->n_ignore; i++)
        hash_str(&st, 'g', e->ignore[i]);
    hash_str(&st, 'T', e->topic);
    hash_str(&st, 'I', e->items);
    for (size_t i = 0; i < e->n_key; i++)
        hash_str(&st, 'k', e->key[i]);
    hash_num(&st, 'p', e->payload);
    hash_num(&st, 'e', e->initial_emit);
    hash_str(&st, 'S', e->state_topic);
    hash_num(&st, 'a', e->auth.type);
    hash_str(&st, '1', e->auth.username);
    hash_str(&st, '2', e->auth.password);
    hash_str(&st, '3', e->auth.token);
    hash_str(&st, '4', e->auth.name);
    hash_str(&st, '5', e->auth.value);
    hash_str(&st, '6', e->auth.token_url);
    hash_str(&st, '7', e->auth.client_id);
    hash_str(&st, '8', e->auth.client_secret);
    hash_str(&st, '9', e->auth.scope);
    hash_str(&st, 'c', e->content_type);
    hash_str(&st, 'A', e->tls.ca_file);
    hash_str(&st, 'C', e->tls.cert_file);
    hash_str(&st, 'K', e->tls.key_file);
    hash_num(&st, 'N', e->tls.insecure);
    for (size_t i = 0; i < e->n_accept_status; i++)
        hash_num(&st, 's', e->accept_status[i]);
    hash_str(&st, 'P', e->error_if.pointer);
    hash_str(&st, 'E', e->error_if.equals);
    hash_num(&st, 'B', e->max_backoff_ms);
    hash_num(&st, 'G', e->paginate.kind);
    hash_str(&st, 'Q', e->paginate.pointer);
    hash_str(&st, 'R', e->paginate.param);
    hash_num(&st, 'V', e->paginate.start);
    hash_num(&st, 'M', e->max_pages);
    hash_num(&st, 'r', e->redirects);
    return XXH3_64bits_digest(&st);
}
