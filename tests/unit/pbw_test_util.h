/*
 * pbw_test_util.h - what the direct encoders' tests (test_sketch_wire.c,
 * test_aggregate.c) share: the check that an encoder wrote exactly the bytes
 * protobuf-c packed. Header-only; include after cmocka.h.
 */
#ifndef VT_PBW_TEST_UTIL_H
#define VT_PBW_TEST_UTIL_H

#include <stdlib.h>

#include "pb_write.h"

/* w holds exactly the n bytes of ref (malloc'd); both are freed. */
static inline void expect_same_bytes(struct pbw *w, uint8_t *ref, size_t n)
{
    assert_int_equal(w->err, 0);
    assert_int_equal(w->len, n);
    if (n)
        assert_memory_equal(w->p, ref, n);
    free(ref);
    free(w->p);
}

#endif
