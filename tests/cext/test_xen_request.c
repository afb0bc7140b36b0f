/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The memswap domctl as cext/xen/ builds it (no Xen needed): the page the
 * hypercall gets holds struct xen_domctl with Debian's interface version,
 * the request, and the colour bitmap its guest handle points at.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cext/xen/xenhost.h"
#include "core/memswap.h"
#include "tests/c/harness.h"

static uint64_t page[XC_PAGE_SIZE / 8];

static struct ms_xen_request request(void)
{
    struct ms_xen_request rq;

    memset(&rq, 0, sizeof(rq));
    rq.domid = 7;
    rq.flags = XEN_DOMCTL_MEMSWAP_F_DRY_RUN;
    rq.node = 1;
    rq.nr_colours = 128;
    rq.colour_shift = 3;
    return rq;
}

TEST(layout_is_xen_domctl)
{
    CHECK(sizeof(struct ms_xen_domctl) == sizeof(struct xen_domctl));
    CHECK(offsetof(struct ms_xen_domctl, domain) == offsetof(struct xen_domctl, domain));
    CHECK(offsetof(struct ms_xen_domctl, u) == offsetof(struct xen_domctl, u));
    CHECK(sizeof(struct xen_domctl_memswap) == XEN_DOMCTL_MEMSWAP_SIZE);
    CHECK(sizeof(struct xen_domctl_memswap) <= sizeof(((struct xen_domctl *)0)->u.pad));
}

TEST(request_fields)
{
    struct ms_xen_request rq = request();
    struct ms_xen_domctl *dc = (void *)page;

    memset(page, 0xa5, sizeof(page));
    rq.colours[0] = 0xf0;
    rq.colours[1] = 1;
    ms_xen_domctl_build(page, &rq);
    CHECK(dc->cmd == XEN_DOMCTL_memswap && dc->cmd == 0x4d53);
    CHECK(dc->interface_version == XEN_DOMCTL_INTERFACE_VERSION);
    CHECK(dc->domain == 7);
    CHECK(dc->u.memswap.op == XEN_DOMCTL_MEMSWAP_OP_SWAP);
    CHECK(dc->u.memswap.flags == XEN_DOMCTL_MEMSWAP_F_DRY_RUN);
    CHECK(dc->u.memswap.u.swap.node == 1);
    CHECK(dc->u.memswap.u.swap.nr_colours == 128 && dc->u.memswap.u.swap.colour_shift == 3);
    CHECK(dc->u.memswap.resume == 0 && dc->u.memswap.u.swap.pad == 0);
    CHECK(dc->u.memswap.u.swap.frames_moved == 0 && dc->u.memswap.u.swap.failed_phase == 0);
    /* the handle points at the bitmap in the same page */
    CHECK(dc->u.memswap.u.swap.colours.p == page + MS_XEN_BITMAP_OFFSET / 8);
    CHECK(page[MS_XEN_BITMAP_OFFSET / 8] == 0xf0 && page[MS_XEN_BITMAP_OFFSET / 8 + 1] == 1);
    /* the rest of the page is cleared (no stale bytes reach the hypervisor) */
    CHECK(page[MS_XEN_BITMAP_OFFSET / 8 + 2] == 0 && page[XC_PAGE_SIZE / 8 - 1] == 0);
}

TEST(any_colour_is_a_null_handle)
{
    struct ms_xen_request rq = request();
    struct ms_xen_domctl *dc = (void *)page;

    ms_xen_domctl_build(page, &rq);
    CHECK(dc->u.memswap.u.swap.colours.p == NULL);
}

