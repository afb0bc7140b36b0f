/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Everyone who touches a guest's memory besides its vCPUs: the causes of P1
 * (writes while paused) and P3 (dead I/O after a swap).
 *
 *  - Xen writes every vCPU's vcpu_info (time, event delivery) through its
 *    own mapping of the registered frame, paused or not.
 *  - xenconsoled and xenstored foreign-map the console and xenstore rings
 *    once, at introduction, from the MFNs in start_info (as the real
 *    daemons read ring-ref once), and keep using those mappings.
 *  - netback grant-maps the netfront tx/rx rings (by grant reference) and
 *    grant-copies packets to and from the buffers the guest granted; the
 *    grant entries hold MFNs.
 *  - A running guest uses only its own page tables (through a TLB) to reach
 *    its rings, buffers and data: after a swap it sees what its tables say.
 *
 * Every exchange is verified at the receiving end and counted in the
 * domain's io stats; anything arriving wrong counts as an error.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sim_internal.h"

/* xencons_interface */
#define CONS_OUT_OFF    1024
#define CONS_OUT_SIZE   2048
#define CONS_OUT_CONS   3080
#define CONS_OUT_PROD   3084
/* xenstore_domain_interface */
#define XS_RING_SIZE    1024
#define XS_REQ_OFF      0
#define XS_RSP_OFF      1024
#define XS_REQ_CONS     2048
#define XS_REQ_PROD     2052
#define XS_RSP_CONS     2056
#define XS_RSP_PROD     2060
#define XS_READ         2
struct xs_hdr { uint32_t type, req_id, tx_id, len; };

#define GREF_TX_RING    2
#define GREF_RX_RING    3
#define GREF_RX_BUF0    8
#define GREF_TX_BUF0    24

#define U32(p, off)     (*(volatile uint32_t *)((unsigned char *)(p) + (off)))

/* ---- Xen ---------------------------------------------------------------- */

static struct sim_vcpu_info *xen_vcpu_info(struct vcpu *v)
{
    struct domain *d = v->domain;

    if ( v->vcpu_info_map_mfn != MS_INVALID_MFN )
        return (struct sim_vcpu_info *)((unsigned char *)sim_map_frame(v->vcpu_info_map_mfn) +
                                        v->vcpu_info_offset);
    if ( v->vcpu_id < SIM_LEGACY_VCPUS && sim_shared_info(d) )
        return &sim_shared_info(d)->vcpu_info[v->vcpu_id];
    return NULL;
}

void sim_xen_write_vcpu_info(struct vcpu *v, bool deliver_event)
{
    struct sim_vcpu_info *vi = xen_vcpu_info(v);

    if ( !vi )
        return;
    /* The pvclock protocol: odd version while updating. */
    v->system_time += 1000000;
    vi->time.version = ++v->time_version;
    vi->time.tsc_timestamp = v->system_time * 3;
    vi->time.system_time = v->system_time;
    vi->time.tsc_to_system_mul = 0x55555555;
    vi->time.tsc_shift = -1;
    vi->time.version = ++v->time_version;
    if ( deliver_event )
    {
        vi->evtchn_pending_sel |= 1;
        vi->evtchn_upcall_pending = 1;
        v->events_unacked |= 1;
    }
}

/* A timer VIRQ on a rotating port: events accumulate while the vCPU is
 * paused and are only cleared by the guest, so a lost one is detectable. */
static void xen_timer_event(struct vcpu *v)
{
    struct sim_vcpu_info *vi = xen_vcpu_info(v);
    uint64_t bit = 1ULL << (1 + sim_step_count % 63);

    if ( !vi )
        return;
    vi->evtchn_pending_sel |= bit;
    vi->evtchn_upcall_pending = 1;
    v->events_unacked |= bit;
}

/*
 * FIFO event channels: Xen links an event into the array and marks the
 * control block's queue ready, through its own mappings (unlogged). The
 * count in word 0 of the array page lets the guest see whether it reads
 * the frame Xen writes.
 */
static void xen_fifo_event(struct domain *d)
{
    uint64_t *array, *cb;

    if ( d->fifo_array_mfn == MS_INVALID_MFN )
        return;
    array = sim_map_frame(d->fifo_array_mfn);
    array[0] = ++d->fifo_raised;
    if ( d->fifo_cb_mfn[0] != MS_INVALID_MFN )
    {
        cb = sim_map_frame(d->fifo_cb_mfn[0]);
        cb[0] |= 1;
    }
}

void sim_xen_step(void)
{
    unsigned int i, v;

    for ( i = 1; i < SIM_MAX_DOMAINS; i++ )
    {
        struct domain *d = sim_domains[i];

        if ( !d || d->dying )
            continue;
        xen_fifo_event(d);
        for ( v = 0; v < d->nr_vcpus; v++ )
        {
            sim_xen_write_vcpu_info(&d->vcpu[v], false);
            /* A descheduled (paused) vCPU's timers do not fire. */
            if ( !d->pause_count )
                xen_timer_event(&d->vcpu[v]);
        }
    }
}

/* ---- packets ------------------------------------------------------------- */

static unsigned int pkt_size(uint32_t seq)
{
    return 64 + (seq * 37) % 1400;
}

static void pkt_fill(unsigned char *buf, unsigned int domid, char dir, uint32_t seq, unsigned int size)
{
    uint64_t key = ((uint64_t)domid << 40) ^ ((uint64_t)(unsigned char)dir << 32) ^ seq;
    unsigned int i;

    for ( i = 0; i < size; i += 8 )
    {
        uint64_t w = sim_mix64(key + i);
        unsigned int n = size - i < 8 ? size - i : 8;

        memcpy(buf + i, &w, n);
    }
}

