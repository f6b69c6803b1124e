/* test_config.c - precedence file < env < flags, unit parsing, and errors
 * that name the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "config.h"

struct cfg {
    char *dir;
    int64_t max_bytes, window, n;
    int fsync, verbose, mode;
};

static const struct vt_knob knobs[] = {
    {"spool-dir", VT_KNOB_STRING, offsetof(struct cfg, dir), "/var/lib/x", "spool", NULL, 0, 0},
    {"spool-max-bytes", VT_KNOB_BYTES, offsetof(struct cfg, max_bytes), "1GiB", "bound", NULL, 0, 0},
    {"window", VT_KNOB_DURATION, offsetof(struct cfg, window), "10s", "window", NULL, 1000, 3600000},
    {"max-series", VT_KNOB_INT, offsetof(struct cfg, n), "1000", "cap", NULL, 1, 1000000},
    {"fsync", VT_KNOB_ENUM, offsetof(struct cfg, fsync), "interval", "policy", "none|interval|always", 0, 0},
    {"verbose", VT_KNOB_BOOL, offsetof(struct cfg, verbose), "false", "chatty", NULL, 0, 0},
    {"socket-mode", VT_KNOB_OCTAL, offsetof(struct cfg, mode), "0660", "mode", NULL, 0, 0},
};
static const struct vt_program_info prog = {"test", "a test"};
#define N (sizeof knobs / sizeof knobs[0])

static enum vt_config_result load(struct cfg *c, char *err, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    return vt_config_load(&prog, knobs, N, c, argc, argv, err, 256);
}

static void test_defaults(void **state)
{
    (void)state;
    struct cfg c;
    char err[256];
    char *argv[] = {"test", NULL};
    unsetenv("VITALS_CONFIG");
    assert_int_equal(load(&c, err, 1, argv), VT_CONFIG_OK);
    assert_string_equal(c.dir, "/var/lib/x");
    assert_int_equal(c.max_bytes, 1LL << 30);
    assert_int_equal(c.window, 10000);
    assert_int_equal(c.n, 1000);
    assert_int_equal(c.fsync, 1);
    assert_int_equal(c.verbose, 0);
    assert_int_equal(c.mode, 0660);
    vt_config_free(knobs, N, &c);
}

static void test_precedence(void **state)
{
    (void)state;
    char path[] = "/tmp/vt-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *doc = "{\"spool_dir\": \"/file\", \"window\": \"5s\", \"max_series\": 7, "
                      "\"fsync\": \"always\", \"spool_max_bytes\": \"64MiB\"}";
    assert_int_equal(write(fd, doc, strlen(doc)), (int)strlen(doc));
    close(fd);
    setenv("VITALS_WINDOW", "2m", 1);
    setenv("VITALS_MAX_SERIES", "9", 1);
    struct cfg c;
    char err[256];
    char *argv[] = {"test", "--config", path, "--max-series=11", "--verbose", NULL};
    assert_int_equal(load(&c, err, 5, argv), VT_CONFIG_OK);
    assert_string_equal(c.dir, "/file");        /* file */
    assert_int_equal(c.window, 120000);         /* env over file */
    assert_int_equal(c.n, 11);                  /* flag over env */
    assert_int_equal(c.fsync, 2);
    assert_int_equal(c.max_bytes, 64 << 20);
    assert_int_equal(c.verbose, 1);
    vt_config_free(knobs, N, &c);
    unsetenv("VITALS_WINDOW");
    unsetenv("VITALS_MAX_SERIES");

    /* Errors name the field and its source. */
    fd = open(path, O_WRONLY | O_TRUNC);
    const char *bad = "{\"fsync\": \"sometimes\"}";
    assert_int_equal(write(fd, bad, strlen(bad)), (int)strlen(bad));
    close(fd);
    char *argv2[] = {"test", "--config", path, NULL};
    assert_int_equal(load(&c, err, 3, argv2), VT_CONFIG_ERROR);
    assert_non_null(strstr(err, "fsync"));
    assert_non_null(strstr(err, "none|interval|always"));
    vt_config_free(knobs, N, &c);
    fd = open(path, O_WRONLY | O_TRUNC);
    const char *unknown = "{\"windw\": \"1s\"}";
    assert_int_equal(write(fd, unknown, strlen(unknown)), (int)strlen(unknown));
    close(fd);
    assert_int_equal(load(&c, err, 3, argv2), VT_CONFIG_ERROR);
    assert_non_null(strstr(err, "windw: unknown setting"));
    vt_config_free(knobs, N, &c);
    unlink(path);
}

static void test_errors(void **state)
{
    (void)state;
    struct cfg c;
    char err[256];
    char *a1[] = {"test", "--window", "1x", NULL};
    assert_int_equal(load(&c, err, 3, a1), VT_CONFIG_ERROR);
    assert_non_null(strstr(err, "--window"));
    vt_config_free(knobs, N, &c);
    char *a2[] = {"test", "--window", "2h", NULL};
    assert_int_equal(load(&c, err, 3, a2), VT_CONFIG_ERROR);
    assert_non_null(strstr(err, "out of range"));
    vt_config_free(knobs, N, &c);
    char *a3[] = {"test", "--nope", "1", NULL};
    assert_int_equal(load(&c, err, 3, a3), VT_CONFIG_ERROR);
    assert_non_null(strstr(err, "unknown flag '--nope'"));
    vt_config_free(knobs, N, &c);
    char *a4[] = {"test", "--spool-dir", NULL};
    assert_int_equal(load(&c, err, 2, a4), VT_CONFIG_ERROR);
    assert_non_null(strstr(err, "needs a value"));
    vt_config_free(knobs, N, &c);
    setenv("VITALS_SPOOL_MAX_BYTES", "lots", 1);
    char *a5[] = {"test", NULL};
    assert_int_equal(load(&c, err, 1, a5), VT_CONFIG_ERROR);
    assert_non_null(strstr(err, "VITALS_SPOOL_MAX_BYTES"));
    unsetenv("VITALS_SPOOL_MAX_BYTES");
    vt_config_free(knobs, N, &c);
}

static void test_parsers(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(vt_parse_bytes("4194304", &v), 0);
    assert_int_equal(v, 4194304);
    assert_int_equal(vt_parse_bytes("1.5KiB", &v), 0);
    assert_int_equal(v, 1536);
    assert_int_equal(vt_parse_bytes("-1", &v), -1);
    assert_int_equal(vt_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(vt_parse_duration_ms("7d", &v), 0);
    assert_int_equal(v, 7LL * 86400000);
    assert_int_equal(vt_parse_duration_ms("3", &v), 0);
    assert_int_equal(v, 3000);
    char host[64];
    int port;
    assert_int_equal(vt_parse_host_port("127.0.0.1:7401", host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7401);
    assert_int_equal(vt_parse_host_port("[::1]:80", host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(vt_parse_host_port(":9", host, &port), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(vt_parse_host_port("nohost", host, &port), -1);
    assert_int_equal(vt_parse_host_port("h:99999", host, &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_parsers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
