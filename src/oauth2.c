/* oauth2.c - client-credentials token state of one endpoint. */
#include "r2m/oauth2.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/buf.h"
#include "r2m/error.h"
#include "r2m/log.h"

struct r2m_oauth2 {
    struct r2m_endpoint_cfg req; /* the token request */
    char *body;                  /* its form body: holds the client secret */
    int64_t expires;             /* monotonic ms; 0 = no token */
    int retried;                 /* this poll already refetched after a 401 */
};

/* grant_type=client_credentials&client_id=..&client_secret=..[&scope=..] */
static int form_body(const struct r2m_endpoint_cfg *ec, char **out)
{
    struct r2m_buf body;
    r2m_buf_init(&body, 64 * 1024);
    CURL *e = curl_easy_init();
    if (!e)
        return R2M_E_NOMEM;
    char *id = curl_easy_escape(e, ec->auth.client_id, 0);
    char *sec = curl_easy_escape(e, ec->auth.client_secret, 0);
    char *scope = ec->auth.scope ? curl_easy_escape(e, ec->auth.scope, 0) : NULL;
    int r = id && sec && (scope || !ec->auth.scope) ? 0 : R2M_E_NOMEM;
    if (!r)
        r = r2m_buf_printf(&body, "grant_type=client_credentials&client_id=%s&client_secret=%s", id,
                           sec);
    if (!r && scope)
        r = r2m_buf_printf(&body, "&scope=%s", scope);
    curl_free(id);
    if (sec)
        explicit_bzero(sec, strlen(sec));
    curl_free(sec);
    curl_free(scope);
    curl_easy_cleanup(e);
    if (!r && !(*out = r2m_buf_take(&body)))
        r = R2M_E_NOMEM;
    if (body.data)
        explicit_bzero(body.data, body.len);
    r2m_buf_free(&body);
    return r;
}

int r2m_oauth2_new(struct r2m_oauth2 **out, const struct r2m_endpoint_cfg *ec)
{
    struct r2m_oauth2 *t = calloc(1, sizeof *t);
    if (!t)
        return R2M_E_NOMEM;
    int r = form_body(ec, &t->body);
    if (r) {
        free(t);
        return r;
    }
    struct r2m_endpoint_cfg *q = &t->req;
    q->method = "POST";
    q->body = t->body;
    q->content_type = "application/x-www-form-urlencoded";
    q->timeout_ms = ec->timeout_ms;
    q->max_body = 1 << 20;
    q->max_depth = 16;
    q->max_pages = 1;
    /* the body holds the client secret: it never follows a redirect to
     * another origin, whatever redirects: says for the endpoint */
    q->redirects =
        ec->redirects == R2M_REDIRECTS_NONE ? R2M_REDIRECTS_NONE : R2M_REDIRECTS_SAME_ORIGIN;
    r2m_oauth2_retarget(t, ec);
    *out = t;
    return 0;
}

void r2m_oauth2_free(struct r2m_oauth2 *t)
{
    if (!t)
        return;
    if (t->body)
        explicit_bzero(t->body, strlen(t->body));
    free(t->body);
    free(t);
}

const struct r2m_endpoint_cfg *r2m_oauth2_request(const struct r2m_oauth2 *t)
{
    return &t->req;
}

void r2m_oauth2_retarget(struct r2m_oauth2 *t, const struct r2m_endpoint_cfg *ec)
{
    t->req.name = ec->name;
    t->req.url = ec->auth.token_url;
    t->req.tls = ec->tls;
}

int r2m_oauth2_poll_start(struct r2m_oauth2 *t, int64_t now_ms)
{
    t->retried = 0;
    return !t->expires || now_ms >= t->expires - R2M_OAUTH2_EARLY_MS;
}

int r2m_oauth2_unauthorized(struct r2m_oauth2 *t)
{
    /* the token was revoked or expired early: fetch one, retry once */
    if (t->retried)
        return 0;
    t->retried = 1;
    t->expires = 0;
    return 1;
}

void r2m_oauth2_forget(struct r2m_oauth2 *t)
{
    t->expires = 0;
}

int64_t r2m_oauth2_expires(const struct r2m_oauth2 *t)
{
    return t->expires;
}

/* A token goes into an Authorization header: CR or LF would inject
 * headers, NUL would cut it. */
static int token_usable(const struct r2m_json *tok)
{
    for (size_t i = 0; i < tok->n; i++) {
        unsigned char ch = (unsigned char)tok->u.str[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

int r2m_oauth2_done(struct r2m_oauth2 *t, const struct r2m_http_result *res,
                    struct r2m_json_doc *doc, int64_t now_ms, const char **token, char *why,
                    size_t whylen)
{
    char err[512];
    struct r2m_json *root;
    if (res->result) {
        snprintf(why, whylen, "OAuth2 token request to %s failed: %s",
                 r2m_log_url(t->req.url, (char[256]){0}, 256), res->err);
        return res->result;
    }
    if (r2m_json_parse(doc, res->body, res->len, &root, err, sizeof err)) {
        snprintf(why, whylen, "OAuth2 token response is not JSON: %s", err);
        return R2M_E_JSON_SYNTAX;
    }
    struct r2m_json *tok = r2m_json_pointer(root, "/access_token");
    struct r2m_json *exp = r2m_json_pointer(root, "/expires_in");
    if (!tok || tok->type != R2M_JSON_STRING || !tok->n) {
        snprintf(why, whylen, "OAuth2 token response has no access_token");
        return R2M_E_HTTP;
    }
    if (!token_usable(tok)) {
        /* never show the token itself */
        snprintf(why, whylen,
                 "OAuth2 token response's access_token contains CR, LF, NUL or another "
                 "control character; not used");
        return R2M_E_HTTP;
    }
    long long secs = exp && exp->type == R2M_JSON_NUMBER ? strtoll(exp->u.str, NULL, 10) : 3600;
    if (secs <= 0 || secs > 86400 * 365)
        secs = 3600;
    t->expires = now_ms + secs * 1000;
    *token = tok->u.str;
    return 0;
}
