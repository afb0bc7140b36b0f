/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * An audit in the spirit of Xen's audit_domains(): recompute from scratch
 * what every frame's general and type reference counts must be, from
 * everything that can hold a reference, and compare with the frame table.
 *
 * Holders: PGC_allocated, pins, entries of validated tables of every
 * domain (L1: general + writable-type if RW; L2..L4: general + type of the
 * next level; linear: general + type unless self), vCPU holders
 * (guest_table, guest_table_user, vcpu_info, GDT frames), Xen's mappings of
 * FIFO event-channel pages, dom0's foreign mappings and grant mappings.
 * Then: types consistent, P2M (a PV guest's, through its frame-list tree
 * and its linear mapping; a translated guest's, Xen's) and M2P agree, every
 * frame is free, Xen's, or owned and on exactly one page list, tot_pages
 * right.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

struct audit {
    char *buf;
    size_t len, used;
    int problems;
    uint32_t *gen, *type;   /* expected counts */
    uint8_t *listed;        /* times seen on a domain page list */
    uint8_t *wmapped;       /* mapped writable somewhere */
};

static void problem(struct audit *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct audit *a, const char *fmt, ...)
{
    va_list ap;
    int n;

    a->problems++;
    if ( !a->buf || a->used + 1 >= a->len )
        return;
    va_start(ap, fmt);
    n = vsnprintf(a->buf + a->used, a->len - a->used, fmt, ap);
    va_end(ap);
    if ( n > 0 )
        a->used += (size_t)n < a->len - a->used ? (size_t)n : a->len - a->used - 1;
    if ( a->used + 1 < a->len )
    {
        a->buf[a->used++] = '\n';
        a->buf[a->used] = 0;
    }
}

static void ref(struct audit *a, unsigned long mfn, bool type, const char *who, unsigned long from)
{
    if ( !sim_mfn_valid(mfn) )
    {
        problem(a, "%s at %#lx references invalid mfn %#lx", who, from, mfn);
        return;
    }
    a->gen[mfn]++;
    if ( type )
        a->type[mfn]++;
}

static void count_table(struct audit *a, struct domain *d, unsigned long mfn)
{
    struct page_info *pg = sim_mfn_to_page(mfn);
    unsigned int level = sim_pt_level(pg->u.inuse.type_info), i;
    const uint64_t *t = sim_map_frame(mfn);

    for ( i = 0; i < 512; i++ )
    {
        uint64_t e = t[i];
        unsigned long tm = sim_pte_mfn(e);

        if ( !(e & SIM_PTE_P) || (level == 4 && i >= SIM_XEN_L4_FIRST && i <= SIM_XEN_L4_LAST) )
            continue;
        if ( !sim_mfn_valid(tm) )
        {
            problem(a, "d%u L%u %#lx[%u] maps invalid mfn %#lx", d->domid, level, mfn, i, tm);
            continue;
        }
        if ( sim_mfn_to_page(tm)->owner != d )
            problem(a, "d%u L%u %#lx[%u] maps mfn %#lx owned by d%u", d->domid, level, mfn, i,
                    tm, sim_owner_domid(sim_mfn_to_page(tm)));
        if ( level == 1 )
        {
            ref(a, tm, e & SIM_PTE_RW, "L1", mfn);
            if ( e & SIM_PTE_RW )
                a->wmapped[tm] = 1;
            continue;
        }
        if ( tm == mfn )
            continue;                                   /* self linear */
        ref(a, tm, true, "table", mfn);
        {
            unsigned long tt = sim_mfn_to_page(tm)->u.inuse.type_info & PGT_type_mask;

            if ( tt != sim_level_type(level - 1) && tt != sim_level_type(level) )
                problem(a, "d%u L%u %#lx[%u] maps mfn %#lx of type %lx", d->domid, level, mfn, i,
                        tm, tt >> PG_shift(3));
        }
    }
}

/* The frame a domain's P2M names for @pfn (a PV guest's tree, Xen's p2m). */
static unsigned long p2m_frame(struct domain *d, unsigned long pfn)
{
    uint64_t e;

    if ( sim_translated(d) )
        return sim_p2m_ram_mfn(d, pfn);
    if ( pfn >= d->p2m_size )
        return MS_INVALID_MFN;
    e = sim_p2m_tree_entry(d, pfn);
    return e == SIM_P2M_INVALID || (e & (SIM_P2M_IDENTITY | SIM_P2M_FOREIGN)) ?
           MS_INVALID_MFN : (unsigned long)e;
}

