/* r2m/error.h - result codes shared by every module.
 *
 * Functions return int: 0 on success, a positive R2M_E_* code otherwise.
 * r2m_strerror() turns a code into a short English phrase for logs. */
#ifndef R2M_ERROR_H
#define R2M_ERROR_H

enum {
    R2M_OK = 0,
    R2M_E_NOMEM,          /* allocation failed */
    R2M_E_INVALID,        /* invalid argument or value */
    R2M_E_TOO_BIG,        /* a buffer's ceiling was reached */
    R2M_E_IO,             /* reading or writing a file failed */
    R2M_E_CONFIG,         /* configuration has errors */
    R2M_E_JSON_SYNTAX,    /* response is not valid JSON */
    R2M_E_JSON_DEPTH,     /* JSON nesting deeper than the limit */
    R2M_E_JSON_NODES,     /* JSON has more values than the limit */
    R2M_E_JSON_DUPKEY,    /* an object has the same member twice */
    R2M_E_NOT_FOUND,      /* JSON Pointer or key does not exist */
    R2M_E_HTTP,           /* transport-level HTTP failure */
    R2M_E_HTTP_STATUS,    /* HTTP status not accepted */
    R2M_E_BODY_TOO_LARGE, /* response body over max_body */
    R2M_E_TIMEOUT,        /* operation timed out */
    R2M_E_MQTT,           /* broker / client failure */
    R2M_E_TOPIC,          /* topic template or value not usable */
    R2M_E_SYSTEM,         /* a system call failed (see errno in the log) */
    R2M_E_FENCED,         /* the store refused a commit: another process owns the endpoint */
    R2M_E__COUNT
};

/* Static text for a code; never NULL. */
const char *r2m_strerror(int code);

#endif
