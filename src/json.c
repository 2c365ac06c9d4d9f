/* json.c - yajl callbacks into an arena tree, canonical text, pointers, fingerprints.
 *
 * The parser never allocates per node. Values are collected on two stacks
 * (array elements, object members) while their container is open; when the
 * container closes, its children are copied as one block into the arena and
 * popped. The arena, the stacks and even yajl's own handle memory (through
 * a small caching allocator) are kept by the doc and reused by the next
 * parse, so a poll whose document fits the memory of the previous ones does
 * no malloc at all.
 *
 * r2m_json_parse_items streams the items of one array or object: the
 * callbacks track whether the open containers lie on the items pointer's
 * path, and each value that closes directly inside the items container is
 * handed to the caller and then dropped by rewinding the arena to where the
 * item began. Only the rest of the document (and, for an object of items,
 * the member names, to refuse duplicates) stays in the tree. */
#include "r2m/json.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#include <yajl/yajl_parse.h>

#include "r2m/error.h"
#include "r2m/utf8.h"

#define DEFAULT_MAX_DEPTH 64u
#define DEFAULT_MAX_NODES ((size_t)10000000)
#define CHUNK_MIN         ((size_t)4096)
#define YA_SLOTS          8
#define ARENA_ALIGN       ((size_t)8)

/* One arena chunk; the payload follows the header (whose size is a multiple
 * of 8, so the payload is aligned for pointers and uint32_t). */
struct chunk {
    struct chunk *next;
    size_t cap;
    size_t used;
};

/* One open container during the parse. `start` indexes the element or
 * member stack; key/key_len hold the pending member key of an object. */
struct frame {
    uint32_t type;
    uint32_t key_len;
    size_t start;
    const char *key;
};

/* A block handed to yajl and kept for its next handle (see ya_malloc). */
struct ya_slot {
    void *p;
    size_t size;
    int used;
};

/* An arena position, to drop everything allocated after it. */
struct arena_pos {
    struct chunk *c;
    size_t used;
};

/* One segment of the items pointer, as it is written (escaped). */
struct seg {
    const char *s;
    size_t n;
    long idx; /* as an array index, or -1 */
    int ok;   /* '~' escapes valid; an invalid segment matches nothing */
};

struct r2m_json_doc {
    struct r2m_json_limits lim;

    struct chunk *first, *cur, *last;

    struct r2m_json *vals; /* elements of open arrays */
    size_t nvals, capvals;
    struct r2m_json_member *mems; /* members of open objects */
    size_t nmems, capmems;
    struct frame *frames;
    size_t nframes, capframes;

    struct r2m_json root;
    size_t nodes;

    /* The input and yajl's handle, to find a string's raw text. */
    const char *buf;
    size_t len;
    yajl_handle h;
    int completing;  /* inside yajl_complete_parse: offsets are not into buf */
    size_t root_end; /* where the root value's text ends */
    int text_ok;     /* all of buf is valid UTF-8 */

    /* Why a callback stopped the parse; dup_key points into the arena.
     * bad_at/bad_what: an invalid string (UTF-8 or surrogate escape). */
    int err;
    size_t bad_at;
    char bad_what[80];
    int fn_failed; /* err came from the item callback */
    const char *dup_key;
    uint32_t dup_len;

    /* Streaming items (r2m_json_parse_items). frames[0..on_path) lie on
     * the pointer's path; frames[nsegs] is the items container when
     * on_path > nsegs. An item starts at item_mark with item_nodes values
     * counted before it. */
    int stream;
    struct seg *segs;
    size_t nsegs, capsegs;
    size_t on_path;
    r2m_json_item_fn *fn;
    void *fn_ctx;
    size_t item_index;
    struct arena_pos item_mark;
    size_t item_nodes;

    struct ya_slot ya[YA_SLOTS];
    yajl_alloc_funcs afuncs;
};

/* ---- memory handed to yajl ------------------------------------------- */

/* yajl 2.1 cannot reset a handle, so every parse allocates a new one. Its
 * few blocks (handle, lexer, buffers, state stack) have the same sizes each
 * time; keeping them in a handful of slots makes yajl_alloc/yajl_free free
 * of malloc after the first parse. Blocks that do not fit a slot fall
 * through to the C allocator. */
static void *ya_malloc(void *ctx, size_t sz)
{
    struct r2m_json_doc *d = ctx;
    int best = -1, empty = -1, spare = -1;
    for (int i = 0; i < YA_SLOTS; i++) {
        struct ya_slot *s = &d->ya[i];
        if (!s->p) {
            if (empty < 0)
                empty = i;
        } else if (!s->used) {
            if (s->size >= sz && (best < 0 || s->size < d->ya[best].size))
                best = i;
            else if (spare < 0)
                spare = i;
        }
    }
    if (best >= 0) {
        d->ya[best].used = 1;
        return d->ya[best].p;
    }
    void *p = malloc(sz ? sz : 1);
    if (!p)
        return NULL;
    int slot = empty >= 0 ? empty : spare;
    if (slot >= 0) {
        /* A spare slot's block is too small for anything asked so far. */
        free(d->ya[slot].p);
        d->ya[slot].p = p;
        d->ya[slot].size = sz;
        d->ya[slot].used = 1;
    }
    return p;
}

static struct ya_slot *ya_find(struct r2m_json_doc *d, void *p)
{
    for (int i = 0; i < YA_SLOTS; i++)
        if (d->ya[i].p == p)
            return &d->ya[i];
    return NULL;
}

static void ya_free(void *ctx, void *p)
{
    if (!p)
        return;
    struct ya_slot *s = ya_find(ctx, p);
    if (s)
        s->used = 0;
    else
        free(p);
}

static void *ya_realloc(void *ctx, void *p, size_t sz)
{
    if (!p)
        return ya_malloc(ctx, sz);
    struct ya_slot *s = ya_find(ctx, p);
    if (s && s->size >= sz)
        return p;
    void *q = realloc(p, sz ? sz : 1);
    if (!q)
        return NULL;
    if (s) {
        s->p = q;
        s->size = sz;
    }
    return q;
}

/* ---- arena ------------------------------------------------------------ */

static char *chunk_mem(struct chunk *c)
{
    return (char *)(c + 1);
}

static void arena_free(struct r2m_json_doc *d)
{
    struct chunk *c = d->first;
    while (c) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    d->first = d->cur = d->last = NULL;
}

/* Rewinds the arena. When the last parse needed several chunks they are
 * merged into one sized to what it used plus 1/8 headroom, so steady state
 * is one chunk, no allocation and little slack; if that allocation fails
 * the old chunks are simply kept. */