/* Every frame of @d whose M2P entry names a pfn is that pfn's in its P2M. */
static void audit_m2p(struct audit *a, struct domain *d)
{
    uint32_t m;

    for ( m = d->page_head; m != SIM_NIL; m = sim_frame_table[m].list_next )
    {
        unsigned long pfn = sim_m2p[m];

        if ( pfn != INVALID_M2P_ENTRY && p2m_frame(d, pfn) != m )
            problem(a, "d%u m2p[%#x] = %#lx but the P2M maps %#lx there", d->domid, m, pfn,
                    p2m_frame(d, pfn));
    }
}

/* A translated guest: Xen's p2m and the M2P agree, both ways. */
static void audit_hvm_p2m(struct audit *a, struct domain *d)
{
    unsigned long gfn;

    for ( gfn = 0; gfn < d->p2m_size; gfn++ )
    {
        unsigned long mfn = sim_p2m_ram_mfn(d, gfn);

        if ( mfn == MS_INVALID_MFN )
            continue;
        if ( !sim_mfn_valid(mfn) )
        {
            problem(a, "d%u p2m[%#lx] = invalid mfn %#lx", d->domid, gfn, mfn);
            continue;
        }
        if ( sim_mfn_to_page(mfn)->owner == &sim_dom_xen )
            continue;                           /* shared_info, grant table */
        if ( sim_mfn_to_page(mfn)->owner != d )
            problem(a, "d%u p2m[%#lx] = %#lx owned by d%u", d->domid, gfn, mfn,
                    sim_owner_domid(sim_mfn_to_page(mfn)));
        else if ( sim_m2p[mfn] != gfn )
            problem(a, "d%u p2m[%#lx] = %#lx but m2p[%#lx] = %#lx", d->domid, gfn, mfn, mfn,
                    sim_m2p[mfn]);
    }
    audit_m2p(a, d);
}

static void audit_p2m(struct audit *a, struct domain *d)
{
    unsigned long pfn, populated = 0, cr3_mfn;
    struct sim_shared_info *si = sim_shared_info(d);

    if ( !si )
        return;
    if ( si->arch.max_pfn != d->p2m_size )
        problem(a, "d%u shared_info max_pfn %#llx != %#lx", d->domid,
                (unsigned long long)si->arch.max_pfn, d->p2m_size);
    if ( !sim_mfn_valid((unsigned long)si->arch.pfn_to_mfn_frame_list_list) ||
         sim_mfn_to_page((unsigned long)si->arch.pfn_to_mfn_frame_list_list)->owner != d )
    {
        problem(a, "d%u frame list list %#llx not an own frame", d->domid,
                (unsigned long long)si->arch.pfn_to_mfn_frame_list_list);
        return;
    }
    /* Guest-written: any value at all, so look before dereferencing. */
    cr3_mfn = (unsigned long)(si->arch.p2m_cr3 >> PAGE_SHIFT);
    if ( !sim_mfn_valid(cr3_mfn) || sim_mfn_to_page(cr3_mfn)->owner != d )
        problem(a, "d%u p2m_cr3 %#llx not an own L4", d->domid, (unsigned long long)si->arch.p2m_cr3);
    else if ( (sim_mfn_to_page(cr3_mfn)->u.inuse.type_info & PGT_type_mask) != PGT_l4_page_table )
        problem(a, "d%u p2m_cr3 %#llx is not an L4", d->domid, (unsigned long long)si->arch.p2m_cr3);

    for ( pfn = 0; pfn < d->p2m_size; pfn++ )
    {
        uint64_t e = sim_p2m_tree_entry(d, pfn);
        unsigned long mfn;

        /* Leaves are the same frames in the tree and in the linear map. */
        if ( !(pfn & 511) && d->vcpu[0].guest_table != MS_INVALID_MFN )
        {
            const uint64_t *top = sim_map_frame((unsigned long)si->arch.pfn_to_mfn_frame_list_list);
            unsigned long mid = (unsigned long)top[(pfn >> 18) & 511], leaf = MS_INVALID_MFN, lin;

            if ( sim_mfn_valid(mid) )
                leaf = (unsigned long)((const uint64_t *)sim_map_frame(mid))[(pfn >> 9) & 511];
            lin = sim_walk(d->vcpu[0].guest_table, SIM_GUEST_P2M_VA + (uint64_t)pfn * 8, NULL);
            if ( leaf != lin )
                problem(a, "d%u p2m leaf for pfn %#lx: tree %#lx, linear map %#lx", d->domid, pfn,
                        leaf, lin);
        }
        if ( e == SIM_P2M_INVALID || (e & (SIM_P2M_IDENTITY | SIM_P2M_FOREIGN)) )
            continue;
        mfn = (unsigned long)e;
        if ( !sim_mfn_valid(mfn) )
        {
            problem(a, "d%u p2m[%#lx] = invalid mfn %#lx", d->domid, pfn, mfn);
            continue;
        }
        populated++;
        if ( sim_mfn_to_page(mfn)->owner != d )
            problem(a, "d%u p2m[%#lx] = %#lx owned by d%u", d->domid, pfn, mfn,
                    sim_owner_domid(sim_mfn_to_page(mfn)));
        if ( sim_m2p[mfn] != pfn )
            problem(a, "d%u p2m[%#lx] = %#lx but m2p[%#lx] = %#lx", d->domid, pfn, mfn, mfn,
                    sim_m2p[mfn]);
    }
    audit_m2p(a, d);
    (void)populated;
}

