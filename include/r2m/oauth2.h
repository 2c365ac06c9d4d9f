/* r2m/oauth2.h - OAuth2 client credentials (RFC 6749 4.4) for one endpoint.
 *
 * An r2m_oauth2 owns the endpoint's token state: the token request (its
 * settings and form body, which holds the client secret), when the token
 * expires, and whether the poll in progress already refetched it after a
 * 401. It neither runs transfers nor keeps the token itself: the loop runs
 * the request r2m_oauth2_request() describes when r2m_oauth2_poll_start()
 * says so, hands the finished transfer to r2m_oauth2_done(), and gives the
 * token it returns to the endpoint's transfer (r2m_http_set_token). Time
 * comes in as arguments (monotonic ms), so tests step a fake clock. */
#ifndef R2M_OAUTH2_H
#define R2M_OAUTH2_H

#include <stddef.h>
#include <stdint.h>

#include "r2m/config.h"
#include "r2m/http.h"
#include "r2m/json.h"

/* A token is refetched this long before it expires, so no request carries
 * a stale one. */
#define R2M_OAUTH2_EARLY_MS 30000

struct r2m_oauth2;

/* ec (auth.type oauth2) must outlive t, or be replaced by retarget.
 * R2M_E_NOMEM or R2M_E_TOO_BIG (a form body over 64 KiB). */
int r2m_oauth2_new(struct r2m_oauth2 **out, const struct r2m_endpoint_cfg *ec);
/* Wipes the form body (it holds the secret) and frees. Accepts NULL. */
void r2m_oauth2_free(struct r2m_oauth2 *t);

/* The token request (POST to auth.token_url), for r2m_http_xfer_new; valid
 * as long as t. */
const struct r2m_endpoint_cfg *r2m_oauth2_request(const struct r2m_oauth2 *t);
/* After a reload kept the endpoint: point at its settings in the new
 * configuration (same token URL, credentials and TLS settings). */
void r2m_oauth2_retarget(struct r2m_oauth2 *t, const struct r2m_endpoint_cfg *ec);

/* A poll starts at now_ms: 1 when the token request must run first (no
 * token yet, or it expires within R2M_OAUTH2_EARLY_MS), else 0. */
int r2m_oauth2_poll_start(struct r2m_oauth2 *t, int64_t now_ms);
/* The API answered 401: at the first 401 of this poll forgets the token and
 * returns 1 (fetch a new one and retry); 0 when the poll already did. */
int r2m_oauth2_unauthorized(struct r2m_oauth2 *t);
/* The token could not be used (set on the transfer): the next poll fetches
 * a new one. */
void r2m_oauth2_forget(struct r2m_oauth2 *t);

/* The token request finished with res: parses {"access_token": "...",
 * "expires_in": N} (N missing or out of range: 3600 s) into doc and sets
 * the expiry from now_ms. 0 with *token pointing into doc (valid until doc
 * is parsed again); else the poll's error code (res's failure,
 * R2M_E_JSON_SYNTAX, R2M_E_HTTP for a missing or unusable token) and why
 * says so in words, never showing the token. */
int r2m_oauth2_done(struct r2m_oauth2 *t, const struct r2m_http_result *res,
                    struct r2m_json_doc *doc, int64_t now_ms, const char **token, char *why,
                    size_t whylen);

/* Monotonic ms the current token expires; 0: no token. */
int64_t r2m_oauth2_expires(const struct r2m_oauth2 *t);

#endif
