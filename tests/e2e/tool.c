/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap-e2e-tool: dom0 side of the end-to-end test on real Xen.
 *
 * A static program (the test's dom0 initramfs has no Python and no
 * libxenctrl users of our own) that talks to Xen through raw
 * /dev/xen/privcmd ioctls:
 *
 *   swap DOMID [--dry-run] [--node N] [--nr-colours N] [--shift S]
 *        [--colours LIST] [--cooperative] [--suspend-timeout MS]
 *                                     issue XEN_DOMCTL_memswap, print result;
 *                                     --cooperative: ask the guest to suspend
 *                                     first (xenstore control/shutdown =
 *                                     suspend), swap while it is suspended,
 *                                     resume it with the suspend cancelled
 *                                     (as `xl save -c` does)
 *   info DOMID                        getdomaininfo (tot_pages, flags)
 *   physinfo                          free/total/scrub pages of the host
 *   p2m DOMID FILE                    write the guest's P2M ("pfn mfn" hex),
 *                                     read through foreign mappings of its
 *                                     pfn_to_mfn_frame_list_list tree
 *   compare BEFORE AFTER [--nr-colours N] [--shift S] [--colours LIST]
 *        [--expect-kept FILE] [--min-moved PCT]
 *                                     frames changed, colours of the new
 *                                     frames, frames that had to stay
 *   hold DOMID                        foreign-map one of DOMID's frames and
 *                                     keep it until stdin closes (turns a
 *                                     destroyed domain into a dying zombie)
 *   watch FILE                        follow a console log; for each
 *                                     heartbeat line "HB <n> ..." print
 *                                     "<dom0 monotonic seconds> <n>" as it
 *                                     arrives (20 ms polling)
 *   colour-list NR SHIFT LIST         (debug) print the bitmap words
 *
 * LIST is a comma-separated list of colours and ranges ("0-7,16").
 * Colour of a frame: (mfn >> shift) & (nr_colours - 1), as in core/memswap.h.
 *
 * Exit status: 0 on success; for "swap" the errno of a failed domctl
 * (so a shell can check ESRCH/EACCES/... directly), printed by name too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <xen/xen.h>
#include <xen/domctl.h>
#include <xen/sysctl.h>
#include <xen/sched.h>

/* The memswap domctl ABI, published by the patch series in core/. */
#include "xen_domctl_memswap.h"

#define MAX_COLOURS XEN_DOMCTL_MEMSWAP_MAX_COLOURS
#define NR_COLOUR_WORDS (MAX_COLOURS / 64)

/* privcmd ABI (linux/include/uapi/xen/privcmd.h), spelled out to stay
 * independent of kernel-header variants. */
struct e2e_privcmd_hypercall { uint64_t op; uint64_t arg[5]; };
struct e2e_privcmd_mmapbatch_v2 {
    unsigned int num;
    domid_t dom;
    uint64_t addr;
    const xen_pfn_t *arr;
    int *err;
};
#define E2E_IOCTL_PRIVCMD_HYPERCALL \
    _IOC(_IOC_NONE, 'P', 0, sizeof(struct e2e_privcmd_hypercall))
#define E2E_IOCTL_PRIVCMD_MMAPBATCH_V2 \
    _IOC(_IOC_NONE, 'P', 4, sizeof(struct e2e_privcmd_mmapbatch_v2))

#define PAGE 4096UL
#define P2M_PER_PAGE (PAGE / sizeof(unsigned long))
#define P2M_INVALID (~0UL)
#define P2M_MARKER_BITS (3UL << 62) /* FOREIGN_FRAME_BIT | IDENTITY_FRAME_BIT */

static int privcmd = -1;

static void die(const char *what)
{
    fprintf(stderr, "memswap-e2e-tool: %s: %s\n", what, strerror(errno));
    exit(125);
}

static void open_privcmd(void)
{
    if ( privcmd >= 0 )
        return;
    privcmd = open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
    if ( privcmd < 0 )
        die("open /dev/xen/privcmd");
}

/* A locked page for hypercall arguments (what libxencall's buffers are). */
static void *hbuf(void)
{
    void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);

    if ( p == MAP_FAILED )
        die("mmap hypercall buffer");
    memset(p, 0, PAGE);
    return p;
}

/* Returns 0 or -errno. */
static long hypercall(unsigned int op, void *arg)
{
    struct e2e_privcmd_hypercall h = { op, { (uint64_t)(uintptr_t)arg } };
    long rc;

    open_privcmd();
    rc = ioctl(privcmd, E2E_IOCTL_PRIVCMD_HYPERCALL, &h);
    return rc < 0 ? -errno : rc;
}

