/* test_diff.c - JSON Patch output: exact cases, then a property test that
 * applies every generated patch with an independent RFC 6902 applier. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "r2m/buf.h"
#include "r2m/diff.h"
#include "r2m/error.h"
#include "r2m/json.h"

#include "json_patch.h"

struct fixture {
    struct r2m_json_doc *a, *b;
    struct r2m_buf out;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f || r2m_json_doc_new(&f->a, NULL) || r2m_json_doc_new(&f->b, NULL))
        return -1;
    r2m_buf_init(&f->out, 16 * 1024 * 1024);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    r2m_json_doc_free(f->a);
    r2m_json_doc_free(f->b);
    r2m_buf_free(&f->out);
    free(f);
    return 0;
}

static struct r2m_json *parse(struct r2m_json_doc *doc, const char *text)
{
    struct r2m_json *root;
    char err[128];
    if (r2m_json_parse(doc, text, strlen(text), &root, err, sizeof err)) {
        print_error("parse of %s: %s\n", text, err);
        fail();
    }
    return root;
}

/* The patch from before to after; either text may be NULL (absent). */
static const char *patch(struct fixture *f, const char *before, const char *after)
{
    struct r2m_json *a = before ? parse(f->a, before) : NULL;
    struct r2m_json *b = after ? parse(f->b, after) : NULL;
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_diff_patch(a, b, &f->out), 0);
    return f->out.data;
}

/* ---- exact cases ------------------------------------------------------ */

static void test_equal(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(
        patch(f, "{\"a\":1,\"b\":[1,{\"c\":null}]}", "{ \"b\":[1.0,{\"c\":null}],\"a\":1}"), "[]");
    assert_string_equal(patch(f, "null", "null"), "[]");
    assert_string_equal(patch(f, "\"\\u00e9\"", "\"\xc3\xa9\""), "[]");
    assert_string_equal(patch(f, NULL, NULL), "[]");
}

static void test_object(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(patch(f, "{\"a\":1,\"b\":2}", "{\"a\":1,\"c\":3}"),
                        "[{\"op\":\"remove\",\"path\":\"/b\"},"
                        "{\"op\":\"add\",\"path\":\"/c\",\"value\":3}]");
    assert_string_equal(patch(f, "{\"a\":1}", "{\"a\":2}"),
                        "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2}]");
    assert_string_equal(
        patch(f, "{}", "{\"z\" : { \"y\":1.0, \"x\" : \"\\u00e9\" } }"),
        "[{\"op\":\"add\",\"path\":\"/z\",\"value\":{\"x\":\"\xc3\xa9\",\"y\":1}}]");
    assert_string_equal(
        patch(f, "{\"a\":{\"b\":1},\"c\":[]}", "{}"),
        "[{\"op\":\"remove\",\"path\":\"/a\"},{\"op\":\"remove\",\"path\":\"/c\"}]");
    /* members are visited in key order */
    assert_string_equal(patch(f, "{\"d\":1,\"b\":1,\"a\":1}", "{\"c\":1,\"a\":2,\"e\":1}"),
                        "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":2},"
                        "{\"op\":\"remove\",\"path\":\"/b\"},"
                        "{\"op\":\"add\",\"path\":\"/c\",\"value\":1},"
                        "{\"op\":\"remove\",\"path\":\"/d\"},"
                        "{\"op\":\"add\",\"path\":\"/e\",\"value\":1}]");
    /* a key that is a prefix of another */
    assert_string_equal(patch(f, "{\"ab\":1}", "{\"a\":1,\"ab\":1}"),
                        "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1}]");
    assert_string_equal(patch(f, "{\"\":1}", "{\"\":2}"),
                        "[{\"op\":\"replace\",\"path\":\"/\",\"value\":2}]");
}

