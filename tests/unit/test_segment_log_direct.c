/*
 * test_segment_log_direct.c - a grouped segment log written with O_DIRECT
 * (opts.direct, the scorer's WAL), against real files in a temp dir.
 *
 * Covers: once closed, the files are byte for byte those of buffered
 * writes (groups of 1, 3 and 17 frames, across rotations); between groups
 * the active file ends with zeros to a 4 KiB boundary and sealed segments
 * have none; a log that stopped without closing recovers with its padding
 * taken for padding (nothing counted as torn), resumes appending inside the
 * padded block, and reads back whole; junk after the padding is still a
 * torn tail; and recycling (opts.recycle): spares kept and overwritten,
 * their earlier frames never read, after a close or a stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "segment_log.h"
#include "seglog_test_util.h"

#define FRAMES 150

/* Whether this directory's file system takes O_DIRECT (tmpfs before Linux
 * 6.6 does not: the log then writes buffered, without padding). */
static bool dio_supported(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/probe", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_DIRECT, 0600);
    if (fd >= 0)
        close(fd);
    unlink(p);
    return fd >= 0;
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (uint64_t)sb.st_size;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .seg file names of dir, sorted (NULL-terminated; free each and all). */
static char **seg_names(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char **v = calloc(1024, sizeof *v);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".seg") && n < 1023)
            v[n++] = strdup(e->d_name);
    closedir(d);
    qsort(v, n, sizeof *v, cmp_str);
    return v;
}