static long do_domctl(struct xen_domctl *d)
{
    d->interface_version = XEN_DOMCTL_INTERFACE_VERSION; /* Debian's 0x15 */
    return hypercall(__HYPERVISOR_domctl, d);
}

static const char *errname(long e)
{
    switch ( e )
    {
    case 0: return "OK";
    case ESRCH: return "ESRCH";
    case EACCES: return "EACCES";
    case EDEADLK: return "EDEADLK";
    case ENODEV: return "ENODEV";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOMEM: return "ENOMEM";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EFAULT: return "EFAULT";
    case EAGAIN: return "EAGAIN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ESHUTDOWN: return "ESHUTDOWN";
    default: return "E?";
    }
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- colours ---------------------------------------------------------- */

struct colours {
    uint32_t nr, shift;
    uint64_t map[NR_COLOUR_WORDS];
    int any;            /* empty list: every colour allowed */
};

static void parse_colours(struct colours *c, const char *list)
{
    char *s, *tok, *save = NULL;

    memset(c->map, 0, sizeof(c->map));
    c->any = 1;
    if ( !list || !*list || !strcmp(list, "any") )
        return;
    s = strdup(list);
    for ( tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save) )
    {
        char *dash = strchr(tok, '-');
        unsigned long lo = strtoul(tok, NULL, 0), hi = dash ? strtoul(dash + 1, NULL, 0) : lo;

        for ( ; lo <= hi && lo < MAX_COLOURS; lo++ )
            c->map[lo / 64] |= 1ULL << (lo % 64);
        c->any = 0;
    }
    free(s);
}

static unsigned int colour_of(const struct colours *c, uint64_t mfn)
{
    return c->nr ? (unsigned int)((mfn >> c->shift) & (c->nr - 1)) : 0;
}

static int colour_ok(const struct colours *c, uint64_t mfn)
{
    unsigned int col = colour_of(c, mfn);

    return c->any || ((c->map[col / 64] >> (col % 64)) & 1);
}

/* ---- domain/host info ------------------------------------------------- */

static long getdomaininfo(unsigned int domid, struct xen_domctl_getdomaininfo *out)
{
    struct xen_domctl *d = hbuf();
    long rc;

    d->cmd = XEN_DOMCTL_getdomaininfo;
    d->domain = domid;
    rc = do_domctl(d);
    if ( rc == 0 && d->u.getdomaininfo.domain != domid )
        rc = -ESRCH; /* getdomaininfo returns the next domain up */
    if ( rc == 0 )
        *out = d->u.getdomaininfo;
    munmap(d, PAGE);
    return rc;
}

static int cmd_info(unsigned int domid)
{
    struct xen_domctl_getdomaininfo i;
    long rc = getdomaininfo(domid, &i);

    if ( rc )
    {
        printf("info: domid=%u rc=%s\n", domid, errname(-rc));
        return 1;
    }
    printf("info: domid=%u tot_pages=%" PRIu64 " max_pages=%" PRIu64
           " shared_info=%#" PRIx64 " dying=%d paused=%d shutdown=%d hvm=%d\n",
           domid, (uint64_t)i.tot_pages, (uint64_t)i.max_pages,
           (uint64_t)i.shared_info_frame, !!(i.flags & XEN_DOMINF_dying),
           !!(i.flags & XEN_DOMINF_paused), !!(i.flags & XEN_DOMINF_shutdown),
           !!(i.flags & XEN_DOMINF_hvm_guest));
    return 0;
}

static int cmd_physinfo(void)
{
    struct xen_sysctl *s = hbuf();
    long rc;

    s->cmd = XEN_SYSCTL_physinfo;
    s->interface_version = XEN_SYSCTL_INTERFACE_VERSION;
    rc = hypercall(__HYPERVISOR_sysctl, s);
    if ( rc )
    {
        printf("physinfo: rc=%s\n", errname(-rc));
        return 1;
    }
    printf("physinfo: total_pages=%" PRIu64 " free_pages=%" PRIu64
           " scrub_pages=%" PRIu64 " outstanding_pages=%" PRIu64 "\n",
           (uint64_t)s->u.physinfo.total_pages, (uint64_t)s->u.physinfo.free_pages,
           (uint64_t)s->u.physinfo.scrub_pages, (uint64_t)s->u.physinfo.outstanding_pages);
    return 0;
}

