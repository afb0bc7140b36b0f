/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Reading a 64-bit PV guest's P2M from dom0, as save/restore does: the
 * guest publishes the frame list list in its shared_info
 * (arch.pfn_to_mfn_frame_list_list, arch.max_pfn); it points at mid frames
 * of MFNs of leaf frames, each leaf 512 pfn -> mfn entries. Everything here
 * is guest-written memory: sizes are bounded before anything is allocated,
 * and frames that cannot be mapped are absences, not crashes.
 */
#include "xenhost.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define FPP         (XC_PAGE_SIZE / sizeof(uint64_t))     /* entries per frame */
/* The 3-level tree's reach: one frame list list of FPP mids of FPP leaves. */
#define TREE_PFNS   ((uint64_t)FPP * FPP * FPP)
/* A PV guest's pfn space may exceed its memory by holes (e820_host, the
 * balloon's room); a claim beyond max_pages plus this is not believed. */
#define HOLE_PFNS   (1ul << 20)                          /* 4 GiB */
/* Leaves are mapped this many at a time. */
#define LEAF_BATCH  512

/* An entry that names no frame: invalid, or Linux's FOREIGN_FRAME_BIT
 * (bit 63) and IDENTITY_FRAME_BIT (bit 62) markers. */
static uint64_t entry(uint64_t v)
{
    return (v >> 62) ? MS_XEN_P2M_NONE : v;
}

static int bad_frame(uint64_t mfn)
{
    return mfn == 0 || (mfn >> 62);
}

/* Map @n frames read-only; per-frame errors in @err (absent frames). */
static void *map_frames(struct ms_xen *x, unsigned int domid, const xen_pfn_t *mfns,
                        size_t n, int *err)
{
    return xenforeignmemory_map(x->xfm, domid, PROT_READ, n, mfns, err);
}

static void set_err(struct ms_xen_error *e, int err, const char *call, const char *msg)
{
    e->err = err ? err : EIO;
    e->call = call;
    strncpy(e->msg, msg ? msg : "", sizeof(e->msg) - 1);
    e->msg[sizeof(e->msg) - 1] = 0;
}

/* Copy the leaves [first, first + n) of @leaf_mfns into @p2m. */
static int copy_leaves(struct ms_xen *x, unsigned int domid, const xen_pfn_t *leaf_mfns,
                       unsigned long first, unsigned long n, uint64_t *p2m,
                       unsigned long max_pfn)
{
    xen_pfn_t mfns[LEAF_BATCH];
    unsigned long idx[LEAF_BATCH], i, k, m = 0;
    int errs[LEAF_BATCH];
    uint64_t *leaves;

    for ( i = 0; i < n; i++ )
        if ( !bad_frame(leaf_mfns[first + i]) )
        {
            idx[m] = first + i;
            mfns[m++] = leaf_mfns[first + i];
        }
    if ( !m )
        return 0;
    leaves = map_frames(x, domid, mfns, m, errs);
    if ( !leaves )
        return errno ? errno : EIO;
    for ( i = 0; i < m; i++ )
    {
        unsigned long base = idx[i] * FPP;

        if ( errs[i] )
            continue;           /* not the guest's frame: its pfns stay absent */
        for ( k = 0; k < FPP && base + k < max_pfn; k++ )
            p2m[base + k] = entry(leaves[i * FPP + k]);
    }
    xenforeignmemory_unmap(x->xfm, leaves, m);
    return 0;
}

