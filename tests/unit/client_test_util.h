/*
 * client_test_util.h - small helpers shared by the client's tests
 * (test_client.c, test_client_agent.c): a monotonic clock, a sleep, a
 * temporary directory made and removed. Header-only, static.
 */
#ifndef VT_CLIENT_TEST_UTIL_H
#define VT_CLIENT_TEST_UTIL_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/vt_client_XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void rm_rf(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

#endif
