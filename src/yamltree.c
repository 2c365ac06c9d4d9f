/* yamltree.c - libyaml events -> a small tree with positions (see r2m/yamltree.h). */
#include "r2m/yamltree.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "r2m/error.h"

/* The parse in progress. */
struct builder {
    const char *text;
    size_t len;
    struct r2m_diag_list *dl;
    struct r2m_ynode *stack[R2M_YAMLTREE_MAX_DEPTH];
    size_t depth;
    size_t n_nodes;
    struct r2m_ynode *root;
    int docs;
};

void r2m_yamltree_free(struct r2m_ynode *n)
{
    if (!n)
        return;
    /* recursion is bounded by R2M_YAMLTREE_MAX_DEPTH */
    for (size_t i = 0; i < n->n; i++)
        r2m_yamltree_free(n->kid[i]);
    free(n->kid);
    free(n->text);
    if (n->val && n->secret)
        explicit_bzero(n->val, strlen(n->val));
    free(n->val);
    free(n);
}

int r2m_yamltree_is_null(const struct r2m_ynode *n)
{
    return n->type == R2M_YNODE_SCALAR && n->plain &&
           (n->len == 0 || !strcmp(n->text, "~") || !strcmp(n->text, "null") ||
            !strcmp(n->text, "Null") || !strcmp(n->text, "NULL"));
}

const char *r2m_yamltree_kind(const struct r2m_ynode *n)
{
    switch (n->type) {
    case R2M_YNODE_MAP:
        return "a mapping";
    case R2M_YNODE_SEQ:
        return "a list";
    default:
        return "a single value";
    }
}

struct r2m_ynode *r2m_yamltree_find(const struct r2m_ynode *map, const char *key)
{
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (map->kid[i]->type == R2M_YNODE_SCALAR && !strcmp(map->kid[i]->text, key))
            return map->kid[i + 1];
    return NULL;
}

static int node_add(struct r2m_ynode *parent, struct r2m_ynode *n)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        struct r2m_ynode **k = realloc(parent->kid, cap * sizeof *k);
        if (!k)
            return R2M_E_NOMEM;
        parent->kid = k;
        parent->cap = cap;
    }
    parent->kid[parent->n++] = n;
    return 0;
}

/* Line and column (1-based, in characters) of a byte offset of the input. */
static void offset_pos(const struct builder *b, size_t off, int *line, int *col)
{
    int l = 1, k = 1;
    if (off > b->len)
        off = b->len;
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)b->text[i];
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

static void syntax_error(struct builder *b, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) {
        b->dl->nomem = 1;
        return;
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_READER_ERROR) {
        int line, col;
        offset_pos(b, p->problem_offset, &line, &col);
        if (p->problem_value >= 0)
            r2m_diag_error(
                b->dl, line, col,
                "%s (byte 0x%02x); save the file as UTF-8 text without control characters", problem,
                (unsigned)p->problem_value & 0xffu);
        else
            r2m_diag_error(b->dl, line, col,
                           "%s; save the file as UTF-8 text without control characters", problem);
        return;
    }
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    if (p->context)
        r2m_diag_error(b->dl, line, col,
                       "%s %s started at line %d, column %d; check the indentation, the ':' "
                       "after each key and the quotes",
                       problem, p->context, (int)p->context_mark.line + 1,
                       (int)p->context_mark.column + 1);
    else
        r2m_diag_error(b->dl, line, col,
                       "%s; check the indentation, the ':' after each key and the quotes", problem);
}

static const char anchor_hint[] =
    "YAML anchors and aliases are not supported; repeat the value or use defaults:";

/* Reports anchors and tags on a node event; the node itself stays usable. */
static void refuse_decorations(struct builder *b, const yaml_event_t *ev, const yaml_char_t *anchor,
                               const yaml_char_t *tag)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    if (anchor)
        r2m_diag_error(b->dl, line, col, "%s (anchor &%s)", anchor_hint,
                       r2m_diag_quote((const char *)anchor).s);
    if (tag)
        r2m_diag_error(b->dl, line, col,
                       "YAML tags are not supported (%s); remove the tag, and quote the value "
                       "if it must stay text",
                       r2m_diag_quote((const char *)tag).s);
}

static struct r2m_ynode *scalar_new(const yaml_event_t *ev)
{
    struct r2m_ynode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->type = R2M_YNODE_SCALAR;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    n->len = ev->data.scalar.length;
    n->text = malloc(n->len + 1);
    if (!n->text) {
        free(n);
        return NULL;
    }
    memcpy(n->text, ev->data.scalar.value, n->len);
    n->text[n->len] = '\0';
    return n;
}

/* Places a new node: the root, or the next child of the open collection;
 * collections become the open one. 0, R2M_E_CONFIG (too many values,
 * reported) or R2M_E_NOMEM; n is freed on error. */