static void arena_reset(struct r2m_json_doc *d)
{
    if (d->first && d->first->next) {
        size_t used = 0, largest = 0;
        for (struct chunk *c = d->first; c; c = c->next) {
            used += c->used + ARENA_ALIGN;
            if (c->cap > largest)
                largest = c->cap;
        }
        size_t cap = used + used / 8;
        if (cap < largest)
            cap = largest;
        struct chunk *one = malloc(sizeof *one + cap);
        if (one) {
            arena_free(d);
            one->next = NULL;
            one->cap = cap;
            d->first = d->last = one;
        }
    }
    for (struct chunk *c = d->first; c; c = c->next)
        c->used = 0;
    d->cur = d->first;
}

static void *arena_grow(struct r2m_json_doc *d, size_t size)
{
    /* Chunks kept from earlier parses come first. */
    while (d->cur && d->cur->next) {
        d->cur = d->cur->next;
        if (size <= d->cur->cap) {
            d->cur->used = size;
            return chunk_mem(d->cur);
        }
    }
    size_t cap = d->last ? d->last->cap : CHUNK_MIN / 2;
    cap = cap > SIZE_MAX / 4 ? cap : cap * 2;
    if (cap < size)
        cap = size;
    if (cap > SIZE_MAX - sizeof(struct chunk))
        return NULL;
    struct chunk *c = malloc(sizeof *c + cap);
    if (!c)
        return NULL;
    c->next = NULL;
    c->cap = cap;
    c->used = size;
    if (d->last)
        d->last->next = c;
    else
        d->first = c;
    d->last = d->cur = c;
    return chunk_mem(c);
}

static inline void *arena_alloc(struct r2m_json_doc *d, size_t size, size_t align)
{
    struct chunk *c = d->cur;
    if (c) {
        size_t off = (c->used + align - 1) & ~(align - 1);
        if (off <= c->cap && size <= c->cap - off) {
            c->used = off + size;
            return chunk_mem(c) + off;
        }
    }
    return arena_grow(d, size);
}

/* Gives back the unused tail of the most recent allocation p. */
static inline void arena_trim(struct r2m_json_doc *d, const char *p, size_t keep)
{
    d->cur->used = (size_t)(p - chunk_mem(d->cur)) + keep;
}

