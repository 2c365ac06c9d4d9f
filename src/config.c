/* config.c - the configuration schema: YAML tree -> checked r2m_config.
 *
 * The tree comes from yamltree.c, values are expanded by expand.c (only when
 * a known key reads them, so a misspelt key yields one "unknown key" error,
 * not an expansion error too), numbers with units come from units.c and
 * every problem goes to a diag.c list with its position; the list is sorted
 * into file order at the end, because `defaults:` is read before
 * `endpoints:` whatever the order in the file.
 *
 * The schema is data: one table of keys per mapping (struct key: name,
 * parser, field offset, limits), the tables listed in `sections`. A key's
 * parser reads its value into the field at `off` of the section's struct
 * (struct r2m_config for the global sections, struct r2m_endpoint_cfg for
 * `defaults:`, endpoint entries and their sub-mappings). An endpoint entry
 * is read into a struct part like defaults:, then merge() builds the final
 * endpoint key by key (entry, else defaults:, else `builtin`), and
 * validate_endpoint() applies the rules that span several keys.
 *
 * Adding a key: one row in its section's table (and in enum ekey for an
 * endpoint key), a parser only if the type is new, a line in README.md's
 * configuration reference and a test. */
#include "r2m/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "r2m/buf.h"
#include "r2m/diag.h"
#include "r2m/error.h"
#include "r2m/expand.h"
#include "r2m/json.h"
#include "r2m/log.h"
#include "r2m/topic.h"
#include "r2m/units.h"
#include "r2m/yamltree.h"

#define MAX_FILE     (32u << 20) /* configuration file */
#define MAX_HEADERS  100         /* per headers: mapping; keeps duplicate checks cheap */
#define MAX_KEYS     32          /* keys of one section (bits of struct part's masks) */
#define NAME_MAX_LEN 64

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* short names for the tree's types: the schema code reads nodes everywhere */
typedef struct r2m_ynode node;
#define N_SCALAR R2M_YNODE_SCALAR
#define N_MAP    R2M_YNODE_MAP
#define N_SEQ    R2M_YNODE_SEQ
#define N_ALIAS  R2M_YNODE_ALIAS

struct ctx {
    struct r2m_diag_list dl;
    const char *where; /* "in endpoint 'x'", "in defaults": completes messages */
    struct part *defs; /* defaults:, read before endpoints: */
};

#define err_at(c, n, ...) r2m_diag_error(&(c)->dl, (n)->line, (n)->col, __VA_ARGS__)
#define quote(s)          r2m_diag_quote(s)

/* ---- the schema's vocabulary ----------------------------------------------- */

struct key;
struct section;

struct slot {
    node *key, *val;
};

/* Reads the value v of key k (called `label` in messages, e.g. "mqtt.url")
 * into the field at k->off of base. 0, or -1 after reporting. */
typedef int parse_fn(struct ctx *c, const struct key *k, const char *label, node *v, void *base);

/* How merge() copies an endpoint field from the entry, defaults: or builtin. */
enum store {
    ST_PLAIN,   /* a number: copied as k->size bytes; given = valid */
    ST_STR,     /* char *: given = not NULL */
    ST_STRV,    /* char ** + size_t at off_n: given = not empty */
    ST_CONCAT,  /* char ** + size_t at off_n: defaults:' then the entry's */
    ST_INTS,    /* int * + size_t at off_n; given = valid */
    ST_HEADERS, /* struct r2m_header * + size_t at off_n: merged by name */
    ST_UNIT,    /* a struct taken whole (auth, tls, ...): bytes, then strs duplicated */
};

struct choice {
    const char *word;
    int value;
};

struct key {
    const char *name;
    parse_fn *parse;
    size_t off, size;             /* the field in the section's struct */
    size_t off_n;                 /* lists: the count beside it */
    enum store store;             /* endpoint keys */
    const size_t *strs;           /* ST_UNIT: offsets of its strings, SIZE_MAX-terminated */
    const char *expect;           /* completes "expected ..." */
    const char *explain;          /* the longer "expected ..., got x" text; NULL: expect */
    int64_t min;                  /* numbers: smallest (durations: in ms) */
    uint64_t max;                 /* numbers: largest; 0: none beyond the type's */
    const char *too_big;          /* durations: message when above max */
    const struct choice *choices; /* parse_enum: NULL-terminated */
    const struct section *sub;    /* parse_section */
    unsigned flags;
};

/* struct key flags */
#define F_NONEMPTY     1u  /* strings: "" is an error */
#define F_ONE_LINE     2u  /* strings: CR and LF are errors (they reach a request) */
#define F_TLS_FILE     4u  /* strings: a PEM file that must be readable now */
#define F_ALLOW_KEY    8u  /* topic templates: {key} and {op} are allowed */
#define F_NOT_DEFAULTS 16u /* endpoint keys: not allowed in defaults: */

/* One mapping's keys. */
struct section {
    const char *name;   /* in "NAME: expected a mapping" */
    const char *prefix; /* of its keys in messages: "mqtt.", "tls." */
    const char *where;  /* completes "unknown key 'x' ...": "in mqtt" */
    int per_endpoint;   /* `where` is followed by the endpoint's ("in auth in endpoint 'x'") */
    const char *place;  /* for a key misplaced at the top level: "mqtt:"; NULL: never */
    const struct key *keys;
    size_t n;
    /* the rules across keys, after every given key was read; slots are
     * the section's keys in table order. 0, or -1 after reporting. */
    int (*validate)(struct ctx *c, const struct r2m_ynode *map, const struct slot *s, unsigned set,
                    void *base);
    const char *path; /* for r2m_config_key(): "mqtt.tls", "endpoint.auth" */
};

/* ---- reading values -------------------------------------------------------- */