static void test_nested(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(patch(f, "{\"a\":{\"b\":[1,2]}}", "{\"a\":{\"b\":[1,3,4]}}"),
                        "[{\"op\":\"replace\",\"path\":\"/a/b/1\",\"value\":3},"
                        "{\"op\":\"add\",\"path\":\"/a/b/-\",\"value\":4}]");
    assert_string_equal(patch(f, "{\"s\":{\"x\":{\"y\":{\"z\":true}}},\"t\":0}",
                              "{\"s\":{\"x\":{\"y\":{\"z\":false,\"w\":[]}}},\"t\":0}"),
                        "[{\"op\":\"add\",\"path\":\"/s/x/y/w\",\"value\":[]},"
                        "{\"op\":\"replace\",\"path\":\"/s/x/y/z\",\"value\":false}]");
    assert_string_equal(patch(f, "[{\"id\":1,\"v\":\"a\"},{\"id\":2,\"v\":\"b\"}]",
                              "[{\"id\":1,\"v\":\"a\"},{\"id\":2,\"v\":\"c\"}]"),
                        "[{\"op\":\"replace\",\"path\":\"/1/v\",\"value\":\"c\"}]");
}

static void test_arrays(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(patch(f, "[1,2,3,4]", "[1]"), "[{\"op\":\"remove\",\"path\":\"/3\"},"
                                                      "{\"op\":\"remove\",\"path\":\"/2\"},"
                                                      "{\"op\":\"remove\",\"path\":\"/1\"}]");
    assert_string_equal(patch(f, "[]", "[1,[2],{\"a\":3}]"),
                        "[{\"op\":\"add\",\"path\":\"/-\",\"value\":1},"
                        "{\"op\":\"add\",\"path\":\"/-\",\"value\":[2]},"
                        "{\"op\":\"add\",\"path\":\"/-\",\"value\":{\"a\":3}}]");
    assert_string_equal(patch(f, "[1,2,3]", "[1,5,3]"),
                        "[{\"op\":\"replace\",\"path\":\"/1\",\"value\":5}]");
    /* change and shrink: changes first, then removals from the end */
    assert_string_equal(patch(f, "[\"a\",\"b\",\"c\"]", "[\"x\",\"b\"]"),
                        "[{\"op\":\"replace\",\"path\":\"/0\",\"value\":\"x\"},"
                        "{\"op\":\"remove\",\"path\":\"/2\"}]");
    /* no move detection: an insertion at the front rewrites every index */
    assert_string_equal(patch(f, "[1,2]", "[0,1,2]"),
                        "[{\"op\":\"replace\",\"path\":\"/0\",\"value\":0},"
                        "{\"op\":\"replace\",\"path\":\"/1\",\"value\":1},"
                        "{\"op\":\"add\",\"path\":\"/-\",\"value\":2}]");
    assert_string_equal(patch(f, "{\"l\":[[1,2],[3]]}", "{\"l\":[[1],[3,4]]}"),
                        "[{\"op\":\"remove\",\"path\":\"/l/0/1\"},"
                        "{\"op\":\"add\",\"path\":\"/l/1/-\",\"value\":4}]");
    /* index 10 and beyond */
    assert_string_equal(patch(f, "[0,1,2,3,4,5,6,7,8,9,10,11]", "[0,1,2,3,4,5,6,7,8,9,10,12]"),
                        "[{\"op\":\"replace\",\"path\":\"/11\",\"value\":12}]");
}