static bool pkt_check(const unsigned char *buf, unsigned int domid, char dir, uint32_t seq, unsigned int size)
{
    unsigned char want[PAGE_SIZE];

    pkt_fill(want, domid, dir, seq, size);
    return !memcmp(buf, want, size);
}

/* ---- connect / disconnect ------------------------------------------------ */

void sim_actors_connect(struct domain *d)
{
    unsigned long con_ref, store_ref;
    struct sim_net_sring *rx;
    unsigned int i;

    if ( !d->with_devices || d->be.connected )
        return;
    /*
     * The rings' frames as the toolstack knows them: a PV guest's from
     * start_info (MFNs), a translated guest's HVM params (gfns).
     */
    if ( sim_translated(d) )
    {
        con_ref = d->console_pfn;
        store_ref = d->xenstore_pfn;
    }
    else
    {
        const struct sim_start_info *st =
            sim_map_frame((unsigned long)sim_guest_p2m_entry(d, d->start_info_pfn));

        con_ref = st->console_mfn;
        store_ref = st->store_mfn;
    }

    /* Toolstack: reserved grant entries (xc_dom_gnttab_seed). */
    sim_gnt_grant(d, SIM_GNTTAB_CONSOLE, 0, con_ref, false);
    sim_gnt_grant(d, SIM_GNTTAB_XENSTORE, 0, store_ref, false);

    /* netfront: grant rings and buffers (frame = pfn_to_mfn(pfn), or the gfn). */
    d->gref_tx_ring = GREF_TX_RING;
    d->gref_rx_ring = GREF_RX_RING;
    d->gref_rx_buf0 = GREF_RX_BUF0;
    d->gref_tx_buf0 = GREF_TX_BUF0;
    sim_gnt_grant(d, GREF_TX_RING, 0, sim_guest_frame_ref(d, d->net_tx_ring_pfn), false);
    sim_gnt_grant(d, GREF_RX_RING, 0, sim_guest_frame_ref(d, d->net_rx_ring_pfn), false);
    for ( i = 0; i < SIM_NET_BUFS; i++ )
    {
        sim_gnt_grant(d, GREF_RX_BUF0 + i, 0, sim_guest_frame_ref(d, d->net_rx_buf_pfn[i]), false);
        sim_gnt_grant(d, GREF_TX_BUF0 + i, 0, sim_guest_frame_ref(d, d->net_tx_buf_pfn[i]), true);
    }
    rx = sim_guest_va_ptr(d, sim_pfn_va(d->net_rx_ring_pfn), true);
    if ( rx )
    {
        for ( i = 0; i < SIM_NET_BUFS; i++ )
        {
            struct sim_net_req *r = &rx->ring[i % SIM_NET_RING].req;

            r->gref = GREF_RX_BUF0 + i;
            r->id = (uint16_t)i;
        }
        d->g.rx_req_prod = SIM_NET_BUFS;
        rx->req_prod = SIM_NET_BUFS;
    }

    /* dom0: xenconsoled and xenstored map the rings once (a translated
     * guest's through its p2m); netback maps the shared rings by grant
     * reference; an HVM guest's device model keeps its video memory mapped. */
    d->be.con_mfn = sim_grant_frame_mfn(d, con_ref);
    d->be.store_mfn = sim_grant_frame_mfn(d, store_ref);
    d->be.con_map = sim_fmap_map(d->domid, d->be.con_mfn, true);
    d->be.store_map = sim_fmap_map(d->domid, d->be.store_mfn, true);
    d->be.tx_ring_map = sim_gnt_map(0, d->domid, GREF_TX_RING, true);
    d->be.rx_ring_map = sim_gnt_map(0, d->domid, GREF_RX_RING, true);
    if ( d->type == SIM_GUEST_HVM )
        for ( i = 0; i < 2; i++ )
            d->dm_map[i] = sim_fmap_map(d->domid, sim_p2m_ram_mfn(d, d->vram_pfn[i]), true);
    d->be.connected = true;
}

void sim_actors_disconnect(struct domain *d)
{
    if ( !d->be.connected )
        return;
    sim_fmap_unmap(d->be.con_map);
    sim_fmap_unmap(d->be.store_map);
    sim_gnt_unmap(d->be.tx_ring_map);
    sim_gnt_unmap(d->be.rx_ring_map);
    sim_fmap_unmap(d->dm_map[0]);
    sim_fmap_unmap(d->dm_map[1]);
    d->dm_map[0] = d->dm_map[1] = -1;
    d->be.con_map = d->be.store_map = d->be.tx_ring_map = d->be.rx_ring_map = -1;
    d->be.connected = false;
}

/* ---- dom0 side ----------------------------------------------------------- */

static void xenconsoled(struct domain *d)
{
    unsigned char *ring = sim_fmap_ptr(d->be.con_map);
    uint32_t cons, prod;

    if ( !ring )
        return;
    cons = U32(ring, CONS_OUT_CONS);
    prod = U32(ring, CONS_OUT_PROD);
    if ( prod - cons > CONS_OUT_SIZE )
    {
        d->io.io_errors++;
        U32(ring, CONS_OUT_CONS) = prod;
        return;
    }
    for ( ; cons != prod; cons++ )
    {
        char c = (char)ring[CONS_OUT_OFF + (cons % CONS_OUT_SIZE)];
        struct sim_backend_state *be = &d->be;

        if ( c != '\n' )
        {
            if ( be->con_len < sizeof(be->con_line) - 1 )
                be->con_line[be->con_len++] = c;
            continue;
        }
        be->con_line[be->con_len] = 0;
        {
            unsigned int domid;
            unsigned long long seq;

            if ( sscanf(be->con_line, "hb %u %llu", &domid, &seq) == 2 && domid == d->domid &&
                 seq == be->con_expect )
                d->io.console_lines++;
            else
                d->io.io_errors++;
            if ( sscanf(be->con_line, "hb %u %llu", &domid, &seq) == 2 )
                be->con_expect = seq + 1;
        }
        be->con_len = 0;
    }
    U32(ring, CONS_OUT_CONS) = prod;
}