static void free_names(char **v)
{
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

/* Same segment files, same bytes. */
static void same_files(const char *a, const char *b)
{
    char **na = seg_names(a), **nb = seg_names(b);
    size_t i = 0;
    for (; na[i] && nb[i]; i++) {
        assert_string_equal(na[i], nb[i]);
        char pa[512], pb[512];
        snprintf(pa, sizeof pa, "%s/%s", a, na[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, nb[i]);
        size_t la, lb;
        uint8_t *ba = read_file(pa, &la), *bb = read_file(pb, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(ba, bb, la);
        free(ba);
        free(bb);
    }
    assert_true(i > 0 && !na[i] && !nb[i]);
    free_names(na);
    free_names(nb);
}

/* The newest segment's path. */
static void newest(const char *dir, char *out, size_t cap)
{
    char **v = seg_names(dir);
    size_t n = 0;
    while (v[n])
        n++;
    assert_true(n > 0);
    snprintf(out, cap, "%s/%s", dir, v[n - 1]);
    free_names(v);
}

static vt_seglog_opts grouped(const char *dir, bool direct)
{
    vt_seglog_opts o = opts_for(dir, 16 << 10);
    o.grouped = true;
    o.uncompressed = true;
    o.direct = direct;
    return o;
}

static void test_same_bytes_as_buffered(void **state)
{
    (void)state;
    const int groups[] = {1, 3, 17};
    for (size_t g = 0; g < sizeof groups / sizeof *groups; g++) {
        char *dd = mktemp_dir(), *db = mktemp_dir();
        bool dio = dio_supported(dd);
        vt_seglog_opts od = grouped(dd, true), ob = grouped(db, false);
        vt_seglog *ld, *lb;
        uint64_t sd[FRAMES], sb[FRAMES];
        assert_int_equal(vt_seglog_open(&ld, &od, NULL), 0);
        assert_int_equal(vt_seglog_open(&lb, &ob, NULL), 0);
        for (int k = 0; k < FRAMES; k += groups[g]) {
            int end = k + groups[g] < FRAMES ? k + groups[g] : FRAMES;
            append_frames(ld, k, end, sd);
            append_frames(lb, k, end, sb);
            assert_int_equal(vt_seglog_sync(ld), 0);
            assert_int_equal(vt_seglog_flush(lb), 0);
            /* sealed segments hold their frames only; the active one is
             * padded to a block boundary */
            char pd[512], pb[512];
            newest(dd, pd, sizeof pd);
            newest(db, pb, sizeof pb);
            assert_int_equal(seg_bytes(dd, false) - seg_bytes(dd, true),
                             seg_bytes(db, false) - seg_bytes(db, true));
            uint64_t fd = file_size(pd), fb = file_size(pb);
            if (dio)
                assert_true(fd % 4096 == 0 && fd >= fb && fd - fb < 4096);
            else
                assert_int_equal(fd, fb);
        }
        vt_seglog_stats st;
        vt_seglog_stats_get(ld, &st);
        assert_true(st.segments > 3);
        assert_memory_equal(sd, sb, sizeof sd);
        vt_seglog_close(ld);
        vt_seglog_close(lb);
        same_files(dd, db);
        vt_seglog_recovery rep;
        assert_int_equal(vt_seglog_open(&ld, &od, &rep), 0);
        assert_int_equal(rep.truncated_bytes, 0);
        assert_int_equal(rep.corrupt_frames, 0);
        expect_all(ld, FRAMES, sd);
        vt_seglog_close(ld);
        rmtree(dd);
        rmtree(db);
        free(dd);
        free(db);
    }
}

/* Frames [k0, k1) in one group, synced, in a child that then stops
 * without closing the log (as a SIGKILL would). */
static void write_and_stop(const vt_seglog_opts *o, int k0, int k1)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        vt_seglog *log;
        if (vt_seglog_open(&log, o, NULL))
            _exit(1);
        for (int k = k0; k < k1; k += 4) { /* groups of four */
            append_frames(log, k, k + 4 < k1 ? k + 4 : k1, NULL);
            if (vt_seglog_sync(log))
                _exit(2);
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_stop_without_close(void **state)
{
    (void)state;
    char *dd = mktemp_dir(), *db = mktemp_dir();
    bool dio = dio_supported(dd);
    vt_seglog_opts od = grouped(dd, true), ob = grouped(db, false);
    od.segment_bytes = ob.segment_bytes = 1 << 20; /* one segment */
    write_and_stop(&od, 0, 13);
    char p[512];
    newest(dd, p, sizeof p);
    if (dio)
        assert_int_equal(file_size(p) % 4096, 0); /* the padding is on disk */
    /* recovery: padding is not a torn tail; appends resume inside it */
    vt_seglog_recovery rep;
    vt_seglog *log;
    assert_int_equal(vt_seglog_open(&log, &od, &rep), 0);
    assert_int_equal(rep.truncated_bytes, 0);
    assert_int_equal(rep.frames, 13);
    vt_seglog_close(log);
    write_and_stop(&od, 13, 31);
    assert_int_equal(vt_seglog_open(&log, &od, &rep), 0);
    assert_int_equal(rep.truncated_bytes, 0);
    assert_int_equal(rep.corrupt_frames, 0);
    append_frames(log, 31, 40, NULL);
    assert_int_equal(vt_seglog_sync(log), 0);
    vt_seglog_close(log);
    /* the same frames written buffered, in one go: the same file */
    assert_int_equal(vt_seglog_open(&log, &ob, NULL), 0);
    append_frames(log, 0, 40, NULL);
    vt_seglog_close(log);
    same_files(dd, db);
    assert_int_equal(vt_seglog_open(&log, &ob, &rep), 0); /* read buffered */
    expect_all(log, 40, NULL);
    vt_seglog_close(log);

    /* junk after a padded end is a torn tail, counted */
    write_and_stop(&od, 40, 45);
    newest(dd, p, sizeof p);
    uint64_t padded = file_size(p);
    FILE *f = fopen(p, "ab");
    assert_non_null(f);
    assert_int_equal(fwrite("junkjunkjunk", 1, 12, f), 12);
    fclose(f);
    assert_int_equal(vt_seglog_open(&log, &od, &rep), 0);
    assert_int_equal(rep.frames, 45);
    assert_true(rep.truncated_bytes >= 12 && rep.truncated_bytes <= 12 + padded % 4096 + 4096);
    expect_all(log, 45, NULL);
    vt_seglog_close(log);
    rmtree(dd);
    rmtree(db);
    free(dd);
    free(db);
}

static size_t count_suffix(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0, sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)))
        n += strlen(e->d_name) > sl && strcmp(e->d_name + strlen(e->d_name) - sl, suffix) == 0;
    closedir(d);
    return n;
}

/* Frames [k0, k1) in groups of four, each synced. */
static void append_synced(vt_seglog *log, int k0, int k1, uint64_t *seqs)
{
    for (int k = k0; k < k1; k += 4) {
        append_frames(log, k, k + 4 < k1 ? k + 4 : k1, seqs);
        assert_int_equal(vt_seglog_sync(log), 0);
    }
}

/* Frames [k0, k1) read back from the log, in order, and nothing after. */
static void expect_range(vt_seglog *log, int k0, int k1, const uint64_t *seqs)
{
    int *want = malloc(sizeof *want * (size_t)(k1 - k0));
    for (int k = k0; k < k1; k++)
        want[k - k0] = k;
    expect_frames(log, seqs[k0], want, k1 - k0, seqs);
    free(want);
}

/* Frames from k0 on, synced one by one, in a child that stops without
 * closing the log three frames after it started a segment in a spare (so
 * that file still holds whole frames of its earlier use). Returns the end
 * of the frames written. */
static int stop_in_spare(const vt_seglog_opts *o, int k0)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        vt_seglog *log;
        vt_seglog_stats st = {0};
        if (vt_seglog_open(&log, o, NULL))
            _exit(1);
        int k = k0, after = -1;
        while (after < 2 && k < k0 + 1000) {
            append_frames(log, k, k + 1, NULL);
            k++;
            if (vt_seglog_sync(log))
                _exit(2);
            vt_seglog_stats_get(log, &st);
            after += after >= 0 || st.reused_segments;
        }
        if (write(fds[1], &k, sizeof k) != sizeof k)
            _exit(3);
        _exit(st.reused_segments == 1 ? 0 : 4);
    }
    close(fds[1]);
    int k1 = -1, status;
    assert_int_equal(read(fds[0], &k1, sizeof k1), sizeof k1);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return k1;
}

