/*
 * config.c - see config.h. Layers are applied in order of precedence, each
 * overwriting the last, so the last writer of a field is the one that wins;
 * a string field is freed before it is replaced, so no layer leaks.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A number followed by a unit from the table; returns 0 or -1. */
static int parse_scaled(const char *s, const char *const *units,
                        const int64_t *mult, int64_t bare_mult, int64_t *out)
{
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    while (*end == ' ')
        end++;
    int64_t m = bare_mult;
    if (*end) {
        m = -1;
        for (int i = 0; units[i]; i++)
            if (strcasecmp(end, units[i]) == 0)
                m = mult[i];
        if (m < 0)
            return -1;
    }
    double r = v * (double)m;
    if (r > 9.2e18)
        return -1;
    *out = (int64_t)(r + 0.5);
    return 0;
}

int vt_parse_bytes(const char *s, int64_t *out)
{
    static const char *const units[] = {"b", "k", "kb", "kib", "m", "mb", "mib",
                                        "g", "gb", "gib", "t", "tib", NULL};
    static const int64_t mult[] = {1, 1024, 1000, 1024, 1 << 20, 1000000, 1 << 20,
                                   1 << 30, 1000000000, 1 << 30,
                                   1LL << 40, 1LL << 40};
    return parse_scaled(s, units, mult, 1, out);
}

int vt_parse_duration_ms(const char *s, int64_t *out)
{
    static const char *const units[] = {"ms", "s", "m", "h", "d", NULL};
    static const int64_t mult[] = {1, 1000, 60000, 3600000, 86400000};
    return parse_scaled(s, units, mult, 1000, out);
}

int vt_parse_host_port(const char *s, char *host, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return -1;
    size_t hlen = (size_t)(colon - s);
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        s++;
        hlen -= 2;
    }
    if (hlen >= 64)
        return -1;
    if (hlen == 0)
        strcpy(host, "0.0.0.0");
    else {
        memcpy(host, s, hlen);
        host[hlen] = 0;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static int enum_index(const char *choices, const char *s)
{
    size_t len = strlen(s);
    int i = 0;
    for (const char *p = choices; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, s, n) == 0)
            return i;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static const char *type_hint(const struct vt_knob *k)
{
    switch (k->type) {
    case VT_KNOB_INT: return "an integer";
    case VT_KNOB_BYTES: return "a byte size such as 64MiB";
    case VT_KNOB_DURATION: return "a duration such as 500ms, 10s or 5m";
    case VT_KNOB_ENUM: return k->choices;
    case VT_KNOB_BOOL: return "true or false";
    case VT_KNOB_OCTAL: return "an octal file mode such as 0660";
    default: return "a string";
    }
}

/* Store one textual value into its field. `where` names the source. */
static int set_value(const struct vt_knob *k, void *cfg, const char *val,
                     const char *where, char *err, size_t errlen)
{
    char *field = (char *)cfg + k->offset;
    int64_t v = 0;
    int iv;
    switch (k->type) {
    case VT_KNOB_STRING: {
        char **sp = (char **)field;
        char *copy = strdup(val);
        if (!copy) {
            set_err(err, errlen, "%s: out of memory", where);
            return -1;
        }
        free(*sp);
        *sp = copy;
        return 0;
    }
    case VT_KNOB_ENUM:
        iv = enum_index(k->choices, val);
        if (iv < 0)
            goto bad;
        *(int *)field = iv;
        return 0;
    case VT_KNOB_BOOL:
        if (parse_bool(val, &iv) != 0)
            goto bad;
        *(int *)field = iv;
        return 0;
    case VT_KNOB_OCTAL: {
        char *end;
        long m = strtol(val, &end, 8);
        if (*val == 0 || *end || m < 0 || m > 07777)
            goto bad;
        *(int *)field = (int)m;
        return 0;
    }
    case VT_KNOB_INT: {
        char *end;
        errno = 0;
        v = strtoll(val, &end, 10);
        if (*val == 0 || *end || errno)
            goto bad;
        break;
    }
    case VT_KNOB_BYTES:
        if (vt_parse_bytes(val, &v) != 0)
            goto bad;
        break;
    case VT_KNOB_DURATION:
        if (vt_parse_duration_ms(val, &v) != 0)
            goto bad;
        break;
    }
    if ((k->min || k->max) && (v < k->min || v > k->max)) {
        set_err(err, errlen, "%s: %s is out of range [%lld, %lld]", where, val,
                (long long)k->min, (long long)k->max);
        return -1;
    }
    if (!k->min && !k->max && v < 0)
        goto bad;
    *(int64_t *)field = v;
    return 0;
bad:
    set_err(err, errlen, "%s: expected %s, got '%s'", where, type_hint(k), val);
    return -1;
}

static void env_name(const char *name, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "VITALS_");
    for (const char *p = name; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = 0;
}

static void json_key(const char *name, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : *p;
    out[n] = 0;
}

static const struct vt_knob *find_json_key(const struct vt_knob *knobs, size_t n,
                                           const char *key)
{
    char k[64];
    for (size_t i = 0; i < n; i++) {
        json_key(knobs[i].name, k, sizeof k);
        if (strcmp(k, key) == 0)
            return &knobs[i];
    }
    return NULL;
}

static int load_file(const char *path, const struct vt_knob *knobs, size_t n,
                     void *cfg, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        set_err(err, errlen, "config %s:%d:%d: %s", path, jerr.line,
                jerr.column, jerr.text);
        return -1;
    }
    int rc = 0;
    if (!json_is_object(root)) {
        set_err(err, errlen, "config %s: the top level must be an object", path);
        rc = -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (rc)
            break;
        char where[256];
        snprintf(where, sizeof where, "config %s: %s", path, key);
        const struct vt_knob *k = find_json_key(knobs, n, key);
        if (!k) {
            set_err(err, errlen, "%s: unknown setting", where);
            rc = -1;
            break;
        }
        char buf[64];
        const char *text = buf;
        if (json_is_string(val))
            text = json_string_value(val);
        else if (json_is_integer(val))
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(val));
        else if (json_is_real(val))
            snprintf(buf, sizeof buf, "%.17g", json_real_value(val));
        else if (json_is_boolean(val))
            snprintf(buf, sizeof buf, "%s", json_is_true(val) ? "true" : "false");
        else {
            set_err(err, errlen, "%s: expected %s", where, type_hint(k));
            rc = -1;
            break;
        }
        if (k->type == VT_KNOB_OCTAL && json_is_integer(val)) {
            /* JSON has no octal: 432 would silently mean 0660. Demand a string. */
            set_err(err, errlen, "%s: write the mode as a string, e.g. \"0660\"", where);
            rc = -1;
            break;
        }
        rc = set_value(k, cfg, text, where, err, errlen);
    }
    json_decref(root);
    return rc;
}