static void ring_read(const unsigned char *base, uint32_t idx, void *dst, unsigned int len)
{
    unsigned int i;

    for ( i = 0; i < len; i++ )
        ((unsigned char *)dst)[i] = base[(idx + i) % XS_RING_SIZE];
}

static void ring_write(unsigned char *base, uint32_t idx, const void *src, unsigned int len)
{
    unsigned int i;

    for ( i = 0; i < len; i++ )
        base[(idx + i) % XS_RING_SIZE] = ((const unsigned char *)src)[i];
}

static void xenstored(struct domain *d)
{
    unsigned char *ring = sim_fmap_ptr(d->be.store_map);

    if ( !ring )
        return;
    for ( ;; )
    {
        uint32_t cons = U32(ring, XS_REQ_CONS), prod = U32(ring, XS_REQ_PROD);
        uint32_t rprod = U32(ring, XS_RSP_PROD), rcons = U32(ring, XS_RSP_CONS);
        struct xs_hdr h, r;
        char payload[64];

        if ( prod - cons < sizeof(h) )
            return;
        ring_read(ring + XS_REQ_OFF, cons, &h, sizeof(h));
        if ( h.len > sizeof(payload) || prod - cons > XS_RING_SIZE )
        {
            d->io.io_errors++;
            U32(ring, XS_REQ_CONS) = prod;
            return;
        }
        if ( prod - cons < sizeof(h) + h.len )
            return;
        if ( XS_RING_SIZE - (rprod - rcons) < sizeof(r) + SIM_NAME_LEN )
            return;
        ring_read(ring + XS_REQ_OFF, cons + sizeof(h), payload, h.len);
        U32(ring, XS_REQ_CONS) = cons + sizeof(h) + h.len;
        r = (struct xs_hdr){ .type = XS_READ, .req_id = h.req_id, .tx_id = 0,
                             .len = (uint32_t)strlen(d->name) + 1 };
        ring_write(ring + XS_RSP_OFF, rprod, &r, sizeof(r));
        ring_write(ring + XS_RSP_OFF, rprod + sizeof(r), d->name, r.len);
        U32(ring, XS_RSP_PROD) = rprod + sizeof(r) + r.len;
    }
}

static void netback(struct domain *d)
{
    struct sim_net_sring *tx = sim_gnt_map_ptr(d->be.tx_ring_map);
    struct sim_net_sring *rx = sim_gnt_map_ptr(d->be.rx_ring_map);
    struct sim_backend_state *be = &d->be;
    unsigned char buf[PAGE_SIZE];
    bool notify = false;
    unsigned int n;

    if ( tx )
    {
        uint32_t prod = tx->req_prod;

        if ( prod - be->tx_req_cons > SIM_NET_RING )
            be->tx_req_cons = prod, d->io.io_errors++;
        while ( be->tx_req_cons != prod )
        {
            struct sim_net_req req = tx->ring[be->tx_req_cons++ % SIM_NET_RING].req;
            struct sim_net_rsp *rsp = &tx->ring[be->tx_rsp_prod++ % SIM_NET_RING].rsp;
            int rc = req.size <= PAGE_SIZE ?
                     sim_gnt_copy(d->domid, req.gref, 0, buf, req.size, false) : -EINVAL;

            if ( !rc && req.seq == be->tx_expect_seq && req.size == pkt_size(req.seq) &&
                 pkt_check(buf, d->domid, 'T', req.seq, req.size) )
                d->io.net_tx_ok++;
            else
                d->io.io_errors++;
            be->tx_expect_seq = req.seq + 1;
            rsp->id = req.id;
            rsp->status = rc ? -1 : 0;
            rsp->seq = req.seq;
            tx->rsp_prod = be->tx_rsp_prod;
            notify = true;
        }
    }
    if ( rx )
    {
        for ( n = 0; n < 2 && be->rx_req_cons != rx->req_prod; n++ )
        {
            struct sim_net_req req = rx->ring[be->rx_req_cons++ % SIM_NET_RING].req;
            struct sim_net_rsp *rsp = &rx->ring[be->rx_rsp_prod++ % SIM_NET_RING].rsp;
            unsigned int size = pkt_size(be->rx_seq);
            int rc;

            pkt_fill(buf, d->domid, 'R', be->rx_seq, size);
            rc = sim_gnt_copy(d->domid, req.gref, 0, buf, size, true);
            if ( rc )
                d->io.io_errors++;
            rsp->id = req.id;
            rsp->status = rc ? -1 : (int16_t)size;
            rsp->seq = be->rx_seq++;
            rsp->size = size;
            rx->rsp_prod = be->rx_rsp_prod;
            notify = true;
        }
    }
    if ( notify && d->nr_vcpus )
        sim_xen_write_vcpu_info(&d->vcpu[0], true);   /* event channel upcall */
}

/* ---- the guest ------------------------------------------------------------ */

/*
 * The guest writes word 1 of data page @pfn through its own page tables,
 * after checking word 0 is the page's: a write through a stale translation
 * lands where it should not (and shows in sim_guest_verify()).
 */
