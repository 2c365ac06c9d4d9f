/* r2m/json.h - JSON parsing into a canonical tree, canonical text, fingerprints.
 *
 * A response body is parsed (yajl's callback API) into a tree that already is
 * canonical: object members sorted by the bytes of their UTF-8 key and unique,
 * strings decoded (so "\u00e9" and "é" are the same value), numbers kept as
 * exact decimal text in one spelling (r2m_json_number_canonical). Serialising
 * the tree with r2m_json_canonical() yields the canonical form: no
 * insignificant whitespace, minimal string escapes. Two documents that differ
 * only in key order, whitespace, escapes or number spelling have the same
 * canonical bytes and therefore the same fingerprint.
 *
 * Nodes live in an arena owned by a struct r2m_json_doc; parsing again resets
 * the arena, so the arena's memory is reused across polls and an unchanged
 * poll allocates nothing once the arena has grown to the document's size.
 * The module does no I/O and keeps no globals. */
#ifndef R2M_JSON_H
#define R2M_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/buf.h"
#include "r2m/fp.h"

enum r2m_json_type {
    R2M_JSON_NULL = 0,
    R2M_JSON_FALSE,
    R2M_JSON_TRUE,
    R2M_JSON_NUMBER,
    R2M_JSON_STRING,
    R2M_JSON_ARRAY,
    R2M_JSON_OBJECT,
};

struct r2m_json_member;

struct r2m_json {
    uint32_t type; /* enum r2m_json_type */
    uint32_t n;    /* STRING/NUMBER: bytes; ARRAY: elements; OBJECT: members */
    union {
        const char *str;                 /* STRING: decoded UTF-8, may hold NUL;
                                            NUMBER: canonical decimal spelling;
                                            both followed by a NUL not in n */
        struct r2m_json *items;          /* ARRAY */
        struct r2m_json_member *members; /* OBJECT: sorted by key bytes, unique */
    } u;
};

struct r2m_json_member {
    const char *key; /* decoded UTF-8, may hold NUL */
    uint32_t key_len;
    struct r2m_json value;
};

/* A zero field means its default. Tree walkers (canonical, equal, diff)
 * recurse once per nesting level, so max_depth also bounds their stack. */
struct r2m_json_limits {
    unsigned max_depth; /* deepest nesting accepted (default 64); deeper: R2M_E_JSON_DEPTH */
    size_t max_nodes;   /* most values in one document (default 10,000,000);
                           streamed items count only while they are parsed */
};

struct r2m_json_doc;

/* Creates a parser + arena. lim may be NULL for the defaults. The doc keeps
 * the memory of its largest parse for reuse until r2m_json_doc_free. */
int r2m_json_doc_new(struct r2m_json_doc **out, const struct r2m_json_limits *lim);
void r2m_json_doc_free(struct r2m_json_doc *doc);
/* Changes the nesting limit for the following parses (0 = default); one
 * doc is shared by endpoints with different max_depth settings. */
void r2m_json_doc_set_depth(struct r2m_json_doc *doc, unsigned max_depth);

/* Parses len bytes of buf (no NUL terminator needed; JSON comments are
 * rejected). On success *root points into doc and stays valid until the next
 * parse or free of doc. Text has one rule: every string and member name must
 * be valid UTF-8 (r2m_utf8_check) and every \u escape a Unicode scalar
 * value (a surrogate only as a high + low pair, which decodes to its 4-byte
 * UTF-8); anything else is invalid JSON, never replaced. So every string in
 * the tree, and the canonical text, is valid UTF-8. Errors:
 * R2M_E_JSON_SYNTAX (err names the byte offset and what was found, e.g.
 * "invalid JSON at byte 17: unexpected character '<'", "invalid JSON at byte
 * 17: lone UTF-16 surrogate \ud800", "invalid JSON at byte 3: invalid
 * UTF-8, overlong encoding"), R2M_E_JSON_DEPTH, R2M_E_JSON_NODES,
 * R2M_E_JSON_DUPKEY (err names the key), R2M_E_NOMEM (R2M_E_TOO_BIG for a
 * single string over 4 GiB). err may be NULL; it is always NUL-terminated
 * otherwise (empty on success). */
int r2m_json_parse(struct r2m_json_doc *doc, const char *buf, size_t len, struct r2m_json **root,
                   char *err, size_t errlen);

