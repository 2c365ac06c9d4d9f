/* test_yamltree.c - YAML to tree: positions, refused anchors/aliases/tags,
 * one document, and the depth and size limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "r2m/diag.h"
#include "r2m/error.h"
#include "r2m/yamltree.h"

/* Parses s; the diagnostics in *d (caller frees). */
static int parse(const char *s, struct r2m_ynode **root, struct r2m_diag *d)
{
    struct r2m_diag_list l = {.file = "t"};
    int rc = r2m_yamltree_parse(s, strlen(s), &l, root);
    int errs = (int)l.n_err;
    r2m_diag_list_finish(&l, d);
    return rc ? rc : errs ? -errs : 0;
}

static void test_tree_and_positions(void **state)
{
    (void)state;
    struct r2m_ynode *root = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(parse("a: 1\nb:\n  - x\n  - 'y'\nc: ~\n", &root, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(root->type, R2M_YNODE_MAP);
    assert_int_equal(root->n, 6);
    assert_string_equal(root->kid[0]->text, "a");
    struct r2m_ynode *b = r2m_yamltree_find(root, "b");
    assert_non_null(b);
    assert_int_equal(b->type, R2M_YNODE_SEQ);
    assert_int_equal(b->n, 2);
    assert_int_equal(b->kid[1]->line, 4);
    assert_int_equal(b->kid[1]->col, 5);
    assert_true(b->kid[0]->plain);
    assert_false(b->kid[1]->plain);
    assert_true(r2m_yamltree_is_null(r2m_yamltree_find(root, "c")));
    assert_false(r2m_yamltree_is_null(b->kid[0]));
    assert_null(r2m_yamltree_find(root, "z"));
    assert_string_equal(r2m_yamltree_kind(root), "a mapping");
    assert_string_equal(r2m_yamltree_kind(b), "a list");
    assert_string_equal(r2m_yamltree_kind(b->kid[0]), "a single value");
    r2m_yamltree_free(root);
    r2m_yamltree_free(NULL);
}

/* an empty document is no tree and no error */
static void test_empty(void **state)
{
    (void)state;
    struct r2m_ynode *root = (struct r2m_ynode *)1;
    struct r2m_diag d = {0};
    assert_int_equal(parse("", &root, &d), 0);
    assert_null(root);
    assert_int_equal(d.n, 0);
}

/* billion laughs: the alias is refused and never expanded */
static void test_aliases_refused(void **state)
{
    (void)state;
    struct r2m_ynode *root = NULL;
    struct r2m_diag d = {0};
    int rc = parse("a: &x [1, 2]\nb: *x\nc: !!str 5\n", &root, &d);
    assert_int_equal(rc, -3);
    assert_non_null(root);
    struct r2m_ynode *b = r2m_yamltree_find(root, "b");
    assert_int_equal(b->type, R2M_YNODE_ALIAS);
    assert_int_equal(b->n, 0);
    assert_int_equal(d.n, 3);
    assert_non_null(strstr(d.lines[0], "t:1:4: error: YAML anchors and aliases are not supported"));
    assert_non_null(strstr(d.lines[0], "(anchor &'x')"));
    assert_non_null(strstr(d.lines[1], "t:2:4: error:"));
    assert_non_null(strstr(d.lines[1], "(alias *'x')"));
    assert_non_null(strstr(d.lines[2], "t:3:4: error: YAML tags are not supported"));
    r2m_diag_free(&d);
    r2m_yamltree_free(root);
}

static void test_one_document(void **state)
{
    (void)state;
    struct r2m_ynode *root = NULL;
    struct r2m_diag d = {0};
    assert_int_equal(parse("a: 1\n---\nb: 2\n", &root, &d), -1);
    assert_non_null(r2m_yamltree_find(root, "a"));
    assert_non_null(strstr(d.lines[0], "t:2:1: error: only one YAML document is allowed"));
    r2m_diag_free(&d);
    r2m_yamltree_free(root);
}

static void test_syntax_error(void **state)
{
    (void)state;
    struct r2m_ynode *root = (struct r2m_ynode *)1;
    struct r2m_diag d = {0};
    assert_int_equal(parse("a: [1, 2\n", &root, &d), R2M_E_CONFIG);
    assert_null(root);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.lines[0], "check the indentation"));
    r2m_diag_free(&d);
    assert_int_equal(parse("a: \x01\n", &root, &d), R2M_E_CONFIG);
    assert_non_null(strstr(d.lines[0], "t:1:4: error: "));
    assert_non_null(strstr(d.lines[0], "(byte 0x01); save the file as UTF-8"));
    r2m_diag_free(&d);
}

/* nesting is bounded: deep brackets stop at the limit, not the stack */
static void test_depth_limit(void **state)
{
    (void)state;
    struct r2m_ynode *root = (struct r2m_ynode *)1;
    struct r2m_diag d = {0};
    char deep[200];
    int n = R2M_YAMLTREE_MAX_DEPTH;
    memset(deep, '[', (size_t)n);
    deep[n] = '\0';
    assert_int_equal(parse(deep, &root, &d), R2M_E_CONFIG); /* 32 opened: a syntax error */
    r2m_diag_free(&d);
    memset(deep, '[', (size_t)n + 1);
    deep[n + 1] = '\0';
    assert_int_equal(parse(deep, &root, &d), R2M_E_CONFIG);
    assert_null(root);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.lines[0], "t:1:33: error: nesting deeper than 32 levels"));
    r2m_diag_free(&d);
}

static void test_node_limit(void **state)
{
    (void)state;
    size_t n = R2M_YAMLTREE_MAX_NODES; /* n items and the list: one too many */
    char *s = malloc(2 * n + 2);
    assert_non_null(s);
    s[0] = '[';
    for (size_t i = 0; i < n; i++)
        memcpy(s + 1 + 2 * i, "1,", 2);
    s[2 * n] = ']';
    s[2 * n + 1] = '\0';
    struct r2m_ynode *root = (struct r2m_ynode *)1;
    struct r2m_diag d = {0};
    assert_int_equal(parse(s, &root, &d), R2M_E_CONFIG);
    assert_null(root);
    assert_non_null(strstr(d.lines[0], "more than 1000000 YAML values"));
    r2m_diag_free(&d);
    /* one fewer fits */
    s[2 * n - 2] = ']';
    s[2 * n - 1] = '\0';
    assert_int_equal(parse(s, &root, &d), 0);
    assert_int_equal(root->n, n - 1);
    r2m_yamltree_free(root);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_and_positions), cmocka_unit_test(test_empty),
        cmocka_unit_test(test_aliases_refused),    cmocka_unit_test(test_one_document),
        cmocka_unit_test(test_syntax_error),       cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_node_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