bool sim_guest_touch_pfn(struct domain *d, unsigned long pfn)
{
    uint64_t *p = sim_guest_va_ptr(d, sim_pfn_va(pfn), true);

    if ( !p || p[0] != sim_data_word0(d, pfn) )
    {
        d->io.io_errors++;
        return false;
    }
    p[1]++;
    d->touches[pfn]++;
    return true;
}

/*
 * @n writes to data pages (fewer if the draws miss data pages): half of
 * them to a hot set of SIM_HOT_PAGES pages the guest keeps writing (and so
 * keeps translations of), the others anywhere.
 */
#define SIM_HOT_PAGES 32
static void guest_touch(struct domain *d, unsigned long n)
{
    unsigned long k, tries;

    for ( k = 0, tries = 0; k < n && tries < 4 * n + 16; tries++ )
    {
        uint64_t r = sim_rand(&d->g.rng);
        unsigned long pfn = (r & 1) && d->p2m_size > 1024 + SIM_HOT_PAGES ?
                            1024 + (unsigned long)((r >> 1) % SIM_HOT_PAGES) :
                            (unsigned long)((r >> 1) % d->p2m_size);

        if ( d->pfn_role[pfn] != SIM_ROLE_DATA )
            continue;
        sim_guest_touch_pfn(d, pfn);
        k++;
    }
}

int sim_guest_dirty_pages(unsigned int domid, unsigned long n)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d || d->is_dom0 )
        return -ESRCH;
    if ( d->pause_count || d->dying )
        return -EBUSY;
    sim_current_domid = d->domid;
    guest_touch(d, n);
    sim_current_domid = 0;
    return 0;
}

int sim_domain_set_dirty_rate(unsigned int domid, unsigned long pages_per_step)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d || d->is_dom0 )
        return -ESRCH;
    d->dirty_rate = pages_per_step;
    return 0;
}

long sim_guest_verify(unsigned int domid, unsigned long *first_bad)
{
    struct domain *d = sim_domain_lookup(domid);
    unsigned long pfn;
    long bad = 0;

    if ( !d || d->is_dom0 )
        return -ESRCH;
    for ( pfn = 0; pfn < d->p2m_size; pfn++ )
    {
        unsigned long mfn;
        const uint64_t *w;
        uint64_t x, step;
        unsigned int i;
        bool ok;

        if ( d->pfn_role[pfn] != SIM_ROLE_DATA )
            continue;
        mfn = sim_guest_translate(d, sim_pfn_va(pfn));
        x = sim_data_word0(d, pfn);
        step = (x >> 7) | 1;
        ok = mfn != MS_INVALID_MFN;
        w = ok ? sim_map_frame(mfn) : NULL;
        for ( i = 0; ok && i < 512; i++ )
            ok = w[i] == x + i * step + (i == 1 ? d->touches[pfn] : 0) +
                         (i == 2 ? d->dm_touches[pfn] : 0);
        if ( !ok && !bad++ && first_bad )
            *first_bad = pfn;
    }
    return bad;
}

/*
 * An HVM guest's device model (QEMU in dom0): DMA into a data page (map the frame the p2m
 * names, write, unmap, XEN_DMOP_modified_memory so that log-dirty knows),
 * and a frame of video memory through its lasting mapping.
 */
static void device_model(struct domain *d)
{
    unsigned long pfn = (unsigned long)(sim_rand(&d->g.rng) % d->p2m_size), mfn;
    uint64_t *vram = sim_fmap_ptr(d->dm_map[0]);
    int id;

    if ( vram )
        vram[0]++;
    if ( d->pfn_role[pfn] != SIM_ROLE_DATA || (mfn = sim_p2m_ram_mfn(d, pfn)) == MS_INVALID_MFN )
        return;
    if ( (id = sim_fmap_map(d->domid, mfn, true)) < 0 )
    {
        d->io.io_errors++;
        return;
    }
    ((uint64_t *)sim_fmap_ptr(id))[2]++;
    d->dm_touches[pfn]++;
    d->io.dm_writes++;
    sim_fmap_unmap(id);
    sim_paging_mark_pfn_dirty(d, pfn);
}

/*
 * The guest keeps using what it has translations cached for: every data
 * page its TLB maps must still be that page (a translation left stale by a
 * swap reads another frame, or a scrubbed one).
 */
static void guest_use_tlb(struct domain *d)
{
    unsigned int k;

    for ( k = 0; k < SIM_TLB_ENTRIES; k++ )
    {
        const struct sim_tlb_entry *t = &d->tlb[k];
        uint64_t va = t->vpage << PAGE_SHIFT;
        unsigned long pfn;

        if ( !t->valid || va < SIM_GUEST_PAGE_OFFSET )
            continue;
        pfn = (unsigned long)((va - SIM_GUEST_PAGE_OFFSET) >> PAGE_SHIFT);
        if ( pfn >= d->p2m_size || d->pfn_role[pfn] != SIM_ROLE_DATA )
            continue;
        if ( *(const uint64_t *)sim_map_frame(t->mfn) != sim_data_word0(d, pfn) )
            d->io.io_errors++;
    }
}

/* The guest's FIFO upcall: it reads the event array Xen writes. */
static void guest_fifo(struct domain *d)
{
    const uint64_t *array;

    if ( d->fifo_array_mfn == MS_INVALID_MFN )
        return;
    array = sim_guest_va_ptr(d, sim_pfn_va(d->fifo_array_pfn), false);
    if ( array && array[0] == d->fifo_raised )
        d->io.fifo_events++;
    else
        d->io.io_errors++;
}