static void test_type_change(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(patch(f, "{\"a\":[1]}", "{\"a\":{\"x\":1}}"),
                        "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":{\"x\":1}}]");
    assert_string_equal(patch(f, "{\"a\":1}", "{\"a\":\"1\"}"),
                        "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":\"1\"}]");
    assert_string_equal(patch(f, "[null]", "[false]"),
                        "[{\"op\":\"replace\",\"path\":\"/0\",\"value\":false}]");
    assert_string_equal(patch(f, "[true]", "[false]"),
                        "[{\"op\":\"replace\",\"path\":\"/0\",\"value\":false}]");
    assert_string_equal(patch(f, "{}", "[]"), "[{\"op\":\"replace\",\"path\":\"\",\"value\":[]}]");
    assert_string_equal(patch(f, "1", "2"), "[{\"op\":\"replace\",\"path\":\"\",\"value\":2}]");
    /* numbers compare by canonical value */
    assert_string_equal(patch(f, "[1.0,100,12345678901234567891]", "[1,1e2,12345678901234567892]"),
                        "[{\"op\":\"replace\",\"path\":\"/2\",\"value\":12345678901234567892}]");
}

static void test_escapes(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(
        patch(f, "{\"a/b\":1,\"m~n\":2,\"~1\":3}", "{\"a/b\":2,\"m~n\":3,\"~1\":4}"),
        "[{\"op\":\"replace\",\"path\":\"/a~1b\",\"value\":2},"
        "{\"op\":\"replace\",\"path\":\"/m~0n\",\"value\":3},"
        "{\"op\":\"replace\",\"path\":\"/~01\",\"value\":4}]");
    assert_string_equal(patch(f, "{\"x\":{\"/\":{\"~\":1}}}", "{\"x\":{\"/\":{}}}"),
                        "[{\"op\":\"remove\",\"path\":\"/x/~1/~0\"}]");
    /* the path is a JSON string: quotes and control bytes are escaped */
    assert_string_equal(patch(f, "{}", "{\"q\\\"\\n\":\"\\u0001\"}"),
                        "[{\"op\":\"add\",\"path\":\"/q\\\"\\n\",\"value\":\"\\u0001\"}]");
}

static void test_null_sides(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(patch(f, NULL, "{\"b\":1,\"a\":[]}"),
                        "[{\"op\":\"add\",\"path\":\"\",\"value\":{\"a\":[],\"b\":1}}]");
    assert_string_equal(patch(f, "{\"a\":1}", NULL), "[{\"op\":\"remove\",\"path\":\"\"}]");
    assert_string_equal(patch(f, NULL, "7"), "[{\"op\":\"add\",\"path\":\"\",\"value\":7}]");
}

static void test_buffer(void **state)
{
    struct fixture *f = *state;
    struct r2m_json *a = parse(f->a, "{\"a\":1}");
    struct r2m_json *b = parse(f->b, "{\"a\":\"a long string value\"}");
    /* appends after existing content */
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_buf_puts(&f->out, "patch="), 0);
    assert_int_equal(r2m_diff_patch(a, b, &f->out), 0);
    assert_string_equal(
        f->out.data,
        "patch=[{\"op\":\"replace\",\"path\":\"/a\",\"value\":\"a long string value\"}]");
    /* the ceiling: an error and the buffer as it was */
    struct r2m_buf small;
    r2m_buf_init(&small, 40);
    assert_int_equal(r2m_buf_puts(&small, "x"), 0);
    assert_int_equal(r2m_diff_patch(a, b, &small), R2M_E_TOO_BIG);
    assert_string_equal(small.data, "x");
    assert_int_equal(small.len, 1);
    assert_int_equal(r2m_diff_patch(a, a, &small), 0);
    assert_string_equal(small.data, "x[]");
    r2m_buf_free(&small);
}

static void test_ignored_then_diff(void **state)
{
    struct fixture *f = *state;
    struct r2m_json *a = parse(f->a, "{\"v\":1,\"meta\":{\"at\":1},\"l\":[{\"seen\":1,\"x\":1}]}");
    struct r2m_json *b = parse(f->b, "{\"v\":1,\"meta\":{\"at\":2},\"l\":[{\"seen\":2,\"x\":1}]}");
    char *ign[] = {"/meta/*", "/l/*/seen"};
    r2m_json_remove(a, ign, 2);
    r2m_json_remove(b, ign, 2);
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_diff_patch(a, b, &f->out), 0);
    assert_string_equal(f->out.data, "[]");
}

/* ---- the applier (tests/unit/json_patch.h) checked on its own --------- */

static void test_applier_self_check(void **state)
{
    /* the applier itself against RFC 6902 examples (appendix A) */
    struct fixture *f = *state;
    struct op_counts cnt = {0};
    struct tdoc d = {.present = 1};
    t_copy(&d.root, parse(f->a, "{\"foo\":[\"bar\",\"baz\"],\"x\":{\"y\":1}}"));
    assert_int_equal(t_apply(&d, f->b,
                             "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"},"
                             "{\"op\":\"remove\",\"path\":\"/x/y\"},"
                             "{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[1]},"
                             "{\"op\":\"replace\",\"path\":\"/foo/0\",\"value\":{\"a\":null}},"
                             "{\"op\":\"add\",\"path\":\"/x/a~1b\",\"value\":true}]",
                             &cnt),
                     0);
    r2m_buf_reset(&f->out);
    assert_int_equal(r2m_json_canonical(&d.root, &f->out), 0);
    assert_string_equal(f->out.data,
                        "{\"foo\":[{\"a\":null},\"qux\",\"baz\",[1]],\"x\":{\"a/b\":true}}");
    /* ops that do not apply are refused */
    assert_int_equal(t_apply(&d, f->b, "[{\"op\":\"remove\",\"path\":\"/nope\"}]", &cnt), -1);
    assert_int_equal(
        t_apply(&d, f->b, "[{\"op\":\"replace\",\"path\":\"/foo/4\",\"value\":1}]", &cnt), -1);
    assert_int_equal(t_apply(&d, f->b, "[{\"op\":\"add\",\"path\":\"/foo/01\",\"value\":1}]", &cnt),
                     -1);
    assert_int_equal(
        t_apply(&d, f->b, "[{\"op\":\"move\",\"path\":\"/foo\",\"from\":\"/x\"}]", &cnt), -1);
    assert_int_equal(t_apply(&d, f->b, "[{\"op\":\"remove\",\"path\":\"\"}]", &cnt), 0);
    assert_false(d.present);
    assert_int_equal(t_apply(&d, f->b, "[{\"op\":\"add\",\"path\":\"\",\"value\":[]}]", &cnt), 0);
    assert_true(d.present);
    t_free(&d.root);
}

