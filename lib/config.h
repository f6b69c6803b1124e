/*
 * config.h - one table of knobs per program, read from a JSON file, then
 * VITALS_* environment variables, then command-line flags (later wins).
 *
 * Each knob is declared once: its name "spool-max-bytes" is the flag
 * --spool-max-bytes, the environment variable VITALS_SPOOL_MAX_BYTES and the
 * JSON key "spool_max_bytes". The same table prints --help, so a knob cannot
 * exist without being documented. Values are parsed into a caller-owned
 * struct at the knob's offset; every error names the field and its source
 * (file key, variable or flag) so that a bad config exits 2 with a message an
 * operator can act on.
 */
#ifndef VT_CONFIG_H
#define VT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum vt_knob_type {
    VT_KNOB_STRING,   /* char *: owned by the config struct, freed by vt_config_free */
    VT_KNOB_INT,      /* int64_t */
    VT_KNOB_BYTES,    /* int64_t: "4194304", "64KiB", "512MiB", "1GiB", "1G", "10M" */
    VT_KNOB_DURATION, /* int64_t milliseconds: "250ms", "10s", "5m", "2h", "7d"; bare number = s */
    VT_KNOB_ENUM,     /* int: index into the '|'-separated `choices` */
    VT_KNOB_BOOL,     /* int: true/false/1/0/yes/no/on/off */
    VT_KNOB_OCTAL,    /* int: file mode such as "0660" */
};

struct vt_knob {
    const char *name;    /* kebab-case, e.g. "spool-max-bytes" */
    enum vt_knob_type type;
    size_t offset;       /* offsetof(struct your_config, field) */
    const char *def;     /* default, in the same syntax as a flag value; NULL = unset */
    const char *help;    /* one line */
    const char *choices; /* VT_KNOB_ENUM: "none|interval|always" */
    int64_t min, max;    /* numeric bounds, inclusive; min == max == 0: unbounded (>= 0) */
};

struct vt_program_info {
    const char *name;    /* "vitals-agent" */
    const char *summary; /* one line for --help */
};

enum vt_config_result {
    VT_CONFIG_OK = 0,
    VT_CONFIG_EXIT = 1,  /* --help or --version was printed: exit 0 */
    VT_CONFIG_ERROR = 2, /* err holds the message: exit 2 */
};

/*
 * Fill cfg from defaults, then the JSON file named by --config or
 * VITALS_CONFIG (if any), then the environment, then argv (--name VALUE or
 * --name=VALUE; a VT_KNOB_BOOL flag may stand alone). --help and --version
 * print and return VT_CONFIG_EXIT. An unknown flag, an unknown JSON key or a
 * bad value returns VT_CONFIG_ERROR with err naming the field and where it
 * came from. The knob "config" is implicit and need not be in the table.
 */
enum vt_config_result vt_config_load(const struct vt_program_info *prog,
                                     const struct vt_knob *knobs, size_t n,
                                     void *cfg, int argc, char **argv,
                                     char *err, size_t errlen);

/* Print usage: every knob, its flag, variable, default and help. */
void vt_config_usage(FILE *out, const struct vt_program_info *prog,
                     const struct vt_knob *knobs, size_t n);

/* Free the strings vt_config_load stored in cfg. */
void vt_config_free(const struct vt_knob *knobs, size_t n, void *cfg);

/* Parsers shared with other config documents. Return 0 or -1. */
int vt_parse_bytes(const char *s, int64_t *out);
int vt_parse_duration_ms(const char *s, int64_t *out);

/* "host:port", "[v6]:port" or ":port" → host (default "0.0.0.0") and port.
 * host must hold 64 bytes. Returns 0 or -1. */
int vt_parse_host_port(const char *s, char *host, int *port);

#endif