static void guest_console(struct domain *d)
{
    unsigned char *ring = sim_guest_va_ptr(d, sim_pfn_va(d->console_pfn), true);
    char line[64];
    uint32_t prod, cons;
    int len, i;

    if ( !ring )
    {
        d->io.io_errors++;
        return;
    }
    prod = U32(ring, CONS_OUT_PROD);
    cons = U32(ring, CONS_OUT_CONS);
    len = snprintf(line, sizeof(line), "hb %u %llu\n", d->domid, (unsigned long long)d->g.hb_seq);
    if ( CONS_OUT_SIZE - (prod - cons) < (uint32_t)len )
        return;                     /* ring full: nobody is reading */
    for ( i = 0; i < len; i++ )
        ring[CONS_OUT_OFF + ((prod + i) % CONS_OUT_SIZE)] = (unsigned char)line[i];
    U32(ring, CONS_OUT_PROD) = prod + len;
    d->g.hb_seq++;
}

static void guest_xenstore(struct domain *d)
{
    unsigned char *ring = sim_guest_va_ptr(d, sim_pfn_va(d->xenstore_pfn), true);
    struct xs_hdr h;
    char path[48];

    if ( !ring )
    {
        d->io.io_errors++;
        return;
    }
    if ( d->g.xs_req_id )
    {
        uint32_t cons = U32(ring, XS_RSP_CONS), prod = U32(ring, XS_RSP_PROD);
        char payload[64];

        if ( prod - cons < sizeof(h) )
            return;
        ring_read(ring + XS_RSP_OFF, cons, &h, sizeof(h));
        if ( h.len > sizeof(payload) || prod - cons < sizeof(h) + h.len )
        {
            if ( h.len > sizeof(payload) )
            {
                d->io.io_errors++;
                U32(ring, XS_RSP_CONS) = prod;
                d->g.xs_req_id = 0;
            }
            return;
        }
        ring_read(ring + XS_RSP_OFF, cons + sizeof(h), payload, h.len);
        U32(ring, XS_RSP_CONS) = cons + sizeof(h) + h.len;
        payload[sizeof(payload) - 1] = 0;
        if ( h.req_id == d->g.xs_req_id && h.type == XS_READ && !strcmp(payload, d->name) )
            d->io.xenstore_replies++;
        else
            d->io.io_errors++;
        d->g.xs_req_id = 0;
    }
    {
        uint32_t prod = U32(ring, XS_REQ_PROD), cons = U32(ring, XS_REQ_CONS);

        h.len = (uint32_t)snprintf(path, sizeof(path), "/local/domain/%u/name", d->domid) + 1;
        if ( XS_RING_SIZE - (prod - cons) < sizeof(h) + h.len )
            return;
        h.type = XS_READ;
        h.req_id = ++d->g.xs_next_id;
        h.tx_id = 0;
        ring_write(ring + XS_REQ_OFF, prod, &h, sizeof(h));
        ring_write(ring + XS_REQ_OFF, prod + sizeof(h), path, h.len);
        U32(ring, XS_REQ_PROD) = prod + sizeof(h) + h.len;
        d->g.xs_req_id = h.req_id;
    }
}

/* The upcall handler: acknowledge what is pending on every vCPU; returns
 * the pending selector vCPU 0 saw (bit 0: the netfront port). */
static uint64_t guest_events(struct domain *d)
{
    uint64_t sel0 = 0;
    unsigned int i;

    for ( i = 0; i < d->nr_vcpus; i++ )
    {
        struct vcpu *v = &d->vcpu[i];
        struct sim_vcpu_info *vi;
        uint64_t sel;

        if ( v->vcpu_info_mfn == MS_INVALID_MFN )
            continue;
        vi = sim_guest_va_ptr(d, sim_pfn_va(d->vcpu_info_pfn) + v->vcpu_info_offset, true);
        if ( !vi )
        {
            d->io.io_errors++;
            continue;
        }
        if ( !vi->evtchn_upcall_pending )
            continue;
        vi->evtchn_upcall_pending = 0;
        sel = vi->evtchn_pending_sel;
        vi->evtchn_pending_sel = 0;
        v->events_unacked &= ~sel;
        if ( i == 0 )
            sel0 = sel;
    }
    return sel0;
}

