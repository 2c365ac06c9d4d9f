/* r2m/diff.h - differences between two canonical JSON trees.
 *
 * r2m_diff_patch() writes an RFC 6902 JSON Patch that turns `before` into
 * `after`: object members are compared by key (remove / add / recurse),
 * arrays element by element over the common length, then surplus elements
 * are removed from the end (highest index first) or appended with "/-";
 * values of different types or different scalars are replaced. Paths escape
 * '~' as "~0" and '/' as "~1". Values are written in canonical form, so the
 * patch is deterministic. There is no move/copy detection: an element
 * inserted at the front of an array shows as replaces plus one append.
 * Pure: no I/O, no globals. */
#ifndef R2M_DIFF_H
#define R2M_DIFF_H

#include "r2m/buf.h"
#include "r2m/json.h"

/* Appends the patch (a JSON array, "[]" when equal) to out. Either side may
 * be NULL, meaning "absent": then the patch is one whole-document op
 * (path ""). On error (R2M_E_TOO_BIG, R2M_E_NOMEM) out is left as it was. */
int r2m_diff_patch(const struct r2m_json *before, const struct r2m_json *after,
                   struct r2m_buf *out);

#endif