/* Receives one item of r2m_json_parse_items. index counts the items from 0
 * in document order; key/key_len is the member name when the items are an
 * object's members, NULL/0 for an array's elements. item lives in the
 * doc's arena only until fn returns (fn may change it, e.g. with
 * r2m_json_remove; it must keep no pointer into it). Returns 0 to go on;
 * any other value stops the parse, which then returns that value. */
typedef int r2m_json_item_fn(void *ctx, size_t index, const char *key, size_t key_len,
                             struct r2m_json *item);

/* Parses like r2m_json_parse, but hands every element of the array (or
 * every member of the object) at RFC 6901 pointer items_ptr ("" = the root)
 * to fn as soon as it is complete, then drops its nodes: memory stays about
 * one item plus the rest of the document, and released nodes do not count
 * against max_nodes (max_depth applies unchanged). The rest of the document
 * is in *root as usual; the container at items_ptr stays there empty (n 0,
 * its own type), so r2m_json_pointer(*root, items_ptr) tells "absent"
 * (NULL), "not a list" (a scalar, kept as parsed) and "a list" apart.
 * Duplicate member names in an items object are refused as in any object
 * (R2M_E_JSON_DUPKEY), after fn has seen both. On any error *root is NULL
 * and fn may already have been called for some items: the caller must undo
 * what it did with them. Errors: those of r2m_json_parse; R2M_E_INVALID for
 * an items_ptr that is not "" or "/..."; fn's own code when fn stopped the
 * parse (err names the item). */
int r2m_json_parse_items(struct r2m_json_doc *doc, const char *buf, size_t len,
                         const char *items_ptr, r2m_json_item_fn *fn, void *ctx,
                         struct r2m_json **root, char *err, size_t errlen);

/* Writes the canonical spelling of the JSON number text in[0..len) to out
 * (at most len + 32 bytes, NUL-terminated) and returns its length, or -1 if
 * in is not a JSON number. Exact decimal, never through a double: sign,
 * significant digits, exponent. "-0" -> "0"; "1.0", "1e0", "10e-1" -> "1";
 * "1e3" -> "1000"; "0.5e-1" -> "0.05"; values whose decimal point lies
 * beyond 21 digits or before 6 leading zeros use exponent form "1.5e+30",
 * "1e-7" (the same thresholds as ECMAScript's Number#toString, applied to
 * the exact digits), so integer ids like 12345678901234567891 keep their
 * plain spelling and distinct values never share one (exponents too long
 * for 64 bits, "1e99999999999999999999", are adjusted exactly as text). */
int r2m_json_number_canonical(const char *in, size_t len, char *out);

/* RFC 6901 JSON Pointer lookup. "" is the root. Returns NULL when absent. */
struct r2m_json *r2m_json_pointer(struct r2m_json *root, const char *ptr);

/* Checks the syntax of a pointer pattern ("" or "/a/b", '~0' '~1' escapes,
 * a segment of exactly "*" is a wildcard). Returns 0 or R2M_E_INVALID and a
 * message in err. */
int r2m_json_pointer_check(const char *ptr, char *err, size_t errlen);

/* Removes every member or element matched by any of the n pointer patterns
 * (a "*" segment matches every member of an object and every element of an
 * array). Missing paths are ignored. The root itself ("") is never removed.
 * Patterns apply in order, each to the result of the ones before (so
 * "/a/0" twice removes two elements); a member literally named "*" cannot
 * be addressed. Objects stay sorted. */
void r2m_json_remove(struct r2m_json *root, char *const *ptrs, size_t n);

/* Appends the canonical text of v to out. Returns R2M_E_TOO_BIG if out's
 * ceiling is reached. */
int r2m_json_canonical(const struct r2m_json *v, struct r2m_buf *out);

/* Appends s as a JSON string literal (quotes, minimal escapes: \" \\ \b \f
 * \n \r \t, \u00XX for other control bytes) - the canonical string form. */
int r2m_json_quote(struct r2m_buf *out, const char *s, size_t n);

/* Structural equality of two canonical trees. */
int r2m_json_equal(const struct r2m_json *a, const struct r2m_json *b);

/* 128-bit fingerprint (XXH3-128 from libxxhash) of canonical bytes. */
struct r2m_fp r2m_json_fingerprint(const void *canon, size_t len);
/* Hex spelling, 32 chars + NUL. */
void r2m_fp_hex(struct r2m_fp fp, char out[33]);

#endif