/* ---- foreign mappings and the P2M ------------------------------------- */

/* Map @n frames of @domid read-only; NULL if any of them fails. */
static void *map_foreign(unsigned int domid, const xen_pfn_t *mfns, unsigned int n, int prot)
{
    void *addr;
    int *err = calloc(n, sizeof(int));
    struct e2e_privcmd_mmapbatch_v2 b;
    unsigned int i;

    open_privcmd();
    addr = mmap(NULL, n * PAGE, prot, MAP_SHARED, privcmd, 0);
    if ( addr == MAP_FAILED )
        die("mmap privcmd");
    b.num = n;
    b.dom = domid;
    b.addr = (uintptr_t)addr;
    b.arr = mfns;
    b.err = err;
    if ( ioctl(privcmd, E2E_IOCTL_PRIVCMD_MMAPBATCH_V2, &b) < 0 )
    {
        int e = errno;

        fprintf(stderr, "memswap-e2e-tool: MMAPBATCH_V2 d%u (%u frames, first %#lx): %s\n",
                domid, n, (unsigned long)mfns[0], strerror(e));
        munmap(addr, n * PAGE);
        free(err);
        errno = e;
        return NULL;
    }
    for ( i = 0; i < n; i++ )
        if ( err[i] )
        {
            fprintf(stderr, "memswap-e2e-tool: frame %#lx of d%u: error %d\n",
                    (unsigned long)mfns[i], domid, err[i]);
            munmap(addr, n * PAGE);
            free(err);
            errno = EFAULT;
            return NULL;
        }
    free(err);
    return addr;
}

/*
 * Read the guest's P2M the way save/restore does for PV: shared_info ->
 * pfn_to_mfn_frame_list_list -> mid frames -> leaf frames. Returns an
 * array of max_pfn entries (P2M_INVALID where not plainly populated).
 */
static unsigned long *read_p2m(unsigned int domid, unsigned long *nr_out)
{
    struct xen_domctl_getdomaininfo info;
    shared_info_t *si;
    xen_pfn_t fn;
    unsigned long max_pfn, nr_leaves, nr_mids, i, *fll, *mids, *p2m;
    xen_pfn_t *leaf_mfns, *mid_mfns;
    long rc = getdomaininfo(domid, &info);

    if ( rc )
    {
        errno = -rc;
        die("getdomaininfo");
    }
    fn = info.shared_info_frame;
    si = map_foreign(domid, &fn, 1, PROT_READ);
    if ( !si )
        die("map shared_info");
    max_pfn = si->arch.max_pfn;
    fn = si->arch.pfn_to_mfn_frame_list_list;
    munmap(si, PAGE);
    if ( !fn || fn == ~0UL )
    {
        fprintf(stderr, "memswap-e2e-tool: d%u has no frame_list_list\n", domid);
        exit(125);
    }
    nr_leaves = (max_pfn + P2M_PER_PAGE - 1) / P2M_PER_PAGE;
    nr_mids = (nr_leaves + P2M_PER_PAGE - 1) / P2M_PER_PAGE;
    fll = map_foreign(domid, &fn, 1, PROT_READ);
    if ( !fll )
        die("map frame_list_list");
    mid_mfns = calloc(nr_mids, sizeof(*mid_mfns));
    for ( i = 0; i < nr_mids; i++ )
        mid_mfns[i] = fll[i];
    munmap(fll, PAGE);
    mids = map_foreign(domid, mid_mfns, nr_mids, PROT_READ);
    if ( !mids )
        die("map p2m mid frames");
    leaf_mfns = calloc(nr_leaves, sizeof(*leaf_mfns));
    for ( i = 0; i < nr_leaves; i++ )
        leaf_mfns[i] = mids[i];
    munmap(mids, nr_mids * PAGE);
    p2m = map_foreign(domid, leaf_mfns, nr_leaves, PROT_READ);
    if ( !p2m )
        die("map p2m leaf frames");
    {
        unsigned long *copy = malloc(max_pfn * sizeof(*copy));

        for ( i = 0; i < max_pfn; i++ )
            copy[i] = (p2m[i] & P2M_MARKER_BITS) ? P2M_INVALID : p2m[i];
        munmap(p2m, nr_leaves * PAGE);
        p2m = copy;
    }
    free(mid_mfns);
    free(leaf_mfns);
    *nr_out = max_pfn;
    return p2m;
}

