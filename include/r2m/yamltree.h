/* r2m/yamltree.h - one YAML document as a small tree of scalars, mappings
 * and lists, each with its 1-based line and column.
 *
 * Built from libyaml's event parser. Anchors, aliases and tags are refused
 * (aliases allow "billion laughs" expansion and serve no purpose in a
 * configuration): each is reported, and an alias becomes an R2M_YNODE_ALIAS
 * placeholder readers skip, so the rest of the document can still be
 * checked. Nesting is limited to 32 levels and the document to 1,000,000
 * values, so hostile input costs linear time and memory. Problems go to a
 * struct r2m_diag_list. */
#ifndef R2M_YAMLTREE_H
#define R2M_YAMLTREE_H

#include <stddef.h>

#include "r2m/buf.h"
#include "r2m/diag.h"

#define R2M_YAMLTREE_MAX_DEPTH 32      /* the configuration schema needs 4 levels */
#define R2M_YAMLTREE_MAX_NODES 1000000 /* ~30 nodes per endpoint: room for 10,000+ */

enum r2m_ynode_type { R2M_YNODE_SCALAR, R2M_YNODE_MAP, R2M_YNODE_SEQ, R2M_YNODE_ALIAS };

struct r2m_ynode {
    int type; /* enum r2m_ynode_type */
    int line, col;
    int plain;              /* unquoted scalar: "", "~" and "null" mean no value */
    char *text;             /* scalar as written (escapes resolved), NUL-terminated */
    size_t len;             /* of text; text may hold a NUL before len */
    struct r2m_ynode **kid; /* MAP: key, value, key, value, ...; SEQ: items */
    size_t n, cap;
    /* a reader's cache of the scalar's expanded value (see r2m/expand.h),
     * freed with the tree; a secret one is wiped first */
    int state;  /* 0 not yet, 1 done, 2 failed (already reported) */
    int secret; /* the value came through ${env:} or ${file:}: never echo it */
    char *val;
};

/* Parses text[0..len) (need not be NUL-terminated). Returns 0 with *root
 * the document's root (NULL for an empty document; free with
 * r2m_yamltree_free) when the tree is complete enough to be checked, even
 * if anchors, tags or a second document were reported to dl. Otherwise
 * R2M_E_CONFIG (a syntax error, too deep, too many values; reported) or
 * R2M_E_NOMEM (dl->nomem set), and *root is NULL. */
int r2m_yamltree_parse(const char *text, size_t len, struct r2m_diag_list *dl,
                       struct r2m_ynode **root);
void r2m_yamltree_free(struct r2m_ynode *n); /* NULL ok */

/* A plain scalar written as nothing, "~" or null/Null/NULL. */
int r2m_yamltree_is_null(const struct r2m_ynode *n);
/* "a mapping", "a list" or "a single value", for messages. */
const char *r2m_yamltree_kind(const struct r2m_ynode *n);
/* The value of the first key `key` of mapping map, or NULL. */
struct r2m_ynode *r2m_yamltree_find(const struct r2m_ynode *map, const char *key);

/* ---- writing YAML (probe's endpoint entry, the AsyncAPI document) ---- */

/* The length (1-3) of the character at s[0..n) that YAML reads as a line
 * break or refuses, though JSON and UTF-8 allow it raw: DEL, the C1
 * controls (NEL among them), U+2028, U+2029, U+FFFE, U+FFFF; *cp gets its
 * code point. 0 for anything else. */
size_t r2m_yaml_unsafe(const char *s, size_t n, unsigned *cp);

/* Appends s[0..n) as a double-quoted scalar that YAML reads back as
 * exactly s: '"', '\', control characters and r2m_yaml_unsafe ones
 * escaped. With literal_dollar, "${" is written "$${" (the config's
 * spelling of a literal "${"). R2M_E_TOO_BIG when out is full. */
int r2m_yaml_quote(struct r2m_buf *out, const char *s, size_t n, int literal_dollar);

#endif