/* opts.recycle: trimmed files become spares (at most `recycle`), new
 * segments overwrite them; readers and recovery never see what a spare
 * held before, whether the log was closed (the file cut to its frames) or
 * stopped (recovery cuts the earlier frames without counting them torn). */
static void test_recycle(void **state)
{
    (void)state;
    for (int direct = 0; direct < 2; direct++) {
        char *dir = mktemp_dir();
        vt_seglog_opts o = grouped(dir, direct);
        o.recycle = 2;
        static uint64_t seqs[600];
        vt_seglog *log;
        vt_seglog_stats st;
        assert_int_equal(vt_seglog_open(&log, &o, NULL), 0);
        append_synced(log, 0, 200, seqs);
        assert_true(vt_seglog_trim(log, seqs[150]) >= 3);
        vt_seglog_stats_get(log, &st);
        assert_int_equal(st.spares, 2);
        assert_int_equal(count_suffix(dir, ".spare"), 2);
        append_synced(log, 200, 400, seqs); /* rotates into both spares */
        vt_seglog_stats_get(log, &st);
        assert_int_equal(st.reused_segments, 2);
        assert_int_equal(st.spares, 0);
        assert_int_equal(count_suffix(dir, ".spare"), 0);
        uint64_t first = st.first_seq;
        int k0 = 0;
        while (seqs[k0] < first)
            k0++;
        expect_range(log, k0, 400, seqs);
        vt_seglog_close(log);
        vt_seglog_recovery rep;
        assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
        assert_int_equal(rep.truncated_bytes, 0);
        assert_int_equal(rep.corrupt_frames, 0);
        assert_int_equal(rep.frames, 400 - k0);
        assert_true(vt_seglog_trim(log, seqs[350]) >= 2); /* spares for the child */
        vt_seglog_close(log);

        /* stopped without closing, a few frames into a reused file */
        int k1 = stop_in_spare(&o, 400);
        char p[512];
        newest(dir, p, sizeof p);
        size_t len;
        uint8_t *b = read_file(p, &len);
        vt_seglog_scan_result res;
        uint64_t name_seq = strtoull(strrchr(p, '/') + 1, NULL, 16);
        vt_seglog_scan(b, len, 0, name_seq, NULL, NULL, &res);
        assert_true(res.stale_tail > 0); /* the spare's earlier frames are there */
        free(b);
        assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
        assert_int_equal(rep.truncated_bytes, 0);
        assert_int_equal(rep.corrupt_frames, 0);
        vt_seglog_stats_get(log, &st);
        for (k0 = 0; k0 < 400 && seqs[k0] < st.first_seq; k0++)
            ;
        for (int k = 400; k < k1; k++) /* the child's seqs follow on */
            seqs[k] = seqs[k - 1] + frame_records(k - 1);
        expect_range(log, k0, k1, seqs);
        append_synced(log, k1, k1 + 20, seqs); /* appends resume after the cut */
        expect_range(log, k0, k1 + 20, seqs);
        vt_seglog_close(log);

        /* segments deleted by hand: the log starts again at 0, and the
         * spares, whose frames lie above that, must not become segments */
        assert_true(vt_seglog_open(&log, &o, &rep) == 0);
        assert_true(vt_seglog_trim(log, seqs[k1 + 19]) >= 1);
        vt_seglog_close(log);
        assert_true(count_suffix(dir, ".spare") >= 1);
        char **segs = seg_names(dir);
        for (size_t i = 0; segs[i]; i++) {
            char path[600];
            snprintf(path, sizeof path, "%s/%s", dir, segs[i]);
            assert_int_equal(unlink(path), 0);
        }
        free_names(segs);
        assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
        assert_int_equal(rep.next_seq, 0);
        assert_int_equal(count_suffix(dir, ".spare"), 0);
        append_synced(log, 0, 100, seqs);
        expect_range(log, 0, 100, seqs);
        vt_seglog_close(log);

        /* spares beyond opts.recycle are deleted at open */
        assert_true(vt_seglog_open(&log, &o, &rep) == 0);
        assert_true(vt_seglog_trim(log, seqs[99]) >= 1);
        vt_seglog_close(log);
        assert_true(count_suffix(dir, ".spare") >= 1);
        o.recycle = 0;
        assert_int_equal(vt_seglog_open(&log, &o, &rep), 0);
        assert_int_equal(count_suffix(dir, ".spare"), 0);
        assert_int_equal(rep.ignored_files, 0);
        vt_seglog_close(log);
        rmtree(dir);
        free(dir);
    }
}

int main(void)
{
    vt_log_set_level(VT_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_as_buffered),
        cmocka_unit_test(test_stop_without_close),
        cmocka_unit_test(test_recycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