static char *dup_str(struct ctx *c, const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        c->dl.nomem = 1;
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

/* The value of n for "got ..." in a message; values that came from the
 * environment or a file may be secrets and are never shown. */
static struct r2m_excerpt shown(const node *n, const char *s)
{
    if (n->secret) {
        struct r2m_excerpt e;
        snprintf(e.s, sizeof e.s, "a value from ${env:} or ${file:} (not shown)");
        return e;
    }
    return quote(s);
}

/* Why a value was refused, for a message: the checker's words (of a
 * pointer, a topic template) quote parts of the value, so for a value
 * from ${env:} or ${file:} they are not shown. */
static const char *pointer_why(const node *n, const char *err, const char *none)
{
    if (!err[0])
        return none;
    return n && n->secret ? "it is malformed; the value from ${env:} or ${file:} is not shown"
                          : err;
}

/* URLs can carry credentials in the user part or the query: show the scheme only. */
static struct r2m_excerpt shown_url(const node *n, const char *s)
{
    const char *sep = strstr(s, "://");
    if (!n->secret && !sep && strchr(s, '@')) {
        struct r2m_excerpt e;
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
    return quote(tmp);
}

/* Expands n's text into n->val once. 0, or -1 (reported, also on later calls). */
static int expand(struct ctx *c, node *n)
{
    if (n->state)
        return n->state == 1 ? 0 : -1;
    int rc = r2m_expand(n->text, n->len, &c->dl, n->line, n->col, &n->val, &n->secret);
    n->state = rc ? 2 : 1;
    return rc ? -1 : 0;
}

/* The expanded text of the scalar v (read for `key`), or NULL after reporting why not.
 * `expect` completes "expected ..." in messages. */
static const char *get_scalar(struct ctx *c, node *v, const char *key, const char *expect)
{
    if (v->type == N_ALIAS)
        return NULL;
    if (v->type != N_SCALAR) {
        err_at(c, v, "%s: expected %s, got %s", key, expect, r2m_yamltree_kind(v));
        return NULL;
    }
    if (r2m_yamltree_is_null(v)) {
        err_at(c, v, "%s: expected %s, got nothing; give a value or remove the key", key, expect);
        return NULL;
    }
    if (expand(c, v))
        return NULL;
    return v->val;
}

static int get_string(struct ctx *c, node *v, const char *key, int nonempty, char **out)
{
    const char *s = get_scalar(c, v, key, "a text value");
    if (!s)
        return -1;
    if (nonempty && !*s) {
        err_at(c, v, "%s: must not be empty; give a value or remove the key", key);
        return -1;
    }
    set_str(c, out, s);
    return c->dl.nomem ? -1 : 0;
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

static int get_uint(struct ctx *c, node *v, const char *key, const char *expect, uint64_t min,
                    uint64_t max, uint64_t *out)
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

/* Accepts a mapping (or nothing, treated as an empty one). 1 to read it, 0 to skip. */
static int want_map(struct ctx *c, node *v, const char *key)
{
    if (v->type == N_MAP)
        return 1;
    if (v->type == N_ALIAS || r2m_yamltree_is_null(v))
        return 0;
    err_at(c, v, "%s: expected a mapping (indented 'key: value' lines), got %s", key,
           r2m_yamltree_kind(v));
    return 0;
}

/* Values that become part of a request (URLs, header names and values,
 * credentials) must not hold CR or LF: a line break would end the header
 * or request line and start one the server takes for another header. NUL
 * is refused for every value by expand(). 0, or -1 after reporting. */
static int one_line(struct ctx *c, const node *n, const char *key, const char *s)
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

/* A TLS file must be readable now, not at the first connection: 0, or -1
 * after reporting. Opened without blocking, like ${file:}. */
static int tls_file(struct ctx *c, const node *n, const char *key, const char *path)
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

/* A JSON Pointer without '*' patterns: 0, or R2M_E_INVALID with err filled
 * when the pointer library says why (err stays "" for a '*'). */
static int exact_pointer(const char *s, char *err, size_t errlen)
{
    if (r2m_json_pointer_check(s, err, errlen) || strstr(s, "/*"))
        return R2M_E_INVALID;
    return 0;
}

#define FIELD(base, k, type) ((type *)((char *)(base) + (k)->off))

/* ---- parsers for the common types ------------------------------------------- */

/* Text; flags F_NONEMPTY, F_ONE_LINE, F_TLS_FILE. */
static int parse_string(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    char **f = FIELD(base, k, char *);
    if (get_string(c, v, label, !!(k->flags & F_NONEMPTY), f))
        return -1;
    if ((k->flags & F_ONE_LINE) && one_line(c, v, label, *f))
        return -1;
    if ((k->flags & F_TLS_FILE) && tls_file(c, v, label, *f))
        return -1;
    return 0;
}

static int parse_bool(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    const char *s = get_scalar(c, v, label, "true or false");
    if (!s)
        return -1;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *FIELD(base, k, int) = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *FIELD(base, k, int) = 0;
    else {
        err_at(c, v, "%s: expected true or false, got %s", label, shown(v, s).s);
        return -1;
    }
    return 0;
}

/* A whole number from k->min to k->max into an unsigned or a uint64_t field. */
static int parse_uint(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    uint64_t n;
    if (get_uint(c, v, label, k->expect, (uint64_t)k->min, k->max, &n))
        return -1;
    if (k->size == sizeof(uint64_t))
        *FIELD(base, k, uint64_t) = n;
    else
        *FIELD(base, k, unsigned) = (unsigned)n;
    return 0;
}

static const char duration_expect[] = "a duration like 30s or 250ms";

/* A duration from k->min ms to 365 days, and to k->max ms (k->too_big) when set. */
static int parse_duration(struct ctx *c, const struct key *k, const char *label, node *v,
                          void *base)
{
    const char *s = get_scalar(c, v, label, duration_expect);
    if (!s)
        return -1;
    int64_t ms;
    if (r2m_units_duration(s, &ms)) {
        err_at(c, v, "%s: expected %s (units ms, s, m, h, d; combined like 1m30s), got %s", label,
               duration_expect, shown(v, s).s);
        return -1;
    }
    if (ms > R2M_DURATION_MAX_MS) {
        err_at(c, v, "%s: must be at most 365d, got %s", label, shown(v, s).s);
        return -1;
    }
    if (ms < k->min) {
        if (k->min == 1)
            err_at(c, v, "%s: must be longer than 0, got %s", label, shown(v, s).s);
        else
            err_at(c, v, "%s: must be at least %lldms, got %s", label, (long long)k->min,
                   shown(v, s).s);
        return -1;
    }
    if (k->max && (uint64_t)ms > k->max) {
        err_at(c, v, "%s: %s", label, k->too_big);
        return -1;
    }
    *FIELD(base, k, int64_t) = ms;
    return 0;
}

/* A size (r2m/units.h) from k->min to k->max bytes. */
static int parse_size(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    const char *s = get_scalar(c, v, label, k->expect);
    if (!s)
        return -1;
    uint64_t b;
    if (r2m_units_size(s, &b) || b < (uint64_t)k->min || b > k->max) {
        err_at(c, v, "%s: expected %s, got %s", label, k->explain, shown(v, s).s);
        return -1;
    }
    *FIELD(base, k, uint64_t) = b;
    return 0;
}

/* A percentage from 0% to 100%, stored as a fraction. */
static int parse_fraction(struct ctx *c, const struct key *k, const char *label, node *v,
                          void *base)
{
    const char *s = get_scalar(c, v, label, k->expect);
    if (!s)
        return -1;
    double pct;
    if (r2m_units_percent(s, &pct) || pct > 100) {
        err_at(c, v, "%s: expected a percentage from 0%% to 100%% like 10%%, got %s", label,
               shown(v, s).s);
        return -1;
    }
    *FIELD(base, k, double) = pct / 100.0;
    return 0;
}

/* One word of k->choices, stored as its value in an int field. */
static int parse_enum(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    const char *s = get_scalar(c, v, label, k->expect);
    if (!s)
        return -1;
    for (const struct choice *ch = k->choices; ch->word; ch++) {
        if (!strcmp(s, ch->word)) {
            *FIELD(base, k, int) = ch->value;
            return 0;
        }
    }
    err_at(c, v, "%s: expected %s, got %s", label, k->explain ? k->explain : k->expect,
           shown(v, s).s);
    return -1;
}

/* A topic template; {key} and {op} only with F_ALLOW_KEY. */
static int parse_topic(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    const char *s = get_scalar(c, v, label, k->expect);
    if (!s)
        return -1;
    char err[256] = "";
    if (r2m_topic_check(s, !!(k->flags & F_ALLOW_KEY), err, sizeof err)) {
        err_at(c, v, "%s: %s", label, pointer_why(v, err, err));
        return -1;
    }
    set_str(c, FIELD(base, k, char *), s);
    return c->dl.nomem ? -1 : 0;
}

/* ---- freeing ------------------------------------------------------------------------ */

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

static void endpoint_free(struct r2m_endpoint_cfg *e)
{
    free(e->name);
    free(e->url);
    free(e->method);
    secret_free(e->body);
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

/* ---- sections ----------------------------------------------------------------- */

static const struct section sec_top, sec_endpoint;
#define N_SECTIONS 11
static const struct section *const sections[N_SECTIONS];

/* For a key written at the top level that belongs to a section: where it goes,
 * e.g. "defaults: or an endpoint entry". NULL when it belongs nowhere. */
static const char *placement(const char *name, char *out, size_t outlen)
{
    size_t off = 0, found = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_SECTIONS; i++) {
        const struct section *sec = sections[i];
        size_t j = 0;
        while (sec->place && j < sec->n && strcmp(name, sec->keys[j].name))
            j++;
        if (!sec->place || j == sec->n)
            continue;
        if (off < outlen)
            off +=
                (size_t)snprintf(out + off, outlen - off, "%s%s", found ? " or " : "", sec->place);
        found++;
    }
    return found ? out : NULL;
}

/* An unknown key k of sec: the best hint there is. */
static void unknown_key(struct ctx *c, const struct section *sec, const node *k, const char *where)
{
    const char *names[MAX_KEYS];
    for (size_t m = 0; m < sec->n; m++)
        names[m] = sec->keys[m].name;
    const char *s = r2m_diag_suggest(k->text, names, sec->n);
    char place[128];
    if (sec == &sec_top && placement(k->text, place, sizeof place)) {
        err_at(c, k, "unknown key %s at the top level; it belongs under %s", quote(k->text).s,
               place);
    } else if (s) {
        err_at(c, k, "unknown key %s %s; did you mean '%s'?", quote(k->text).s, where, s);
    } else {
        char list[512];
        size_t off = 0;
        for (size_t m = 0; m < sec->n && off < sizeof list; m++)
            off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", m ? ", " : "", names[m]);
        err_at(c, k, "unknown key %s %s; valid keys here are: %s", quote(k->text).s, where, list);
    }
}

/* Sorts the pairs of mapping `map` into slots (one per key of sec, in table
 * order); reports unknown and duplicate keys. */
static void collect(struct ctx *c, const struct section *sec, node *map, struct slot *slots)
{
    char where[192];
    int both = sec->per_endpoint && *sec->where;
    snprintf(where, sizeof where, "%s%s%s", sec->where, both ? " " : "",
             sec->per_endpoint ? c->where : "");
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        node *k = map->kid[i], *v = map->kid[i + 1];
        if (k->type == N_ALIAS)
            continue;
        if (k->type != N_SCALAR) {
            err_at(c, k,
                   "keys must be plain words like 'url', got %s as a key %s; check the "
                   "indentation",
                   r2m_yamltree_kind(k), where);
            continue;
        }
        size_t j = 0;
        while (j < sec->n && (strlen(k->text) != k->len || strcmp(k->text, sec->keys[j].name)))
            j++;
        if (j == sec->n)
            unknown_key(c, sec, k, where);
        else if (slots[j].key)
            err_at(c, k, "duplicate key '%s' %s (first at line %d); remove one of them",
                   sec->keys[j].name, where, slots[j].key->line);
        else
            slots[j] = (struct slot){k, v};
    }
}

/* Reads the value of every given key of sec (slots from collect()) with
 * its parser. *set gets 1 << i for each key read without error. */
static void read_keys(struct ctx *c, const struct section *sec, struct slot *s, void *base,
                      unsigned *set)
{
    for (size_t i = 0; i < sec->n; i++) {
        const struct key *k = &sec->keys[i];
        if (!s[i].val || !k->parse)
            continue;
        char label[64];
        snprintf(label, sizeof label, "%s%s", sec->prefix, k->name);
        if (!k->parse(c, k, label, s[i].val, base))
            *set |= 1u << i;
    }
}

/* A whole sub-mapping read by its own table: mqtt:, state:, tls:, ... */
static int parse_section(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    const struct section *sec = k->sub;
    struct slot s[MAX_KEYS] = {{0}};
    unsigned set = 0;
    (void)label;
    if (!want_map(c, v, sec->name))
        return -1;
    collect(c, sec, v, s);
    read_keys(c, sec, s, base, &set);
    int bad = 0;
    for (size_t i = 0; i < sec->n; i++)
        if (s[i].val && !(set & (1u << i)))
            bad = 1;
    /* the rules across keys run even when a key was bad: all problems are reported */
    if (sec->validate && sec->validate(c, v, s, set, base))
        bad = 1;
    return bad ? -1 : 0;
}

/* ---- endpoint keys ------------------------------------------------------------- */

#define EP(base) ((struct r2m_endpoint_cfg *)(base))

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

static int parse_name(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    const char *name = get_scalar(c, v, label, k->expect);
    if (!name)
        return -1;
    if (!valid_name(name)) {
        err_at(c, v,
               "name: expected 1 to %d characters of a-z, 0-9, '_' and '-', got %s; "
               "use lower case, e.g. 'flight-lh123'",
               NAME_MAX_LEN, shown(v, name).s);
        return -1;
    }
    return (EP(base)->name = dup_str(c, name)) ? 0 : -1;
}

static int parse_url(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    const char *str = get_scalar(c, v, label, k->expect);
    if (!str)
        return -1;
    if (strncasecmp(str, "http://", 7) && strncasecmp(str, "https://", 8) &&
        strncasecmp(str, "file://", 7)) {
        err_at(c, v, "url: expected a URL starting with http://, https:// or file://, got %s",
               shown_url(v, str).s);
        return -1;
    }
    if (!strcmp(strstr(str, "://"), "://")) {
        err_at(c, v,
               "url: the URL has nothing after the scheme; write e.g. "
               "https://api.example/items");
        return -1;
    }
    if (one_line(c, v, label, str))
        return -1;
    return (EP(base)->url = dup_str(c, str)) ? 0 : -1;
}

static int parse_method(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    const char *str = get_scalar(c, v, label, k->expect);
    if (!str)
        return -1;
    if (strcasecmp(str, "GET") && strcasecmp(str, "POST")) {
        err_at(c, v, "method: expected GET or POST, got %s", shown(v, str).s);
        return -1;
    }
    const char *m = toupper((unsigned char)str[0]) == 'G' ? "GET" : "POST";
    return (EP(base)->method = dup_str(c, m)) ? 0 : -1;
}

/* headers: { Name: value, ... }; a bad header is reported and skipped. */
static int parse_headers(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    struct r2m_endpoint_cfg *e = EP(base);
    (void)k;
    if (!want_map(c, v, label))
        return 0;
    size_t n = v->n / 2;
    if (n > MAX_HEADERS) {
        err_at(c, v, "headers: more than %d headers; keep only the ones the API needs",
               MAX_HEADERS);
        return 0;
    }
    e->headers = calloc(n ? n : 1, sizeof *e->headers);
    if (!e->headers) {
        c->dl.nomem = 1;
        return 0;
    }
    for (size_t i = 0; i < n && !c->dl.nomem; i++) {
        node *kn = v->kid[2 * i], *val = v->kid[2 * i + 1];
        if (kn->type == N_ALIAS)
            continue;
        if (kn->type != N_SCALAR || !valid_header_name(kn->text, kn->len)) {
            err_at(c, kn,
                   "headers: %s is not a valid header name; use letters, digits and '-' like "
                   "X-Api-Key",
                   kn->type == N_SCALAR ? quote(kn->text).s : r2m_yamltree_kind(kn));
            continue;
        }
        size_t first = 0;
        while (first < i && (v->kid[2 * first]->type != N_SCALAR ||
                             strcasecmp(v->kid[2 * first]->text, kn->text)))
            first++;
        if (first < i) {
            err_at(c, kn,
                   "headers: duplicate header %s (first at line %d; names are "
                   "case-insensitive); remove one of them",
                   quote(kn->text).s, v->kid[2 * first]->line);
            continue;
        }
        char what[96];
        snprintf(what, sizeof what, "header %s", quote(kn->text).s);
        const char *s = get_scalar(c, val, what, "a text value");
        if (!s || one_line(c, val, what, s))
            continue;
        struct r2m_header *h = &e->headers[e->n_headers++];
        h->name = dup_str(c, kn->text);
        h->value = dup_str(c, s);
    }
    return 0;
}

/* ignore: a JSON Pointer pattern or a list of them; a bad one is reported and skipped. */
static int parse_ignore(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    struct r2m_endpoint_cfg *e = EP(base);
    node *one[1] = {v};
    node **items = one;
    size_t n = 1;
    if (v->type == N_ALIAS || r2m_yamltree_is_null(v))
        return 0;
    if (v->type == N_SEQ) {
        items = v->kid;
        n = v->n;
    } else if (v->type != N_SCALAR) {
        err_at(c, v, "ignore: expected a list of JSON Pointers like [/updatedAt, /meta/*], got %s",
               r2m_yamltree_kind(v));
        return 0;
    }
    e->ignore = calloc(n ? n : 1, sizeof *e->ignore);
    if (!e->ignore) {
        c->dl.nomem = 1;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = get_scalar(c, items[i], label, k->expect);
        if (!s)
            continue;
        char err[256] = "";
        if (r2m_json_pointer_check(s, err, sizeof err)) {
            err_at(c, items[i],
                   "ignore: %s is not a valid JSON Pointer pattern (%s); write "
                   "pointers like /updatedAt or /meta/*",
                   shown(items[i], s).s, pointer_why(items[i], err, err));
            continue;
        }
        char *d = dup_str(c, s);
        if (d)
            e->ignore[e->n_ignore++] = d;
    }
    return 0;
}

static int parse_items(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    const char *str = get_scalar(c, v, label, k->expect);
    if (!str)
        return -1;
    char err[256] = "";
    if (exact_pointer(str, err, sizeof err)) {
        err_at(c, v,
               "items: %s is not a JSON Pointer (%s); write e.g. /data/items, or \"\" "
               "when the document itself is the list",
               shown(v, str).s, pointer_why(v, err, "'*' is not allowed here"));
        return -1;
    }
    return (EP(base)->items = dup_str(c, str)) ? 0 : -1;
}

/* key: one JSON Pointer or a list of them (composite key). */
static int parse_key(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    struct r2m_endpoint_cfg *e = EP(base);
    node *one[1] = {v};
    node **items = one;
    size_t n = 1;
    if (v->type == N_ALIAS)
        return -1;
    if (v->type == N_SEQ) {
        items = v->kid;
        n = v->n;
    } else if (v->type != N_SCALAR) {
        err_at(c, v,
               "key: expected a JSON Pointer like /id, or a list like [/order, /line], got %s",
               r2m_yamltree_kind(v));
        return -1;
    }
    if (n == 0 || n > 8) {
        err_at(c, v, "key: expected 1 to 8 JSON Pointers, got %zu", n);
        return -1;
    }
    e->key = calloc(n, sizeof *e->key);
    if (!e->key) {
        c->dl.nomem = 1;
        return -1;
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = get_scalar(c, items[i], label, k->expect);
        if (!s) {
            bad = 1;
            continue;
        }
        char err[256] = "";
        if (!*s || exact_pointer(s, err, sizeof err)) {
            err_at(c, items[i], "key: %s is not a JSON Pointer into an item (%s); write e.g. /id",
                   shown(items[i], s).s,
                   pointer_why(items[i], err, *s ? "'*' is not allowed" : "empty"));
            bad = 1;
            continue;
        }
        char *d = dup_str(c, s);
        if (d)
            e->key[e->n_key++] = d;
    }
    return bad ? -1 : 0;
}

static int parse_accept(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    struct r2m_endpoint_cfg *e = EP(base);
    if (v->type != N_SEQ || v->n == 0 || v->n > 32) {
        err_at(c, v, "accept_status: expected a list of 1 to 32 HTTP statuses like [200, 203]");
        return -1;
    }
    e->accept_status = calloc(v->n, sizeof *e->accept_status);
    if (!e->accept_status) {
        c->dl.nomem = 1;
        return -1;
    }
    for (size_t i = 0; i < v->n; i++) {
        uint64_t st;
        if (get_uint(c, v->kid[i], label, k->expect, (uint64_t)k->min, k->max, &st))
            return -1;
        e->accept_status[e->n_accept_status++] = (int)st;
    }
    return 0;
}

static const struct section sec_auth, sec_error_if, sec_paginate;
enum { A_TYPE, A_USER, A_PASS, A_TOKEN, A_NAME, A_VALUE, A_URL, A_ID, A_SECRET, A_SCOPE, A__N };

/* auth: { type: basic|bearer|header|query|oauth2, ... } with exactly the
 * fields its type needs; nothing of it is kept unless all of it is valid. */
static int parse_auth(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
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
    struct slot s[MAX_KEYS] = {{0}};
    struct r2m_auth *a = &EP(base)->auth;
    unsigned set = 0;
    int bad = 0;
    (void)k;
    if (!want_map(c, v, label))
        return -1;
    collect(c, &sec_auth, v, s);
    if (!s[A_TYPE].val) {
        err_at(c, v, "auth: needs type: basic, bearer, header, query or oauth2");
        return -1;
    }
    if (sec_auth.keys[A_TYPE].parse(c, &sec_auth.keys[A_TYPE], "auth.type", s[A_TYPE].val, base))
        return -1;
    const char *t = s[A_TYPE].val->val;
    size_t ti = 0;
    while (types[ti].type != a->type)
        ti++;
    unsigned allowed = types[ti].need | (a->type == R2M_AUTH_OAUTH2 ? 1u << A_SCOPE : 0);
    for (int f = A_USER; f < A__N; f++) {
        if (s[f].key && !(allowed & (1u << f))) {
            err_at(c, s[f].key, "auth: '%s' does not apply to type %s; remove it",
                   sec_auth.keys[f].name, t);
            bad = 1;
        } else if (!s[f].key && (types[ti].need & (1u << f))) {
            err_at(c, v, "auth: type %s needs '%s'", t, sec_auth.keys[f].name);
            bad = 1;
        }
    }
    if (bad)
        goto out;
    s[A_TYPE].val = NULL; /* read above */
    read_keys(c, &sec_auth, s, base, &set);
    for (int f = A_USER; f < A__N; f++)
        if (s[f].val && !(set & (1u << f)))
            bad = 1;
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
out:
    if (bad)
        auth_free(a);
    return bad ? -1 : 0;
}

/* error_if: { pointer: /status, equals: error } - both, or nothing is kept. */
static int parse_error_if(struct ctx *c, const struct key *k, const char *label, node *v,
                          void *base)
{
    struct slot s[MAX_KEYS] = {{0}};
    struct r2m_endpoint_cfg *e = EP(base);
    (void)k;
    if (!want_map(c, v, label))
        return -1;
    collect(c, &sec_error_if, v, s);
    if (!s[0].val || !s[1].val) {
        err_at(c, v,
               "error_if: needs pointer: and equals:, e.g. { pointer: /status, equals: "
               "error }");
        return -1;
    }
    const char *ptr = get_scalar(c, s[0].val, "error_if.pointer", sec_error_if.keys[0].expect);
    if (!ptr)
        return -1;
    char err[256] = "";
    if (exact_pointer(ptr, err, sizeof err)) {
        err_at(c, s[0].val, "error_if.pointer: %s is not a JSON Pointer (%s)",
               shown(s[0].val, ptr).s, pointer_why(s[0].val, err, "'*' is not allowed"));
        return -1;
    }
    const char *eq = get_scalar(c, s[1].val, "error_if.equals", sec_error_if.keys[1].expect);
    if (!eq)
        return -1;
    e->error_if.pointer = dup_str(c, ptr);
    e->error_if.equals = dup_str(c, eq);
    return e->error_if.pointer && e->error_if.equals ? 0 : -1;
}

/* paginate.next: link, or a JSON Pointer to the next page's URL. */
static int paginate_next(struct ctx *c, struct r2m_endpoint_cfg *e, const struct slot *s, node *v,
                         const char *next)
{
    char err[256] = "";
    if (s[1].val || s[2].val || s[3].val) {
        err_at(c, v, "paginate: next: cannot be combined with cursor:, param: or start:");
        return -1;
    }
    if (!strcmp(next, "link")) {
        e->paginate.kind = R2M_PAGE_LINK;
        return 0;
    }
    if (!*next || exact_pointer(next, err, sizeof err)) {
        err_at(c, s[0].val,
               "paginate.next: expected link (the Link: rel=\"next\" header) or a JSON "
               "Pointer to the next page's URL like /links/next, got %s",
               shown(s[0].val, next).s);
        return -1;
    }
    e->paginate.kind = R2M_PAGE_NEXT;
    return (e->paginate.pointer = dup_str(c, next)) ? 0 : -1;
}

/* paginate: { next: link } | { next: /pointer } | { cursor: /pointer, param: cursor }
 *         | { param: page, start: 1 } */
static int parse_paginate(struct ctx *c, const struct key *k, const char *label, node *v,
                          void *base)
{
    struct slot s[MAX_KEYS] = {{0}};
    struct r2m_endpoint_cfg *e = EP(base);
    const struct key *pk = sec_paginate.keys;
    (void)k;
    if (!want_map(c, v, label))
        return -1;
    collect(c, &sec_paginate, v, s);
    const char *next = s[0].val ? get_scalar(c, s[0].val, "paginate.next", pk[0].expect) : NULL;
    const char *cur = s[1].val ? get_scalar(c, s[1].val, "paginate.cursor", pk[1].expect) : NULL;
    const char *param = s[2].val ? get_scalar(c, s[2].val, "paginate.param", pk[2].expect) : NULL;
    if ((s[0].val && !next) || (s[1].val && !cur) || (s[2].val && !param))
        return -1;
    if (param && (!*param || strpbrk(param, "&=?# /"))) {
        err_at(c, s[2].val, "paginate.param: %s is not a plain query parameter name",
               shown(s[2].val, param).s);
        return -1;
    }
    if (next)
        return paginate_next(c, e, s, v, next);
    if (cur) {
        char err[256] = "";
        if (!param || s[3].val) {
            err_at(c, v,
                   "paginate: cursor: needs param: (the query parameter that carries the "
                   "cursor) and takes no start:");
            return -1;
        }
        if (!*cur || exact_pointer(cur, err, sizeof err)) {
            err_at(c, s[1].val, "paginate.cursor: expected a JSON Pointer like /next_cursor");
            return -1;
        }
        e->paginate.kind = R2M_PAGE_CURSOR;
        e->paginate.pointer = dup_str(c, cur);
        e->paginate.param = dup_str(c, param);
        return e->paginate.pointer && e->paginate.param ? 0 : -1;
    }
    if (param) {
        uint64_t start = 1;
        if (s[3].val && get_uint(c, s[3].val, "paginate.start", pk[3].expect, 0, 1000000, &start))
            return -1;
        e->paginate.kind = R2M_PAGE_NUMBER;
        e->paginate.start = (int64_t)start;
        return (e->paginate.param = dup_str(c, param)) ? 0 : -1;
    }
    err_at(c, v,
           "paginate: expected { next: link }, { next: /pointer }, { cursor: /pointer, "
           "param: cursor } or { param: page, start: 1 }");
    return -1;
}

/* tls: (of an endpoint and of mqtt:) a client key needs its certificate. */
static int validate_ep_tls(struct ctx *c, const node *map, const struct slot *s, unsigned set,
                           void *base)
{
    (void)map, (void)set, (void)base;
    if (s[2].val && !s[1].val) {
        err_at(c, s[2].key, "tls.key_file needs cert_file too; add the client certificate");
        return -1;
    }
    return 0;
}

static int validate_mqtt_tls(struct ctx *c, const node *map, const struct slot *s, unsigned set,
                             void *base)
{
    (void)map, (void)set, (void)base;
    if (s[2].val && !s[1].val) {
        err_at(c, s[2].key,
               "mqtt.tls.key_file needs cert_file too; add the client certificate or remove "
               "key_file");
        return -1;
    }
    return 0;
}

/* ---- global keys ------------------------------------------------------------------ */

#define CFG(base) ((struct r2m_config *)(base))

static int parse_mqtt_url(struct ctx *c, const struct key *k, const char *label, node *v,
                          void *base)
{
    static const char *const schemes[] = {"mqtt://", "mqtts://", "tcp://",
                                          "ssl://",  "ws://",    "wss://"};
    const char *str = get_scalar(c, v, label, k->expect);
    if (!str)
        return -1;
    size_t i = 0;
    while (i < ARRAY_LEN(schemes) && strncasecmp(str, schemes[i], strlen(schemes[i])))
        i++;
    if (i == ARRAY_LEN(schemes)) {
        err_at(c, v,
               "mqtt.url: expected a URL starting with mqtt://, mqtts://, tcp://, ssl://, "
               "ws:// or wss://, got %s",
               shown_url(v, str).s);
        return -1;
    }
    if (str[strlen(schemes[i])] == '\0') {
        err_at(c, v, "mqtt.url: the URL has no host; write e.g. mqtt://broker.example:1883");
        return -1;
    }
    if (one_line(c, v, label, str))
        return -1;
    char **url = &CFG(base)->mqtt.url;
    set_str(c, url, str);
    /* paho matches schemes case-sensitively: "MQTTS://" would be taken for
     * a plaintext host name */
    for (char *q = *url; q && *q != ':'; q++)
        *q = (char)tolower((unsigned char)*q);
    return 0;
}

static int parse_topic_prefix(struct ctx *c, const struct key *k, const char *label, node *v,
                              void *base)
{
    const char *str = get_scalar(c, v, label, k->expect);
    if (!str)
        return -1;
    if (!*str)
        err_at(c, v, "mqtt.topic_prefix: must not be empty; write e.g. rest2mqtt or site/a");
    else if (strpbrk(str, "+#"))
        err_at(c, v,
               "mqtt.topic_prefix: must not contain '+' or '#' (MQTT wildcards); use "
               "plain topic levels like rest2mqtt or site/a");
    else if (str[0] == '$')
        err_at(c, v,
               "mqtt.topic_prefix: must not start with '$' (reserved for broker topics); "
               "write e.g. rest2mqtt");
    else {
        set_str(c, &CFG(base)->mqtt.topic_prefix, str);
        return 0;
    }
    return -1;
}

/* mqtt.tls: set with a plaintext URL would send the password unencrypted. */
enum { M_TLS = 9 }; /* index of tls in mqtt_keys */
static int validate_mqtt(struct ctx *c, const node *map, const struct slot *s, unsigned set,
                         void *base)
{
    (void)map, (void)set;
    if (!s[M_TLS].key)
        return 0;
    const char *u = CFG(base)->mqtt.url ? CFG(base)->mqtt.url : "";
    if (!strncmp(u, "mqtt://", 7) || !strncmp(u, "tcp://", 6) || !strncmp(u, "ws://", 5)) {
        err_at(c, s[M_TLS].key,
               "mqtt.tls: set, but mqtt.url (%.*s...) is plaintext: the broker would get the "
               "password unencrypted; use mqtts://, ssl:// or wss://, or remove tls:",
               (int)(strchr(u, ':') - u) + 3, u);
        return -1;
    }
    return 0;
}

static int parse_log_level(struct ctx *c, const struct key *k, const char *label, node *v,
                           void *base)
{
    const char *str = get_scalar(c, v, label, k->expect);
    if (!str)
        return -1;
    int l = r2m_log_level_parse(str);
    if (l < 0) {
        err_at(c, v, "log.level: expected one of error, warn, info, debug, got %s",
               shown(v, str).s);
        return -1;
    }
    CFG(base)->log.level = l;
    return 0;
}

/* metrics.listen: HOST:PORT, host an IPv4 literal. */
static int parse_listen(struct ctx *c, const struct key *k, const char *label, node *v, void *base)
{
    const char *str = get_scalar(c, v, label, k->expect);
    if (!str)
        return -1;
    const char *colon = strrchr(str, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    char host[64];
    struct in_addr a;
    if (!colon || colon == str || (size_t)(colon - str) >= sizeof host || !end || *end ||
        port < 1 || port > 65535) {
        err_at(c, v, "metrics.listen: expected HOST:PORT like 127.0.0.1:9464, got %s",
               shown(v, str).s);
        return -1;
    }
    memcpy(host, str, (size_t)(colon - str));
    host[colon - str] = '\0';
    if (inet_pton(AF_INET, host, &a) != 1) {
        err_at(c, v,
               "metrics.listen: %s is not an IPv4 address; use 127.0.0.1 (local only) or "
               "0.0.0.0 (all interfaces, e.g. in a container)",
               quote(host).s);
        return -1;
    }
    set_str(c, &CFG(base)->metrics.listen, str);
    return 0;
}

/* ---- endpoints: entries, defaults and the merge -------------------------------------- */

/* endpoint_keys[] in this order; also the bits of struct part. */
enum ekey {
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

/* What one endpoint entry (or defaults:) says; merged later. */
struct part {
    struct r2m_endpoint_cfg v; /* the keys given and valid, else zero */
    node *map;                 /* NULL: nothing to merge (not a mapping) */
    node *at[E__N];            /* each key's value */
    unsigned set;              /* 1 << E_*: given and valid */
    unsigned present;          /* 1 << E_*: given, valid or not */
};

/* What an endpoint is when neither its entry nor defaults: says otherwise
 * (the topic's default depends on items: and is set by validate_endpoint). */
static const struct r2m_endpoint_cfg builtin = {
    .method = (char *)"GET",
    .interval_ms = 30000,
    .timeout_ms = 10000,
    .jitter = 0.1,
    .max_body = 32ull << 20,
    .max_depth = 64,
    .payload = R2M_PAYLOAD_FULL,
    .initial_emit = 0,
    .max_backoff_ms = 300000,
    .max_pages = 100,
    .redirects = R2M_REDIRECTS_SAME_ORIGIN,
};

static void endpoint_free(struct r2m_endpoint_cfg *e);

/* Reads one endpoint entry (index >= 1) or the defaults: mapping (index 0). */
static void read_endpoint(struct ctx *c, struct part *p, node *map, size_t index)
{
    char where[128];
    struct slot s[MAX_KEYS] = {{0}};
    const struct section *sec = &sec_endpoint;

    if (map->type == N_ALIAS)
        return;
    if (index == 0 && !want_map(c, map, "defaults"))
        return;
    if (map->type != N_MAP) {
        err_at(c, map,
               "endpoints: expected a mapping for each endpoint (name: ..., url: ...), "
               "got %s",
               r2m_yamltree_kind(map));
        return;
    }
    p->map = map;
    snprintf(where, sizeof where, "in defaults");
    if (index) {
        /* the name first, so that every other message can say which endpoint */
        node *nv = r2m_yamltree_find(map, "name");
        const struct key *k = &sec->keys[E_NAME];
        if (nv) {
            p->present |= 1u << E_NAME;
            p->at[E_NAME] = nv;
            if (!k->parse(c, k, k->name, nv, &p->v))
                p->set |= 1u << E_NAME;
        }
        if (p->v.name)
            snprintf(where, sizeof where, "in endpoint '%s'", p->v.name);
        else
            snprintf(where, sizeof where, "in endpoint #%zu", index);
    }
    c->where = where;
    collect(c, sec, map, s);
    for (size_t k = 0; k < sec->n; k++)
        if (index == 0 && s[k].key && (sec->keys[k].flags & F_NOT_DEFAULTS))
            err_at(c, s[k].key, "'%s' cannot be set in defaults:; give each endpoint its own %s",
                   sec->keys[k].name, sec->keys[k].name);
    s[E_NAME].val = NULL; /* read above, or not allowed */
    for (size_t k = 0; k < sec->n; k++) {
        if (s[k].val) {
            p->present |= 1u << k;
            p->at[k] = s[k].val;
        }
    }
    read_keys(c, sec, s, &p->v, &p->set);
    c->where = NULL;
}

/* Copies field k from src to dst (both struct r2m_endpoint_cfg). */
static void copy_field(struct ctx *c, const struct key *k, void *dst, const void *src)
{
    const char *from = (const char *)src + k->off;
    char *to = (char *)dst + k->off;
    switch (k->store) {
    case ST_PLAIN:
        memcpy(to, from, k->size);
        break;
    case ST_STR:
        *(char **)to = dup_str(c, *(char *const *)from);
        break;
    case ST_UNIT:
        memcpy(to, from, k->size);
        for (const size_t *o = k->strs; *o != SIZE_MAX; o++)
            *(char **)((char *)dst + *o) = dup_str(c, *(char *const *)((const char *)src + *o));
        break;
    case ST_STRV:
    case ST_CONCAT:
    case ST_INTS:
    case ST_HEADERS:
        break; /* lists: merge_list() */
    }
}

/* Whether part q gives key k for the merge. */
static int gives(const struct key *k, const struct part *q, size_t i)
{
    if (k->store == ST_STR)
        return *(char *const *)((const char *)&q->v + k->off) != NULL;
    if (k->store == ST_STRV)
        return *(const size_t *)((const char *)&q->v + k->off_n) != 0;
    return !!(q->set & (1u << i));
}

/* headers: defaults: first, then the entry's, replacing by case-insensitive name. */
static void merge_headers(struct ctx *c, struct r2m_endpoint_cfg *e, const struct part *d,
                          const struct part *p)
{
    size_t nh = d->v.n_headers + p->v.n_headers;
    if (!nh)
        return;
    e->headers = calloc(nh, sizeof *e->headers);
    if (!e->headers) {
        c->dl.nomem = 1;
        return;
    }
    for (size_t i = 0; i < nh; i++) {
        const struct r2m_header *h =
            i < d->v.n_headers ? &d->v.headers[i] : &p->v.headers[i - d->v.n_headers];
        size_t j = 0;
        while (j < e->n_headers && strcasecmp(e->headers[j].name, h->name))
            j++;
        if (j == e->n_headers)
            e->n_headers++;
        free(e->headers[j].name);
        free(e->headers[j].value);
        e->headers[j].name = dup_str(c, h->name);
        e->headers[j].value = dup_str(c, h->value);
        if (c->dl.nomem)
            return; /* a NULL name must not reach strcasecmp */
    }
}

/* A list field: key: and accept_status: whole from the entry or defaults:,
 * ignore: both lists, headers: merged by name. */
static void merge_list(struct ctx *c, const struct key *k, struct r2m_endpoint_cfg *e,
                       const struct part *d, const struct part *p, size_t i)
{
    if (k->store == ST_HEADERS) {
        merge_headers(c, e, d, p);
        return;
    }
    const struct part *a = d, *b = p; /* ST_CONCAT: a's then b's */
    if (k->store != ST_CONCAT) {
        a = gives(k, p, i) ? p : d;
        b = NULL;
        if (!gives(k, a, i))
            return;
    }
    size_t na = *(const size_t *)((const char *)&a->v + k->off_n);
    size_t nb = b ? *(const size_t *)((const char *)&b->v + k->off_n) : 0;
    size_t elem = k->store == ST_INTS ? sizeof(int) : sizeof(char *);
    size_t *n = (size_t *)((char *)e + k->off_n);
    void **list = (void **)((char *)e + k->off);
    if (!na && !nb)
        return;
    if (!(*list = calloc(na + nb, elem))) {
        c->dl.nomem = 1;
        return;
    }
    for (size_t j = 0; j < na + nb; j++) {
        const struct r2m_endpoint_cfg *from = j < na ? &a->v : &b->v;
        size_t at = j < na ? j : j - na;
        const void *src = *(void *const *)((const char *)from + k->off);
        if (k->store == ST_INTS)
            ((int *)*list)[j] = ((const int *)src)[at];
        else
            ((char **)*list)[j] = dup_str(c, ((char *const *)src)[at]);
        (*n)++;
    }
}

/* Builds the final endpoint key by key: the entry's value, else defaults:',
 * else the built-in one. */
static void merge(struct ctx *c, struct r2m_endpoint_cfg *e, const struct part *d,
                  const struct part *p)
{
    const struct section *sec = &sec_endpoint;
    e->line = p->map->line;
    e->column = p->map->col;
    for (size_t i = 0; i < sec->n && !c->dl.nomem; i++) {
        const struct key *k = &sec->keys[i];
        if (k->store == ST_STRV || k->store == ST_CONCAT || k->store == ST_INTS ||
            k->store == ST_HEADERS) {
            merge_list(c, k, e, d, p, i);
            continue;
        }
        const void *src = gives(k, p, i) ? &p->v : gives(k, d, i) ? &d->v : &builtin;
        copy_field(c, k, e, src);
    }
}

/* The rules across an endpoint's keys, on the merged endpoint e. Positions
 * point at the entry's key when it gave one, else at the entry. */
static void validate_endpoint(struct ctx *c, struct r2m_endpoint_cfg *e, const struct part *d,
                              const struct part *p, size_t index)
{
    const node *map = p->map;
    char label[96];
    if (p->v.name)
        snprintf(label, sizeof label, "endpoint '%s'", p->v.name);
    else
        snprintf(label, sizeof label, "endpoint #%zu", index);

    if (!(p->present & (1u << E_NAME)))
        err_at(c, map,
               "%s has no name; add name: with a-z, 0-9, '_' and '-', e.g. "
               "name: shipments",
               label);
    if (!((p->present | d->present) & (1u << E_URL)))
        err_at(c, map, "%s has no url; add url: https://... (or file://...)", label);
    if (!e->topic)
        e->topic = dup_str(c, e->items ? "{prefix}/{endpoint}/{key}/{op}" : "{prefix}/{endpoint}");
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
    if (e->n_key && !e->items)
        err_at(c, p->at[E_KEY] ? p->at[E_KEY] : map,
               "%s has key: but no items:; key: names the identity of each item of a "
               "collection, so add items: (a JSON Pointer to the list, \"\" for the root)",
               label);
    if (!e->items) {
        /* a document has one topic: {key} and {op} have nothing to stand for */
        char err[256] = "";
        const node *t = p->at[E_TOPIC] && p->at[E_TOPIC]->state == 1 ? p->at[E_TOPIC] : map;
        const node *st = p->at[E_STATE_TOPIC];
        if (e->topic && r2m_topic_check(e->topic, 0, err, sizeof err))
            err_at(c, t, "topic: %s", pointer_why(p->at[E_TOPIC], err, err));
        if (e->state_topic && r2m_topic_check(e->state_topic, 0, err, sizeof err))
            err_at(c, map, "state_topic: %s", pointer_why(st, err, err));
    }
    if (e->body && e->method && strcmp(e->method, "POST")) {
        const node *at = p->at[E_BODY] ? p->at[E_BODY] : p->at[E_METHOD] ? p->at[E_METHOD] : map;
        err_at(c, at, "%s has a body but its method is %s; set method: POST or remove body", label,
               e->method);
    }
}

struct seen_name {
    const char *name;
    const node *node;
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

/* endpoints: every entry merged with defaults: (c->defs, read before). */
static int parse_endpoints(struct ctx *c, const struct key *k, const char *label, node *v,
                           void *base)
{
    struct r2m_config *cfg = CFG(base);
    struct seen_name *seen = NULL;
    size_t n_seen = 0;
    (void)k, (void)label;
    if (v->type == N_ALIAS || c->dl.nomem)
        return -1;
    if (r2m_yamltree_is_null(v) || (v->type == N_SEQ && v->n == 0)) {
        err_at(c, v, "endpoints: the list is empty; add at least one endpoint with name: and url:");
        return -1;
    }
    if (v->type != N_SEQ) {
        err_at(c, v, "endpoints: expected a list of endpoints (lines starting with '- '), got %s",
               r2m_yamltree_kind(v));
        return -1;
    }
    cfg->endpoints = calloc(v->n, sizeof *cfg->endpoints);
    seen = calloc(v->n, sizeof *seen);
    if (!cfg->endpoints || !seen) {
        c->dl.nomem = 1;
        goto out;
    }
    cfg->n_endpoints = v->n;
    for (size_t i = 0; i < v->n && !c->dl.nomem; i++) {
        struct part p = {0};
        read_endpoint(c, &p, v->kid[i], i + 1);
        if (p.map && !c->dl.nomem) {
            merge(c, &cfg->endpoints[i], c->defs, &p);
            if (!c->dl.nomem)
                validate_endpoint(c, &cfg->endpoints[i], c->defs, &p, i + 1);
        }
        if (cfg->endpoints[i].name)
            seen[n_seen++] = (struct seen_name){cfg->endpoints[i].name, p.at[E_NAME]};
        endpoint_free(&p.v);
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
out:
    free(seen);
    return 0;
}

static int parse_defaults(struct ctx *c, const struct key *k, const char *label, node *v,
                          void *base)
{
    (void)k, (void)label, (void)base;
    read_endpoint(c, c->defs, v, 0);
    return 0;
}

/* The rules across top-level keys. */
enum { T_ENDPOINTS = 4, T_MAX_CONCURRENT = 8, T_MAX_PER_HOST = 9 }; /* in top_keys */
static int validate_top(struct ctx *c, const node *root, const struct slot *s, unsigned set,
                        void *base)
{
    struct r2m_config *cfg = CFG(base);
    int bad = 0;
    /* 8 per origin by default: a legacy API behind one small server must not
     * see hundreds of parallel requests from us, and 8 still lets many
     * endpoints on one host be polled side by side (browsers use 6) */
    unsigned dflt = cfg->max_concurrent < 8 ? cfg->max_concurrent : 8;
    if (!(set & (1u << T_MAX_PER_HOST))) {
        cfg->max_per_host = dflt;
    } else if (cfg->max_per_host > cfg->max_concurrent) {
        err_at(c, s[T_MAX_PER_HOST].val,
               "max_per_host: %u is more than max_concurrent (%u); lower it or raise "
               "max_concurrent",
               cfg->max_per_host, cfg->max_concurrent);
        cfg->max_per_host = dflt;
        bad = 1;
    }
    if (!cfg->instance)
        cfg->instance = dup_str(c, cfg->mqtt.client_id ? cfg->mqtt.client_id : "rest2mqtt");
    if (!s[T_ENDPOINTS].val) {
        err_at(c, root, "no endpoints: list; add endpoints: with at least one entry (name:, url:)");
        bad = 1;
    }
    return bad ? -1 : 0;
}

/* ---- the schema ------------------------------------------------------------------------ */

#define EPF(f)                                                                                     \
    .off = offsetof(struct r2m_endpoint_cfg, f), .size = sizeof(((struct r2m_endpoint_cfg *)0)->f)
#define CFGF(f) .off = offsetof(struct r2m_config, f), .size = sizeof(((struct r2m_config *)0)->f)
#define EPN(f)  offsetof(struct r2m_endpoint_cfg, f)

static const struct choice payloads[] = {
    {"full", R2M_PAYLOAD_FULL}, {"patch", R2M_PAYLOAD_PATCH}, {"after", R2M_PAYLOAD_AFTER}, {0}};
static const struct choice initials[] = {{"snapshot", 0}, {"emit", 1}, {0}};
static const struct choice redirects[] = {{"same-origin", R2M_REDIRECTS_SAME_ORIGIN},
                                          {"any", R2M_REDIRECTS_ANY},
                                          {"none", R2M_REDIRECTS_NONE},
                                          {0}};
static const struct choice auth_types[] = {{"basic", R2M_AUTH_BASIC},   {"bearer", R2M_AUTH_BEARER},
                                           {"header", R2M_AUTH_HEADER}, {"query", R2M_AUTH_QUERY},
                                           {"oauth2", R2M_AUTH_OAUTH2}, {0}};
static const struct choice versions[] = {{"5", 5}, {"3.1.1", 4}, {0}};
static const struct choice qos_levels[] = {{"0", 0}, {"1", 1}, {"2", 2}, {0}};
static const struct choice syncs[] = {{"normal", 0}, {"full", 1}, {0}};
static const struct choice log_formats[] = {{"text", R2M_LOG_TEXT}, {"json", R2M_LOG_JSON}, {0}};

static const struct key auth_keys[] = {
    [A_TYPE] = {.name = "type",
                .parse = parse_enum,
                EPF(auth.type),
                .expect = "basic, bearer, header, query or oauth2",
                .choices = auth_types},
    [A_USER] = {.name = "username",
                .parse = parse_string,
                EPF(auth.username),
                .flags = F_NONEMPTY | F_ONE_LINE},
    [A_PASS] = {.name = "password",
                .parse = parse_string,
                EPF(auth.password),
                .flags = F_NONEMPTY | F_ONE_LINE},
    [A_TOKEN] = {.name = "token",
                 .parse = parse_string,
                 EPF(auth.token),
                 .flags = F_NONEMPTY | F_ONE_LINE},
    [A_NAME] = {.name = "name",
                .parse = parse_string,
                EPF(auth.name),
                .flags = F_NONEMPTY | F_ONE_LINE},
    [A_VALUE] = {.name = "value",
                 .parse = parse_string,
                 EPF(auth.value),
                 .flags = F_NONEMPTY | F_ONE_LINE},
    [A_URL] = {.name = "token_url",
               .parse = parse_string,
               EPF(auth.token_url),
               .flags = F_NONEMPTY | F_ONE_LINE},
    [A_ID] = {.name = "client_id",
              .parse = parse_string,
              EPF(auth.client_id),
              .flags = F_NONEMPTY | F_ONE_LINE},
    [A_SECRET] = {.name = "client_secret",
                  .parse = parse_string,
                  EPF(auth.client_secret),
                  .flags = F_NONEMPTY | F_ONE_LINE},
    [A_SCOPE] = {.name = "scope",
                 .parse = parse_string,
                 EPF(auth.scope),
                 .flags = F_NONEMPTY | F_ONE_LINE},
};
static const struct section sec_auth = {"auth",
                                        "auth.",
                                        "in auth",
                                        1,
                                        NULL,
                                        auth_keys,
                                        ARRAY_LEN(auth_keys),
                                        NULL,
                                        .path = "endpoint.auth"};

static const struct key ep_tls_keys[] = {
    {.name = "ca_file", .parse = parse_string, EPF(tls.ca_file), .flags = F_NONEMPTY | F_TLS_FILE},
    {.name = "cert_file",
     .parse = parse_string,
     EPF(tls.cert_file),
     .flags = F_NONEMPTY | F_TLS_FILE},
    {.name = "key_file",
     .parse = parse_string,
     EPF(tls.key_file),
     .flags = F_NONEMPTY | F_TLS_FILE},
    {.name = "insecure", .parse = parse_bool, EPF(tls.insecure)},
};
static const struct section sec_ep_tls = {"tls",
                                          "tls.",
                                          "in tls",
                                          1,
                                          NULL,
                                          ep_tls_keys,
                                          ARRAY_LEN(ep_tls_keys),
                                          validate_ep_tls,
                                          .path = "endpoint.tls"};

/* read by parse_error_if and parse_paginate, which know their rules */
static const struct key error_if_keys[] = {
    {.name = "pointer",
     .parse = NULL,
     EPF(error_if.pointer),
     .expect = "a JSON Pointer like /status"},
    {.name = "equals", .parse = NULL, EPF(error_if.equals), .expect = "a value like error or 500"},
};
static const struct section sec_error_if = {"error_if",
                                            "error_if.",
                                            "in error_if",
                                            0,
                                            NULL,
                                            error_if_keys,
                                            ARRAY_LEN(error_if_keys),
                                            NULL,
                                            .path = "endpoint.error_if"};
static const struct key paginate_keys[] = {
    {.name = "next", .parse = NULL, EPF(paginate.pointer), .expect = "link or a JSON Pointer"},
    {.name = "cursor", .parse = NULL, EPF(paginate.pointer), .expect = "a JSON Pointer"},
    {.name = "param", .parse = NULL, EPF(paginate.param), .expect = "a query parameter name"},
    {.name = "start", .parse = NULL, EPF(paginate.start), .expect = "a page number like 0 or 1"},
};
static const struct section sec_paginate = {"paginate",
                                            "paginate.",
                                            "in paginate",
                                            0,
                                            NULL,
                                            paginate_keys,
                                            ARRAY_LEN(paginate_keys),
                                            NULL,
                                            .path = "endpoint.paginate"};

static const size_t auth_strs[] = {EPN(auth.username),  EPN(auth.password),
                                   EPN(auth.token),     EPN(auth.name),
                                   EPN(auth.value),     EPN(auth.token_url),
                                   EPN(auth.client_id), EPN(auth.client_secret),
                                   EPN(auth.scope),     SIZE_MAX};
static const size_t tls_strs[] = {EPN(tls.ca_file), EPN(tls.cert_file), EPN(tls.key_file),
                                  SIZE_MAX};
static const size_t error_if_strs[] = {EPN(error_if.pointer), EPN(error_if.equals), SIZE_MAX};
static const size_t paginate_strs[] = {EPN(paginate.pointer), EPN(paginate.param), SIZE_MAX};

static const struct key endpoint_keys[] = {
    [E_NAME] = {.name = "name",
                .parse = parse_name,
                EPF(name),
                .store = ST_STR,
                .flags = F_NOT_DEFAULTS,
                .expect = "a name like 'shipments'"},
    [E_URL] = {.name = "url",
               .parse = parse_url,
               EPF(url),
               .store = ST_STR,
               .expect = "a URL like https://api.example/items"},
    [E_METHOD] = {.name = "method",
                  .parse = parse_method,
                  EPF(method),
                  .store = ST_STR,
                  .expect = "GET or POST"},
    [E_BODY] = {.name = "body", .parse = parse_string, EPF(body), .store = ST_STR},
    [E_HEADERS] = {.name = "headers",
                   .parse = parse_headers,
                   EPF(headers),
                   .off_n = EPN(n_headers),
                   .store = ST_HEADERS},
    [E_INTERVAL] = {.name = "interval", .parse = parse_duration, EPF(interval_ms), .min = 10},
    [E_TIMEOUT] = {.name = "timeout", .parse = parse_duration, EPF(timeout_ms), .min = 1},
    [E_JITTER] = {.name = "jitter",
                  .parse = parse_fraction,
                  EPF(jitter),
                  .expect = "a percentage like 10%"},
    [E_MAX_BODY] = {.name = "max_body",
                    .parse = parse_size,
                    EPF(max_body),
                    .min = 1,
                    .max = 4ull << 30,
                    .expect = "a size like 512KiB or 32MiB",
                    .explain = "a size from 1 byte to 4GiB like 512KiB or 32MiB (units B, KB, MB, "
                               "GB, KiB, MiB, GiB)"},
    [E_MAX_DEPTH] = {.name = "max_depth",
                     .parse = parse_uint,
                     EPF(max_depth),
                     .min = 1,
                     .max = 1000,
                     .expect = "a whole number from 1 to 1000"},
    [E_IGNORE] = {.name = "ignore",
                  .parse = parse_ignore,
                  EPF(ignore),
                  .off_n = EPN(n_ignore),
                  .store = ST_CONCAT,
                  .expect = "a JSON Pointer like /updatedAt"},
    [E_TOPIC] = {.name = "topic",
                 .parse = parse_topic,
                 EPF(topic),
                 .store = ST_STR,
                 .flags = F_ALLOW_KEY,
                 .expect = "a topic template like \"{prefix}/{endpoint}\""},
    [E_ITEMS] = {.name = "items",
                 .parse = parse_items,
                 EPF(items),
                 .store = ST_STR,
                 .expect = "a JSON Pointer like /data/items (\"\" = the root)"},
    [E_KEY] = {.name = "key",
               .parse = parse_key,
               EPF(key),
               .off_n = EPN(n_key),
               .store = ST_STRV,
               .expect = "a JSON Pointer like /id"},
    [E_PAYLOAD] = {.name = "payload",
                   .parse = parse_enum,
                   EPF(payload),
                   .expect = "full, patch or after",
                   .choices = payloads},
    [E_INITIAL] = {.name = "initial",
                   .parse = parse_enum,
                   EPF(initial_emit),
                   .expect = "snapshot or emit",
                   .explain = "snapshot (first poll is a silent baseline) or emit (first poll "
                              "emits created for every item)",
                   .choices = initials},
    [E_STATE_TOPIC] = {.name = "state_topic",
                       .parse = parse_topic,
                       EPF(state_topic),
                       .store = ST_STR,
                       .flags = F_ALLOW_KEY,
                       .expect = "a topic template like \"{prefix}/{endpoint}/{key}/state\""},
    [E_AUTH] = {.name = "auth",
                .parse = parse_auth,
                EPF(auth),
                .store = ST_UNIT,
                .strs = auth_strs,
                .sub = &sec_auth},
    [E_CONTENT_TYPE] = {.name = "content_type",
                        .parse = parse_string,
                        EPF(content_type),
                        .store = ST_STR,
                        .flags = F_NONEMPTY | F_ONE_LINE},
    [E_TLS] = {.name = "tls",
               .parse = parse_section,
               EPF(tls),
               .store = ST_UNIT,
               .strs = tls_strs,
               .sub = &sec_ep_tls},
    [E_ACCEPT] = {.name = "accept_status",
                  .parse = parse_accept,
                  EPF(accept_status),
                  .off_n = EPN(n_accept_status),
                  .store = ST_INTS,
                  .min = 100,
                  .max = 599,
                  .expect = "an HTTP status from 100 to 599"},
    [E_ERROR_IF] = {.name = "error_if",
                    .parse = parse_error_if,
                    EPF(error_if),
                    .store = ST_UNIT,
                    .strs = error_if_strs,
                    .sub = &sec_error_if},
    [E_MAX_BACKOFF] = {.name = "max_backoff",
                       .parse = parse_duration,
                       EPF(max_backoff_ms),
                       .min = 10},
    [E_PAGINATE] = {.name = "paginate",
                    .parse = parse_paginate,
                    EPF(paginate),
                    .store = ST_UNIT,
                    .strs = paginate_strs,
                    .sub = &sec_paginate},
    [E_MAX_PAGES] = {.name = "max_pages",
                     .parse = parse_uint,
                     EPF(max_pages),
                     .min = 1,
                     .max = 100000,
                     .expect = "a whole number from 1 to 100000"},
    [E_REDIRECTS] = {.name = "redirects",
                     .parse = parse_enum,
                     EPF(redirects),
                     .expect = "same-origin, any or none",
                     .explain = "same-origin (follow redirects within the URL's origin), any "
                                "(follow anywhere, without credentials off the origin) or none",
                     .choices = redirects},
};
static const struct section sec_endpoint = {"endpoint",
                                            "",
                                            "",
                                            1,
                                            "defaults: or an endpoint entry",
                                            endpoint_keys,
                                            ARRAY_LEN(endpoint_keys),
                                            NULL,
                                            .path = "endpoint"};

static const struct key mqtt_tls_keys[] = {
    {.name = "ca_file",
     .parse = parse_string,
     CFGF(mqtt.ca_file),
     .flags = F_NONEMPTY | F_TLS_FILE},
    {.name = "cert_file",
     .parse = parse_string,
     CFGF(mqtt.cert_file),
     .flags = F_NONEMPTY | F_TLS_FILE},
    {.name = "key_file",
     .parse = parse_string,
     CFGF(mqtt.key_file),
     .flags = F_NONEMPTY | F_TLS_FILE},
    {.name = "insecure", .parse = parse_bool, CFGF(mqtt.insecure)},
};
static const struct section sec_mqtt_tls = {"mqtt.tls",
                                            "mqtt.tls.",
                                            "in mqtt.tls",
                                            0,
                                            "mqtt.tls:",
                                            mqtt_tls_keys,
                                            ARRAY_LEN(mqtt_tls_keys),
                                            validate_mqtt_tls,
                                            .path = "mqtt.tls"};

static const struct key mqtt_keys[] = {
    {.name = "url",
     .parse = parse_mqtt_url,
     CFGF(mqtt.url),
     .expect = "a broker URL like mqtt://127.0.0.1:1883"},
    {.name = "client_id", .parse = parse_string, CFGF(mqtt.client_id), .flags = F_NONEMPTY},
    {.name = "username", .parse = parse_string, CFGF(mqtt.username)},
    {.name = "password", .parse = parse_string, CFGF(mqtt.password)},
    {.name = "version",
     .parse = parse_enum,
     CFGF(mqtt.version),
     .expect = "5 or 3.1.1",
     .choices = versions},
    {.name = "qos",
     .parse = parse_enum,
     CFGF(mqtt.qos),
     .expect = "0, 1 or 2",
     .choices = qos_levels},
    /* MQTT carries the keep-alive as 16-bit seconds */
    {.name = "keepalive",
     .parse = parse_duration,
     CFGF(mqtt.keepalive_ms),
     .min = 0,
     .max = 65535 * 1000ull,
     .too_big = "must be at most 18h12m15s (65535s, the MQTT limit)"},
    {.name = "topic_prefix",
     .parse = parse_topic_prefix,
     CFGF(mqtt.topic_prefix),
     .expect = "a topic like rest2mqtt"},
    {.name = "status_topic",
     .parse = parse_topic,
     CFGF(mqtt.status_topic),
     .expect = "a topic template like \"{prefix}/status\""},
    [M_TLS] = {.name = "tls", .parse = parse_section, .sub = &sec_mqtt_tls},
    /* MQTT 3.1.1 brokers announce no limit and drop the connection over a
     * packet too big; MQTT 5 ones announce it and the smaller wins */
    {.name = "max_packet_size",
     .parse = parse_size,
     CFGF(mqtt.max_packet_size),
     .min = 128,
     .max = R2M_MQTT_MAX_PACKET_SIZE,
     .expect = "a size like 256KiB",
     .explain = "a size from 128 bytes to 256MiB (the MQTT limit) like 256KiB, the broker's "
                "largest packet"},
};
static const struct section sec_mqtt = {
    "mqtt",        "mqtt.",       "in mqtt", 0, "mqtt:", mqtt_keys, ARRAY_LEN(mqtt_keys),
    validate_mqtt, .path = "mqtt"};

static const struct key state_keys[] = {
    {.name = "path", .parse = parse_string, CFGF(state.path), .flags = F_NONEMPTY},
    {.name = "outbox_max",
     .parse = parse_uint,
     CFGF(state.outbox_max),
     .min = 1,
     .max = UINT64_MAX,
     .expect = "a whole number of events (at least 1)"},
    {.name = "sync",
     .parse = parse_enum,
     CFGF(state.sync_full),
     .expect = "normal or full",
     .explain = "normal (survives a crash of rest2mqtt) or full (also survives a power loss, at "
                "one disk flush per poll with changes)",
     .choices = syncs},
};
static const struct section sec_state = {
    "state", "state.",       "in state", 0, "state:", state_keys, ARRAY_LEN(state_keys),
    NULL,    .path = "state"};

static const struct key log_keys[] = {
    {.name = "level",
     .parse = parse_log_level,
     CFGF(log.level),
     .expect = "one of error, warn, info, debug"},
    {.name = "format",
     .parse = parse_enum,
     CFGF(log.format),
     .expect = "text or json",
     .choices = log_formats},
};
static const struct section sec_log = {
    "log", "log.", "in log", 0, "log:", log_keys, ARRAY_LEN(log_keys), NULL, .path = "log"};

static const struct key metrics_keys[] = {
    {.name = "listen",
     .parse = parse_listen,
     CFGF(metrics.listen),
     .expect = "an address like 127.0.0.1:9464"},
};
static const struct section sec_metrics = {
    "metrics", "metrics.",       "in metrics", 0, NULL, metrics_keys, ARRAY_LEN(metrics_keys),
    NULL,      .path = "metrics"};

static const struct key top_keys[] = {
    {.name = "instance", .parse = parse_string, CFGF(instance), .flags = F_NONEMPTY},
    {.name = "mqtt", .parse = parse_section, .sub = &sec_mqtt},
    {.name = "state", .parse = parse_section, .sub = &sec_state},
    {.name = "defaults", .parse = parse_defaults, .sub = &sec_endpoint},
    [T_ENDPOINTS] = {.name = "endpoints", .parse = parse_endpoints, .sub = &sec_endpoint},
    {.name = "log", .parse = parse_section, .sub = &sec_log},
    {.name = "shutdown_timeout", .parse = parse_duration, CFGF(shutdown_timeout_ms), .min = 0},
    {.name = "metrics", .parse = parse_section, .sub = &sec_metrics},
    [T_MAX_CONCURRENT] = {.name = "max_concurrent",
                          .parse = parse_uint,
                          CFGF(max_concurrent),
                          .min = 1,
                          .max = 100000,
                          .expect = "a whole number of requests from 1 to 100000"},
    [T_MAX_PER_HOST] = {.name = "max_per_host",
                        .parse = parse_uint,
                        CFGF(max_per_host),
                        .min = 1,
                        .max = 100000,
                        .expect = "a whole number of requests from 1 to 100000"},
};
static const struct section sec_top = {
    "", "", "at the top level", 0, NULL, top_keys, ARRAY_LEN(top_keys), validate_top, .path = ""};

/* Every section; a key misplaced at the top level is looked up in this order. */
static const struct section *const sections[N_SECTIONS] = {
    &sec_top,      &sec_mqtt, &sec_mqtt_tls, &sec_state,    &sec_log,     &sec_metrics,
    &sec_endpoint, &sec_auth, &sec_ep_tls,   &sec_error_if, &sec_paginate};

/* ---- entry points ----------------------------------------------------------------------- */

static struct r2m_config *config_new(struct ctx *c, const char *file)
{
    struct r2m_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        c->dl.nomem = 1;
        return NULL;
    }
    char host[256] = "";
    char id[300] = "rest2mqtt";
    if (gethostname(host, sizeof host - 1) == 0 && host[0]) {
        host[sizeof host - 1] = '\0';
        snprintf(id, sizeof id, "rest2mqtt-%s", host);
    }
    cfg->file = dup_str(c, file);
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
static void read_config(struct ctx *c, struct r2m_config *cfg, node *root)
{
    struct slot s[MAX_KEYS] = {{0}};
    struct part defs = {0};
    unsigned set = 0;

    if (!root) {
        r2m_diag_error(&c->dl, 1, 1,
                       "the configuration is empty; it needs at least an endpoints: list "
                       "with one endpoint (name:, url:)");
        return;
    }
    if (root->type != N_MAP) {
        if (root->type != N_ALIAS)
            err_at(c, root, "expected a mapping at the top level (mqtt:, endpoints:, ...), got %s",
                   r2m_yamltree_kind(root));
        return;
    }
    c->defs = &defs;
    collect(c, &sec_top, root, s);
    read_keys(c, &sec_top, s, cfg, &set);
    if (!c->dl.nomem)
        sec_top.validate(c, root, s, set, cfg);
    c->defs = NULL;
    endpoint_free(&defs.v);
}

int r2m_config_parse(const char *name, const char *text, size_t len, struct r2m_config **out,
                     struct r2m_diag *diag)
{
    struct ctx c = {.dl = {.file = name ? name : "<config>"}};
    node *root = NULL;
    struct r2m_config *cfg = NULL;
    int rc;

    *out = NULL;
    if (!text) {
        text = "";
        len = 0;
    }
    cfg = config_new(&c, c.dl.file);
    if (cfg && r2m_yamltree_parse(text, len, &c.dl, &root) == 0)
        read_config(&c, cfg, root);
    r2m_yamltree_free(root);
    if (c.dl.nomem)
        rc = R2M_E_NOMEM;
    else if (c.dl.n_err)
        rc = R2M_E_CONFIG;
    else
        rc = 0;
    r2m_diag_list_finish(&c.dl, diag);
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
    int rc = r2m_expand_read_file(path, MAX_FILE, 0, &b, &what);

    *out = NULL;
    if (rc == R2M_E_IO) {
        r2m_diag_add(diag, &nomem, "%s: error: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (rc == R2M_E_TOO_BIG) {
        r2m_diag_add(diag, &nomem,
                     "%s: error: the file is larger than %u MiB; split it or remove unused parts",
                     path, MAX_FILE >> 20);
        rc = R2M_E_CONFIG;
        goto out;
    }
    if (rc) {
        r2m_diag_add(diag, &nomem, "%s: error: out of memory while reading the file", path);
        goto out;
    }
    rc = r2m_config_parse(path, b.data ? b.data : "", b.len, out, diag);
out:
    r2m_buf_free(&b);
    return rc;
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
    secret_free(cfg->mqtt.password);
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

int r2m_config_key(size_t i, struct r2m_config_key *out)
{
    for (size_t s = 0; s < N_SECTIONS; s++) {
        const struct section *sec = sections[s];
        if (i >= sec->n) {
            i -= sec->n;
            continue;
        }
        const struct key *k = &sec->keys[i];
        out->section = sec->path;
        out->name = k->name;
        if (strncmp(sec->path, "endpoint", 8))
            out->in = R2M_CONFIG_IN_GLOBAL;
        else if (k->flags & F_NOT_DEFAULTS)
            out->in = R2M_CONFIG_IN_ENDPOINT;
        else
            out->in = R2M_CONFIG_IN_ENDPOINT | R2M_CONFIG_IN_DEFAULTS;
        return 0;
    }
    return R2M_E_INVALID;
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
