/* r2m/fp.h - the 128-bit fingerprint of canonical bytes, as a value.
 *
 * Its own header so that modules which only store or compare fingerprints
 * (the store) do not depend on the JSON module that computes them
 * (r2m_json_fingerprint in r2m/json.h). */
#ifndef R2M_FP_H
#define R2M_FP_H

#include <stdint.h>

/* XXH3-128 of canonical bytes; {0, 0} where none is stored. */
struct r2m_fp {
    uint64_t hi, lo;
};

#endif