TEST(only_the_geometrys_words_are_passed)
{
    struct ms_xen_request rq = request();
    unsigned int i;

    rq.nr_colours = 64;                 /* one word */
    rq.colours[0] = 0x3;
    rq.colours[1] = ~0ull;              /* beyond the geometry: not copied */
    ms_xen_domctl_build(page, &rq);
    CHECK(page[MS_XEN_BITMAP_OFFSET / 8] == 3 && page[MS_XEN_BITMAP_OFFSET / 8 + 1] == 0);
    rq.nr_colours = XEN_DOMCTL_MEMSWAP_MAX_COLOURS;
    for ( i = 0; i < MS_XEN_COLOUR_WORDS; i++ )
        rq.colours[i] = i + 1;
    ms_xen_domctl_build(page, &rq);
    for ( i = 0; i < MS_XEN_COLOUR_WORDS; i++ )
        CHECK(page[MS_XEN_BITMAP_OFFSET / 8 + i] == i + 1);
}

/*
 * The ABI's layout, field by field: what a 32-bit caller (or another
 * compiler) must agree on. Offsets within the 128 bytes of the domctl union.
 */
#define OFF(m) offsetof(struct xen_domctl_memswap, m)
TEST(abi_layout)
{
    CHECK(sizeof(struct xen_domctl_memswap) == 128);
    CHECK(OFF(op) == 0 && OFF(flags) == 4 && OFF(resume) == 8 && OFF(u) == 16);
    CHECK(sizeof(struct xen_domctl_memswap_swap) == 112);
    CHECK(sizeof(struct xen_domctl_memswap_query) == 112);
    CHECK(OFF(u.swap.node) == 16 && OFF(u.swap.live_max_rounds) == 28);
    CHECK(OFF(u.swap.colours) == 32 && OFF(u.swap.live_dirty_threshold) == 40);
    CHECK(OFF(u.swap.failed_phase) == 44 && OFF(u.swap.frames_total) == 48);
    CHECK(OFF(u.swap.frames_kept) == 56 && OFF(u.swap.continuations) == 84);
    CHECK(OFF(u.swap.bytes_copied) == 88 && OFF(u.swap.paused_ns) == 96);
    CHECK(OFF(u.swap.extra_bytes_peak) == 104 && OFF(u.swap.live_rounds) == 112);
    CHECK(OFF(u.swap.live_precopy_pages) == 116 && OFF(u.swap.live_final_pages) == 120);
    CHECK(OFF(u.swap.pad) == 124);
    CHECK(OFF(u.query.colour_counts) == 24 && OFF(u.query.nr_nodes) == 32);
    CHECK(OFF(u.query.node_counts) == 40 && OFF(u.query.frames) == 48);
    CHECK(OFF(u.query.first_pfn) == 56 && OFF(u.query.nr_pfns) == 64);
    CHECK(OFF(u.query.frames_counted) == 72 && OFF(u.query.translated) == 84);
    CHECK(OFF(u.query.pad) == 88);
    /* The engine's kept reasons are the ABI's indices. */
    CHECK(XEN_DOMCTL_MEMSWAP_KEPT_NR == MEMSWAP_KEPT_NR);
    CHECK(XEN_DOMCTL_MEMSWAP_KEPT_CHANGED == MEMSWAP_KEPT_CHANGED);
    CHECK(XEN_DOMCTL_MEMSWAP_KEPT_XEN == MEMSWAP_KEPT_XEN);
    CHECK(XEN_DOMCTL_MEMSWAP_F_LIVE == MEMSWAP_F_LIVE && XEN_DOMCTL_MEMSWAP_F_HOLD == MEMSWAP_F_HOLD);
    CHECK(XEN_DOMCTL_MEMSWAP_LIVE_ROUNDS_MAX == MEMSWAP_LIVE_ROUNDS_MAX);
}

