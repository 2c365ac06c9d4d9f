/* error.c - text for R2M_E_* codes. */
#include "r2m/error.h"

static const char *const texts[R2M_E__COUNT] = {
    [R2M_OK] = "success",
    [R2M_E_NOMEM] = "out of memory",
    [R2M_E_INVALID] = "invalid value",
    [R2M_E_TOO_BIG] = "size limit reached",
    [R2M_E_IO] = "input/output error",
    [R2M_E_CONFIG] = "configuration error",
    [R2M_E_JSON_SYNTAX] = "invalid JSON",
    [R2M_E_JSON_DEPTH] = "JSON nested too deeply",
    [R2M_E_JSON_NODES] = "JSON has too many values",
    [R2M_E_JSON_DUPKEY] = "JSON object has a duplicate member",
    [R2M_E_NOT_FOUND] = "not found",
    [R2M_E_HTTP] = "HTTP transfer failed",
    [R2M_E_HTTP_STATUS] = "HTTP status not accepted",
    [R2M_E_BODY_TOO_LARGE] = "response body larger than max_body",
    [R2M_E_TIMEOUT] = "timed out",
    [R2M_E_MQTT] = "MQTT failure",
    [R2M_E_TOPIC] = "topic not usable",
    [R2M_E_SYSTEM] = "system call failed",
    [R2M_E_FENCED] = "fenced: endpoint owned by another process",
};

const char *r2m_strerror(int code)
{
    if (code < 0 || code >= R2M_E__COUNT || !texts[code])
        return "unknown error";
    return texts[code];
}
