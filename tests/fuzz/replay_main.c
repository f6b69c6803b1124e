/*
 * replay_main.c - run a libFuzzer target without libFuzzer.
 *
 * Every fuzz target in tests/fuzz/ is linked against this driver in ordinary
 * builds: it feeds LLVMFuzzerTestOneInput each file of the directories (or
 * files) named on the command line, so the seed corpus and every crash found
 * earlier are re-run under the sanitizers by ctest. It also feeds a few
 * thousand deterministic pseudo-random mutations of each seed, a cheap
 * regression net for builds that have no clang.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    /* xorshift64*: deterministic, so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static void run_mutations(const uint8_t *seed, size_t size)
{
    enum { ROUNDS = 2000 };
    uint8_t *buf = malloc(size + 16);
    if (!buf)
        return;
    for (int r = 0; r < ROUNDS; r++) {
        size_t n = size;
        memcpy(buf, seed, size);
        int edits = 1 + (int)(next_rand() % 4);
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = next_rand() % n;
            switch (next_rand() % 4) {
            case 0: buf[at] ^= (uint8_t)(1u << (next_rand() % 8)); break;
            case 1: buf[at] = (uint8_t)next_rand(); break;
            case 2: n = at; break; /* truncate */
            default: memmove(buf + at, buf + at + 1, n - at - 1); n--; break;
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    free(buf);
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
    size_t got = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    if (!buf)
        return -1;
    LLVMFuzzerTestOneInput(buf, got);
    run_mutations(buf, got);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) != 0)
                return 1;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
            if (run_file(path) != 0)
                return 1;
            files++;
        }
        if (d)
            closedir(d);
    }
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
    printf("replayed %d inputs (+%d mutations each)\n", files, 2000);
    return files > 0 ? 0 : 1;
}
