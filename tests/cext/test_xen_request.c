/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The memswap domctl as cext/xen/ builds it (no Xen needed): the page the
 * hypercall gets holds struct xen_domctl with Debian's interface version,
 * the request, and the colour bitmap its guest handle points at.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cext/xen/xenhost.h"
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
    CHECK(dc->u.memswap.flags == XEN_DOMCTL_MEMSWAP_F_DRY_RUN);
    CHECK(dc->u.memswap.node == 1);
    CHECK(dc->u.memswap.nr_colours == 128 && dc->u.memswap.colour_shift == 3);
    CHECK(dc->u.memswap.resume == 0 && dc->u.memswap.pad == 0);
    CHECK(dc->u.memswap.frames_moved == 0 && dc->u.memswap.failed_phase == 0);
    /* the handle points at the bitmap in the same page */
    CHECK(dc->u.memswap.colours.p == page + MS_XEN_BITMAP_OFFSET / 8);
    CHECK(page[MS_XEN_BITMAP_OFFSET / 8] == 0xf0 && page[MS_XEN_BITMAP_OFFSET / 8 + 1] == 1);
    /* the rest of the page is cleared (no stale bytes reach the hypervisor) */
    CHECK(page[MS_XEN_BITMAP_OFFSET / 8 + 2] == 0 && page[XC_PAGE_SIZE / 8 - 1] == 0);
}

TEST(any_colour_is_a_null_handle)
{
    struct ms_xen_request rq = request();
    struct ms_xen_domctl *dc = (void *)page;

    ms_xen_domctl_build(page, &rq);
    CHECK(dc->u.memswap.colours.p == NULL);
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