static void guest_net(struct domain *d, bool rx_event)
{
    struct sim_net_sring *tx = sim_guest_va_ptr(d, sim_pfn_va(d->net_tx_ring_pfn), true);
    struct sim_net_sring *rx = sim_guest_va_ptr(d, sim_pfn_va(d->net_rx_ring_pfn), true);
    unsigned int i;

    if ( !tx || !rx )
    {
        d->io.io_errors++;
        return;
    }
    /* tx completions, then one new packet if a buffer is free. */
    while ( d->g.tx_rsp_cons != tx->rsp_prod )
    {
        struct sim_net_rsp rsp = tx->ring[d->g.tx_rsp_cons++ % SIM_NET_RING].rsp;

        if ( rsp.id < SIM_NET_BUFS )
            d->g.tx_busy &= ~(1u << rsp.id);
        if ( rsp.status )
            d->io.io_errors++;
    }
    for ( i = 0; i < SIM_NET_BUFS; i++ )
        if ( !(d->g.tx_busy & (1u << i)) )
            break;
    if ( i < SIM_NET_BUFS && d->g.tx_req_prod - d->g.tx_rsp_cons < SIM_NET_RING )
    {
        unsigned char *buf = sim_guest_va_ptr(d, sim_pfn_va(d->net_tx_buf_pfn[i]), true);
        struct sim_net_req *r = &tx->ring[d->g.tx_req_prod % SIM_NET_RING].req;

        if ( buf )
        {
            r->gref = d->gref_tx_buf0 + i;
            r->id = (uint16_t)i;
            r->seq = d->g.tx_seq;
            r->size = (uint16_t)pkt_size(d->g.tx_seq);
            pkt_fill(buf, d->domid, 'T', d->g.tx_seq, r->size);
            d->g.tx_seq++;
            d->g.tx_busy |= 1u << i;
            tx->req_prod = ++d->g.tx_req_prod;
        }
        else
            d->io.io_errors++;
    }

    /* rx: only on an event upcall, as netfront's interrupt handler. */
    if ( !rx_event )
        return;
    while ( d->g.rx_rsp_cons != rx->rsp_prod )
    {
        struct sim_net_rsp rsp = rx->ring[d->g.rx_rsp_cons++ % SIM_NET_RING].rsp;
        struct sim_net_req *r;
        unsigned char *buf;

        if ( rsp.id >= SIM_NET_BUFS )
        {
            d->io.io_errors++;
            continue;
        }
        buf = sim_guest_va_ptr(d, sim_pfn_va(d->net_rx_buf_pfn[rsp.id]), false);
        if ( rsp.status > 0 && buf && rsp.seq == d->g.rx_expect_seq &&
             (unsigned int)rsp.status == pkt_size(rsp.seq) &&
             pkt_check(buf, d->domid, 'R', rsp.seq, (unsigned int)rsp.status) )
            d->io.net_rx_ok++;
        else
            d->io.io_errors++;
        d->g.rx_expect_seq = rsp.seq + 1;
        /* Give the buffer back. */
        r = &rx->ring[d->g.rx_req_prod % SIM_NET_RING].req;
        r->gref = d->gref_rx_buf0 + rsp.id;
        r->id = rsp.id;
        rx->req_prod = ++d->g.rx_req_prod;
    }
}

/* ---- the guest forks (Linux PV dup_mmap / exit_mmap) ---------------------- */

#define FORK_PTE_UTABLE (SIM_PTE_P | SIM_PTE_RW | SIM_PTE_US | SIM_PTE_A)
#define FORK_PTE_COW    (SIM_PTE_P | SIM_PTE_US | SIM_PTE_A | SIM_PTE_NX)  /* read-only */
#define FORK_IDX(va, shift) ((unsigned int)(((va) >> (shift)) & 511))

void sim_fork_init(struct domain *d)
{
    struct sim_fork *f = &d->fork;
    unsigned int i;

    memset(f, 0, sizeof(*f));
    for ( i = 0; i < SIM_FORK_POOL; i++ )
        f->pool[i] = MS_INVALID_MFN;
    f->pgd = f->l3 = f->l2 = f->l1 = MS_INVALID_MFN;
    f->next_start = 1;
}

/* pfn -> mfn as Linux's pfn_to_mfn() reads it: through its own P2M. */
static unsigned long fork_mfn(struct domain *d, unsigned long pfn)
{
    uint64_t e = sim_guest_p2m_entry(d, pfn);

    return e == SIM_P2M_INVALID || (e & (SIM_P2M_IDENTITY | SIM_P2M_FOREIGN)) ?
           MS_INVALID_MFN : (unsigned long)e;
}

/* A plain write access to one of its pages, through its direct map. */
static uint64_t *fork_page(struct domain *d, unsigned long pfn)
{
    return sim_guest_va_ptr(d, sim_pfn_va(pfn), true);
}

static void fork_error(struct domain *d, const char *what, int rc)
{
    sim_log("d%u: fork: %s (%d)", d->domid, what, rc);
    d->io.pt_errors++;
}

/* A zeroed page from the pool, or MS_INVALID_MFN. */
static unsigned long fork_alloc(struct domain *d)
{
    struct sim_fork *f = &d->fork;
    unsigned int i;
    uint64_t *p;

    for ( i = 0; i < SIM_FORK_POOL; i++ )
        if ( f->pool[i] != MS_INVALID_MFN && !f->pool_used[i] )
            break;
    if ( i == SIM_FORK_POOL || !(p = fork_page(d, f->pool[i])) )
        return MS_INVALID_MFN;
    memset(p, 0, PAGE_SIZE);
    f->pool_used[i] = true;
    return f->pool[i];
}

/*
 * Back to the pool, zeroed. Linux frees page-table pages without clearing
 * them (unless init_on_free=1): a freed pgd keeps its kernel half until the
 * page is reused. Zeroing here keeps the model from dragging stale pgds
 * around; a stale one would only make a swap give up, never break it.
 */
static void fork_free(struct domain *d, unsigned long *pfn)
{
    struct sim_fork *f = &d->fork;
    unsigned int i;
    uint64_t *p;

    if ( *pfn == MS_INVALID_MFN )
        return;
    if ( (p = fork_page(d, *pfn)) )
        memset(p, 0, PAGE_SIZE);
    else
        fork_error(d, "freeing a table page it cannot write", -EFAULT);
    for ( i = 0; i < SIM_FORK_POOL; i++ )
        if ( f->pool[i] == *pfn )
            f->pool_used[i] = false;
    *pfn = MS_INVALID_MFN;
}

/* xen_pgd_pin: every table of the tree read-only in the direct map, then
 * MMUEXT_PIN_L4_TABLE, which validates the whole tree. */
static int fork_pin(struct domain *d)
{
    struct sim_fork *f = &d->fork;
    unsigned long t[4] = { f->l1, f->l2, f->l3, f->pgd };
    unsigned int i;
    int rc;

    for ( i = 0; i < 4; i++ )
        if ( t[i] != MS_INVALID_MFN && (rc = sim_guest_directmap_rw(d, t[i], false)) )
            return rc;
    return sim_pin_table(d, fork_mfn(d, f->pgd), 4);
}