/* ---- random trees ----------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
    /* xorshift64*: fixed seed, same sequence on every run */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static unsigned rn(unsigned n)
{
    return rnd() % n;
}

struct bytes {
    const char *s;
    size_t n;
};
#define B(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof lit - 1                                                                        \
    }

static const struct bytes keys[] = {
    B("a"),  B("b"),   B("c"),        B("id"),  B(""),  B("~"), B("/"),  B("a/b"),   B("m~n"),
    B("~1"), B("~01"), B("\xc3\xa9"), B("q\""), B("0"), B("-"), B("ab"), B("n\0ul"), B("\n"),
};
static const struct bytes strs[] = {
    B(""), B("x"), B("y"), B("\xc3\xa9"), B("line\nbreak"), B("\x01"), B("\""), B("~/"), B("a\0b"),
};
static const char *const nums[] = {
    "0", "1", "-1", "2.5", "1e+21", "12345678901234567891", "12345678901234567892", "1e-7", "100",
};

static void gen(struct r2m_json *v, int depth);

static void gen_scalar(struct r2m_json *v)
{
    memset(v, 0, sizeof *v);
    switch (rn(5)) {
    case 0:
        v->type = R2M_JSON_NULL;
        break;
    case 1:
        v->type = R2M_JSON_FALSE;
        break;
    case 2:
        v->type = R2M_JSON_TRUE;
        break;
    case 3: {
        const char *s = nums[rn(sizeof nums / sizeof nums[0])];
        v->type = R2M_JSON_NUMBER;
        v->n = (uint32_t)strlen(s);
        v->u.str = dup_bytes(s, v->n);
        break;
    }
    default: {
        const struct bytes *b = &strs[rn(sizeof strs / sizeof strs[0])];
        v->type = R2M_JSON_STRING;
        v->n = (uint32_t)b->n;
        v->u.str = dup_bytes(b->s, b->n);
        break;
    }
    }
}

static void gen_member(struct r2m_json *obj, int depth)
{
    const struct bytes *k = &keys[rn(sizeof keys / sizeof keys[0])];
    struct r2m_json v;
    gen(&v, depth + 1);
    t_obj_set(obj, k->s, k->n, &v);
}

static void gen(struct r2m_json *v, int depth)
{
    unsigned t = depth >= 4 ? 0 : rn(depth == 0 ? 3 : 6);
    memset(v, 0, sizeof *v);
    if (t == 1 || (t == 0 && depth == 0)) {
        v->type = R2M_JSON_OBJECT;
        unsigned n = rn(6);
        for (unsigned i = 0; i < n; i++)
            gen_member(v, depth);
    } else if (t == 2) {
        v->type = R2M_JSON_ARRAY;
        v->n = rn(6);
        v->u.items = calloc(v->n + 1, sizeof *v->u.items);
        assert_non_null(v->u.items);
        for (uint32_t i = 0; i < v->n; i++)
            gen(&v->u.items[i], depth + 1);
    } else {
        gen_scalar(v);
    }
}