int sim_audit(char *buf, size_t len)
{
    struct audit a = { .buf = buf, .len = len };
    unsigned long mfn;
    unsigned int i, v, g;

    if ( buf && len )
        buf[0] = 0;
    if ( !sim_frame_table )
        return 0;
    a.gen = calloc(sim_nr_frames, sizeof(*a.gen));
    a.type = calloc(sim_nr_frames, sizeof(*a.type));
    a.listed = calloc(sim_nr_frames, 1);
    a.wmapped = calloc(sim_nr_frames, 1);
    if ( !a.gen || !a.type || !a.listed || !a.wmapped )
    {
        problem(&a, "audit: out of memory");
        goto out;
    }
    if ( sim_bugs )
        problem(&a, "%lu reference count underflows (Xen would BUG)", sim_bugs);

    /* Page lists, PGC_allocated, pins, validated tables. */
    for ( i = 0; i < SIM_MAX_DOMAINS; i++ )
    {
        struct domain *d = sim_domains[i];
        unsigned long n = 0;
        uint32_t m;

        if ( !d )
            continue;
        for ( m = d->page_head; m != SIM_NIL; m = sim_frame_table[m].list_next )
        {
            struct page_info *pg = &sim_frame_table[m];
            unsigned long t = pg->u.inuse.type_info;

            if ( ++n > sim_nr_frames )
            {
                problem(&a, "d%u page list loops", d->domid);
                break;
            }
            if ( a.listed[m]++ )
                problem(&a, "mfn %#x on a page list twice (d%u)", m, d->domid);
            if ( pg->owner != d )
                problem(&a, "mfn %#x on d%u's list but owned by d%u", m, d->domid, sim_owner_domid(pg));
            if ( pg->count_info & PGC_allocated )
                a.gen[m]++;
            if ( t & PGT_pinned )
            {
                a.gen[m]++;
                a.type[m]++;
                if ( !sim_is_pt_type(t) )
                    problem(&a, "mfn %#x pinned but not a page table (taf=%016lx)", m, t);
            }
            if ( sim_is_pt_type(t) && (t & PGT_validated) )
                count_table(&a, d, m);
        }
        if ( n != d->tot_pages )
            problem(&a, "d%u tot_pages %lu but %lu pages listed", d->domid, d->tot_pages, n);
        if ( d->fifo_array_mfn != MS_INVALID_MFN )
            ref(&a, d->fifo_array_mfn, true, "fifo event array", 0);

        /* vCPU holders. */
        for ( v = 0; v < d->nr_vcpus; v++ )
        {
            struct vcpu *vc = &d->vcpu[v];

            if ( vc->guest_table != MS_INVALID_MFN )
                ref(&a, vc->guest_table, true, "guest_table", v);
            if ( vc->guest_table_user != MS_INVALID_MFN )
                ref(&a, vc->guest_table_user, true, "guest_table_user", v);
            if ( vc->vcpu_info_mfn != MS_INVALID_MFN )
            {
                ref(&a, vc->vcpu_info_mfn, true, "vcpu_info", v);
                if ( vc->vcpu_info_map_mfn != vc->vcpu_info_mfn )
                    problem(&a, "d%uv%u vcpu_info %#lx but Xen maps %#lx", d->domid, v,
                            vc->vcpu_info_mfn, vc->vcpu_info_map_mfn);
                else if ( sim_mfn_valid(vc->vcpu_info_mfn) )
                {
                    /* Events Xen delivered must still be visible to the guest. */
                    const struct sim_vcpu_info *vi = (const void *)
                        ((const unsigned char *)sim_map_frame(vc->vcpu_info_mfn) + vc->vcpu_info_offset);

                    if ( vc->events_unacked & ~vi->evtchn_pending_sel )
                        problem(&a, "d%uv%u vcpu_info lost events %#llx", d->domid, v,
                                (unsigned long long)(vc->events_unacked & ~vi->evtchn_pending_sel));
                }
            }
            if ( d->fifo_cb_mfn[v] != MS_INVALID_MFN )
                ref(&a, d->fifo_cb_mfn[v], true, "fifo control block", v);
            for ( g = 0; g < vc->nr_gdt_frames; g++ )
            {
                ref(&a, vc->gdt_frames[g], true, "gdt", v);
                if ( sim_mfn_valid(vc->gdt_frames[g]) &&
                     (sim_mfn_to_page(vc->gdt_frames[g])->u.inuse.type_info & PGT_type_mask) !=
                     PGT_seg_desc_page )
                    problem(&a, "d%uv%u GDT frame %#lx is not a seg_desc page", d->domid, v,
                            vc->gdt_frames[g]);
            }
            if ( vc->guest_table != MS_INVALID_MFN && sim_mfn_valid(vc->guest_table) &&
                 sim_mfn_to_page(vc->guest_table)->owner != d )
                problem(&a, "d%uv%u guest_table %#lx not own", d->domid, v, vc->guest_table);
            if ( vc->guest_table_user != MS_INVALID_MFN && sim_mfn_valid(vc->guest_table_user) &&
                 sim_mfn_to_page(vc->guest_table_user)->owner != d )
                problem(&a, "d%uv%u guest_table_user %#lx not own", d->domid, v, vc->guest_table_user);
        }
    }

    /* dom0's foreign mappings and all grant mappings. */
    for ( i = 0; i < sim_nr_fmaps; i++ )
        if ( sim_fmaps[i].used )
        {
            ref(&a, sim_fmaps[i].mfn, sim_fmaps[i].rw, "foreign map", i);
            if ( sim_fmaps[i].rw )
                a.wmapped[sim_fmaps[i].mfn] = 1;
        }
    for ( i = 0; i < sim_nr_gmaps; i++ )
        if ( sim_gmaps[i].used )
        {
            ref(&a, sim_gmaps[i].mfn, sim_gmaps[i].rw, "grant map", i);
            if ( sim_gmaps[i].rw )
                a.wmapped[sim_gmaps[i].mfn] = 1;
        }

    /* Compare, frame by frame. */
    for ( mfn = 0; mfn < sim_nr_frames; mfn++ )
    {
        struct page_info *pg = &sim_frame_table[mfn];
        unsigned long c = pg->count_info, t = pg->u.inuse.type_info;

        if ( page_state_is(pg, free) )
        {
            if ( pg->owner || (c & PGC_count_mask) || a.gen[mfn] || a.listed[mfn] ||
                 pg->heap_bucket == SIM_NIL )
                problem(&a, "free mfn %#lx in use (caf=%016lx owner d%u refs %u)", mfn, c,
                        sim_owner_domid(pg), a.gen[mfn]);
            continue;
        }
        if ( pg->owner == &sim_dom_xen )
        {
            if ( !(c & PGC_xen_heap) || a.listed[mfn] || a.gen[mfn] )
                problem(&a, "Xen mfn %#lx misused (caf=%016lx, %u refs)", mfn, c, a.gen[mfn]);
            continue;
        }
        if ( !pg->owner )
        {
            problem(&a, "mfn %#lx leaked: in use, no owner (caf=%016lx taf=%016lx)", mfn, c, t);
            continue;
        }
        if ( !a.listed[mfn] )
            problem(&a, "mfn %#lx owned by d%u but on no page list", mfn, pg->owner->domid);
        if ( (c & PGC_count_mask) != a.gen[mfn] )
            problem(&a, "mfn %#lx (d%u pfn %#lx): count %lu, expected %u (caf=%016lx taf=%016lx)",
                    mfn, pg->owner->domid, sim_m2p[mfn], c & PGC_count_mask, a.gen[mfn], c, t);
        if ( (t & PGT_count_mask) != a.type[mfn] )
            problem(&a, "mfn %#lx (d%u pfn %#lx): type count %lu, expected %u (taf=%016lx)",
                    mfn, pg->owner->domid, sim_m2p[mfn], t & PGT_count_mask, a.type[mfn], t);
        if ( (t & PGT_count_mask) && !(t & PGT_validated) )
            problem(&a, "mfn %#lx has type refs but is not validated (taf=%016lx)", mfn, t);
        if ( sim_is_pt_type(t) && (t & PGT_validated) && !(t & PGT_count_mask) )
            problem(&a, "mfn %#lx validated table without type refs (taf=%016lx)", mfn, t);
        if ( a.wmapped[mfn] && (t & PGT_type_mask) != PGT_writable_page )
            problem(&a, "mfn %#lx mapped writable but of type %lx", mfn,
                    (t & PGT_type_mask) >> PG_shift(3));
    }

    for ( i = 1; i < SIM_MAX_DOMAINS; i++ )
        if ( sim_domains[i] )
        {
            if ( sim_translated(sim_domains[i]) )
                audit_hvm_p2m(&a, sim_domains[i]);
            else
                audit_p2m(&a, sim_domains[i]);
        }

out:
    free(a.gen);
    free(a.type);
    free(a.listed);
    free(a.wmapped);
    return a.problems;
}