/* xen_pgd_unpin: MMUEXT_UNPIN_TABLE, then the pages writable again. */
static int fork_unpin(struct domain *d)
{
    struct sim_fork *f = &d->fork;
    unsigned long t[4] = { f->pgd, f->l3, f->l2, f->l1 };
    unsigned int i;
    int rc = sim_unpin_table(d, fork_mfn(d, f->pgd));

    for ( i = 0; i < 4; i++ )
        if ( t[i] != MS_INVALID_MFN )
        {
            int r = sim_guest_directmap_rw(d, t[i], true);

            rc = rc ? rc : r;
        }
    return rc;
}

/* The child is given up (the guest "crashed" it): tables back to the pool. */
static void fork_abandon(struct domain *d)
{
    struct sim_fork *f = &d->fork;
    unsigned long t[4] = { f->pgd, f->l3, f->l2, f->l1 };
    unsigned int i;

    for ( i = 0; i < 4; i++ )
        if ( t[i] != MS_INVALID_MFN )
            sim_guest_directmap_rw(d, t[i], true);
    fork_free(d, &f->l1);
    fork_free(d, &f->l2);
    fork_free(d, &f->l3);
    fork_free(d, &f->pgd);
    f->stage = SIM_FORK_IDLE;
}

/* A new table under @parent_pfn[@idx]: the entry holds its MFN. */
static bool fork_add_table(struct domain *d, unsigned long *pfn, unsigned long parent_pfn,
                           unsigned int idx)
{
    uint64_t *parent = fork_page(d, parent_pfn);
    unsigned long mfn;

    *pfn = fork_alloc(d);
    mfn = *pfn == MS_INVALID_MFN ? MS_INVALID_MFN : fork_mfn(d, *pfn);
    if ( !parent || mfn == MS_INVALID_MFN )
        return false;
    parent[idx] = sim_pte(mfn, FORK_PTE_UTABLE);
    return true;
}

/* One stage of the child's life; returns false if the guest gave it up. */
static bool fork_advance(struct domain *d)
{
    struct sim_fork *f = &d->fork;
    const uint64_t va = SIM_GUEST_USER_VA;
    struct vcpu *v = &d->vcpu[f->vcpu];
    uint64_t *p;
    unsigned int i;
    int rc;

    switch ( f->stage )
    {
    case SIM_FORK_IDLE:
    {
        /* pgd_alloc -> pgd_ctor: clone_pgd_range() of the kernel half. */
        const uint64_t *kl4 = sim_guest_va_ptr(d, sim_pfn_va(d->kernel_l4_pfn[0]), false);

        f->vcpu = d->nr_vcpus - 1;
        f->pgd = fork_alloc(d);
        if ( f->pgd == MS_INVALID_MFN || !kl4 || !(p = fork_page(d, f->pgd)) )
            goto fail;
        memcpy(p + SIM_LINUX_KERNEL_PGD_FIRST, kl4 + SIM_LINUX_KERNEL_PGD_FIRST,
               (512 - SIM_LINUX_KERNEL_PGD_FIRST) * sizeof(*p));
        f->stage = SIM_FORK_PGD;
        return true;
    }
    case SIM_FORK_PGD:                  /* dup_mmap -> copy_page_range */
        if ( !fork_add_table(d, &f->l3, f->pgd, FORK_IDX(va, 39)) )
            goto fail;
        f->stage = SIM_FORK_L3;
        return true;
    case SIM_FORK_L3:
        if ( !fork_add_table(d, &f->l2, f->l3, FORK_IDX(va, 30)) )
            goto fail;
        f->stage = SIM_FORK_L2;
        return true;
    case SIM_FORK_L2:
        if ( !fork_add_table(d, &f->l1, f->l2, FORK_IDX(va, 21)) )
            goto fail;
        f->stage = SIM_FORK_L1;
        return true;
    case SIM_FORK_L1:
    case SIM_FORK_PTES_LO:
    {
        /* The parent's user pages, copy-on-write: read-only in the child. */
        unsigned int first = f->stage == SIM_FORK_L1 ? 0 : SIM_USER_PAGES / 2;

        if ( !(p = fork_page(d, f->l1)) )
            goto fail;
        for ( i = first; i < first + SIM_USER_PAGES / 2; i++ )
        {
            unsigned long mfn = fork_mfn(d, d->user_pfn[0][i]);

            if ( mfn == MS_INVALID_MFN )
                goto fail;
            p[FORK_IDX(va, 12) + i] = sim_pte(mfn, FORK_PTE_COW);
        }
        f->stage++;
        return true;
    }
    case SIM_FORK_PTES_HI:              /* xen_dup_mmap: pin the new pgd */
        if ( (rc = fork_pin(d)) )
        {
            fork_error(d, "pinning the child's pgd failed", rc);
            fork_abandon(d);
            return false;
        }
        f->stage = SIM_FORK_PINNED;
        return true;
    case SIM_FORK_PINNED:
        /* The child runs: CR3 = its pgd; it reads its pages through it. */
        if ( (rc = sim_set_guest_table(v, fork_mfn(d, f->pgd), false)) )
        {
            fork_error(d, "switching to the child's pgd failed", rc);
            f->stage = SIM_FORK_RUNNING;    /* torn down as usual */
            return false;
        }
        for ( i = 0; i < SIM_USER_PAGES; i++ )
        {
            unsigned long mfn = sim_walk(v->guest_table, va + (uint64_t)i * PAGE_SIZE, NULL);
            const uint64_t *w = mfn == MS_INVALID_MFN ? NULL : sim_map_frame(mfn);

            if ( !w || sim_mfn_to_page(mfn)->owner != d ||
                 w[0] != sim_data_word0(d, d->user_pfn[0][i]) )
            {
                fork_error(d, "the child maps a wrong frame", (int)i);
                break;
            }
        }
        f->stage = SIM_FORK_RUNNING;
        return true;
    case SIM_FORK_RUNNING:              /* exit: back to the parent, exit_mmap */
        if ( v->guest_table != fork_mfn(d, d->kernel_l4_pfn[v->as]) &&
             (rc = sim_set_guest_table(v, fork_mfn(d, d->kernel_l4_pfn[v->as]), false)) )
            fork_error(d, "switching back to the parent failed", rc);
        if ( (rc = fork_unpin(d)) )
            fork_error(d, "unpinning the child's pgd failed", rc);
        f->stage = SIM_FORK_UNPINNED;
        return true;
    case SIM_FORK_UNPINNED:             /* free_pgtables */
        if ( (p = fork_page(d, f->pgd)) )
            p[FORK_IDX(va, 39)] = 0;
        fork_free(d, &f->l1);
        fork_free(d, &f->l2);
        fork_free(d, &f->l3);
        f->stage = SIM_FORK_PGD_ONLY;
        return true;
    case SIM_FORK_PGD_ONLY:             /* pgd_free */
        fork_free(d, &f->pgd);
        f->stage = SIM_FORK_IDLE;
        f->forks_done++;
        return true;
    }
    return false;

fail:
    fork_error(d, "building the child's tables failed", -EFAULT);
    fork_abandon(d);
    return false;
}