static int cmd_p2m(unsigned int domid, const char *file)
{
    unsigned long nr, i, valid = 0, *p2m = read_p2m(domid, &nr);
    FILE *f = fopen(file, "w");

    if ( !f )
        die(file);
    for ( i = 0; i < nr; i++ )
        if ( p2m[i] != P2M_INVALID )
        {
            fprintf(f, "%lx %lx\n", i, p2m[i]);
            valid++;
        }
    if ( fclose(f) )
        die(file);
    printf("p2m: domid=%u max_pfn=%lu valid=%lu file=%s\n", domid, nr, valid, file);
    return 0;
}

/* ---- compare two P2M dumps -------------------------------------------- */

struct p2m_file { unsigned long nr, *pfn, *mfn; };

static void load_p2m(const char *file, struct p2m_file *p)
{
    FILE *f = fopen(file, "r");
    unsigned long pfn, mfn, cap = 65536;

    if ( !f )
        die(file);
    p->nr = 0;
    p->pfn = malloc(cap * sizeof(long));
    p->mfn = malloc(cap * sizeof(long));
    while ( fscanf(f, "%lx %lx", &pfn, &mfn) == 2 )
    {
        if ( p->nr == cap )
        {
            cap *= 2;
            p->pfn = realloc(p->pfn, cap * sizeof(long));
            p->mfn = realloc(p->mfn, cap * sizeof(long));
        }
        p->pfn[p->nr] = pfn;
        p->mfn[p->nr++] = mfn;
    }
    fclose(f);
}

