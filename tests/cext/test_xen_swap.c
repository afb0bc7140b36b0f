/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The swap sequence on Xen (cext/xen/xen_coop.c) against a scripted Xen:
 * this file defines the libxencall, libxenctrl and libxenstore calls the
 * sequence makes, so the test binary's own definitions answer them. A PV
 * guest swapped live and cooperatively is suspended only after the
 * hypervisor held the swap, the held swap is finished with its token and
 * the guest resumed; a guest that does not suspend has the held swap
 * cancelled and is never resumed; an HVM/PVH guest is swapped with one
 * request and nothing written to xenstore.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cext/xen/xenhost.h"
#include "tests/c/harness.h"

#define DOMID   7
#define TOKEN   0x5eedull

/* ---- the scripted Xen --------------------------------------------------------- */

static struct {
    bool hvm;
    bool guest_suspends;        /* the guest acts on control/shutdown = suspend */
    bool suspended;
    char shutdown_node[16];     /* control/shutdown */
    char trace[128];            /* D dry run, W swap, H held, F finish, C cancel, S suspend
                                 * request, R resume */
    uint32_t flags[8];          /* of each swap domctl */
    int nflags;
} xen_state;

static void note(const char *what)
{
    strncat(xen_state.trace, what, sizeof(xen_state.trace) - strlen(xen_state.trace) - 1);
}

static void reset(bool hvm, bool guest_suspends)
{
    memset(&xen_state, 0, sizeof(xen_state));
    xen_state.hvm = hvm;
    xen_state.guest_suspends = guest_suspends;
}

void *xencall_alloc_buffer(xencall_handle *xcall, size_t size)
{
    return calloc(1, size);
}

void xencall_free_buffer(xencall_handle *xcall, void *p)
{
    free(p);
}

int xencall1(xencall_handle *xcall, unsigned int op, uint64_t arg1)
{
    struct ms_xen_domctl *dc = (struct ms_xen_domctl *)(uintptr_t)arg1;
    struct xen_domctl_memswap *m = &dc->u.memswap;

    if ( op != __HYPERVISOR_domctl || dc->cmd != XEN_DOMCTL_memswap || dc->domain != DOMID )
    {
        errno = EINVAL;
        return -1;
    }
    if ( m->op == XEN_DOMCTL_MEMSWAP_OP_CANCEL )
    {
        note("C");
        m->resume = 0;
        return 0;
    }
    if ( xen_state.nflags < 8 )
        xen_state.flags[xen_state.nflags++] = m->flags;
    m->u.swap.frames_total = 100;
    m->u.swap.paused_ns = 1000;
    if ( m->flags & XEN_DOMCTL_MEMSWAP_F_DRY_RUN )
    {
        note("D");
        m->u.swap.frames_moved = 90;
        return 0;
    }
    if ( m->resume == TOKEN )
    {
        /* the final stop of a held PV swap: only with the guest suspended */
        note("F");
        m->resume = 0;
        m->u.swap.frames_moved = 90;
        m->u.swap.live_rounds = 3;
        if ( !xen_state.suspended )
        {
            errno = EAGAIN;
            return -1;
        }
        return 0;
    }
    if ( m->flags & XEN_DOMCTL_MEMSWAP_F_HOLD )
    {
        note("H");
        m->resume = TOKEN;
        m->u.swap.live_rounds = 3;
        return 0;
    }
    note("W");
    m->u.swap.frames_moved = 90;
    return 0;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                          xc_domaininfo_t *info)
{
    memset(info, 0, sizeof(*info));
    info->domain = DOMID;
    info->tot_pages = 100;
    info->flags = xen_state.hvm ? XEN_DOMINF_hvm_guest : 0;
    if ( xen_state.suspended )
        info->flags |= XEN_DOMINF_shutdown | (SHUTDOWN_suspend << XEN_DOMINF_shutdownshift);
    return 1;
}

int xc_domain_resume(xc_interface *xch, uint32_t domid, int fast)
{
    note("R");
    xen_state.suspended = false;
    return 0;
}

static char *dup_str(const char *s, unsigned int *len)
{
    if ( len )
        *len = (unsigned int)strlen(s);
    return strdup(s);
}

void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
    if ( !strcmp(path, "domid") )
        return dup_str("0", len);
    if ( strstr(path, "/control/shutdown") )
        return dup_str(xen_state.shutdown_node, len);
    errno = ENOENT;
    return NULL;
}

bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data,
              unsigned int len)
{
    if ( !strstr(path, "/control/shutdown") || len >= sizeof(xen_state.shutdown_node) )
        return false;
    memcpy(xen_state.shutdown_node, data, len);
    xen_state.shutdown_node[len] = 0;
    if ( len )
        note("S");
    return true;
}

