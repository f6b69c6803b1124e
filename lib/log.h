/*
 * log.h - one-line structured log messages to stderr.
 *
 * Daemons log in logfmt ("ts=… level=… msg=… key=value") so that kubectl logs
 * and any log shipper can parse them. The level threshold is process-wide
 * state owned by main(), set once at start-up with vt_log_set_level().
 */
#ifndef VT_LOG_H
#define VT_LOG_H

enum vt_log_level { VT_LOG_DEBUG = 0, VT_LOG_INFO, VT_LOG_WARN, VT_LOG_ERROR };

/* Set the lowest level that is printed (default VT_LOG_INFO). */
void vt_log_set_level(enum vt_log_level level);

/* Parse "debug" | "info" | "warn" | "error"; returns -1 if unknown. */
int vt_log_parse_level(const char *name);

/* Print one line: ts=<RFC 3339> level=<level> msg="<formatted>". */
void vt_log(enum vt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define vt_debug(...) vt_log(VT_LOG_DEBUG, __VA_ARGS__)
#define vt_info(...) vt_log(VT_LOG_INFO, __VA_ARGS__)
#define vt_warn(...) vt_log(VT_LOG_WARN, __VA_ARGS__)
#define vt_error(...) vt_log(VT_LOG_ERROR, __VA_ARGS__)

#endif
