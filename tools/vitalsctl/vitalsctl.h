/*
 * vitalsctl.h - what the files of vitalsctl share: exit codes and the
 * command entry points (main.c parses flags, each command prints and returns
 * its exit code).
 *
 * Exit codes (docs/vitalsctl.md):
 *   0  success: the scores were shown, the gate passed, the file is valid;
 *   1  a definite "no": the gate failed, the file is invalid, the score or
 *      segment asked for does not exist;
 *   2  cannot tell / cannot run: bad usage, scorer unreachable or answering
 *      nonsense, no data or history too short for a gate, unreadable file.
 */
#ifndef CTL_VITALSCTL_H
#define CTL_VITALSCTL_H

#include <stdio.h>

#define CTL_EXIT_OK 0
#define CTL_EXIT_NO 1
#define CTL_EXIT_CANNOT 2

/* Validate a score file offline with the scorer's own validator. Prints the
 * verdict and a summary to out, errors to errout. Returns an exit code. */
int ctl_check_config(const char *path, FILE *out, FILE *errout);

#endif
