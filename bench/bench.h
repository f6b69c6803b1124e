/*
 * bench.h - the output contract shared by every benchmark program.
 *
 * A benchmark calls bench_init(argc, argv, "name") first, then bench_report()
 * once per figure. With --json each figure is one line
 *   {"bench": "...", "metric": "...", "value": N, "unit": "..."}
 * and otherwise one row of a readable table. Metric names are stable once
 * published (DESIGN §7). Header-only so benchmarks stay single files.
 */
#ifndef VT_BENCH_H
#define VT_BENCH_H

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int bench_json;
static const char *bench_name;

static inline void bench_init(int argc, char **argv, const char *name)
{
    bench_name = name;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0)
            bench_json = 1;
    if (!bench_json)
        printf("%-10s %-34s %16s  %s\n", "bench", "metric", "value", "unit");
}

/* target: a human-readable goal such as ">= 1000000", or NULL. */
static inline void bench_report(const char *metric, double value,
                                const char *unit, const char *target)
{
    if (bench_json)
        printf("{\"bench\": \"%s\", \"metric\": \"%s\", \"value\": %.6g, "
               "\"unit\": \"%s\"}\n", bench_name, metric, value, unit);
    else
        printf("%-10s %-34s %16.6g  %s%s%s\n", bench_name, metric, value, unit,
               target ? "  target " : "", target ? target : "");
    fflush(stdout);
}

/* Monotonic wall clock and this process's CPU time, in seconds. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline double bench_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time another process has used so far, in seconds, user and system
 * apart, from /proc/<pid>/stat; 0, or -1 if it cannot be read. */
static inline int bench_proc_times(pid_t pid, double *user, double *sys)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    /* fields after ")": state(3) ... utime(14) stime(15) */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    *user = (double)ut / (double)sysconf(_SC_CLK_TCK);
    *sys = (double)st / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

/* CPU seconds (user + system) of process pid so far, -1 if gone. */
static inline double bench_proc_cpu(pid_t pid)
{
    double u, s;
    return bench_proc_times(pid, &u, &s) ? -1 : u + s;
}

#endif