void vt_config_usage(FILE *out, const struct vt_program_info *prog,
                     const struct vt_knob *knobs, size_t n)
{
    fprintf(out, "Usage: %s [--config FILE] [--FLAG VALUE]...\n%s\n\n", prog->name,
            prog->summary);
    fprintf(out, "Every flag can also be set as a VITALS_* environment variable or as a\n"
                 "snake_case key in the JSON config file (flags > environment > file).\n\n");
    fprintf(out, "  --config FILE  (VITALS_CONFIG)\n      JSON configuration file\n");
    for (size_t i = 0; i < n; i++) {
        char env[80];
        env_name(knobs[i].name, env, sizeof env);
        fprintf(out, "  --%s %s  (%s)\n      %s", knobs[i].name,
                knobs[i].type == VT_KNOB_ENUM ? knobs[i].choices : "VALUE", env,
                knobs[i].help);
        if (knobs[i].def)
            fprintf(out, " [default: %s]", *knobs[i].def ? knobs[i].def : "\"\"");
        fputc('\n', out);
    }
    fprintf(out, "  --help       print this help and exit\n"
                 "  --version    print the version and exit\n");
}

enum vt_config_result vt_config_load(const struct vt_program_info *prog,
                                     const struct vt_knob *knobs, size_t n,
                                     void *cfg, int argc, char **argv,
                                     char *err, size_t errlen)
{
    err[0] = 0;
    /* 1. defaults */
    for (size_t i = 0; i < n; i++) {
        if (knobs[i].type == VT_KNOB_STRING)
            *(char **)((char *)cfg + knobs[i].offset) = NULL;
        if (knobs[i].def && set_value(&knobs[i], cfg, knobs[i].def, knobs[i].name,
                                      err, errlen) != 0)
            return VT_CONFIG_ERROR; /* a bad default is a programming error */
    }
    /* --help / --version win over everything, and --config is found first. */
    const char *config_path = getenv("VITALS_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            vt_config_usage(stdout, prog, knobs, n);
            return VT_CONFIG_EXIT;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", prog->name, VITALS_VERSION);
            return VT_CONFIG_EXIT;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config_path = argv[i] + 9;
    }
    /* 2. file */
    if (config_path && *config_path &&
        load_file(config_path, knobs, n, cfg, err, errlen) != 0)
        return VT_CONFIG_ERROR;
    /* 3. environment */
    for (size_t i = 0; i < n; i++) {
        char env[80];
        env_name(knobs[i].name, env, sizeof env);
        const char *v = getenv(env);
        if (v && set_value(&knobs[i], cfg, v, env, err, errlen) != 0)
            return VT_CONFIG_ERROR;
    }
    /* 4. flags */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            set_err(err, errlen, "unexpected argument '%s' (see --help)", a);
            return VT_CONFIG_ERROR;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen == 6 && strncmp(name, "config", 6) == 0) {
            i += eq ? 0 : 1;
            continue;
        }
        const struct vt_knob *k = NULL;
        for (size_t j = 0; j < n; j++)
            if (strlen(knobs[j].name) == nlen && strncmp(knobs[j].name, name, nlen) == 0)
                k = &knobs[j];
        if (!k) {
            set_err(err, errlen, "unknown flag '%s' (see --help)", a);
            return VT_CONFIG_ERROR;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val && k->type == VT_KNOB_BOOL &&
            (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
            val = "true";
        if (!val) {
            if (i + 1 >= argc) {
                set_err(err, errlen, "--%s needs a value", k->name);
                return VT_CONFIG_ERROR;
            }
            val = argv[++i];
        }
        char where[80];
        snprintf(where, sizeof where, "--%s", k->name);
        if (set_value(k, cfg, val, where, err, errlen) != 0)
            return VT_CONFIG_ERROR;
    }
    return VT_CONFIG_OK;
}

void vt_config_free(const struct vt_knob *knobs, size_t n, void *cfg)
{
    for (size_t i = 0; i < n; i++)
        if (knobs[i].type == VT_KNOB_STRING) {
            char **sp = (char **)((char *)cfg + knobs[i].offset);
            free(*sp);
            *sp = NULL;
        }
}