/* Copies bytes into the arena with a NUL after them, for C string users. */
static inline char *arena_strdup(struct r2m_json_doc *d, const void *s, size_t n)
{
    if (n >= SIZE_MAX)
        return NULL;
    char *p = arena_alloc(d, n + 1, 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static inline struct arena_pos arena_tell(const struct r2m_json_doc *d)
{
    struct arena_pos p = {d->cur, d->cur ? d->cur->used : 0};
    return p;
}

/* Drops everything allocated since p. Chunks after p's stay allocated for
 * the next allocations (arena_grow resets their use when it enters them). */
static void arena_rewind(struct r2m_json_doc *d, struct arena_pos p)
{
    struct chunk *c = p.c ? p.c : d->first;
    if (!c)
        return;
    c->used = p.c ? p.used : 0;
    d->cur = c;
    for (c = c->next; c; c = c->next)
        c->used = 0;
}

/* ---- doc -------------------------------------------------------------- */

void r2m_json_doc_set_depth(struct r2m_json_doc *d, unsigned max_depth)
{
    d->lim.max_depth = max_depth ? max_depth : DEFAULT_MAX_DEPTH;
}

int r2m_json_doc_new(struct r2m_json_doc **out, const struct r2m_json_limits *lim)
{
    struct r2m_json_doc *d = calloc(1, sizeof *d);
    if (!d)
        return R2M_E_NOMEM;
    d->lim.max_depth = lim && lim->max_depth ? lim->max_depth : DEFAULT_MAX_DEPTH;
    d->lim.max_nodes = lim && lim->max_nodes ? lim->max_nodes : DEFAULT_MAX_NODES;
    d->afuncs.malloc = ya_malloc;
    d->afuncs.realloc = ya_realloc;
    d->afuncs.free = ya_free;
    d->afuncs.ctx = d;
    *out = d;
    return 0;
}

void r2m_json_doc_free(struct r2m_json_doc *doc)
{
    if (!doc)
        return;
    arena_free(doc);
    free(doc->vals);
    free(doc->mems);
    free(doc->frames);
    free(doc->segs);
    for (int i = 0; i < YA_SLOTS; i++)
        free(doc->ya[i].p);
    free(doc);
}

/* Grows a stack of elements of size `elem` geometrically to hold one more. */
static int stack_grow(void **base, size_t *cap, size_t elem)
{
    size_t n = *cap ? *cap * 2 : 64;
    if (n > SIZE_MAX / elem)
        return R2M_E_NOMEM;
    void *p = realloc(*base, n * elem);
    if (!p)
        return R2M_E_NOMEM;
    *base = p;
    *cap = n;
    return 0;
}

/* ---- parse callbacks -------------------------------------------------- */

static int segment_ok(const char *s, size_t n);
static int segment_cmp(const char *s, size_t n, const char *key, size_t klen);
static long parse_index(const char *s, size_t n);

static inline int key_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    /* keys of one object mostly differ in their first byte: skip the call */
    if (an && bn && a[0] != b[0])
        return (unsigned char)a[0] < (unsigned char)b[0] ? -1 : 1;
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return (an > bn) - (an < bn);
}

static int member_cmp(const struct r2m_json_member *a, const struct r2m_json_member *b)
{
    return key_cmp(a->key, a->key_len, b->key, b->key_len);
}

static int member_qcmp(const void *a, const void *b)
{
    return member_cmp(a, b);
}

/* Puts members in key order and returns the index of a duplicate key, or
 * -1. Documents usually come sorted or nearly so: check first, sort only
 * when needed, insertion sort for the small objects that dominate. */
static long sort_members(struct r2m_json_member *m, size_t n)
{
    size_t i;
    for (i = 1; i < n; i++) {
        int c = member_cmp(&m[i - 1], &m[i]);
        if (c == 0)
            return (long)i;
        if (c > 0)
            break;
    }
    if (i >= n)
        return -1;
    if (n <= 16) {
        for (i = 1; i < n; i++) {
            struct r2m_json_member t = m[i];
            size_t j = i;
            while (j > 0 && member_cmp(&m[j - 1], &t) > 0) {
                m[j] = m[j - 1];
                j--;
            }
            m[j] = t;
        }
    } else {
        qsort(m, n, sizeof *m, member_qcmp);
    }
    for (i = 1; i < n; i++)
        if (member_cmp(&m[i - 1], &m[i]) == 0)
            return (long)i;
    return -1;
}

static int stop(struct r2m_json_doc *d, int err)
{
    d->err = err;
    return 0;
}

static int item_done(struct r2m_json_doc *d, const struct r2m_json *v);

/* Whether the innermost open container is the items container. */
static inline int in_items(const struct r2m_json_doc *d)
{
    return d->stream && d->nframes == d->nsegs + 1 && d->on_path == d->nframes;
}

/* Hands a finished value to its parent container (or makes it the root). */
static int emit(struct r2m_json_doc *d, const struct r2m_json *v)
{
    if (d->nframes == 0) {
        d->root = *v;
        d->root_end = d->completing ? d->len : yajl_get_bytes_consumed(d->h);
        return 1;
    }
    if (in_items(d))
        return item_done(d, v);
    struct frame *f = &d->frames[d->nframes - 1];
    if (f->type == R2M_JSON_ARRAY) {
        if (d->nvals == d->capvals && stack_grow((void **)&d->vals, &d->capvals, sizeof *d->vals))
            return stop(d, R2M_E_NOMEM);
        d->vals[d->nvals++] = *v;
    } else {
        if (d->nmems == d->capmems && stack_grow((void **)&d->mems, &d->capmems, sizeof *d->mems))
            return stop(d, R2M_E_NOMEM);
        struct r2m_json_member *m = &d->mems[d->nmems++];
        m->key = f->key;
        m->key_len = f->key_len;
        m->value = *v;
    }
    return 1;
}

/* A finished item goes to the caller, then its nodes are dropped. The
 * member name of an object's item stays (it was allocated before
 * item_mark), with a null stub on the member stack, so that duplicate
 * names are still refused when the items object closes. */
static int item_done(struct r2m_json_doc *d, const struct r2m_json *v)
{
    struct frame *f = &d->frames[d->nframes - 1];
    int is_obj = f->type == R2M_JSON_OBJECT;
    struct r2m_json item = *v;
    int r = d->fn(d->fn_ctx, d->item_index, is_obj ? f->key : NULL, is_obj ? f->key_len : 0, &item);
    if (r) {
        d->fn_failed = 1;
        return stop(d, r);
    }
    d->item_index++;
    arena_rewind(d, d->item_mark);
    d->nodes = d->item_nodes;
    if (is_obj) {
        if (d->nmems == d->capmems && stack_grow((void **)&d->mems, &d->capmems, sizeof *d->mems))
            return stop(d, R2M_E_NOMEM);
        struct r2m_json_member *m = &d->mems[d->nmems++];
        m->key = f->key;
        m->key_len = f->key_len;
        m->value.type = R2M_JSON_NULL;
        m->value.n = 0;
        m->value.u.str = NULL;
    }
    return 1;
}

/* Whether the child about to start in frames[k] is the one the pointer's
 * segment k names (frames[0..k] lie on the path). */
static int seg_matches(const struct r2m_json_doc *d, size_t k)
{
    const struct frame *f = &d->frames[k];
    const struct seg *g = &d->segs[k];
    if (f->type == R2M_JSON_ARRAY)
        return g->idx >= 0 && (size_t)g->idx == d->nvals - f->start;
    return g->ok && f->key && segment_cmp(g->s, g->n, f->key, f->key_len) == 0;
}

static inline int count_node(struct r2m_json_doc *d)
{
    if (++d->nodes > d->lim.max_nodes)
        return stop(d, R2M_E_JSON_NODES);
    return 1;
}

static int emit_scalar(struct r2m_json_doc *d, uint32_t type)
{
    if (!count_node(d))
        return 0;
    struct r2m_json v = {.type = type, .n = 0, .u.str = NULL};
    return emit(d, &v);
}

static int cb_null(void *ctx)
{
    return emit_scalar(ctx, R2M_JSON_NULL);
}

static int cb_boolean(void *ctx, int b)
{
    return emit_scalar(ctx, b ? R2M_JSON_TRUE : R2M_JSON_FALSE);
}

static int cb_number(void *ctx, const char *s, size_t len)
{
    struct r2m_json_doc *d = ctx;
    if (!count_node(d))
        return 0;
    if (len > UINT32_MAX || len > SIZE_MAX - 32)
        return stop(d, R2M_E_TOO_BIG);
    char *p = arena_alloc(d, len + 32, 1);
    if (!p)
        return stop(d, R2M_E_NOMEM);
    int n = r2m_json_number_canonical(s, len, p);
    if (n < 0) /* yajl's lexer already checked the syntax */
        return stop(d, R2M_E_JSON_SYNTAX);
    arena_trim(d, p, (size_t)n + 1);
    struct r2m_json v = {.type = R2M_JSON_NUMBER, .n = (uint32_t)n, .u.str = p};
    return emit(d, &v);
}

/* ---- string checks ---------------------------------------------------- */

/* One rule for text in the input: a string or member name must be valid
 * UTF-8 as written and every \u escape must stand for a Unicode scalar
 * value, i.e. a surrogate escape only as a high + low pair. Anything else
 * fails the parse as invalid JSON naming the byte offset; nothing is
 * replaced (yajl alone would turn a lone high surrogate into '?', so that
 * "\ud800" and "\udbff" became the same string, and pass a lone low one
 * through as the invalid bytes ED B0 80). yajl's own, laxer UTF-8 check is
 * off (yajl_dont_validate_strings): this one covers every string.
 *
 * JSON outside strings is ASCII, so when the whole body is valid UTF-8 (one
 * pass, a word at a time: the common case costs about nothing) every raw
 * string is too, and only strings with escapes need a look. Otherwise each
 * string is checked as it comes, so that the first error in the text is the
 * one reported, whether it is a syntax error or bad UTF-8. */
static int bad_string(struct r2m_json_doc *d, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad_string(struct r2m_json_doc *d, size_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->bad_what, sizeof d->bad_what, fmt, ap);
    va_end(ap);
    d->bad_at = at;
    return stop(d, R2M_E_JSON_SYNTAX);
}

static int check_utf8(struct r2m_json_doc *d, const char *s, size_t n, size_t at)
{
    size_t bad;
    if (r2m_utf8_check(s, n, &bad) == 0)
        return 1;
    return bad_string(d, at + bad, "invalid UTF-8, %s", r2m_utf8_reason(s + bad, n - bad));
}

static unsigned hex4(const char *s)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* Checks the raw text raw[0..n) of a string with escapes (yajl's lexer has
 * checked the escapes' syntax: a letter of "\"/bfnrtu", four hex digits). */
static int check_escaped(struct r2m_json_doc *d, const char *raw, size_t n)
{
    size_t base = (size_t)(raw - d->buf), run = 0, i = 0;
    const char *bs;
    while ((bs = memchr(raw + i, '\\', n - i))) {
        i = (size_t)(bs - raw);
        /* a backslash never lies inside a multi-byte sequence */
        if (!d->text_ok && !check_utf8(d, raw + run, i - run, base + run))
            return 0;
        if (raw[i + 1] != 'u') {
            run = i += 2;
            continue;
        }
        unsigned cp = hex4(raw + i + 2);
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (i + 12 > n || raw[i + 6] != '\\' || raw[i + 7] != 'u' ||
                (hex4(raw + i + 8) & 0xfc00) != 0xdc00)
                return bad_string(d, base + i, "lone UTF-16 surrogate %.6s", raw + i);
            i += 6;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return bad_string(d, base + i, "lone UTF-16 surrogate %.6s", raw + i);
        }
        run = i += 6;
    }
    return d->text_ok || check_utf8(d, raw + run, n - run, base + run);
}

/* Checks a string or member name yajl hands over. Without escapes s is its
 * raw text inside buf; with escapes s is yajl's decoded copy, and the raw
 * text ends just before the closing quote that yajl has consumed: its
 * opening quote is the nearest '"' before that which is not escaped, i.e.
 * not preceded by an odd run of backslashes. */
static __attribute__((noinline)) int check_string_slow(struct r2m_json_doc *d,
                                                       const unsigned char *s, size_t len)
{
    const char *p = (const char *)s;
    uintptr_t u = (uintptr_t)p, b = (uintptr_t)d->buf;
    if (u >= b && u - b <= d->len)
        return check_utf8(d, p, len, (size_t)(u - b));
    size_t end = d->completing ? 0 : yajl_get_bytes_consumed(d->h);
    if (end < 2 || end > d->len || d->buf[end - 1] != '"')
        return bad_string(d, d->len, "string not found in the input");
    end--; /* the closing quote */
    for (size_t q = end; q > 0;) {
        const char *quote = memrchr(d->buf, '"', q);
        if (!quote)
            break;
        q = (size_t)(quote - d->buf);
        size_t bs = 0;
        while (bs < q && d->buf[q - 1 - bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            return check_escaped(d, d->buf + q + 1, end - q - 1);
    }
    return bad_string(d, d->len, "string not found in the input");
}

/* The common case inline: a raw string in a body that is valid UTF-8 (a
 * pointer below buf wraps around to a large difference). */
static inline int check_string(struct r2m_json_doc *d, const unsigned char *s, size_t len)
{
    if (d->text_ok && (uintptr_t)s - (uintptr_t)d->buf <= d->len)
        return 1;
    return check_string_slow(d, s, len);
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    struct r2m_json_doc *d = ctx;
    if (!count_node(d) || !check_string(d, s, len))
        return 0;
    if (len > UINT32_MAX)
        return stop(d, R2M_E_TOO_BIG);
    char *p = arena_strdup(d, s, len);
    if (!p)
        return stop(d, R2M_E_NOMEM);
    struct r2m_json v = {.type = R2M_JSON_STRING, .n = (uint32_t)len, .u.str = p};
    return emit(d, &v);
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct r2m_json_doc *d = ctx;
    if (!check_string(d, s, len))
        return 0;
    if (len > UINT32_MAX)
        return stop(d, R2M_E_TOO_BIG);
    char *p = arena_strdup(d, s, len);
    if (!p)
        return stop(d, R2M_E_NOMEM);
    struct frame *f = &d->frames[d->nframes - 1];
    f->key = p;
    f->key_len = (uint32_t)len;
    if (in_items(d))
        d->item_mark = arena_tell(d); /* the item's value starts after its name */
    return 1;
}

/* Depth is counted here, before yajl pushes its own (unbounded) state. */
static int open_container(struct r2m_json_doc *d, uint32_t type)
{
    if (!count_node(d))
        return 0;
    if (d->nframes >= d->lim.max_depth)
        return stop(d, R2M_E_JSON_DEPTH);
    if (d->nframes == d->capframes &&
        stack_grow((void **)&d->frames, &d->capframes, sizeof *d->frames))
        return stop(d, R2M_E_NOMEM);
    size_t k = d->nframes;
    int on_path =
        d->stream && d->on_path == k && k <= d->nsegs && (k == 0 || seg_matches(d, k - 1));
    struct frame *f = &d->frames[d->nframes++];
    f->type = type;
    f->start = type == R2M_JSON_ARRAY ? d->nvals : d->nmems;
    f->key = NULL;
    f->key_len = 0;
    if (on_path) {
        d->on_path = k + 1;
        if (k == d->nsegs) { /* the items container opens */
            d->item_index = 0;
            d->item_mark = arena_tell(d);
            d->item_nodes = d->nodes;
        }
    }
    return 1;
}

/* Closes the items container: its items went to the caller, so it stays in
 * the tree empty. An object first checks its member names. */
static int end_items(struct r2m_json_doc *d)
{
    struct frame *f = &d->frames[d->nframes - 1];
    struct r2m_json v = {.type = f->type, .n = 0, .u.items = NULL};
    if (f->type == R2M_JSON_OBJECT && d->nmems > f->start) { /* mems is NULL until used */
        long dup = sort_members(d->mems + f->start, d->nmems - f->start);
        if (dup >= 0) {
            d->dup_key = d->mems[f->start + (size_t)dup].key;
            d->dup_len = d->mems[f->start + (size_t)dup].key_len;
            return stop(d, R2M_E_JSON_DUPKEY);
        }
        d->nmems = f->start;
    }
    d->nframes--;
    d->on_path = d->nframes;
    return emit(d, &v);
}

static int cb_start_map(void *ctx)
{
    return open_container(ctx, R2M_JSON_OBJECT);
}

static int cb_start_array(void *ctx)
{
    return open_container(ctx, R2M_JSON_ARRAY);
}

/* Leaving frames[nframes]: it no longer lies on the path. */
static inline void left_frame(struct r2m_json_doc *d)
{
    if (d->on_path > d->nframes)
        d->on_path = d->nframes;
}

static int cb_end_map(void *ctx)
{
    struct r2m_json_doc *d = ctx;
    if (in_items(d))
        return end_items(d);
    struct frame *f = &d->frames[d->nframes - 1];
    size_t n = d->nmems - f->start;
    if (n > UINT32_MAX)
        return stop(d, R2M_E_JSON_NODES);
    struct r2m_json v = {.type = R2M_JSON_OBJECT, .n = (uint32_t)n, .u.members = NULL};
    if (n) {
        struct r2m_json_member *m = arena_alloc(d, n * sizeof *m, ARENA_ALIGN);
        if (!m)
            return stop(d, R2M_E_NOMEM);
        memcpy(m, d->mems + f->start, n * sizeof *m);
        long dup = sort_members(m, n);
        if (dup >= 0) {
            d->dup_key = m[dup].key;
            d->dup_len = m[dup].key_len;
            return stop(d, R2M_E_JSON_DUPKEY);
        }
        v.u.members = m;
    }
    d->nmems = f->start;
    d->nframes--;
    left_frame(d);
    return emit(d, &v);
}

static int cb_end_array(void *ctx)
{
    struct r2m_json_doc *d = ctx;
    if (in_items(d))
        return end_items(d);
    struct frame *f = &d->frames[d->nframes - 1];
    size_t n = d->nvals - f->start;
    if (n > UINT32_MAX)
        return stop(d, R2M_E_JSON_NODES);
    struct r2m_json v = {.type = R2M_JSON_ARRAY, .n = (uint32_t)n, .u.items = NULL};
    if (n) {
        struct r2m_json *items = arena_alloc(d, n * sizeof *items, ARENA_ALIGN);
        if (!items)
            return stop(d, R2M_E_NOMEM);
        memcpy(items, d->vals + f->start, n * sizeof *items);
        v.u.items = items;
    }
    d->nvals = f->start;
    d->nframes--;
    left_frame(d);
    return emit(d, &v);
}

static const yajl_callbacks callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_boolean,
    .yajl_integer = NULL,
    .yajl_double = NULL,
    .yajl_number = cb_number, /* raw text: numbers never pass through a double */
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_map_key,
    .yajl_end_map = cb_end_map,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end_array,
};

/* ---- parse ------------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A short printable excerpt of untrusted bytes for an error message. */
static void printable(char *out, size_t outlen, const char *s, size_t n)
{
    size_t max = outlen - 4, j = 0;
    for (size_t i = 0; i < n && j < max; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = (c < 0x20 || c == 0x7f || c == '"') ? '?' : (char)c;
    }
    if (n > max) {
        /* do not cut a UTF-8 sequence in two */
        while (j > 0 && ((unsigned char)s[j] & 0xc0) == 0x80)
            j--;
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
}

/* Turns yajl's error into "invalid JSON at byte N: what". yajl's text is
 * "lexical error: x.\n" or "parse error: x\n"; only x is kept. The offset
 * is yajl's consumed count, which ends just after the offending token,
 * except for comments (the lexer puts the '/' back) and errors found by
 * yajl_complete_parse (which parses a private " " buffer: the input simply
 * ended). */
static void syntax_error(yajl_handle h, const char *buf, size_t len, int at_end, char *err,
                         size_t errlen)
{
    if (!err || !errlen)
        return;
    unsigned char *ye = yajl_get_error(h, 0, (const unsigned char *)buf, len);
    const char *what = ye ? (const char *)ye : "syntax error";
    const char *colon = strstr(what, "error: ");
    if (colon)
        what = colon + 7;
    size_t wlen = strcspn(what, "\n");
    while (wlen && what[wlen - 1] == '.')
        wlen--;

    size_t at = len;
    if (!at_end) {
        at = yajl_get_bytes_consumed(h);
        if (at > 0 && !strstr(what, "comment"))
            at--;
    }
    static const char bad_char[] = "invalid char in json text";
    if (!at_end && at < len && wlen == sizeof bad_char - 1 && memcmp(what, bad_char, wlen) == 0) {
        unsigned char c = (unsigned char)buf[at];
        if (c >= 0x20 && c < 0x7f)
            set_err(err, errlen, "invalid JSON at byte %zu: unexpected character '%c'", at, c);
        else
            set_err(err, errlen, "invalid JSON at byte %zu: unexpected byte 0x%02x", at, c);
    } else if (at_end && wlen == 13 && memcmp(what, "premature EOF", 13) == 0) {
        set_err(err, errlen, "invalid JSON at byte %zu: unexpected end of input", at);
    } else {
        set_err(err, errlen, "invalid JSON at byte %zu: %.*s", at, (int)wlen, what);
    }
    if (ye)
        yajl_free_error(h, ye);
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Says in err why a parse stopped that a callback (or a limit) cancelled:
 * rc is the cause, the byte offset comes from yajl. */
static void explain_stop(const struct r2m_json_doc *doc, yajl_handle h, size_t len, int at_end,
                         int rc, char *err, size_t errlen)
{
    size_t at = at_end ? len : yajl_get_bytes_consumed(h);
    if (at > 0 && !at_end)
        at--;
    if (doc->fn_failed) {
        set_err(err, errlen, "item %zu (ending at byte %zu) refused: %s", doc->item_index, at,
                r2m_strerror(rc));
        return;
    }
    switch (rc) {
    case R2M_E_JSON_SYNTAX:
        if (doc->bad_what[0])
            set_err(err, errlen, "invalid JSON at byte %zu: %s", doc->bad_at, doc->bad_what);
        else
            set_err(err, errlen, "invalid JSON at byte %zu", at);
        break;
    case R2M_E_JSON_DEPTH:
        set_err(err, errlen, "JSON nested deeper than %u levels at byte %zu", doc->lim.max_depth,
                at);
        break;
    case R2M_E_JSON_NODES:
        set_err(err, errlen, "JSON has more than %zu values", doc->lim.max_nodes);
        break;
    case R2M_E_JSON_DUPKEY: {
        char key[64];
        printable(key, sizeof key, doc->dup_key, doc->dup_len);
        set_err(err, errlen, "duplicate key \"%s\" in object ending at byte %zu", key, at);
        break;
    }
    case R2M_E_TOO_BIG:
        set_err(err, errlen, "JSON string longer than 4 GiB at byte %zu", at);
        break;
    case R2M_E_NOMEM:
        set_err(err, errlen, "out of memory");
        break;
    default:
        set_err(err, errlen, "invalid JSON at byte %zu", at);
        break;
    }
}

/* The parse behind both entry points; doc->stream and the segments are set
 * up by the caller. */
static int parse(struct r2m_json_doc *doc, const char *buf, size_t len, struct r2m_json **root,
                 char *err, size_t errlen)
{
    int rc = 0;
    yajl_handle h = NULL;

    arena_reset(doc);
    doc->nvals = doc->nmems = doc->nframes = 0;
    doc->nodes = 0;
    doc->err = 0;
    doc->fn_failed = 0;
    doc->dup_key = NULL;
    doc->dup_len = 0;
    doc->bad_what[0] = '\0';
    doc->on_path = 0;

    size_t i = 0;
    while (i < len && is_ws(buf[i]))
        i++;
    if (i == len) {
        rc = R2M_E_JSON_SYNTAX;
        set_err(err, errlen, "invalid JSON: empty body");
        goto out;
    }

    h = yajl_alloc(&callbacks, &doc->afuncs, doc);
    if (!h) {
        rc = R2M_E_NOMEM;
        set_err(err, errlen, "out of memory");
        goto out;
    }
    /* comments off; strings are checked by check_string, strictly */
    if (!yajl_config(h, yajl_allow_comments, 0) || !yajl_config(h, yajl_dont_validate_strings, 1)) {
        rc = R2M_E_INVALID;
        set_err(err, errlen, "cannot configure the JSON parser");
        goto out;
    }
    doc->buf = buf;
    doc->len = len;
    doc->h = h;
    doc->completing = 0;
    doc->root_end = len;
    doc->text_ok = r2m_utf8_check(buf, len, NULL) == 0;

    int at_end = 0;
    yajl_status st = yajl_parse(h, (const unsigned char *)buf, len);
    if (st == yajl_status_ok) {
        at_end = 1;
        doc->completing = 1;
        st = yajl_complete_parse(h);
    }
    if (st == yajl_status_ok) {
        /* yajl takes an unterminated string after the root value for an
         * incomplete token and reports success: `{"a":1}"x` would pass */
        for (i = doc->root_end; i < len && is_ws(buf[i]);)
            i++;
        if (i < len) {
            rc = R2M_E_JSON_SYNTAX;
            set_err(err, errlen, "invalid JSON at byte %zu: trailing garbage", i);
            goto out;
        }
        *root = &doc->root;
        goto out;
    }
    if (st != yajl_status_client_canceled) {
        rc = R2M_E_JSON_SYNTAX;
        syntax_error(h, buf, len, at_end, err, errlen);
        goto out;
    }

    rc = doc->err ? doc->err : R2M_E_JSON_SYNTAX;
    explain_stop(doc, h, len, at_end, rc, err, errlen);

out:
    doc->h = NULL;
    doc->buf = NULL;
    if (h)
        yajl_free(h);
    if (rc)
        doc->nvals = doc->nmems = doc->nframes = 0;
    doc->stream = 0;
    doc->fn = NULL;
    doc->fn_ctx = NULL;
    return rc;
}

int r2m_json_parse(struct r2m_json_doc *doc, const char *buf, size_t len, struct r2m_json **root,
                   char *err, size_t errlen)
{
    *root = NULL;
    if (err && errlen)
        err[0] = '\0';
    doc->stream = 0;
    return parse(doc, buf, len, root, err, errlen);
}

int r2m_json_parse_items(struct r2m_json_doc *doc, const char *buf, size_t len,
                         const char *items_ptr, r2m_json_item_fn *fn, void *ctx,
                         struct r2m_json **root, char *err, size_t errlen)
{
    *root = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!items_ptr || (*items_ptr && *items_ptr != '/') || !fn) {
        set_err(err, errlen, "items pointer \"%.64s\" must be empty or start with '/'",
                items_ptr ? items_ptr : "(null)");
        return R2M_E_INVALID;
    }
    /* split the pointer once; segments point into items_ptr */
    doc->nsegs = 0;
    for (const char *p = items_ptr; *p;) {
        const char *s = p + 1;
        size_t n = strcspn(s, "/");
        if (doc->nsegs == doc->capsegs &&
            stack_grow((void **)&doc->segs, &doc->capsegs, sizeof *doc->segs)) {
            set_err(err, errlen, "out of memory");
            return R2M_E_NOMEM;
        }
        struct seg *g = &doc->segs[doc->nsegs++];
        g->s = s;
        g->n = n;
        g->ok = segment_ok(s, n);
        g->idx = parse_index(s, n);
        p = s + n;
    }
    doc->stream = 1;
    doc->fn = fn;
    doc->fn_ctx = ctx;
    return parse(doc, buf, len, root, err, errlen);
}

/* ---- numbers ---------------------------------------------------------- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Copies cnt significant digits starting at digit index q of the number's
 * digit sequence, which is split in two runs: integer part, fraction. */
static char *copy_digits(char *o, const char *ip, size_t il, const char *fp, size_t q, size_t cnt)
{
    if (q < il) {
        size_t a = il - q < cnt ? il - q : cnt;
        memcpy(o, ip + q, a);
        o += a;
        cnt -= a;
        q = il;
    }
    if (cnt) {
        memcpy(o, fp + (q - il), cnt);
        o += cnt;
    }
    return o;
}

static char *put_zeros(char *o, size_t n)
{
    memset(o, '0', n);
    return o + n;
}

static char *put_u64(char *o, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *o++ = tmp[--n];
    return o;
}

/* Writes |E| + delta for an exponent E too long for int64 (ed: its digits,
 * no leading zeros, at least 18 of them). |delta| is bounded by the input
 * length, far below |E|, so the result keeps E's sign and stays positive. */
static char *put_big_exp(char *o, const char *ed, size_t edn, int64_t delta)
{
    o[0] = '0';
    memcpy(o + 1, ed, edn);
    size_t m = edn + 1;
    uint64_t mag = delta < 0 ? (uint64_t)0 - (uint64_t)delta : (uint64_t)delta;
    int carry = 0;
    for (size_t j = m; j-- > 0 && (mag || carry);) {
        int t = o[j] - '0';
        int dd = (int)(mag % 10);
        mag /= 10;
        if (delta >= 0) {
            t += dd + carry;
            carry = t >= 10;
            if (carry)
                t -= 10;
        } else {
            t -= dd + carry;
            carry = t < 0;
            if (carry)
                t += 10;
        }
        o[j] = (char)('0' + t);
    }
    size_t f = 0;
    while (f + 1 < m && o[f] == '0')
        f++;
    memmove(o, o + f, m - f);
    return o + (m - f);
}

/* A JSON number split into its parts (pointers into the input text). */
struct num_parts {
    int neg, exp_neg;
    const char *ip, *fp, *ed; /* integer, fraction and exponent digits */
    size_t il, fl, el;
};

/* Checks the RFC 8259 number grammar and splits the text into its parts.
 * Returns 1 when the text is a plain integer that is already canonical
 * (the fast path: nearly every number in real documents), 0 for any other
 * valid number, -1 for text that is not a number. */
static int number_scan(const char *in, size_t len, struct num_parts *p)
{
    size_t i = 0;
    *p = (struct num_parts){0};
    if (i < len && in[i] == '-') {
        p->neg = 1;
        i++;
    }
    if (i >= len || !is_digit(in[i]))
        return -1;
    size_t int_beg = i;
    if (in[i] == '0')
        i++;
    else
        while (i < len && is_digit(in[i]))
            i++;
    p->ip = in + int_beg;
    p->il = i - int_beg;
    /* a plain integer of at most 21 digits is canonical, except "-0" */
    if (i == len && p->il <= 21 && !(p->neg && in[int_beg] == '0'))
        return 1;
    p->fp = in + i;
    if (i < len && in[i] == '.') {
        p->fp = in + ++i;
        while (i < len && is_digit(in[i]))
            i++;
        p->fl = (size_t)(in + i - p->fp);
        if (!p->fl)
            return -1;
    }
    p->ed = in + i;
    if (i < len && (in[i] == 'e' || in[i] == 'E')) {
        i++;
        if (i < len && (in[i] == '+' || in[i] == '-'))
            p->exp_neg = in[i++] == '-';
        p->ed = in + i;
        while (i < len && is_digit(in[i]))
            i++;
        p->el = (size_t)(in + i - p->ed);
        if (!p->el)
            return -1;
    }
    if (i != len || len > INT32_MAX - 32)
        return -1;
    return 0;
}

/* Writes the significant digits fz.. (k of them) of a number whose decimal
 * point sits n digits after the first significant one (value = 0.D x 10^n),
 * in ECMAScript's Number::toString layout; big: the exponent has more than
 * 17 digits and n was not computed. Returns the end of what was written. */
static char *number_render(char *o, const struct num_parts *p, size_t fz, size_t k, int64_t n,
                           int big)
{
    const char *ip = p->ip, *fp = p->fp;
    size_t il = p->il;
    if (!big && (int64_t)k <= n && n <= 21) {
        o = copy_digits(o, ip, il, fp, fz, k);
        return put_zeros(o, (size_t)n - k);
    }
    if (!big && 0 < n && n <= 21) {
        o = copy_digits(o, ip, il, fp, fz, (size_t)n);
        *o++ = '.';
        return copy_digits(o, ip, il, fp, fz + (size_t)n, k - (size_t)n);
    }
    if (!big && -6 < n && n <= 0) {
        *o++ = '0';
        *o++ = '.';
        o = put_zeros(o, (size_t)-n);
        return copy_digits(o, ip, il, fp, fz, k);
    }
    o = copy_digits(o, ip, il, fp, fz, 1);
    if (k > 1) {
        *o++ = '.';
        o = copy_digits(o, ip, il, fp, fz + 1, k - 1);
    }
    *o++ = 'e';
    if (!big) {
        int64_t x = n - 1;
        *o++ = x < 0 ? '-' : '+';
        return put_u64(o, x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x);
    }
    /* exponent = E + (il - fz - 1), applied to |E|'s digits */
    int64_t adj = (int64_t)il - (int64_t)fz - 1;
    *o++ = p->exp_neg ? '-' : '+';
    return put_big_exp(o, p->ed, p->el, p->exp_neg ? -adj : adj);
}

int r2m_json_number_canonical(const char *in, size_t len, char *out)
{
    struct num_parts p;
    int r = number_scan(in, len, &p);
    if (r < 0)
        return -1;
    if (r == 1) {
        memcpy(out, in, len);
        out[len] = '\0';
        return (int)len;
    }
    const char *ip = p.ip, *fp = p.fp;
    size_t il = p.il, total = p.il + p.fl;
    /* First and last significant digit in the combined digit sequence. */
    size_t fz = 0;
    while (fz < total && (fz < il ? ip[fz] : fp[fz - il]) == '0')
        fz++;
    if (fz == total) { /* zero, whatever its sign or exponent */
        out[0] = '0';
        out[1] = '\0';
        return 1;
    }
    size_t lz = total - 1;
    while ((lz < il ? ip[lz] : fp[lz - il]) == '0')
        lz--;
    size_t k = lz - fz + 1;
    while (p.el > 1 && *p.ed == '0') {
        p.ed++;
        p.el--;
    }
    /* n: position of the decimal point relative to the first significant
     * digit (value = 0.D x 10^n), as in ECMAScript's Number::toString. */
    int big = p.el > 17;
    int64_t n = 0;
    if (!big) {
        int64_t e = 0;
        for (size_t j = 0; j < p.el; j++)
            e = e * 10 + (p.ed[j] - '0');
        n = (int64_t)il - (int64_t)fz + (p.exp_neg ? -e : e);
    }
    char *o = out;
    if (p.neg)
        *o++ = '-';
    o = number_render(o, &p, fz, k, n, big);
    *o = '\0';
    return (int)(o - out);
}

/* ---- canonical text --------------------------------------------------- */

/* Small writes are staged in a local buffer and handed to r2m_buf in
 * blocks: the canonical text of a big document is millions of tokens. */
struct writer {
    struct r2m_buf *out;
    size_t n;
    int rc;
    char tmp[8192];
};

static void w_flush(struct writer *w)
{
    if (w->n && !w->rc)
        w->rc = r2m_buf_append(w->out, w->tmp, w->n);
    w->n = 0;
}

static inline void w_put(struct writer *w, const void *p, size_t n)
{
    if (!n)
        return;
    if (n <= sizeof w->tmp - w->n) {
        memcpy(w->tmp + w->n, p, n);
        w->n += n;
        return;
    }
    w_flush(w);
    if (n >= sizeof w->tmp / 2) {
        if (!w->rc)
            w->rc = r2m_buf_append(w->out, p, n);
        return;
    }
    memcpy(w->tmp, p, n);
    w->n = n;
}

static inline void w_putc(struct writer *w, char c)
{
    if (w->n == sizeof w->tmp)
        w_flush(w);
    w->tmp[w->n++] = c;
}

/* The letter after the backslash for a byte that needs escaping ('u' for
 * \u00XX), 0 for bytes copied as they are (all of UTF-8 above 0x1f). */
static inline char escape_of(unsigned char c)
{
    if (c >= 0x20 && c != '"' && c != '\\')
        return 0;
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    default:
        return 'u';
    }
}

static void w_string(struct writer *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    w_putc(w, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e = escape_of(c);
        if (!e)
            continue;
        w_put(w, s + run, i - run);
        run = i + 1;
        if (e == 'u') {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            w_put(w, u, sizeof u);
        } else {
            char b[2] = {'\\', e};
            w_put(w, b, sizeof b);
        }
    }
    w_put(w, s + run, n - run);
    w_putc(w, '"');
}

/* Recursion depth is bounded by the parser's max_depth. */
static void w_value(struct writer *w, const struct r2m_json *v)
{
    if (w->rc)
        return;
    switch (v->type) {
    case R2M_JSON_NULL:
        w_put(w, "null", 4);
        break;
    case R2M_JSON_FALSE:
        w_put(w, "false", 5);
        break;
    case R2M_JSON_TRUE:
        w_put(w, "true", 4);
        break;
    case R2M_JSON_NUMBER:
        w_put(w, v->u.str, v->n);
        break;
    case R2M_JSON_STRING:
        w_string(w, v->u.str, v->n);
        break;
    case R2M_JSON_ARRAY:
        w_putc(w, '[');
        for (uint32_t i = 0; i < v->n; i++) {
            if (i)
                w_putc(w, ',');
            w_value(w, &v->u.items[i]);
        }
        w_putc(w, ']');
        break;
    case R2M_JSON_OBJECT:
        w_putc(w, '{');
        for (uint32_t i = 0; i < v->n; i++) {
            const struct r2m_json_member *m = &v->u.members[i];
            if (i)
                w_putc(w, ',');
            w_string(w, m->key, m->key_len);
            w_putc(w, ':');
            w_value(w, &m->value);
        }
        w_putc(w, '}');
        break;
    default:
        w->rc = R2M_E_INVALID;
        break;
    }
}

/* Both writers leave `out` as it was when they fail. */
static int w_finish(struct writer *w, size_t start)
{
    w_flush(w);
    if (w->rc) {
        w->out->len = start;
        if (w->out->data)
            w->out->data[start] = '\0';
    }
    return w->rc;
}

int r2m_json_canonical(const struct r2m_json *v, struct r2m_buf *out)
{
    struct writer w;
    w.out = out;
    w.n = 0;
    w.rc = 0;
    size_t start = out->len;
    w_value(&w, v);
    return w_finish(&w, start);
}

int r2m_json_quote(struct r2m_buf *out, const char *s, size_t n)
{
    struct writer w;
    w.out = out;
    w.n = 0;
    w.rc = 0;
    size_t start = out->len;
    w_string(&w, s, n);
    return w_finish(&w, start);
}

/* ---- JSON Pointer ----------------------------------------------------- */

/* A segment is valid when every '~' is followed by '0' or '1'. */
static int segment_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '~' && (i + 1 == n || (s[i + 1] != '0' && s[i + 1] != '1')))
            return 0;
    return 1;
}