static long lookup(const struct p2m_file *p, unsigned long pfn)
{
    unsigned long lo = 0, hi = p->nr;   /* dumps are sorted by pfn */

    while ( lo < hi )
    {
        unsigned long mid = (lo + hi) / 2;

        if ( p->pfn[mid] == pfn )
            return mid;
        if ( p->pfn[mid] < pfn )
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int cmp_ul(const void *a, const void *b)
{
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;

    return x < y ? -1 : x > y;
}

static int cmd_compare(const char *fb, const char *fa, struct colours *c,
                       const char *expect_file, double min_moved)
{
    struct p2m_file b, a;
    unsigned long i, changed = 0, kept = 0, lost = 0, off_colour = 0, dup = 0;
    unsigned long exp_n = 0, exp_missing = 0, exp_moved = 0;
    double pct;
    int ok = 1;

    load_p2m(fb, &b);
    load_p2m(fa, &a);
    for ( i = 0; i < b.nr; i++ )
    {
        long j = lookup(&a, b.pfn[i]);

        if ( j < 0 )
        {
            lost++;             /* pfn no longer populated */
            continue;
        }
        if ( a.mfn[j] == b.mfn[i] )
            kept++;
        else
        {
            changed++;
            if ( !colour_ok(c, a.mfn[j]) )
                off_colour++;
        }
    }
    /* No two pfns may share a frame after the swap. */
    {
        unsigned long *all = malloc((a.nr + 1) * sizeof(long));

        memcpy(all, a.mfn, a.nr * sizeof(long));
        qsort(all, a.nr, sizeof(long), cmp_ul);
        for ( i = 1; i < a.nr; i++ )
            if ( all[i] == all[i - 1] )
                dup++;
        free(all);
    }
    /* Frames dom0 and the backends hold must have stayed where they were. */
    if ( expect_file )
    {
        FILE *f = fopen(expect_file, "r");
        unsigned long mfn;

        if ( !f )
            die(expect_file);
        while ( fscanf(f, "%lx", &mfn) == 1 )
        {
            unsigned long k;
            int was = 0, still = 0;

            exp_n++;
            for ( k = 0; k < b.nr; k++ )
                if ( b.mfn[k] == mfn )
                {
                    long j = lookup(&a, b.pfn[k]);

                    was = 1;
                    still = j >= 0 && a.mfn[j] == mfn;
                    break;
                }
            if ( !was )
                exp_missing++;  /* not a P2M frame of the guest */
            else if ( !still )
            {
                exp_moved++;
                fprintf(stderr, "compare: held frame %#lx was moved\n", mfn);
            }
        }
        fclose(f);
    }
    pct = b.nr ? 100.0 * changed / b.nr : 0;
    if ( pct < min_moved || off_colour || lost || dup || exp_moved || a.nr != b.nr )
        ok = 0;
    printf("compare: pfns_before=%lu pfns_after=%lu changed=%lu kept=%lu lost=%lu "
           "dup_mfns=%lu moved_pct=%.2f off_colour=%lu expected_held=%lu "
           "held_not_in_p2m=%lu held_moved=%lu result=%s\n",
           b.nr, a.nr, changed, kept, lost, dup, pct, off_colour, exp_n,
           exp_missing, exp_moved, ok ? "OK" : "BAD");
    return ok ? 0 : 1;
}

/* ---- the swap ---------------------------------------------------------- */

/* Issue the domctl and print its "swap:" line; returns 0 or -errno. */
static long do_swap(unsigned int domid, unsigned int flags, uint32_t node,
                    struct colours *c, double *wall_ms)
{
    struct xen_domctl *d = hbuf();
    struct xen_domctl_memswap *m = (void *)&d->u;
    /* The bitmap lives in the same locked page, after the domctl. */
    uint64_t *bitmap = (uint64_t *)((char *)d + PAGE / 2);
    double t0, t1;
    long rc;

    _Static_assert(sizeof(struct xen_domctl_memswap) == XEN_DOMCTL_MEMSWAP_SIZE,
                   "memswap ABI size");
    _Static_assert(sizeof(struct xen_domctl_memswap) <= sizeof(d->u.pad),
                   "memswap must fit the domctl union");
    d->cmd = XEN_DOMCTL_memswap;
    d->domain = domid;
    m->flags = flags;
    m->node = node;
    m->nr_colours = c->nr;
    m->colour_shift = c->shift;
    if ( !c->any )
    {
        memcpy(bitmap, c->map, sizeof(c->map));
        set_xen_guest_handle(m->colours, bitmap);
    }
    t0 = now_ms();
    rc = do_domctl(d);
    t1 = now_ms();
    printf("swap: domid=%u flags=%#x rc=%ld errno=%s wall_ms=%.1f frames_total=%" PRIu64
           " frames_moved=%" PRIu64 " kept_granted=%" PRIu64 " kept_foreign=%" PRIu64
           " kept_unexplained=%" PRIu64 " kept_not_in_p2m=%" PRIu64 " bytes_copied=%" PRIu64
           " paused_ns=%" PRIu64 " continuations=%" PRIu64 " extra_bytes_peak=%" PRIu64
           " failed_phase=%u\n",
           domid, flags, rc, errname(-rc), t1 - t0, (uint64_t)m->frames_total,
           (uint64_t)m->frames_moved,
           (uint64_t)m->frames_kept[XEN_DOMCTL_MEMSWAP_KEPT_GRANTED],
           (uint64_t)m->frames_kept[XEN_DOMCTL_MEMSWAP_KEPT_FOREIGN],
           (uint64_t)m->frames_kept[XEN_DOMCTL_MEMSWAP_KEPT_UNEXPLAINED],
           (uint64_t)m->frames_kept[XEN_DOMCTL_MEMSWAP_KEPT_NOT_IN_P2M],
           (uint64_t)m->bytes_copied, (uint64_t)m->paused_ns,
           (uint64_t)m->continuations, (uint64_t)m->extra_bytes_peak,
           m->failed_phase);
    fflush(stdout);
    munmap(d, PAGE);
    if ( wall_ms )
        *wall_ms = t1 - t0;
    return rc;
}

static int cmd_swap(unsigned int domid, unsigned int flags, uint32_t node,
                    struct colours *c)
{
    long rc = do_swap(domid, flags, node, c, NULL);

    return rc ? (int)-rc : 0;
}

/* ---- cooperative swap: suspend, swap, resume (cancelled suspend) -------- */

/*
 * xenstore through the dom0 image's xenstore-read/-write (xenstored is
 * local; a few ms per call even under TCG). Paths and values are ours.
 */
static int xs_write(const char *path, const char *val)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "xenstore-write '%s' '%s'", path, val);
    return system(cmd) == 0 ? 0 : -1;
}

/* 1 and the value in @buf if the node exists, 0 if not. */
static int xs_read(const char *path, char *buf, size_t len)
{
    char cmd[512];
    FILE *p;
    size_t n = 0;
    int st;

    snprintf(cmd, sizeof(cmd), "xenstore-read '%s' 2>/dev/null", path);
    p = popen(cmd, "r");
    if ( !p )
        return 0;
    if ( fgets(buf, len, p) )
        n = strlen(buf);
    while ( n && (buf[n - 1] == '\n' || buf[n - 1] == '\r') )
        buf[--n] = 0;
    if ( !n )
        buf[0] = 0;
    st = pclose(p);
    return st == 0;
}