int ms_xen_read_p2m(struct ms_xen *x, unsigned int domid, int own_domid,
                    uint64_t **p2m_out, unsigned long *nr_out, struct ms_xen_error *e)
{
    xc_domaininfo_t info;
    unsigned int width = 0;
    shared_info_any_t *si;
    uint64_t *fll = NULL, *mids = NULL, *p2m = NULL, max_pfn, limit;
    xen_pfn_t pfn, *mid_mfns = NULL, *leaf_mfns = NULL;
    unsigned long nr_leaves, nr_mids, i, j;
    int err = 0, one_err = 0, *mid_errs = NULL;

    memset(e, 0, sizeof(*e));
    *p2m_out = NULL;
    *nr_out = 0;
    if ( domid == 0 )
    {
        set_err(e, EACCES, "xen_p2m", "domain 0 is the control domain: its P2M is "
                "never foreign-mapped");
        return EACCES;
    }
    if ( own_domid >= 0 && domid == (unsigned int)own_domid )
    {
        set_err(e, EDEADLK, "xen_p2m", "the caller's own domain cannot be foreign-mapped");
        return EDEADLK;
    }
    if ( (err = ms_xen_domain_info(x, domid, &info)) )
    {
        set_err(e, err, "xc_domain_getinfolist", NULL);
        return err;
    }
    if ( info.flags & XEN_DOMINF_hvm_guest )
    {
        set_err(e, EOPNOTSUPP, "xen_p2m", "an HVM/PVH guest has no PV P2M");
        return EOPNOTSUPP;
    }
    if ( xc_domain_get_guest_width(x->xch, domid, &width) )
    {
        set_err(e, errno, "xc_domain_get_guest_width", NULL);
        return e->err;
    }
    if ( width != 8 )
    {
        set_err(e, EOPNOTSUPP, "xen_p2m", "32-bit PV guests are not supported");
        return EOPNOTSUPP;
    }

    pfn = info.shared_info_frame;
    si = map_frames(x, domid, &pfn, 1, &one_err);
    if ( !si || one_err )
    {
        err = si ? one_err : errno;
        if ( si )
            xenforeignmemory_unmap(x->xfm, si, 1);
        set_err(e, err, "xenforeignmemory_map", "shared_info");
        return e->err;
    }
    max_pfn = si->x64.arch.max_pfn;
    pfn = si->x64.arch.pfn_to_mfn_frame_list_list;
    xenforeignmemory_unmap(x->xfm, si, 1);

    limit = info.max_pages + (uint64_t)HOLE_PFNS;
    if ( limit > TREE_PFNS )
        limit = TREE_PFNS;
    if ( max_pfn > limit )
    {
        set_err(e, EFBIG, "xen_p2m", "the guest's max_pfn is beyond its max_pages plus "
                "4 GiB of holes: not believed");
        return EFBIG;
    }
    if ( bad_frame(pfn) )
    {
        set_err(e, EOPNOTSUPP, "xen_p2m", "the guest publishes no "
                "pfn_to_mfn_frame_list_list");
        return EOPNOTSUPP;
    }
    p2m = malloc((max_pfn ? max_pfn : 1) * sizeof(*p2m));
    if ( !p2m )
    {
        set_err(e, ENOMEM, "malloc", NULL);
        return ENOMEM;
    }
    for ( i = 0; i < max_pfn; i++ )
        p2m[i] = MS_XEN_P2M_NONE;
    nr_leaves = (max_pfn + FPP - 1) / FPP;
    nr_mids = (nr_leaves + FPP - 1) / FPP;        /* <= FPP: max_pfn <= TREE_PFNS */
    if ( !nr_mids )
        goto done;

    mid_mfns = calloc(nr_mids, sizeof(*mid_mfns));
    mid_errs = calloc(nr_mids, sizeof(*mid_errs));
    leaf_mfns = calloc(nr_leaves, sizeof(*leaf_mfns));
    if ( !mid_mfns || !mid_errs || !leaf_mfns )
    {
        set_err(e, ENOMEM, "malloc", NULL);
        err = ENOMEM;
        goto out;
    }
    fll = map_frames(x, domid, &pfn, 1, &one_err);
    if ( !fll || one_err )
    {
        err = fll ? one_err : errno;
        set_err(e, err, "xenforeignmemory_map", "pfn_to_mfn_frame_list_list");
        err = e->err;
        goto out;
    }
    /* Absent mids and leaves keep their pfns absent (bad_frame: skipped). */
    for ( i = 0; i < nr_mids; i++ )
        mid_mfns[i] = bad_frame(fll[i]) ? 0 : fll[i];
    for ( i = 0, j = 0; i < nr_mids; i++ )
        if ( mid_mfns[i] )
            mid_mfns[j++] = mid_mfns[i];
        else
            mid_errs[i] = ENOENT;
    /* Map the present mids compactly, then spread them back by index. */
    if ( j )
    {
        int *errs = calloc(j, sizeof(int));
        unsigned long k, m;

        if ( !errs )
        {
            set_err(e, ENOMEM, "malloc", NULL);
            err = ENOMEM;
            goto out;
        }
        mids = map_frames(x, domid, mid_mfns, j, errs);
        if ( !mids )
        {
            free(errs);
            set_err(e, errno, "xenforeignmemory_map", "P2M mid frames");
            err = e->err;
            goto out;
        }
        for ( i = 0, m = 0; i < nr_mids; i++ )
        {
            if ( mid_errs[i] )
                continue;
            if ( !errs[m] )
                for ( k = 0; k < FPP && i * FPP + k < nr_leaves; k++ )
                    leaf_mfns[i * FPP + k] = mids[m * FPP + k];
            m++;
        }
        xenforeignmemory_unmap(x->xfm, mids, j);
        mids = NULL;
        free(errs);
    }
    for ( i = 0; i < nr_leaves; i += LEAF_BATCH )
    {
        err = copy_leaves(x, domid, leaf_mfns, i,
                          nr_leaves - i < LEAF_BATCH ? nr_leaves - i : LEAF_BATCH,
                          p2m, max_pfn);
        if ( err )
        {
            set_err(e, err, "xenforeignmemory_map", "P2M leaf frames");
            goto out;
        }
    }
 done:
    *p2m_out = p2m;
    *nr_out = max_pfn;
    p2m = NULL;
    err = 0;
 out:
    if ( fll )
        xenforeignmemory_unmap(x->xfm, fll, 1);
    free(mid_mfns);
    free(mid_errs);
    free(leaf_mfns);
    free(p2m);
    return err;
}
