/* r2m/expand.h - ${env:NAME} and ${file:/path} in configuration values.
 *
 * A value's text is copied with every ${env:NAME} replaced by the variable
 * and every ${file:/path} by the file's content (regular files only, at
 * most 1 MiB, opened without blocking so a FIFO cannot hang a reload; one
 * trailing "\n" or "\r\n" dropped). "$${" is a literal "${"; a '$' not
 * followed by '{' stays. The result is at most 4 MiB and holds no NUL.
 * Problems are reported at the value's position to a struct r2m_diag_list;
 * text that came from a reference is never quoted in a message. */
#ifndef R2M_EXPAND_H
#define R2M_EXPAND_H

#include <stddef.h>

#include "r2m/buf.h"
#include "r2m/diag.h"

#define R2M_EXPAND_MAX_FILE  (1u << 20) /* one ${file:} */
#define R2M_EXPAND_MAX_VALUE (4u << 20) /* one value after expansion */

/* Expands text[0..len) (a value written at line:col) into *out (malloc'd,
 * NUL-terminated; the caller frees it, wiping it first when *secret).
 * *secret becomes 1 when the text holds a reference, also on failure.
 * 0; R2M_E_CONFIG after reporting to dl; R2M_E_NOMEM (dl->nomem set). */
int r2m_expand(const char *text, size_t len, struct r2m_diag_list *dl, int line, int col,
               char **out, int *secret);

/* Reads a whole file of at most max bytes into out (initialised here;
 * free with r2m_buf_free). With regular_only the open never blocks and
 * anything but a regular file is R2M_E_INVALID, *what naming it ("a
 * directory", "a FIFO", ...). 0, R2M_E_IO (errno kept), R2M_E_TOO_BIG,
 * R2M_E_INVALID or R2M_E_NOMEM. Also reads the configuration file. */
int r2m_expand_read_file(const char *path, size_t max, int regular_only, struct r2m_buf *out,
                         const char **what);

#endif