static int place(struct builder *b, struct r2m_ynode *n)
{
    int rc = 0;
    if (++b->n_nodes > R2M_YAMLTREE_MAX_NODES) {
        r2m_diag_error(b->dl, n->line, n->col,
                       "more than %d YAML values; split the configuration or remove unused "
                       "parts",
                       R2M_YAMLTREE_MAX_NODES);
        rc = R2M_E_CONFIG;
        goto out;
    }
    if (b->depth == 0) {
        /* one document, so one root */
        r2m_yamltree_free(b->root);
        b->root = n;
    } else if (node_add(b->stack[b->depth - 1], n)) {
        b->dl->nomem = 1;
        rc = R2M_E_NOMEM;
        goto out;
    }
    if (n->type == R2M_YNODE_SEQ || n->type == R2M_YNODE_MAP)
        b->stack[b->depth++] = n;
out:
    if (rc)
        r2m_yamltree_free(n);
    return rc;
}

/* Handles one event. Returns 0 to go on, 1 at the end of the stream (or of
 * the first document), or an R2M_E_* error. */
static int on_event(struct builder *b, const yaml_event_t *ev)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    struct r2m_ynode *n = NULL;
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (b->docs++) {
            /* the first document is complete: still check it */
            r2m_diag_error(b->dl, line, col,
                           "only one YAML document is allowed; remove this '---' and what "
                           "follows, or merge it into the first document");
            return 1;
        }
        return 0;
    case YAML_ALIAS_EVENT:
        r2m_diag_error(b->dl, line, col, "%s (alias *%s)", anchor_hint,
                       r2m_diag_quote((const char *)ev->data.alias.anchor).s);
        n = calloc(1, sizeof *n);
        if (n)
            n->type = R2M_YNODE_ALIAS;
        break;
    case YAML_SCALAR_EVENT:
        refuse_decorations(b, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
        n = scalar_new(ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (ev->type == YAML_SEQUENCE_START_EVENT)
            refuse_decorations(b, ev, ev->data.sequence_start.anchor, ev->data.sequence_start.tag);
        else
            refuse_decorations(b, ev, ev->data.mapping_start.anchor, ev->data.mapping_start.tag);
        if (b->depth == R2M_YAMLTREE_MAX_DEPTH) {
            r2m_diag_error(b->dl, line, col,
                           "nesting deeper than %d levels; a rest2mqtt configuration needs only "
                           "a few, so check the structure",
                           R2M_YAMLTREE_MAX_DEPTH);
            return R2M_E_CONFIG;
        }
        n = calloc(1, sizeof *n);
        if (n)
            n->type = ev->type == YAML_SEQUENCE_START_EVENT ? R2M_YNODE_SEQ : R2M_YNODE_MAP;
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth)
            b->depth--;
        return 0;
    default:
        return 0;
    }
    if (!n) {
        b->dl->nomem = 1;
        return R2M_E_NOMEM;
    }
    n->line = line;
    n->col = col;
    return place(b, n);
}

int r2m_yamltree_parse(const char *text, size_t len, struct r2m_diag_list *dl,
                       struct r2m_ynode **root)
{
    yaml_parser_t p;
    yaml_event_t ev;
    struct builder b = {.text = text, .len = len, .dl = dl};
    int rc = 0;

    *root = NULL;
    if (!yaml_parser_initialize(&p)) {
        dl->nomem = 1;
        return R2M_E_NOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (rc == 0) {
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(&b, &p);
            rc = R2M_E_CONFIG;
            goto out;
        }
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
    }
    if (rc == 1)
        rc = 0;
out:
    yaml_parser_delete(&p);
    if (rc) {
        r2m_yamltree_free(b.root);
        return rc;
    }
    *root = b.root;
    return 0;
}

/* ---- writing ------------------------------------------------------------------ */

size_t r2m_yaml_unsafe(const char *str, size_t n, unsigned *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    if (n >= 1 && s[0] == 0x7f) {
        *cp = 0x7f;
        return 1;
    }
    if (n >= 2 && s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
        *cp = s[1];
        return 2;
    }
    if (n >= 3 && ((s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9)) ||
                   (s[0] == 0xef && s[1] == 0xbf && (s[2] == 0xbe || s[2] == 0xbf)))) {
        *cp = (unsigned)(s[0] & 0x0f) << 12 | (unsigned)(s[1] & 0x3f) << 6 | (s[2] & 0x3fu);
        return 3;
    }
    return 0;
}

int r2m_yaml_quote(struct r2m_buf *out, const char *s, size_t n, int literal_dollar)
{
    int r = r2m_buf_putc(out, '"');
    for (size_t i = 0; i < n && !r; i++) {
        unsigned cp = (unsigned char)s[i];
        size_t k = r2m_yaml_unsafe(s + i, n - i, &cp);
        if (k || cp < 0x20) {
            r = r2m_buf_printf(out, "\\u%04x", cp);
            i += k ? k - 1 : 0;
        } else if (cp == '"' || cp == '\\')
            r = r2m_buf_printf(out, "\\%c", (char)cp);
        else if (literal_dollar && cp == '$' && i + 1 < n && s[i + 1] == '{')
            r = r2m_buf_puts(out, "$$");
        else
            r = r2m_buf_putc(out, (char)cp);
    }
    return r ? r : r2m_buf_putc(out, '"');
}
