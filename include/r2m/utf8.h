/* r2m/utf8.h - strict UTF-8 validation (RFC 3629).
 *
 * Valid means what paho and every MQTT broker require of a topic or an
 * MQTT 5 string, and what RFC 8259 requires of JSON text: shortest-form
 * sequences only (no overlong C0 AF or E0 80 AF), no UTF-16 surrogates
 * encoded as UTF-8 (ED A0 80 .. ED BF BF), no code point above U+10FFFF
 * (F4 90 and up, F5..FF), no stray continuation bytes, no sequence cut
 * short. NUL is a valid code point (U+0000); whether it may appear is the
 * caller's rule. Pure: no I/O, no globals, no allocation. */
#ifndef R2M_UTF8_H
#define R2M_UTF8_H

#include <stddef.h>

/* Returns 0 when s[0..n) is valid UTF-8, else R2M_E_INVALID and, when
 * bad_offset is not NULL, the offset of the first byte of the first invalid
 * sequence. s may be NULL when n is 0. ASCII runs are checked a word at a
 * time, so the check is cheap enough for every string of a document. */
int r2m_utf8_check(const char *s, size_t n, size_t *bad_offset);

/* Why the sequence that starts at s (n bytes left, n >= 1) is invalid, as
 * a short static phrase ("overlong encoding", "UTF-16 surrogate encoded as
 * UTF-8", ...); "valid" when it is not. Meant for the offset that
 * r2m_utf8_check reported. */
const char *r2m_utf8_reason(const char *s, size_t n);

#endif