/* Edits a tree the way a polled API changes between polls. */
static void mutate(struct r2m_json *v, int depth)
{
    if (rn(12) == 0) {
        t_free(v);
        gen(v, depth);
        return;
    }
    if (v->type == R2M_JSON_ARRAY) {
        for (uint32_t i = 0; i < v->n; i++)
            if (rn(3) == 0)
                mutate(&v->u.items[i], depth + 1);
        if (v->n && rn(4) == 0)
            t_arr_del(v, rn(v->n));
        if (rn(4) == 0) {
            struct r2m_json x;
            gen(&x, depth + 1);
            t_arr_insert(v, rn(v->n + 1), &x);
        }
        if (rn(4) == 0) {
            struct r2m_json x;
            gen(&x, depth + 1);
            t_arr_insert(v, v->n, &x);
        }
    } else if (v->type == R2M_JSON_OBJECT) {
        for (uint32_t i = 0; i < v->n; i++)
            if (rn(3) == 0)
                mutate(&v->u.members[i].value, depth + 1);
        if (v->n && rn(4) == 0)
            t_obj_del(v, rn(v->n));
        if (rn(4) == 0)
            gen_member(v, depth);
    } else if (rn(3) == 0) {
        t_free(v);
        gen_scalar(v);
    }
}

static char *to_text(const struct r2m_json *v)
{
    struct r2m_buf b;
    r2m_buf_init(&b, 1 << 24);
    assert_int_equal(r2m_json_canonical(v, &b), 0);
    return r2m_buf_take(&b);
}

static void test_property_patch_applies(void **state)
{
    struct fixture *f = *state;
    struct r2m_json_doc *pdoc;
    assert_int_equal(r2m_json_doc_new(&pdoc, NULL), 0);
    struct op_counts cnt = {0};
    unsigned equal_pairs = 0;
    rng_state = 0x5eed5eed2024ULL;

    for (int iter = 0; iter < 5000; iter++) {
        struct r2m_json tb, ta;
        gen(&tb, 0);
        t_copy(&ta, &tb);
        unsigned rounds = rn(3);
        for (unsigned r = 0; r < rounds; r++)
            mutate(&ta, 0);

        /* through text and the real parser, as in the daemon */
        char *tbt = to_text(&tb), *tat = to_text(&ta);
        struct r2m_json *before = parse(f->a, tbt);
        struct r2m_json *after = parse(f->b, tat);
        assert_true(r2m_json_equal(before, &tb));
        assert_true(r2m_json_equal(after, &ta));

        /* before NULL / after NULL sometimes, to cover whole-document ops */
        int sides = iter % 50 == 0 ? 1 : iter % 50 == 1 ? 2 : 0;
        const struct r2m_json *pb = sides == 1 ? NULL : before;
        const struct r2m_json *pa = sides == 2 ? NULL : after;

        r2m_buf_reset(&f->out);
        assert_int_equal(r2m_diff_patch(pb, pa, &f->out), 0);
        char *ptext = r2m_buf_take(&f->out);
        assert_non_null(ptext);

        /* deterministic */
        assert_int_equal(r2m_diff_patch(pb, pa, &f->out), 0);
        assert_string_equal(f->out.data, ptext);

        int same = r2m_json_equal(pb, pa);
        equal_pairs += same;
        assert_int_equal(same, strcmp(ptext, "[]") == 0);

        struct tdoc d = {.present = pb != NULL};
        if (pb)
            t_copy(&d.root, pb);
        if (t_apply(&d, pdoc, ptext, &cnt)) {
            print_error("iteration %d: patch does not apply\nbefore: %s\nafter:  %s\npatch:  %s\n",
                        iter, tbt, tat, ptext);
            fail();
        }
        if (pa) {
            assert_true(d.present);
            if (!r2m_json_equal(&d.root, pa)) {
                char *got = to_text(&d.root);
                print_error("iteration %d:\nbefore: %s\nafter:  %s\npatch:  %s\ngot:    %s\n", iter,
                            tbt, tat, ptext, got);
                free(got);
                fail();
            }
        } else {
            assert_false(d.present);
        }
        if (d.present)
            t_free(&d.root);
        free(ptext);
        free(tbt);
        free(tat);
        t_free(&tb);
        t_free(&ta);
    }
    /* the generator reaches every kind of op */
    assert_true(cnt.add > 1000 && cnt.remove > 1000 && cnt.replace > 1000);
    assert_true(cnt.append > 500 && cnt.root >= 200);
    assert_true(equal_pairs > 100 && equal_pairs < 4000);
    r2m_json_doc_free(pdoc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_equal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arrays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_sides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ignored_then_diff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_applier_self_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_property_patch_applies, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
