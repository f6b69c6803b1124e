/*
 * stats.h - the score statistics module (stats.c).
 *
 * Why this header declares nothing: the statistics are part of the score
 * engine's public contract and stay declared in score.h, next to the types
 * they read (vt_score_normalize, vt_score_stat, vt_score_psi, vt_score_js,
 * under "pieces, exported for tests and tools"). This header names the
 * module and pulls in that contract; everything else in stats.c is static.
 */
#ifndef VITALS_SCORER_STATS_H
#define VITALS_SCORER_STATS_H

#include "score.h"

#endif
