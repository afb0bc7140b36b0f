/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Grant tables, version 1. The shared entries live in Xen heap frames the
 * granting guest writes; for a PV guest an entry's frame field is an MFN,
 * which is why a swap must keep granted frames where they are; a translated
 * guest's is a gfn, which Xen looks up in its p2m at each map or copy (so
 * only the frame an active mapping pins must stay). Mapping a
 * grant takes references on the frame the way Xen's map_grant_ref does
 * (get_page against the granting domain, plus a writable type reference for
 * a writable mapping) and pins the active entry; a grant copy takes them
 * only for the duration of the copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

struct sim_gmap *sim_gmaps;
unsigned int sim_nr_gmaps;

void sim_gnt_init(struct domain *d)
{
    unsigned int i;

    for ( i = 0; i < SIM_GNT_FRAMES; i++ )
        if ( d->gnt_mfn[i] == MS_INVALID_MFN )
            d->gnt_mfn[i] = sim_alloc_xen_frame();
    memset(d->gnt_active, 0, sizeof(d->gnt_active));
}

void sim_gnt_fini(struct domain *d)
{
    unsigned int i;

    for ( i = 0; i < SIM_GNT_FRAMES; i++ )
    {
        sim_free_xen_frame(d->gnt_mfn[i]);
        d->gnt_mfn[i] = MS_INVALID_MFN;
    }
}

struct sim_grant_entry_v1 *sim_gnt_entry(struct domain *d, uint32_t gref)
{
    if ( gref >= SIM_NR_GRANTS || d->gnt_mfn[gref / SIM_GNT_PER_FRAME] == MS_INVALID_MFN )
        return NULL;
    return (struct sim_grant_entry_v1 *)sim_map_frame(d->gnt_mfn[gref / SIM_GNT_PER_FRAME]) +
           gref % SIM_GNT_PER_FRAME;
}

void sim_gnt_grant(struct domain *d, uint32_t gref, unsigned int to_domid,
                   unsigned long frame, bool readonly)
{
    struct sim_grant_entry_v1 *e = sim_gnt_entry(d, gref);

    if ( !e )
        return;
    /* The guest writes frame and domid before flags, as the ABI requires. */
    e->frame = (uint32_t)frame;
    e->domid = (uint16_t)to_domid;
    __atomic_store_n(&e->flags, (uint16_t)(SIM_GTF_permit_access | (readonly ? SIM_GTF_readonly : 0)),
                     __ATOMIC_RELEASE);
}

/* Check an entry grants @mapper the access asked for; returns its frame. */
static int acquire(struct domain *g, uint32_t gref, unsigned int mapper, bool rw,
                   unsigned long *frame)
{
    struct sim_grant_entry_v1 *e = sim_gnt_entry(g, gref);

    if ( !e || !(e->flags & SIM_GTF_permit_access) || e->domid != mapper ||
         (rw && (e->flags & SIM_GTF_readonly)) )
        return -EINVAL;
    *frame = sim_grant_frame_mfn(g, e->frame);
    return *frame == MS_INVALID_MFN ? -EINVAL : 0;
}

static int get_refs(struct domain *g, unsigned long frame, bool rw)
{
    struct page_info *pg;

    if ( !sim_mfn_valid(frame) )
        return -EINVAL;
    pg = sim_mfn_to_page(frame);
    if ( !sim_get_page(pg, g) )
        return -EINVAL;
    if ( rw && sim_get_page_type(pg, PGT_writable_page) )
    {
        sim_put_page(pg);
        return -EINVAL;
    }
    return 0;
}

static void put_refs(unsigned long frame, bool rw)
{
    struct page_info *pg = sim_mfn_to_page(frame);

    if ( rw )
        sim_put_page_type(pg);
    sim_put_page(pg);
}

static void set_status(struct domain *g, uint32_t gref)
{
    struct sim_grant_entry_v1 *e = sim_gnt_entry(g, gref);
    struct sim_grant_active *act = &g->gnt_active[gref];
    uint16_t f = e->flags & ~(SIM_GTF_reading | SIM_GTF_writing);

    if ( act->pin_rw )
        f |= SIM_GTF_writing | SIM_GTF_reading;
    else if ( act->pin_ro )
        f |= SIM_GTF_reading;
    e->flags = f;
}