/* The domain's shutdown state: -1 gone/dying, 0 running, else 1 + reason. */
static int shutdown_state(unsigned int domid)
{
    struct xen_domctl_getdomaininfo i;

    if ( getdomaininfo(domid, &i) || (i.flags & XEN_DOMINF_dying) )
        return -1;
    if ( !(i.flags & XEN_DOMINF_shutdown) )
        return 0;
    return 1 + (int)((i.flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask);
}

/*
 * Resume a domain suspended with SHUTDOWN_suspend so that its suspend
 * hypercall returns 1 ("cancelled": same domain, same memory, nothing to
 * rebuild but what Linux always redoes), as libxc's modify_returncode +
 * XEN_DOMCTL_resumedomain do for `xl save -c`. The context is read after
 * the swap, so its frames (cr3, GDT) are the new ones.
 */
static long resume_cancelled(unsigned int domid)
{
    size_t len = (sizeof(vcpu_guest_context_t) + PAGE - 1) & ~(PAGE - 1);
    struct xen_domctl *d = hbuf();
    vcpu_guest_context_t *ctx;
    long rc;

    ctx = mmap(NULL, len, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
    if ( ctx == MAP_FAILED )
        die("mmap vcpu context");
    memset(ctx, 0, len);
    d->cmd = XEN_DOMCTL_getvcpucontext;
    d->domain = domid;
    d->u.vcpucontext.vcpu = 0;
    set_xen_guest_handle(d->u.vcpucontext.ctxt, ctx);
    rc = do_domctl(d);
    if ( rc == 0 )
    {
        ctx->user_regs.rax = 1;
        memset(d, 0, PAGE);
        d->cmd = XEN_DOMCTL_setvcpucontext;
        d->domain = domid;
        d->u.vcpucontext.vcpu = 0;
        set_xen_guest_handle(d->u.vcpucontext.ctxt, ctx);
        rc = do_domctl(d);
        if ( rc )
            fprintf(stderr, "memswap-e2e-tool: setvcpucontext d%u: %s\n", domid, errname(-rc));
    }
    else
        fprintf(stderr, "memswap-e2e-tool: getvcpucontext d%u: %s\n", domid, errname(-rc));
    /* Resume even if the return code could not be set: a guest that sees
     * 0 rebuilds as after a migration, which is still better than staying
     * suspended forever. */
    memset(d, 0, PAGE);
    d->cmd = XEN_DOMCTL_resumedomain;
    d->domain = domid;
    {
        long r2 = do_domctl(d);

        if ( r2 )
            fprintf(stderr, "memswap-e2e-tool: resumedomain d%u: %s\n", domid, errname(-r2));
        if ( !rc )
            rc = r2;
    }
    munmap(ctx, len);
    munmap(d, PAGE);
    return rc;
}

/* Wait up to @ms for SHUTDOWN_suspend; returns the last shutdown_state(). */
static int wait_suspended(unsigned int domid, double ms)
{
    const struct timespec poll = { 0, 5 * 1000 * 1000 };
    double end = now_ms() + ms;
    int st;

    for ( ;; )
    {
        st = shutdown_state(domid);
        if ( st != 0 || now_ms() >= end )
            return st;
        nanosleep(&poll, NULL);
    }
}

static int cmd_swap_cooperative(unsigned int domid, unsigned int flags, uint32_t node,
                                struct colours *c, double timeout_ms)
{
    char key[128], val[64];
    double t0, t1, t2 = 0, t3 = 0, swap_wall = 0;
    long src = 0, rrc = 0, rc;
    int st, swapped = 0;

    snprintf(key, sizeof(key), "/local/domain/%u/control/shutdown", domid);
    st = shutdown_state(domid);
    if ( st != 0 )
    {
        rc = st < 0 ? -ESRCH : -ESHUTDOWN;
        printf("coop: domid=%u errno=%s stage=precheck shutdown_state=%d\n",
               domid, errname(-rc), st);
        return (int)-rc;
    }
    t0 = now_ms();
    if ( xs_write(key, "suspend") )
    {
        printf("coop: domid=%u errno=EIO stage=request (xenstore-write %s failed)\n",
               domid, key);
        return EIO;
    }
    st = wait_suspended(domid, timeout_ms);
    t1 = now_ms();
    if ( st == 0 )
    {
        /* No suspend: withdraw the request (clear it, as libxl does: the
         * node keeps the guest-writable permissions libxl gave it), then
         * give a guest that acknowledged at the last moment a short grace
         * period, and resume it if it did suspend after all. */
        int acked = xs_read(key, val, sizeof(val)) && strcmp(val, "suspend");

        xs_write(key, "");
        st = wait_suspended(domid, acked ? 5000 : 500);
        if ( st == 1 + SHUTDOWN_suspend )
            rrc = resume_cancelled(domid);
        printf("coop: domid=%u errno=ETIMEDOUT stage=suspend suspend_ms=%.1f acked=%d "
               "late_suspend=%d resume_errno=%s\n", domid, t1 - t0, acked,
               st == 1 + SHUTDOWN_suspend, errname(-rrc));
        return ETIMEDOUT;
    }
    if ( st != 1 + SHUTDOWN_suspend )
    {
        rc = st < 0 ? -ESRCH : -ESHUTDOWN;
        printf("coop: domid=%u errno=%s stage=suspend suspend_ms=%.1f shutdown_state=%d "
               "(shut down for another reason; not swapped, not resumed)\n",
               domid, errname(-rc), t1 - t0, st);
        return (int)-rc;
    }
    src = do_swap(domid, flags, node, c, &swap_wall);
    swapped = 1;
    t2 = now_ms();
    rrc = resume_cancelled(domid);           /* always, even if the swap failed */
    t3 = now_ms();
    rc = src ? src : rrc;
    printf("coop: domid=%u errno=%s stage=done suspend_ms=%.1f swap_ms=%.1f resume_ms=%.1f "
           "coop_wall_ms=%.1f swap_errno=%s resume_errno=%s swapped=%d\n",
           domid, errname(-rc), t1 - t0, swap_wall, t3 - t2, t3 - t0,
           errname(-src), errname(-rrc), swapped);
    return rc ? (int)-rc : 0;
}

/* ---- hold a frame of a domain (dying-domain test) ---------------------- */

static int cmd_hold(unsigned int domid)
{
    unsigned long nr, i, *p2m = read_p2m(domid, &nr);
    xen_pfn_t mfn = 0;
    void *p;
    char buf[64];

    for ( i = 0; i < nr && !mfn; i++ )
        if ( p2m[i] != P2M_INVALID )
            mfn = p2m[i];
    p = map_foreign(domid, &mfn, 1, PROT_READ);
    if ( !p )
        die("map frame to hold");
    printf("hold: domid=%u mfn=%#lx held\n", domid, (unsigned long)mfn);
    fflush(stdout);
    while ( read(0, buf, sizeof(buf)) > 0 )
        ;
    munmap(p, PAGE);
    printf("hold: domid=%u released\n", domid);
    return 0;
}

/* ---- follow the guest's console log ------------------------------------ */

static int cmd_watch(const char *file)
{
    const struct timespec poll = { 0, 20 * 1000 * 1000 };
    char buf[8192], line[1024];
    size_t ll = 0;
    int fd = -1, existed = access(file, F_OK) == 0;
    off_t off = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for ( ;; )
    {
        struct stat st;
        ssize_t n, i;

        if ( fd < 0 )
        {
            fd = open(file, O_RDONLY | O_CLOEXEC);
            if ( fd < 0 )
            {
                nanosleep(&poll, NULL);
                continue;
            }
            /* a log that existed: only what arrives from now on */
            off = existed ? lseek(fd, 0, SEEK_END) : 0;
        }
        if ( fstat(fd, &st) == 0 && st.st_size < off )
            off = lseek(fd, 0, SEEK_SET); /* truncated: start over */
        n = read(fd, buf, sizeof(buf));
        if ( n <= 0 )
        {
            struct stat cur;

            /* replaced by a new file (log reopened)? */
            if ( stat(file, &cur) == 0 && fstat(fd, &st) == 0 && cur.st_ino != st.st_ino )
            {
                close(fd);
                fd = open(file, O_RDONLY | O_CLOEXEC);
                off = 0;
                continue;
            }
            nanosleep(&poll, NULL);
            continue;
        }
        off += n;
        for ( i = 0; i < n; i++ )
        {
            if ( buf[i] != '\n' )
            {
                if ( ll + 1 < sizeof(line) )
                    line[ll++] = buf[i];
                continue;
            }
            line[ll] = 0;
            ll = 0;
            if ( !strncmp(line, "HB ", 3) )
                printf("%.3f %lu\n", now_ms() / 1e3, strtoul(line + 3, NULL, 10));
        }
    }
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: memswap-e2e-tool swap DOMID [--dry-run] [--node N] [--nr-colours N]\n"
            "                                  [--shift S] [--colours LIST] [--flags F]\n"
            "                                  [--cooperative [--suspend-timeout MS]]\n"
            "       memswap-e2e-tool info DOMID | physinfo | p2m DOMID FILE | hold DOMID\n"
            "       memswap-e2e-tool watch CONSOLE-LOG\n"
            "       memswap-e2e-tool compare BEFORE AFTER [--nr-colours N] [--shift S]\n"
            "                        [--colours LIST] [--expect-kept FILE] [--min-moved PCT]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct colours c = { .nr = 0, .shift = 0, .any = 1 };
    const char *list = NULL, *expect = NULL;
    unsigned int flags = 0;
    uint32_t node = XEN_DOMCTL_MEMSWAP_NODE_ANY;
    double min_moved = 0, suspend_timeout = 20000;
    int i, npos = 0, coop = 0;
    char *pos[4];

    if ( argc < 2 )
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    for ( i = 2; i < argc; i++ )
    {
        if ( !strcmp(argv[i], "--dry-run") )
            flags |= XEN_DOMCTL_MEMSWAP_F_DRY_RUN;
        else if ( !strcmp(argv[i], "--flags") && i + 1 < argc )
            flags |= strtoul(argv[++i], NULL, 0);
        else if ( !strcmp(argv[i], "--cooperative") )
            coop = 1;
        else if ( !strcmp(argv[i], "--suspend-timeout") && i + 1 < argc )
            suspend_timeout = strtod(argv[++i], NULL);
        else if ( !strcmp(argv[i], "--node") && i + 1 < argc )
            node = strtoul(argv[++i], NULL, 0);
        else if ( !strcmp(argv[i], "--nr-colours") && i + 1 < argc )
            c.nr = strtoul(argv[++i], NULL, 0);
        else if ( !strcmp(argv[i], "--shift") && i + 1 < argc )
            c.shift = strtoul(argv[++i], NULL, 0);
        else if ( !strcmp(argv[i], "--colours") && i + 1 < argc )
            list = argv[++i];
        else if ( !strcmp(argv[i], "--expect-kept") && i + 1 < argc )
            expect = argv[++i];
        else if ( !strcmp(argv[i], "--min-moved") && i + 1 < argc )
            min_moved = strtod(argv[++i], NULL);
        else if ( argv[i][0] == '-' && argv[i][1] == '-' )
            usage();
        else if ( npos < 4 )
            pos[npos++] = argv[i];
        else
            usage();
    }
    parse_colours(&c, list);
    if ( c.any && c.nr == 0 )
        c.nr = 1;               /* one colour: every frame */
    if ( !c.any && (c.nr == 0 || c.nr > MAX_COLOURS) )
    {
        fprintf(stderr, "memswap-e2e-tool: --colours needs --nr-colours 1..%d\n",
                MAX_COLOURS);
        return 2;
    }

    if ( !strcmp(argv[1], "swap") && npos == 1 && coop )
        return cmd_swap_cooperative(strtoul(pos[0], NULL, 0), flags, node, &c,
                                    suspend_timeout);
    if ( !strcmp(argv[1], "swap") && npos == 1 )
        return cmd_swap(strtoul(pos[0], NULL, 0), flags, node, &c);
    if ( !strcmp(argv[1], "info") && npos == 1 )
        return cmd_info(strtoul(pos[0], NULL, 0));
    if ( !strcmp(argv[1], "physinfo") && npos == 0 )
        return cmd_physinfo();
    if ( !strcmp(argv[1], "p2m") && npos == 2 )
        return cmd_p2m(strtoul(pos[0], NULL, 0), pos[1]);
    if ( !strcmp(argv[1], "compare") && npos == 2 )
        return cmd_compare(pos[0], pos[1], &c, expect, min_moved);
    if ( !strcmp(argv[1], "watch") && npos == 1 )
        return cmd_watch(pos[0]);
    if ( !strcmp(argv[1], "hold") && npos == 1 )
        return cmd_hold(strtoul(pos[0], NULL, 0));
    if ( !strcmp(argv[1], "colour-list") )
    {
        unsigned int w;

        for ( w = 0; w < NR_COLOUR_WORDS; w++ )
            printf("%016" PRIx64 "%s", c.map[w], w + 1 < NR_COLOUR_WORDS ? " " : "\n");
        return 0;
    }
    usage();
    return 2;
}