static void guest_fork(struct domain *d)
{
    struct sim_fork *f = &d->fork;

    f->steps++;
    if ( f->stage == SIM_FORK_IDLE )
    {
        if ( f->steps < f->next_start )
            return;
        f->next_start = f->steps + SIM_FORK_PERIOD;
    }
    fork_advance(d);
}

int sim_domain_fork_state(unsigned int domid)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d || d->is_dom0 )
        return -ESRCH;
    switch ( d->fork.stage )
    {
    case SIM_FORK_IDLE:
        return 0;
    case SIM_FORK_PINNED:
    case SIM_FORK_RUNNING:
        return 2;
    default:
        return d->fork.suspend_pinned ? 2 : 1;
    }
}

int sim_domain_suspend(unsigned int domid)
{
    struct domain *d = sim_domain_lookup(domid);
    struct sim_fork *f;
    int rc;

    if ( !d || d->is_dom0 )
        return -ESRCH;
    if ( d->suspended )
        return -EINVAL;
    f = &d->fork;
    sim_current_domid = d->domid;
    /* freeze_processes(): a fork in progress completes (and pins its pgd). */
    while ( f->stage >= SIM_FORK_PGD && f->stage < SIM_FORK_PINNED )
        if ( !fork_advance(d) )
            break;
    /* xen_mm_pin_all(): every pgd not pinned yet is pinned now. */
    if ( f->stage == SIM_FORK_UNPINNED || f->stage == SIM_FORK_PGD_ONLY )
    {
        if ( (rc = fork_pin(d)) )
        {
            fork_error(d, "xen_mm_pin_all: pinning a pgd failed", rc);
            fork_abandon(d);
        }
        else
            f->suspend_pinned = true;
    }
    sim_current_domid = 0;
    d->suspended = true;
    d->pause_count++;
    return 0;
}

int sim_domain_resume_cancelled(unsigned int domid)
{
    struct domain *d = sim_domain_lookup(domid);
    int rc;

    if ( !d || d->is_dom0 )
        return -ESRCH;
    if ( !d->suspended )
        return -EINVAL;
    sim_current_domid = d->domid;
    /* xen_mm_unpin_all(): what suspend pinned, from the P2M as it is now. */
    if ( d->fork.suspend_pinned )
    {
        if ( (rc = fork_unpin(d)) )
            fork_error(d, "xen_mm_unpin_all: unpinning a pgd failed", rc);
        d->fork.suspend_pinned = false;
    }
    sim_current_domid = 0;
    /* Nothing else of the guest caches MFNs across steps: its TLB goes. */
    sim_tlb_flush(d);
    sim_llc_flush_translations(d->domid);
    d->suspended = false;
    return sim_domain_unpause(domid);
}

static void guest_step(struct domain *d)
{
    uint64_t sel0 = guest_events(d);

    guest_use_tlb(d);
    guest_touch(d, 4 + d->dirty_rate);
    guest_fifo(d);
    if ( d->forks )
        guest_fork(d);
    if ( !d->with_devices )
        return;
    guest_console(d);
    guest_xenstore(d);
    guest_net(d, sel0 & 1);
}

void sim_world_step(void)
{
    unsigned int i;

    if ( !sim_frame_table )
        return;
    sim_step_count++;
    sim_xen_step();
    for ( i = 1; i < SIM_MAX_DOMAINS; i++ )
    {
        struct domain *d = sim_domains[i];

        if ( d && !d->dying && d->be.connected )
        {
            xenconsoled(d);
            xenstored(d);
            netback(d);
            /* I/O in flight completes whether the guest runs or not. */
            if ( d->type == SIM_GUEST_HVM )
                device_model(d);
        }
    }
    for ( i = 1; i < SIM_MAX_DOMAINS; i++ )
    {
        struct domain *d = sim_domains[i];

        if ( d && !d->dying && !d->pause_count && d->nr_vcpus )
        {
            sim_current_domid = d->domid;
            guest_step(d);
        }
    }
    sim_current_domid = 0;
}

int sim_domain_io_stats(unsigned int domid, struct sim_io_stats *st)
{
    struct domain *d = sim_domain_lookup(domid);

    if ( !d )
        return -ESRCH;
    *st = d->io;
    return 0;
}