int sim_gnt_map(unsigned int mapper, unsigned int granter, uint32_t gref, bool rw)
{
    struct domain *g = sim_domain_lookup(granter);
    struct sim_grant_active *act;
    unsigned long frame;
    unsigned int i;
    int rc;

    if ( !g || !sim_domain_lookup(mapper) )
        return -ESRCH;
    if ( gref >= SIM_NR_GRANTS )
        return -EINVAL;
    sim_current_domid = mapper;
    act = &g->gnt_active[gref];
    if ( (rc = acquire(g, gref, mapper, rw, &frame)) )
        return rc;
    /* An entry already pinned stays on its frame until unpinned. */
    if ( (act->pin_rw || act->pin_ro) && act->frame != frame )
        frame = act->frame;
    if ( (rc = get_refs(g, frame, rw)) )
        return rc;
    for ( i = 0; i < sim_nr_gmaps; i++ )
        if ( !sim_gmaps[i].used )
            break;
    if ( i == sim_nr_gmaps )
    {
        unsigned int n = sim_nr_gmaps ? sim_nr_gmaps * 2 : 64;
        struct sim_gmap *ng = realloc(sim_gmaps, n * sizeof(*ng));

        if ( !ng )
        {
            put_refs(frame, rw);
            return -ENOMEM;
        }
        memset(ng + sim_nr_gmaps, 0, (n - sim_nr_gmaps) * sizeof(*ng));
        sim_gmaps = ng;
        sim_nr_gmaps = n;
    }
    sim_gmaps[i] = (struct sim_gmap){ .mapper = mapper, .granter = granter, .gref = gref,
                                      .mfn = frame, .rw = rw, .used = true };
    act->frame = frame;
    if ( rw )
        act->pin_rw++;
    else
        act->pin_ro++;
    set_status(g, gref);
    return (int)i;
}

void sim_gnt_unmap(int id)
{
    struct sim_gmap *m;
    struct domain *g;

    if ( id < 0 || (unsigned int)id >= sim_nr_gmaps || !sim_gmaps[id].used )
        return;
    m = &sim_gmaps[id];
    g = sim_domain_lookup(m->granter);
    /* A writable mapping may have been written: its unmap is logged. */
    if ( g && m->rw )
        sim_paging_mark_dirty(g, m->mfn);
    put_refs(m->mfn, m->rw);
    if ( g )
    {
        struct sim_grant_active *act = &g->gnt_active[m->gref];

        if ( m->rw && act->pin_rw )
            act->pin_rw--;
        else if ( !m->rw && act->pin_ro )
            act->pin_ro--;
        set_status(g, m->gref);
    }
    m->used = false;
}

void *sim_gnt_map_ptr(int id)
{
    if ( id < 0 || (unsigned int)id >= sim_nr_gmaps || !sim_gmaps[id].used )
        return NULL;
    return sim_map_frame(sim_gmaps[id].mfn);
}

int sim_gnt_copy(unsigned int granter, uint32_t gref, unsigned int off,
                 void *buf, unsigned int len, bool to_guest)
{
    struct domain *g = sim_domain_lookup(granter);
    unsigned long frame;
    unsigned char *p;
    int rc;

    if ( !g )
        return -ESRCH;
    if ( off + len > PAGE_SIZE )
        return -EINVAL;
    sim_current_domid = 0;
    if ( (rc = acquire(g, gref, 0, to_guest, &frame)) )
        return rc;
    if ( (rc = get_refs(g, frame, to_guest)) )
        return rc;
    p = (unsigned char *)sim_map_frame(frame) + off;
    if ( to_guest )
    {
        memcpy(p, buf, len);
        sim_paging_mark_dirty(g, frame);
    }
    else
        memcpy(buf, p, len);
    put_refs(frame, to_guest);
    return 0;
}

void sim_gnt_release_domain(struct domain *d)
{
    unsigned int i;

    for ( i = 0; i < sim_nr_gmaps; i++ )
        if ( sim_gmaps[i].used && (sim_gmaps[i].mapper == d->domid || sim_gmaps[i].granter == d->domid) )
            sim_gnt_unmap((int)i);
}