/* Compares an escaped (valid) pointer segment with a key, by the decoded
 * bytes, in the same order as the members are sorted. */
static int segment_cmp(const char *s, size_t n, const char *key, size_t klen)
{
    size_t i = 0, j = 0;
    while (i < n && j < klen) {
        unsigned char c = (unsigned char)s[i++];
        if (c == '~')
            c = s[i++] == '0' ? '~' : '/';
        unsigned char k = (unsigned char)key[j++];
        if (c != k)
            return c < k ? -1 : 1;
    }
    if (i < n)
        return 1;
    return j < klen ? -1 : 0;
}

static long find_member(const struct r2m_json *obj, const char *seg, size_t n)
{
    if (!segment_ok(seg, n))
        return -1;
    size_t lo = 0, hi = obj->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct r2m_json_member *m = &obj->u.members[mid];
        int c = segment_cmp(seg, n, m->key, m->key_len);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

/* RFC 6901 array index: "0" or digits without a leading zero. */
static long parse_index(const char *s, size_t n)
{
    if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v > UINT32_MAX ? -1 : (long)v;
}

/* Looks up one segment in a container; NULL when absent. */
static struct r2m_json *child(struct r2m_json *v, const char *seg, size_t n, long *idx)
{
    long i = -1;
    if (v->type == R2M_JSON_OBJECT) {
        i = find_member(v, seg, n);
        *idx = i;
        return i < 0 ? NULL : &v->u.members[i].value;
    }
    if (v->type == R2M_JSON_ARRAY) {
        i = parse_index(seg, n);
        *idx = i;
        return i < 0 || (uint64_t)i >= v->n ? NULL : &v->u.items[i];
    }
    *idx = -1;
    return NULL;
}

struct r2m_json *r2m_json_pointer(struct r2m_json *root, const char *ptr)
{
    if (!root || !ptr)
        return NULL;
    if (*ptr && *ptr != '/')
        return NULL;
    struct r2m_json *v = root;
    while (v && *ptr) {
        const char *seg = ptr + 1;
        size_t n = strcspn(seg, "/");
        long idx;
        v = child(v, seg, n, &idx);
        ptr = seg + n;
    }
    return v;
}

int r2m_json_pointer_check(const char *ptr, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!ptr) {
        set_err(err, errlen, "missing JSON pointer");
        return R2M_E_INVALID;
    }
    if (*ptr && *ptr != '/') {
        set_err(err, errlen, "JSON pointer \"%.64s\" must be empty or start with '/'", ptr);
        return R2M_E_INVALID;
    }
    for (size_t i = 0; ptr[i]; i++) {
        if (ptr[i] == '~' && ptr[i + 1] != '0' && ptr[i + 1] != '1') {
            set_err(err, errlen,
                    "JSON pointer \"%.64s\": '~' at offset %zu must be followed by 0 or 1", ptr, i);
            return R2M_E_INVALID;
        }
    }
    return 0;
}

