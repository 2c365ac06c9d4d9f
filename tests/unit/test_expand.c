/* test_expand.c - ${env:} and ${file:}: values, escapes, and every refusal
 * with its message; secrets are flagged and never quoted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "r2m/diag.h"
#include "r2m/error.h"
#include "r2m/expand.h"

/* Expands s (at 7:3); the one diagnostic, if any, into msg. */
static int run(const char *s, char **out, int *secret, char *msg, size_t msglen)
{
    struct r2m_diag_list l = {.file = "t"};
    struct r2m_diag d = {0};
    *secret = 0;
    int rc = r2m_expand(s, strlen(s), &l, 7, 3, out, secret);
    r2m_diag_list_finish(&l, &d);
    msg[0] = '\0';
    if (d.n)
        snprintf(msg, msglen, "%s", d.lines[0]);
    assert_true(d.n <= 1);
    assert_int_equal(rc == 0, d.n == 0);
    r2m_diag_free(&d);
    return rc;
}

static void test_plain_and_escapes(void **state)
{
    (void)state;
    char *v, msg[512];
    int secret;
    assert_int_equal(run("a $b $${env:X} $", &v, &secret, msg, sizeof msg), 0);
    assert_string_equal(v, "a $b ${env:X} $");
    assert_int_equal(secret, 0);
    free(v);
    assert_int_equal(run("", &v, &secret, msg, sizeof msg), 0);
    assert_string_equal(v, "");
    free(v);
}

static void test_env(void **state)
{
    (void)state;
    char *v, msg[512];
    int secret;
    setenv("R2M_T_TOKEN", "s3cret", 1);
    unsetenv("R2M_T_UNSET");
    assert_int_equal(run("Bearer ${env:R2M_T_TOKEN}!", &v, &secret, msg, sizeof msg), 0);
    assert_string_equal(v, "Bearer s3cret!");
    assert_int_equal(secret, 1);
    free(v);
    assert_int_equal(run("${env:R2M_T_UNSET}", &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_null(v);
    assert_string_equal(msg, "t:7:3: error: environment variable R2M_T_UNSET is not set; export it "
                             "or remove the reference");
    assert_int_equal(run("${env:1BAD}", &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_non_null(strstr(msg, "'1BAD' is not a valid environment variable name"));
    assert_int_equal(run("${env:}", &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_int_equal(run("${nope:x}", &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_non_null(strstr(msg, "unknown reference '${nope:...}'"));
    assert_int_equal(run("a ${env:X", &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_non_null(strstr(msg, "unterminated '${'"));
}

static void test_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/r2m_expand_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], ref[160], *v, msg[512];
    int secret;
    snprintf(path, sizeof path, "%s/secret", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("pw\r\n", f);
    fclose(f);
    snprintf(ref, sizeof ref, "<${file:%s}>", path);
    assert_int_equal(run(ref, &v, &secret, msg, sizeof msg), 0);
    assert_string_equal(v, "<pw>"); /* one trailing CRLF dropped */
    assert_int_equal(secret, 1);
    free(v);
    /* a directory is not read */
    snprintf(ref, sizeof ref, "${file:%s}", dir);
    assert_int_equal(run(ref, &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_non_null(strstr(msg, "is a directory, not a regular file"));
    /* a FIFO is refused without blocking */
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    snprintf(ref, sizeof ref, "${file:%s}", fifo);
    assert_int_equal(run(ref, &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_non_null(strstr(msg, "is a FIFO, not a regular file"));
    /* over 1 MiB */
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fseek(f, R2M_EXPAND_MAX_FILE, SEEK_SET), 0);
    fputc('x', f);
    fclose(f);
    snprintf(ref, sizeof ref, "${file:%s}", path);
    assert_int_equal(run(ref, &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_non_null(strstr(msg, "is larger than 1 MiB"));
    /* a NUL inside is refused */
    f = fopen(path, "w");
    assert_non_null(f);
    fwrite("a\0b", 1, 3, f);
    fclose(f);
    assert_int_equal(run(ref, &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_non_null(strstr(msg, "the value contains a NUL byte"));
    unlink(path);
    assert_int_equal(run(ref, &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_non_null(strstr(msg, "cannot read"));
    assert_int_equal(run("${file:}", &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_non_null(strstr(msg, "${file:} needs a path"));
    unlink(fifo);
    rmdir(dir);
}

/* the 4 MiB ceiling applies to the expanded value */
static void test_value_limit(void **state)
{
    (void)state;
    char *big = malloc(R2M_EXPAND_MAX_VALUE + 1);
    assert_non_null(big);
    memset(big, 'a', R2M_EXPAND_MAX_VALUE);
    big[R2M_EXPAND_MAX_VALUE] = '\0';
    setenv("R2M_T_BIG", big, 1);
    char *v, msg[512];
    int secret;
    assert_int_equal(run("x${env:R2M_T_BIG}", &v, &secret, msg, sizeof msg), R2M_E_CONFIG);
    assert_non_null(strstr(msg, "longer than 4 MiB after expansion"));
    assert_int_equal(run("${env:R2M_T_BIG}", &v, &secret, msg, sizeof msg), 0);
    assert_int_equal(strlen(v), R2M_EXPAND_MAX_VALUE);
    free(v);
    unsetenv("R2M_T_BIG");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_escapes),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_value_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
