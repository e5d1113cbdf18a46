/* The bounded priority queue: highest priority first, FIFO within a
 * priority, positions, removal, the bound. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sched/jobqueue.h"

static pm_jq_node nodes[32];

static pm_jq_node *node(int i, int prio)
{
    nodes[i] = (pm_jq_node){0};
    nodes[i].priority = prio;
    return &nodes[i];
}

static int idx(const pm_jq_node *n)
{
    return n ? (int)(n - nodes) : -1;
}

static void test_priority_then_fifo(void **state)
{
    (void)state;
    pm_jobqueue q;
    pm_jq_init(&q, 16);
    int prios[] = {5, 1, 9, 5, 9, 0, 5};
    for (int i = 0; i < 7; i++)
        assert_int_equal(pm_jq_push(&q, node(i, prios[i])), 0);
    assert_int_equal(q.count, 7);
    int expect[] = {2, 4, 0, 3, 6, 1, 5};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(idx(pm_jq_peek(&q)), expect[i]);
        assert_int_equal(idx(pm_jq_pop(&q)), expect[i]);
    }
    assert_null(pm_jq_pop(&q));
    assert_int_equal(q.count, 0);
}

static void test_positions_follow_run_order(void **state)
{
    (void)state;
    pm_jobqueue q;
    pm_jq_init(&q, 16);
    int prios[] = {1, 5, 9, 5};
    for (int i = 0; i < 4; i++)
        pm_jq_push(&q, node(i, prios[i]));
    /* run order: 2 (9), 1 (5), 3 (5), 0 (1) */
    assert_int_equal(pm_jq_position(&q, &nodes[2]), 0);
    assert_int_equal(pm_jq_position(&q, &nodes[1]), 1);
    assert_int_equal(pm_jq_position(&q, &nodes[3]), 2);
    assert_int_equal(pm_jq_position(&q, &nodes[0]), 3);
    int order[4], n = 0;
    for (pm_jq_node *x = pm_jq_next(&q, NULL); x; x = pm_jq_next(&q, x))
        order[n++] = idx(x);
    assert_int_equal(n, 4);
    assert_int_equal(order[0], 2);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 3);
    assert_int_equal(order[3], 0);
}

static void test_remove_anywhere(void **state)
{
    (void)state;
    pm_jobqueue q;
    pm_jq_init(&q, 16);
    for (int i = 0; i < 5; i++)
        pm_jq_push(&q, node(i, 3));
    assert_int_equal(pm_jq_remove(&q, &nodes[2]), 1); /* middle */
    assert_int_equal(pm_jq_remove(&q, &nodes[2]), 0); /* not queued any more */
    assert_int_equal(pm_jq_position(&q, &nodes[2]), -1);
    assert_int_equal(pm_jq_remove(&q, &nodes[0]), 1); /* head */
    assert_int_equal(pm_jq_remove(&q, &nodes[4]), 1); /* tail */
    assert_int_equal(q.count, 2);
    assert_int_equal(pm_jq_position(&q, &nodes[3]), 1);
    assert_int_equal(idx(pm_jq_pop(&q)), 1);
    assert_int_equal(idx(pm_jq_pop(&q)), 3);
    assert_null(pm_jq_pop(&q));
    /* a removed node can be queued again, at the tail */
    pm_jq_push(&q, node(6, 3));
    assert_int_equal(pm_jq_push(&q, &nodes[2]), 0);
    assert_int_equal(pm_jq_position(&q, &nodes[2]), 1);
}

static void test_bound_and_bad_input(void **state)
{
    (void)state;
    pm_jobqueue q;
    pm_jq_init(&q, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pm_jq_push(&q, node(i, i)), 0);
    assert_int_equal(pm_jq_push(&q, node(3, 9)), -1);    /* full */
    assert_int_equal(pm_jq_push(&q, &nodes[0]), -1);     /* already queued */
    pm_jq_pop(&q);
    assert_int_equal(pm_jq_push(&q, node(4, 10)), -1);   /* priority out of range */
    assert_int_equal(pm_jq_push(&q, node(5, -1)), -1);
    assert_int_equal(pm_jq_push(&q, node(6, 0)), 0);
    assert_int_equal(q.count, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_priority_then_fifo),
        cmocka_unit_test(test_positions_follow_run_order),
        cmocka_unit_test(test_remove_anywhere),
        cmocka_unit_test(test_bound_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