/* Removes what the pattern from ptr (at a '/') matches below v. */
static void remove_at(struct r2m_json *v, const char *ptr)
{
    if (v->type != R2M_JSON_OBJECT && v->type != R2M_JSON_ARRAY)
        return;
    const char *seg = ptr + 1;
    size_t n = strcspn(seg, "/");
    const char *rest = seg + n;
    int last = *rest == '\0';
    int is_obj = v->type == R2M_JSON_OBJECT;

    if (n == 1 && seg[0] == '*') {
        if (last) {
            v->n = 0;
            return;
        }
        for (uint32_t i = 0; i < v->n; i++)
            remove_at(is_obj ? &v->u.members[i].value : &v->u.items[i], rest);
        return;
    }
    long idx;
    struct r2m_json *c = child(v, seg, n, &idx);
    if (!c)
        return;
    if (!last) {
        remove_at(c, rest);
        return;
    }
    /* Shift the tail down: order (and so sortedness) is kept. */
    size_t tail = v->n - (size_t)idx - 1;
    if (is_obj)
        memmove(&v->u.members[idx], &v->u.members[idx + 1], tail * sizeof *v->u.members);
    else
        memmove(&v->u.items[idx], &v->u.items[idx + 1], tail * sizeof *v->u.items);
    v->n--;
}