/* Live: the flags, the stop condition, and the token that finishes a held swap. */
TEST(live_and_hold_requests)
{
    struct ms_xen_request rq = request();
    struct ms_xen_domctl *dc = (void *)page;

    rq.flags = XEN_DOMCTL_MEMSWAP_F_LIVE | XEN_DOMCTL_MEMSWAP_F_HOLD;
    rq.live_max_rounds = 7;
    rq.live_dirty_threshold = 200;
    ms_xen_domctl_build(page, &rq);
    CHECK(dc->u.memswap.op == XEN_DOMCTL_MEMSWAP_OP_SWAP);
    CHECK(dc->u.memswap.flags == (XEN_DOMCTL_MEMSWAP_F_LIVE | XEN_DOMCTL_MEMSWAP_F_HOLD));
    CHECK(dc->u.memswap.u.swap.live_max_rounds == 7);
    CHECK(dc->u.memswap.u.swap.live_dirty_threshold == 200);
    CHECK(dc->u.memswap.resume == 0);
    /* The second request of a held swap carries its token, nothing else new. */
    rq.resume = 0x1234abcd00000007ull;
    ms_xen_domctl_build(page, &rq);
    CHECK(dc->u.memswap.resume == 0x1234abcd00000007ull);
    CHECK(dc->u.memswap.u.swap.frames_moved == 0 && dc->u.memswap.u.swap.pad == 0);
}

TEST(cancel_request)
{
    struct ms_xen_domctl *dc = (void *)page;

    memset(page, 0xa5, sizeof(page));
    ms_xen_cancel_build(page, 9, 0);
    CHECK(dc->cmd == XEN_DOMCTL_memswap && dc->domain == 9);
    CHECK(dc->interface_version == XEN_DOMCTL_INTERFACE_VERSION);
    CHECK(dc->u.memswap.op == XEN_DOMCTL_MEMSWAP_OP_CANCEL && dc->u.memswap.resume == 0);
    CHECK(dc->u.memswap.flags == 0 && page[XC_PAGE_SIZE / 8 - 1] == 0);
    ms_xen_cancel_build(page, 9, 42);
    CHECK(dc->u.memswap.resume == 42);
}

/* The query's buffer: the domctl, then each array its handle points at. */
TEST(query_request_layout)
{
    struct ms_xen_query q = { .domid = 5, .nr_colours = 128, .colour_shift = 2, .nr_nodes = 4,
                              .first_pfn = 4096, .nr_frames = 1000 };
    size_t size = ms_xen_query_size(&q);
    uint64_t *buf = malloc(size);
    struct ms_xen_domctl *dc = (void *)buf;
    const struct xen_domctl_memswap_query *mq = &dc->u.memswap.u.query;
    uint64_t *colours, *nodes, *frames;

    CHECK(buf != NULL);
    CHECK(size >= sizeof(struct ms_xen_domctl) + (128 + 4 + 1000) * 8);
    memset(buf, 0xa5, size);
    ms_xen_query_build(buf, &q);
    CHECK(dc->cmd == XEN_DOMCTL_memswap && dc->domain == 5);
    CHECK(dc->u.memswap.op == XEN_DOMCTL_MEMSWAP_OP_QUERY && dc->u.memswap.resume == 0);
    CHECK(mq->nr_colours == 128 && mq->colour_shift == 2 && mq->nr_nodes == 4);
    CHECK(mq->first_pfn == 4096 && mq->nr_frames == 1000);
    colours = mq->colour_counts.p;
    nodes = mq->node_counts.p;
    frames = mq->frames.p;
    /* Three arrays, one after the other, past the domctl, zeroed. */
    CHECK((char *)colours >= (char *)buf + sizeof(struct ms_xen_domctl));
    CHECK(nodes == colours + 128 && frames == nodes + 4);
    CHECK((char *)(frames + 1000) <= (char *)buf + size);
    CHECK(colours[0] == 0 && nodes[3] == 0 && frames[999] == 0);
    CHECK(mq->nr_pfns == 0 && mq->frames_counted == 0 && mq->pad[9] == 0);
    /* Arrays not asked for: null handles. */
    q.nr_colours = 0;
    q.nr_frames = 0;
    ms_xen_query_build(buf, &q);
    CHECK(mq->colour_counts.p == NULL && mq->frames.p == NULL);
    CHECK(mq->node_counts.p == (uint64_t *)((char *)buf + ms_xen_query_size(&q)) - 4);
    free(buf);
}