char **xs_directory(struct xs_handle *h, xs_transaction_t t, const char *path,
                    unsigned int *num)
{
    char **v = calloc(2, sizeof(*v));

    *num = 1;
    return v;
}

xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
    return 1;
}

bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort)
{
    /* The guest's watch fires when the request is committed. */
    if ( !abort && xen_state.guest_suspends && !strcmp(xen_state.shutdown_node, "suspend") )
    {
        xen_state.shutdown_node[0] = 0;
        xen_state.suspended = true;
    }
    return true;
}

bool xs_resume_domain(struct xs_handle *h, unsigned int domid)
{
    return true;
}

/* ---- the tests ------------------------------------------------------------------ */

static struct ms_xen x;

static void op_init(struct ms_xen_swap_op *s, uint32_t flags)
{
    memset(s, 0, sizeof(*s));
    s->x = &x;
    s->rq.domid = DOMID;
    s->rq.flags = flags;
    s->rq.node = XEN_DOMCTL_MEMSWAP_NODE_ANY;
    s->rq.nr_colours = 64;
    s->suspend_timeout_ms = 20;
}

static const struct ms_coop_policy coop = { .cooperative = 1, .retries = 0,
                                            .backoff = 1, .backoff_max = 1 };

TEST(pv_live_is_held_then_finished_with_the_guest_suspended)
{
    struct ms_xen_swap_op s;
    struct ms_coop_outcome o;

    reset(false, true);
    op_init(&s, XEN_DOMCTL_MEMSWAP_F_LIVE);
    CHECKF(ms_xen_swap_run(&s, &coop, &o) == 0, "%s: %s", s.e.call, s.e.msg);
    CHECKF(!strcmp(xen_state.trace, "DHSFR"), "%s", xen_state.trace);
    CHECK(o.suspended && !o.translated && o.attempts == 1);
    /* the dry run as asked; the held request with HOLD; the final one the same */
    CHECK(xen_state.nflags == 3);
    CHECK(xen_state.flags[0] == (XEN_DOMCTL_MEMSWAP_F_LIVE | XEN_DOMCTL_MEMSWAP_F_DRY_RUN));
    CHECK(xen_state.flags[1] == (XEN_DOMCTL_MEMSWAP_F_LIVE | XEN_DOMCTL_MEMSWAP_F_HOLD));
    CHECK(s.result.u.swap.frames_moved == 90 && s.result.resume == 0);
    CHECK(!xen_state.suspended && xen_state.shutdown_node[0] == 0);
}

TEST(pv_live_guest_that_does_not_suspend_cancels_the_held_swap)
{
    struct ms_xen_swap_op s;
    struct ms_coop_outcome o;

    reset(false, false);
    op_init(&s, XEN_DOMCTL_MEMSWAP_F_LIVE);
    CHECK(ms_xen_swap_run(&s, &coop, &o) == ETIMEDOUT);
    /* requested, withdrawn, the held swap cancelled; never finished or resumed */
    CHECKF(!strcmp(xen_state.trace, "DHSC"), "%s", xen_state.trace);
    CHECK(o.stage == MS_COOP_SUSPEND && !o.suspended);
    CHECKF(!strcmp(s.e.call, "suspend") && strstr(s.e.msg, "withdrawn"), "%s", s.e.msg);
    CHECK(xen_state.shutdown_node[0] == 0);
}

TEST(pv_stop_suspends_around_one_request)
{
    struct ms_xen_swap_op s;
    struct ms_coop_outcome o;

    reset(false, true);
    op_init(&s, 0);
    CHECK(ms_xen_swap_run(&s, &coop, &o) == 0);
    CHECKF(!strcmp(xen_state.trace, "DSWR"), "%s", xen_state.trace);
    CHECK(o.suspended);
}

TEST(translated_guest_is_one_request_and_nothing_written)
{
    static const uint32_t modes[] = { 0, XEN_DOMCTL_MEMSWAP_F_LIVE };
    struct ms_xen_swap_op s;
    struct ms_coop_outcome o;
    unsigned int i;

    for ( i = 0; i < 2; i++ )
    {
        reset(true, true);
        op_init(&s, modes[i]);
        CHECK(ms_xen_swap_run(&s, &coop, &o) == 0);
        CHECKF(!strcmp(xen_state.trace, "DW"), "%s", xen_state.trace);
        CHECK(!o.suspended && o.translated);
        CHECK(xen_state.nflags == 2 && xen_state.flags[1] == modes[i]);
    }
}