void r2m_json_remove(struct r2m_json *root, char *const *ptrs, size_t n)
{
    if (!root)
        return;
    for (size_t i = 0; i < n; i++)
        if (ptrs[i] && ptrs[i][0] == '/')
            remove_at(root, ptrs[i]);
}

/* ---- equality, fingerprints ------------------------------------------- */

int r2m_json_equal(const struct r2m_json *a, const struct r2m_json *b)
{
    if (a == b)
        return 1;
    if (!a || !b || a->type != b->type || a->n != b->n)
        return 0;
    switch (a->type) {
    case R2M_JSON_NUMBER:
    case R2M_JSON_STRING:
        return a->n == 0 || memcmp(a->u.str, b->u.str, a->n) == 0;
    case R2M_JSON_ARRAY:
        for (uint32_t i = 0; i < a->n; i++)
            if (!r2m_json_equal(&a->u.items[i], &b->u.items[i]))
                return 0;
        return 1;
    case R2M_JSON_OBJECT:
        for (uint32_t i = 0; i < a->n; i++) {
            const struct r2m_json_member *x = &a->u.members[i], *y = &b->u.members[i];
            if (x->key_len != y->key_len || (x->key_len && memcmp(x->key, y->key, x->key_len)) ||
                !r2m_json_equal(&x->value, &y->value))
                return 0;
        }
        return 1;
    default:
        return 1;
    }
}

struct r2m_fp r2m_json_fingerprint(const void *canon, size_t len)
{
    XXH128_hash_t h = XXH3_128bits(len ? canon : "", len);
    struct r2m_fp fp = {.hi = h.high64, .lo = h.low64};
    return fp;
}

void r2m_fp_hex(struct r2m_fp fp, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(fp.hi >> (60 - 4 * i)) & 15];
        out[16 + i] = hex[(fp.lo >> (60 - 4 * i)) & 15];
    }
    out[32] = '\0';
}
