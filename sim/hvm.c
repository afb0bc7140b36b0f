/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Translated guests (PVH, HVM): what Xen and the guest hold of one, built
 * the way Xen's toolstack and a Linux guest set one up, so that everything
 * a swap of a translated guest must get right exists here too:
 *
 *  - Xen's p2m, gfn -> frame and p2m type: RAM in two ranges around an
 *    MMIO hole (p2m_mmio_direct, no frame of the guest's), an ioreq
 *    server's page (p2m_ioreq_server: the guest's frame, which stays), and
 *    Xen's own shared_info and grant-table frames mapped at gfns of the
 *    guest (XENMAPSPACE_*: Xen-heap frames, never the guest's). The M2P
 *    maps every guest frame back to its gfn, as Xen keeps it for HVM.
 *  - The guest's page tables, in its own memory, holding gfns: a 4-level
 *    tree per address space, the kernel half (direct map of every RAM gfn,
 *    the kernel image) shared. To Xen they are plain pages.
 *  - vcpu_info registered by gfn (VCPUOP_register_vcpu_info: Xen holds a
 *    general and a writable type reference and writes it through its own
 *    mapping), the FIFO event-channel control block of each vCPU and one
 *    event-array page (map_guest_page(): the same references, Xen's writes
 *    unlogged).
 *  - With devices: console and xenstore rings the dom0 daemons map by
 *    frame, netfront's rings and buffers granted by gfn; an HVM guest's
 *    device model keeps two pages of video memory mapped and writes guest
 *    memory by DMA (map, write, unmap, XEN_DMOP_modified_memory).
 *
 * A vCPU's access goes gva -> gfn through the guest's tables, gfn -> frame
 * through the p2m (sim_hvm_walk()); guest.c adds log-dirty's write faults
 * and the TLB.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* The MMIO hole: one block of gfns whose entries name device frames. */
#define HVM_MMIO_PAGES  512

/* A new frame of the guest at @gfn, of p2m type @type. */
static int populate(struct domain *d, unsigned long gfn, int node, const uint64_t *colours,
                    uint8_t type)
{
    unsigned long mfn = sim_heap_alloc_any(node, colours, gfn);

    if ( mfn == MS_INVALID_MFN )
        return -ENOMEM;
    sim_assign_page(d, mfn);
    sim_m2p[mfn] = gfn;
    d->p2m_mfn[gfn] = mfn;
    d->p2m_type[gfn] = type;
    return 0;
}

static int build_p2m(struct domain *d, struct sim_layout *b, const struct sim_guest_config *cfg)
{
    unsigned long M = cfg->mem_bytes >> PAGE_SHIFT, lo, gfn, k;
    int node = cfg->node == MEMSWAP_NODE_ANY ? -1 : (int)cfg->node, rc;

    if ( sim_host_free_frames(node, cfg->colours) < M + 16 )
        return -ENOMEM;
    lo = ((M / 2) + 511) & ~511UL;
    d->mmio_pfn = lo;
    d->nr_mmio = HVM_MMIO_PAGES;
    d->ioreq_pfn = lo + HVM_MMIO_PAGES + (M - lo);
    d->shinfo_pfn = d->ioreq_pfn + 1;
    d->gnt_pfn = d->shinfo_pfn + 1;
    d->p2m_size = d->gnt_pfn + SIM_GNT_FRAMES;
    d->nr_ram_pfns = M;
    d->max_pages = M + 64;

    d->pfn_role = calloc(d->p2m_size, 1);
    d->p2m_mfn = malloc(d->p2m_size * sizeof(*d->p2m_mfn));
    d->p2m_type = calloc(d->p2m_size, 1);
    d->touches = calloc(d->p2m_size, sizeof(*d->touches));
    d->dm_touches = calloc(d->p2m_size, sizeof(*d->dm_touches));
    b->ram = malloc(M * sizeof(*b->ram));
    if ( !d->pfn_role || !d->p2m_mfn || !d->p2m_type || !d->touches || !d->dm_touches || !b->ram )
        return -ENOMEM;
    for ( gfn = 0; gfn < d->p2m_size; gfn++ )
        d->p2m_mfn[gfn] = MS_INVALID_MFN;

    for ( gfn = 0; gfn < d->ioreq_pfn; gfn++ )
    {
        if ( gfn >= d->mmio_pfn && gfn < d->mmio_pfn + d->nr_mmio )
        {
            /* A device's frames: beyond the host's RAM, never a guest's. */
            d->p2m_mfn[gfn] = sim_nr_frames + (gfn - d->mmio_pfn);
            d->p2m_type[gfn] = SIM_P2MT_MMIO;
            continue;
        }
        if ( (rc = populate(d, gfn, node, cfg->colours, SIM_P2MT_RAM_RW)) )
            return rc;
        b->ram[b->nr_ram++] = gfn;
    }
    if ( (rc = populate(d, d->ioreq_pfn, node, cfg->colours, SIM_P2MT_IOREQ)) )
        return rc;
    d->pfn_role[d->ioreq_pfn] = SIM_ROLE_IOREQ;
    /* XENMAPSPACE_shared_info, XENMAPSPACE_grant_table: Xen's frames. */
    d->p2m_mfn[d->shinfo_pfn] = d->shared_info_mfn;
    d->p2m_type[d->shinfo_pfn] = SIM_P2MT_RAM_RW;
    for ( k = 0; k < SIM_GNT_FRAMES; k++ )
    {
        d->p2m_mfn[d->gnt_pfn + k] = d->gnt_mfn[k];
        d->p2m_type[d->gnt_pfn + k] = SIM_P2MT_RAM_RW;
    }
    return 0;
}

/* Xen maps a guest page for itself (map_guest_page(), map_vcpu_info()). */
static int xen_map_guest_page(struct domain *d, unsigned long gfn, unsigned long *mfn)
{
    unsigned long m = sim_p2m_ram_mfn(d, gfn);
    int rc;

    if ( m == MS_INVALID_MFN )
        return -EINVAL;
    if ( (rc = sim_get_page_and_type(sim_mfn_to_page(m), d, PGT_writable_page)) )
        return rc;
    *mfn = m;
    return 0;
}

int sim_hvm_build(struct domain *d, const struct sim_guest_config *cfg)
{
    struct sim_layout lay = { .d = d }, *l = &lay;
    unsigned int a, v;
    int rc;

    /* The domain, shared_info and grant table are set up (sim_guest_build). */
    d->start_info_pfn = MS_INVALID_MFN;
    if ( (rc = build_p2m(d, l, cfg)) )
        goto out;

    rc = -ENOMEM;
    d->console_pfn = sim_layout_take(l, SIM_ROLE_CONSOLE);
    d->xenstore_pfn = sim_layout_take(l, SIM_ROLE_XENSTORE);
    d->vcpu_info_pfn = sim_layout_take(l, SIM_ROLE_VCPU_INFO);
    for ( v = 0; v < d->nr_vcpus; v++ )
        d->fifo_cb_pfn[v] = sim_layout_take(l, SIM_ROLE_FIFO);
    d->fifo_array_pfn = sim_layout_take(l, SIM_ROLE_FIFO);
    if ( sim_layout_take_direct_map(l) )
        goto out;
    sim_layout_take_spaces(l, false);
    sim_layout_take_devices(l);
    l->kimg_l3 = d->kimg_l3_pfn = sim_layout_take(l, SIM_ROLE_PT);
    if ( l->next >= l->nr_ram )
        goto out;                               /* too small for its own tables */

    /* Contents, and the tables: one L4 per address space, gfns in every PTE. */
    sim_layout_fill(l);
    memset(sim_layout_page(l, d->ioreq_pfn), 0, PAGE_SIZE);
    sim_layout_write_direct_map(l, false);
    for ( a = 0; a < d->nr_as; a++ )
        sim_layout_write_user_half(l, a, sim_layout_page(l, d->kernel_l4_pfn[a]), NULL);

    /* vCPUs: CR3 (a gfn), vcpu_info registered by gfn, FIFO control blocks. */
    for ( v = 0; v < d->nr_vcpus; v++ )
    {
        struct vcpu *vc = &d->vcpu[v];

        vc->as = v % d->nr_as;
        vc->cr3_pfn = d->kernel_l4_pfn[vc->as];
        if ( (rc = xen_map_guest_page(d, d->vcpu_info_pfn, &vc->vcpu_info_mfn)) ||
             (rc = xen_map_guest_page(d, d->fifo_cb_pfn[v], &d->fifo_cb_mfn[v])) )
            goto out;
        vc->vcpu_info_map_mfn = vc->vcpu_info_mfn;
        vc->vcpu_info_offset = 64 + 64 * v;
        if ( v < SIM_LEGACY_VCPUS )
            memcpy((unsigned char *)sim_map_frame(vc->vcpu_info_mfn) + vc->vcpu_info_offset,
                   &sim_shared_info(d)->vcpu_info[v], sizeof(struct sim_vcpu_info));
        sim_xen_write_vcpu_info(vc, false);
    }
    if ( (rc = xen_map_guest_page(d, d->fifo_array_pfn, &d->fifo_array_mfn)) )
        goto out;

    if ( cfg->with_devices )
        sim_actors_connect(d);
    rc = 0;

out:
    sim_layout_free(l);
    return rc;
}

/* domain_relinquish_resources() for a translated guest. */
void sim_hvm_teardown(struct domain *d)
{
    unsigned int v;

    sim_actors_disconnect(d);
    sim_gnt_release_domain(d);
    sim_logdirty_disable(d);
    for ( v = 0; v < d->nr_vcpus; v++ )
    {
        struct vcpu *vc = &d->vcpu[v];

        if ( vc->vcpu_info_mfn != MS_INVALID_MFN )
            sim_put_page_and_type(sim_mfn_to_page(vc->vcpu_info_mfn));
        vc->vcpu_info_mfn = vc->vcpu_info_map_mfn = MS_INVALID_MFN;
        if ( d->fifo_cb_mfn[v] != MS_INVALID_MFN )
            sim_put_page_and_type(sim_mfn_to_page(d->fifo_cb_mfn[v]));
        d->fifo_cb_mfn[v] = MS_INVALID_MFN;
    }
    if ( d->fifo_array_mfn != MS_INVALID_MFN )
        sim_put_page_and_type(sim_mfn_to_page(d->fifo_array_mfn));
    d->fifo_array_mfn = MS_INVALID_MFN;
    sim_guest_release_memory(d);
}
