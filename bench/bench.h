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
#include <time.h>

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

#endif
