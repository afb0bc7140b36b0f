/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The simulator's own tests: Xen 4.17 reference and type semantics, the
 * heap by node and colour, the PV guest builder (clean audit over sizes and
 * seeds), the actors, and the audit catching injected corruption.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "harness.h"
#include "guest_view.h"

static char audit_buf[8192];

static int host(uint64_t ram, unsigned int nodes)
{
    struct sim_host_config hc = {
        .ram_bytes = ram, .nr_nodes = nodes,
        .llc = { .size_bytes = 8 << 20, .ways = 16, .line_bytes = 64 }, .seed = 1,
    };

    sim_host_destroy();         /* a failed test may have left one */
    return sim_host_create(&hc);
}

static int guest(uint64_t mem, unsigned int vcpus, unsigned int as, bool dev, uint64_t seed)
{
    struct sim_guest_config gc = {
        .mem_bytes = mem, .nr_vcpus = vcpus, .nr_address_spaces = as,
        .node = MEMSWAP_NODE_ANY, .with_devices = dev, .seed = seed,
    };

    return sim_domain_create(&gc);
}

static int audit(void)
{
    int n = sim_audit(audit_buf, sizeof(audit_buf));

    if ( n )
        fprintf(stderr, "audit: %d problems\n%s", n, audit_buf);
    return n;
}

/* A bare domain with @n fresh pages (zeroed), for refcount tests. */
static struct domain *bare_domain(unsigned int domid, unsigned long *mfns, unsigned int n)
{
    struct domain *d = sim_domain_alloc(domid);
    unsigned int i;

    for ( i = 0; i < n; i++ )
    {
        mfns[i] = sim_heap_alloc_any(-1, NULL, i);
        sim_assign_page(d, mfns[i]);
        sim_m2p[mfns[i]] = i;
        memset(sim_map_frame(mfns[i]), 0, PAGE_SIZE);
    }
    return d;
}

#define CNT(m)   (sim_mfn_to_page(m)->count_info & PGC_count_mask)
#define TCNT(m)  (sim_mfn_to_page(m)->u.inuse.type_info & PGT_count_mask)
#define TYPE(m)  (sim_mfn_to_page(m)->u.inuse.type_info & PGT_type_mask)
#define VALID(m) (!!(sim_mfn_to_page(m)->u.inuse.type_info & PGT_validated))
#define PT(m, f) sim_pte(m, (f) | SIM_PTE_P | SIM_PTE_A)

TEST(host_geometry_and_heap)
{
    struct memswap_geometry g;
    uint64_t colours[MEMSWAP_COLOUR_WORDS] = { 0 };
    unsigned long before, mfn, i;

    CHECK(host(256 << 20, 2) == 0);
    sim_host_geometry(&g);
    CHECK(g.nr_colours == 128 && g.colour_shift == 0);     /* 8 MiB / 16 / 4 KiB */
    CHECK(sim_host_nr_nodes() == 2);
    CHECK(sim_domain_lookup(0) && sim_domain_lookup(0)->tot_pages > 0);
    CHECK(sim_mfn_node(0) == 0 && sim_mfn_node(sim_nr_frames - 1) == 1);
    before = sim_host_free_frames(-1, NULL);
    CHECK(before > 0 && before < sim_nr_frames);

    /* Exact bucket allocation honours colour and node. */
    for ( i = 0; i < 300; i++ )
    {
        unsigned int c = (unsigned int)(i * 7) % 128, n = (unsigned int)i % 2;

        mfn = sim_heap_alloc((int)n, c);
        CHECK(mfn != MS_INVALID_MFN);
        CHECK(sim_mfn_colour(mfn) == c && sim_mfn_node(mfn) == n);
        CHECK(page_state_is(sim_mfn_to_page(mfn), inuse) && !sim_mfn_to_page(mfn)->owner);
        sim_heap_free(mfn);
    }
    CHECK(sim_host_free_frames(-1, NULL) == before);

    /* Round-robin over an allowed set. */
    colours[0] = (1ULL << 3) | (1ULL << 5);
    colours[1] = 1ULL << 0;                                 /* colour 64 */
    {
        unsigned long got[30];
        unsigned long per = sim_host_free_frames(1, colours);

        CHECK(per > 0 && per < sim_host_free_frames(1, NULL));
        for ( i = 0; i < 30; i++ )
        {
            got[i] = sim_heap_alloc_any(1, colours, i);
            CHECK(got[i] != MS_INVALID_MFN && sim_mfn_node(got[i]) == 1);
            CHECK(sim_mfn_colour(got[i]) == (i % 3 == 0 ? 3u : i % 3 == 1 ? 5u : 64u));
        }
        CHECK(sim_host_free_frames(1, colours) == per - 30);
        for ( i = 0; i < 30; i++ )
            sim_heap_free(got[i]);
    }
    CHECK(sim_host_free_frames(-1, NULL) == before);
    CHECK(audit() == 0);
    sim_host_destroy();
}

/*
 * Xen's free_heap_pages(): a clean freed frame goes to the head of its free
 * list (the next allocation reuses it), one to be scrubbed to the tail.
 * Frames are handed out fresh (never used since boot) only when no freed
 * one is left.
 */
TEST(heap_reuses_clean_freed_frames_first)
{
    struct sim_host_config hc = {
        .ram_bytes = 128 << 20, .nr_nodes = 1,
        .llc = { .size_bytes = 8 << 20, .ways = 16, .line_bytes = 64 }, .seed = 1,
    };
    unsigned long a, b, fresh;
    unsigned int scrub;

    for ( scrub = 0; scrub < 2; scrub++ )
    {
        sim_host_destroy();
        hc.scrub_freed = scrub;
        CHECK(sim_host_create(&hc) == 0);
        a = sim_heap_alloc(0, 9);
        b = sim_heap_alloc(0, 9);
        CHECK(a != MS_INVALID_MFN && b != MS_INVALID_MFN && b > a);
        fresh = sim_heap_fresh_frames();
        sim_heap_free(b);
        sim_heap_free(a);
        if ( !scrub )
        {
            /* Last freed, first reused; no fresh frame taken. */
            CHECK(sim_heap_alloc(0, 9) == a && sim_heap_alloc(0, 9) == b);
            CHECK(sim_heap_fresh_frames() == fresh);
            sim_heap_free(a);
            sim_heap_free(b);
        }
        else
        {
            /* Waiting for the scrubber: the bucket's fresh frames come first. */
            CHECK((a = sim_heap_alloc(0, 9)) > b);
            CHECK(sim_heap_fresh_frames() == fresh + 1);
            sim_heap_free(a);
        }
        CHECK(audit() == 0);
    }
    sim_host_destroy();
}

TEST(refcounts_and_types)
{
    unsigned long m[8];
    struct domain *d, *d0;
    uint64_t *l1, *l2;

    CHECK(host(128 << 20, 1) == 0);
    d = bare_domain(5, m, 8);
    d0 = sim_domain_lookup(0);

    /* get_page: owner and count checked; failure logged Xen-style. */
    sim_log_clear();
    CHECK(CNT(m[0]) == 1);                                  /* PGC_allocated */
    CHECK(sim_get_page(sim_mfn_to_page(m[0]), d));
    CHECK(CNT(m[0]) == 2);
    sim_put_page(sim_mfn_to_page(m[0]));
    CHECK(!sim_get_page(sim_mfn_to_page(m[0]), d0));
    CHECK(sim_log_count("Error pfn") == 1 && sim_log_count("rd=0 od=5") == 1);

    /* L1 validation: RW entry = general + writable type; RO = general. */
    l1 = sim_map_frame(m[1]);
    l1[0] = PT(m[2], SIM_PTE_RW);
    l1[1] = PT(m[3], 0);
    CHECK(sim_get_page_type(sim_mfn_to_page(m[1]), PGT_l1_page_table) == 0);
    CHECK(TYPE(m[1]) == PGT_l1_page_table && VALID(m[1]) && TCNT(m[1]) == 1);
    CHECK(CNT(m[2]) == 2 && TCNT(m[2]) == 1 && TYPE(m[2]) == PGT_writable_page);
    CHECK(CNT(m[3]) == 2 && TCNT(m[3]) == 0);

    /* Type change refused while referenced, both ways. */
    CHECK(sim_get_page_type(sim_mfn_to_page(m[2]), PGT_l1_page_table) == -EINVAL);
    CHECK(sim_mmu_update(d, (uint64_t)m[1] << PAGE_SHIFT | 2 * 8, PT(m[1], SIM_PTE_RW)) == -EINVAL);
    CHECK(sim_mmu_update(d, (uint64_t)m[1] << PAGE_SHIFT | 2 * 8, PT(m[1], 0)) == 0);
    CHECK(CNT(m[1]) == 2 && TCNT(m[1]) == 1);              /* RO self-map: general only */

    /* L2 -> L1: get_page_and_type of the L1; pin holds general + type. */
    l2 = sim_map_frame(m[4]);
    l2[0] = PT(m[1], SIM_PTE_RW);
    CHECK(sim_pin_table(d, m[4], 2) == 0);
    CHECK(TCNT(m[4]) == 1 && CNT(m[4]) == 2 && (sim_mfn_to_page(m[4])->u.inuse.type_info & PGT_pinned));
    CHECK(TCNT(m[1]) == 2 && CNT(m[1]) == 3);
    CHECK(sim_pin_table(d, m[4], 2) == -EINVAL);            /* already pinned */

    /* Drop the direct type ref; unpin devalidates L2 then the L1 cascade. */
    sim_put_page_type(sim_mfn_to_page(m[1]));
    CHECK(TCNT(m[1]) == 1 && VALID(m[1]));
    CHECK(sim_unpin_table(d, m[4]) == 0);
    CHECK(!VALID(m[4]) && TCNT(m[4]) == 0 && CNT(m[4]) == 1);
    CHECK(!VALID(m[1]) && TCNT(m[1]) == 0 && CNT(m[1]) == 1);
    CHECK(CNT(m[2]) == 1 && TCNT(m[2]) == 0 && CNT(m[3]) == 1);
    CHECK(TYPE(m[2]) == PGT_writable_page);                  /* type stays, count 0 */
    /* Now the data page may become a table. */
    CHECK(sim_get_page_type(sim_mfn_to_page(m[2]), PGT_l1_page_table) == 0);
    sim_put_page_type(sim_mfn_to_page(m[2]));

    /* Bad entry: validation fails and releases what it took. */
    l1 = sim_map_frame(m[5]);
    l1[0] = PT(m[6], SIM_PTE_RW);
    l1[1] = PT(sim_domain_lookup(0)->page_head, 0);           /* dom0's frame */
    CHECK(sim_get_page_type(sim_mfn_to_page(m[5]), PGT_l1_page_table) == -EINVAL);
    CHECK(!VALID(m[5]) && TCNT(m[5]) == 0 && CNT(m[6]) == 1 && TCNT(m[6]) == 0);

    sim_domain_destroy(5);
    CHECK(sim_bugs == 0);
    CHECK(audit() == 0);
    sim_host_destroy();
}

TEST(l4_linear_and_xen_slots)
{
    unsigned long m[6];
    struct domain *d;
    uint64_t *l4, *l4b;

    CHECK(host(128 << 20, 1) == 0);
    d = bare_domain(6, m, 6);
    l4 = sim_map_frame(m[0]);
    l4b = sim_map_frame(m[1]);
    l4[10] = PT(m[0], 0);                                   /* self linear, RO */
    l4[300] = PT(m[0], 0);                                  /* another self slot */
    CHECK(sim_pin_table(d, m[0], 4) == 0);
    CHECK(CNT(m[0]) == 2 && TCNT(m[0]) == 1);              /* pin only: self takes nothing */
    CHECK(sim_pte_mfn(l4[SIM_L4_LINEAR_SLOT]) == m[0]);    /* Xen wrote slot 258 */
    CHECK(sim_pte_mfn(l4[256]) == sim_xen_slot_mfn[0]);

    /* Another L4 mapping the first one linearly: general + type ref. */
    l4b[5] = PT(m[0], 0);
    CHECK(sim_pin_table(d, m[1], 4) == 0);
    CHECK(CNT(m[0]) == 3 && TCNT(m[0]) == 2 && sim_mfn_to_page(m[1])->linear_entries == 1);
    /* A writable linear entry is refused, as in Xen. */
    CHECK(sim_mmu_update(d, (uint64_t)m[1] << PAGE_SHIFT | 6 * 8, PT(m[0], SIM_PTE_RW)) == -EINVAL);
    /* Xen's slots are not the guest's to write. */
    CHECK(sim_mmu_update(d, (uint64_t)m[1] << PAGE_SHIFT | 258 * 8, PT(m[2], 0)) == -EINVAL);
    CHECK(sim_unpin_table(d, m[1]) == 0);
    CHECK(CNT(m[0]) == 2 && TCNT(m[0]) == 1);
    CHECK(sim_unpin_table(d, m[0]) == 0);
    CHECK(CNT(m[0]) == 1 && TCNT(m[0]) == 0);
    sim_domain_destroy(6);
    CHECK(sim_bugs == 0 && audit() == 0);
    sim_host_destroy();
}

TEST(guest_build_sizes_and_seeds)
{
    static const struct { uint64_t mem; unsigned int vcpus, as; bool dev; } cf[] = {
        { 16 << 20, 1, 1, false }, { 64 << 20, 2, 3, true }, { 300 << 20, 4, 2, true },
        { 40 << 20, 8, 16, true },
    };
    unsigned int i, seed;

    CHECK(host(1ULL << 30, 2) == 0);
    for ( seed = 1; seed <= 2; seed++ )
        for ( i = 0; i < sizeof(cf) / sizeof(cf[0]); i++ )
        {
            int id = guest(cf[i].mem, cf[i].vcpus, cf[i].as, cf[i].dev, seed * 1000 + i);
            struct domain *d = sim_domain_lookup((unsigned int)id);
            struct sim_domain_info info;
            unsigned long pfn, data = 0, holes = 0, ident = 0, foreign = 0;
            uint64_t *buf = malloc(PAGE_SIZE);

            CHECKF(id > 0, "build %u: %d", i, id);
            CHECK(sim_domain_info((unsigned int)id, &info) == 0);
            CHECK(info.tot_pages == cf[i].mem >> PAGE_SHIFT && info.state == SIM_DOM_RUNNING);
            CHECK(audit() == 0);
            for ( pfn = 0; pfn < d->p2m_size; pfn++ )
            {
                uint64_t e = sim_p2m_tree_entry(d, pfn);

                CHECK(e == sim_guest_p2m_entry(d, pfn));    /* tree == linear list */
                if ( e == SIM_P2M_INVALID )
                    holes++;
                else if ( e & SIM_P2M_FOREIGN )
                    foreign++;
                else if ( e & SIM_P2M_IDENTITY )
                    ident++;
                if ( d->pfn_role[pfn] == SIM_ROLE_DATA )
                {
                    CHECK(sim_guest_read_pfn((unsigned int)id, pfn, buf) == 0);
                    CHECK(buf[0] == sim_data_word0(d, pfn));
                    data++;
                }
            }
            CHECK(holes >= 1024 && ident >= 512 + 16 && foreign == (cf[i].dev ? 2 : 0));
            CHECK(data > info.tot_pages / 2);
            CHECK(sim_guest_read_pfn((unsigned int)id, d->p2m_size - 5, buf) == -EFAULT);
            CHECK(sim_guest_read_pfn((unsigned int)id, ((cf[i].mem >> PAGE_SHIFT) / 2 + 511) / 512 * 512 + 3,
                                     buf) == -EFAULT);                         /* the hole */
            /* vCPU holders and pins as Linux/Xen leave them. */
            CHECK(d->vcpu[0].guest_table != MS_INVALID_MFN && d->vcpu[0].guest_table_user != MS_INVALID_MFN);
            CHECK(sim_mfn_to_page(d->vcpu[0].guest_table)->u.inuse.type_info & PGT_pinned);
            CHECK(TYPE(d->vcpu[0].gdt_frames[0]) == PGT_seg_desc_page);
            CHECK(sim_m2p[d->vcpu[0].vcpu_info_mfn] == d->vcpu_info_pfn);
            {
                struct sim_start_info *st = sim_map_frame(sim_domain_pfn_to_mfn((unsigned int)id, d->start_info_pfn));

                CHECK(!strcmp(st->magic, "xen-3.0-x86_64"));
                CHECK(st->store_mfn == sim_domain_pfn_to_mfn((unsigned int)id, d->xenstore_pfn));
                CHECK(st->console_mfn == sim_domain_pfn_to_mfn((unsigned int)id, d->console_pfn));
            }
            free(buf);
        }
    {
        unsigned int ids[SIM_MAX_DOMAINS];
        int n = sim_domain_list(ids, SIM_MAX_DOMAINS), k;

        CHECK(n == 9);
        for ( k = 1; k < n; k++ )
            CHECK(sim_domain_destroy(ids[k]) == 0);
    }
    CHECK(audit() == 0 && sim_bugs == 0);
    sim_host_destroy();
}

TEST(guest_build_refusals)
{
    struct sim_guest_config gc = { .mem_bytes = 8 << 20, .nr_vcpus = 1, .node = MEMSWAP_NODE_ANY };
    unsigned long free0;

    CHECK(host(128 << 20, 1) == 0);
    free0 = sim_host_free_frames(-1, NULL);
    CHECK(sim_domain_create(&gc) == -EINVAL);
    gc.mem_bytes = 512 << 20;
    CHECK(sim_domain_create(&gc) == -ENOMEM);
    CHECK(sim_host_free_frames(-1, NULL) == free0);
    CHECK(audit() == 0);
    sim_host_destroy();
}

TEST(actors_exchange_data)
{
    struct sim_io_stats a, b;
    struct domain *d;
    uint32_t ver;
    int id, i;

    CHECK(host(512ULL << 20, 1) == 0);
    id = guest(64 << 20, 2, 2, true, 42);
    CHECK(id > 0);
    d = sim_domain_lookup((unsigned int)id);
    for ( i = 0; i < 40; i++ )
        sim_world_step();
    CHECK(sim_domain_io_stats((unsigned int)id, &a) == 0);
    CHECKF(a.console_lines >= 35 && a.xenstore_replies >= 35 && a.net_rx_ok >= 35 && a.net_tx_ok >= 35,
           "con %lu xs %lu rx %lu tx %lu", (unsigned long)a.console_lines, (unsigned long)a.xenstore_replies,
           (unsigned long)a.net_rx_ok, (unsigned long)a.net_tx_ok);
    CHECK(a.io_errors == 0);

    /* Rings are held from outside: foreign maps and grant maps counted. */
    CHECK(d->be.connected && d->be.con_map >= 0 && d->be.tx_ring_map >= 0);
    CHECK(sim_gnt_entry(d, SIM_GNTTAB_CONSOLE)->frame == sim_domain_pfn_to_mfn((unsigned int)id, d->console_pfn));
    CHECK(sim_gnt_entry(d, 2)->flags & SIM_GTF_writing);
    CHECK(audit() == 0);

    /* Paused: the guest stops, Xen keeps writing vcpu_info, backends keep
     * serving what was queued. */
    CHECK(sim_domain_pause((unsigned int)id) == 0);
    ver = ((struct sim_vcpu_info *)((unsigned char *)sim_map_frame(d->vcpu[1].vcpu_info_mfn) +
                                    d->vcpu[1].vcpu_info_offset))->time.version;
    for ( i = 0; i < 10; i++ )
        sim_world_step();
    sim_domain_io_stats((unsigned int)id, &b);
    CHECK(b.console_lines <= a.console_lines + 1 && b.net_tx_ok <= a.net_tx_ok + 1);
    CHECK(((struct sim_vcpu_info *)((unsigned char *)sim_map_frame(d->vcpu[1].vcpu_info_mfn) +
                                    d->vcpu[1].vcpu_info_offset))->time.version == ver + 20);
    CHECK(sim_domain_pause((unsigned int)id) == 0);         /* nests */
    CHECK(sim_domain_unpause((unsigned int)id) == 0);
    sim_world_step();
    sim_domain_io_stats((unsigned int)id, &a);
    CHECK(a.console_lines == b.console_lines);
    CHECK(sim_domain_unpause((unsigned int)id) == 0);
    CHECK(sim_domain_unpause((unsigned int)id) == -EINVAL);
    for ( i = 0; i < 10; i++ )
        sim_world_step();
    sim_domain_io_stats((unsigned int)id, &a);
    CHECK(a.console_lines >= b.console_lines + 9 && a.net_rx_ok > b.net_rx_ok && a.io_errors == 0);
    CHECK(audit() == 0);
    sim_host_destroy();
}

TEST(audit_detects_corruption)
{
    struct domain *d;
    unsigned long mfn, pfn;
    struct page_info *pg;
    uint64_t *leaf, save;
    int id;

    CHECK(host(256 << 20, 1) == 0);
    id = guest(32 << 20, 1, 1, true, 3);
    CHECK(id > 0 && audit() == 0);
    d = sim_domain_lookup((unsigned int)id);
    for ( pfn = 100; d->pfn_role[pfn] != SIM_ROLE_DATA; pfn++ )
        ;
    mfn = sim_domain_pfn_to_mfn((unsigned int)id, pfn);
    pg = sim_mfn_to_page(mfn);

    pg->count_info++;                                           /* a leaked reference */
    CHECK(sim_audit(audit_buf, sizeof(audit_buf)) == 1 && strstr(audit_buf, "count"));
    pg->count_info--;
    pg->u.inuse.type_info--;                                    /* a lost type ref */
    CHECK(sim_audit(audit_buf, sizeof(audit_buf)) >= 1 && strstr(audit_buf, "type count"));
    pg->u.inuse.type_info++;
    sim_m2p[mfn] = pfn + 1;                                     /* M2P out of step */
    CHECK(sim_audit(audit_buf, sizeof(audit_buf)) >= 1 && strstr(audit_buf, "m2p"));
    sim_m2p[mfn] = pfn;
    /* P2M leaf entry pointing elsewhere. */
    leaf = sim_map_frame((unsigned long)((uint64_t *)sim_map_frame(
               (unsigned long)((uint64_t *)sim_map_frame(
                   (unsigned long)sim_shared_info(d)->arch.pfn_to_mfn_frame_list_list))[0]))[pfn / 512]);
    save = leaf[pfn % 512];
    leaf[pfn % 512] = sim_domain_pfn_to_mfn((unsigned int)id, pfn + 1);
    CHECK(sim_audit(audit_buf, sizeof(audit_buf)) >= 1);
    leaf[pfn % 512] = save;
    /* A frame dropped from the page list: leaked. */
    sim_page_list_del(d, mfn);
    CHECK(sim_audit(audit_buf, sizeof(audit_buf)) >= 1 && strstr(audit_buf, "no page list"));
    sim_page_list_add(d, mfn);
    CHECK(audit() == 0);
    sim_host_destroy();
}

TEST(swap_refusals)
{
    struct memswap_request req = { .node = MEMSWAP_NODE_ANY };
    struct sim_guest_config gc = { .mem_bytes = 16 << 20, .nr_vcpus = 1, .node = MEMSWAP_NODE_ANY, .hvm = true };
    struct memswap_result res;
    int id, hvm;

    CHECK(host(256 << 20, 1) == 0);
    sim_host_geometry(&req.geom);
    id = guest(16 << 20, 1, 1, false, 9);
    hvm = sim_domain_create(&gc);
    CHECK(id > 0 && hvm > 0);
    req.domid = 60;
    CHECK(sim_swap(&req, NULL, &res) == -ESRCH);
    req.domid = 0;
    CHECK(sim_swap(&req, NULL, &res) == -EACCES);
    req.domid = (uint32_t)hvm;
    CHECK(sim_domain_set_feature((unsigned int)hvm, SIM_FEAT_ALTP2M, true) == 0);
    CHECK(sim_swap(&req, NULL, &res) == -EOPNOTSUPP);
    req.domid = (uint32_t)id;
    CHECK(sim_domain_set_dying((unsigned int)id) == 0);
    CHECK(sim_swap(&req, NULL, &res) == -ENODEV);
    CHECK(audit() == 0);
    sim_host_destroy();
}

TEST(swap_keeps_everything)
{
    struct memswap_request req = { .node = MEMSWAP_NODE_ANY };
    struct sim_swap_opts opts = { .preempt_every = 64, .alloc_fail_at = -1, .world_runs = true };
    struct memswap_result res;
    struct sim_io_stats a, b;
    int id, i;

    CHECK(host(512ULL << 20, 2) == 0);
    sim_host_geometry(&req.geom);
    id = guest(64 << 20, 2, 2, true, 5);
    CHECK(id > 0);
    for ( i = 0; i < 10; i++ )
        sim_world_step();
    sim_domain_io_stats((unsigned int)id, &a);
    req.domid = (uint32_t)id;
    req.node = 1;
    CHECKF(sim_swap(&req, &opts, &res) == 0, "phase %u", res.failed_phase);
    CHECK(res.frames_moved > 0 && res.continuations > 0);
    CHECK(audit() == 0);
    for ( i = 0; i < 20; i++ )
        sim_world_step();
    sim_domain_io_stats((unsigned int)id, &b);
    CHECK(b.io_errors == 0 && b.console_lines >= a.console_lines + 15 && b.net_rx_ok > a.net_rx_ok);
    CHECK(sim_domain_destroy((unsigned int)id) == 0 && audit() == 0);
    sim_host_destroy();
}

/* The count_info/type_info bits are Xen 4.17's (xen/arch/x86/include/asm/mm.h). */
TEST(page_info_layout_is_xen_4_17)
{
    CHECK(PGC_allocated == 1UL << 63 && PGC_xen_heap == 1UL << 62 && PGC_page_table == 1UL << 61);
    CHECK(PGC_broken == 1UL << 60 && PGC_state == 3UL << 58 && PGC_state_free == 3UL << 58);
    CHECK(PGC_state_offlining == 1UL << 58 && PGC_extra == 1UL << 57);
    CHECK(PGC_count_mask == (1UL << 57) - 1);
    CHECK(PGT_type_mask == 7UL << 61 && PGT_writable_page == 7UL << 61 && PGT_locked == 1UL << 60);
    CHECK(PGT_pinned == 1UL << 59 && PGT_validated == 1UL << 58 && PGT_partial == 1UL << 56);
    CHECK(PGT_non_coherent == 1UL << 55);
    CHECK(PGT_count_mask == (1UL << 55) - 1);
}

/*
 * Every field of a guest's P2M registration and tree is guest-written: the
 * audit reports garbage there and never dereferences it blindly.
 */
TEST(audit_survives_garbage_guest_fields)
{
    static const uint64_t junk[] = {
        0, 1, 0xfff, ~0ULL, 1ULL << 52, 0x8000000000000000ULL, 0x7ff0000000000000ULL,
    };
    struct sim_shared_info *si;
    struct domain *d;
    uint64_t save_cr3, save_fll, save_max, *top, *mid, save_top, save_mid;
    unsigned int k;
    int id;

    CHECK(host(256 << 20, 1) == 0);
    id = guest(32 << 20, 1, 1, true, 4);
    CHECK(id > 0 && audit() == 0);
    d = sim_domain_lookup((unsigned int)id);
    si = sim_shared_info(d);
    save_cr3 = si->arch.p2m_cr3;
    save_fll = si->arch.pfn_to_mfn_frame_list_list;
    save_max = si->arch.max_pfn;
    top = sim_map_frame((unsigned long)save_fll);
    mid = sim_map_frame((unsigned long)top[0]);
    save_top = top[0];
    save_mid = mid[0];
    for ( k = 0; k < sizeof(junk) / sizeof(junk[0]); k++ )
    {
        si->arch.p2m_cr3 = junk[k];
        CHECKF(sim_audit(audit_buf, sizeof(audit_buf)) >= 1, "p2m_cr3 %llx", (unsigned long long)junk[k]);
        si->arch.p2m_cr3 = save_cr3;
        si->arch.pfn_to_mfn_frame_list_list = junk[k];
        CHECKF(sim_audit(audit_buf, sizeof(audit_buf)) >= 1, "fll %llx", (unsigned long long)junk[k]);
        si->arch.pfn_to_mfn_frame_list_list = save_fll;
        si->arch.max_pfn = junk[k];
        CHECKF(sim_audit(audit_buf, sizeof(audit_buf)) >= 1, "max_pfn %llx", (unsigned long long)junk[k]);
        si->arch.max_pfn = save_max;
        top[0] = junk[k];
        CHECKF(sim_audit(audit_buf, sizeof(audit_buf)) >= 1, "top %llx", (unsigned long long)junk[k]);
        top[0] = save_top;
        mid[0] = junk[k];
        CHECKF(sim_audit(audit_buf, sizeof(audit_buf)) >= 1, "mid %llx", (unsigned long long)junk[k]);
        mid[0] = save_mid;
    }
    CHECK(audit() == 0);
    sim_host_destroy();
}

/*
 * dom0's decrease_reservation follows guest_remove_page(): a frame still
 * mapped only loses its allocation reference; an unmapped one is freed;
 * a frame with no references or another owner's is refused. MMU_MACHPHYS
 * updates take a reference too.
 */
TEST(dom0_decrease_reservation_and_machphys_update)
{
    struct domain *d;
    unsigned long pfn, mfn, free0, tot0;
    uint64_t pte;
    int id;

    CHECK(host(256 << 20, 1) == 0);
    id = guest(32 << 20, 1, 1, true, 6);
    d = sim_domain_lookup((unsigned int)id);
    pfn = guest_data_pfn(d, 200, &pte);
    mfn = sim_domain_pfn_to_mfn((unsigned int)id, pfn);
    CHECK(CNT(mfn) == 2);                                   /* allocated + direct map */
    free0 = sim_host_free_frames(-1, NULL);
    tot0 = d->tot_pages;

    /* Mapped: it stays, without PGC_allocated. */
    CHECK(sim_dom0_decrease_reservation((unsigned int)id, mfn) == 0);
    CHECK(CNT(mfn) == 1 && !(sim_mfn_to_page(mfn)->count_info & PGC_allocated));
    CHECK(d->tot_pages == tot0 && sim_host_free_frames(-1, NULL) == free0);
    /* The guest unmaps it (as its balloon driver would): gone. */
    CHECK(sim_mmu_update(d, pte, 0) == 0);
    CHECK(page_state_is(sim_mfn_to_page(mfn), free));
    CHECK(d->tot_pages == tot0 - 1 && sim_host_free_frames(-1, NULL) == free0 + 1);
    /* Again: no reference can be taken on a free frame. */
    CHECK(sim_dom0_decrease_reservation((unsigned int)id, mfn) == -ENXIO);
    CHECK(sim_dom0_machphys_update((unsigned int)id, mfn, pfn) == -EINVAL);
    /* dom0's own frame named as the guest's: refused. */
    CHECK(sim_dom0_decrease_reservation((unsigned int)id, sim_domain_lookup(0)->page_head) == -ENXIO);
    CHECK(sim_dom0_decrease_reservation((unsigned int)id, sim_nr_frames + 5) == -EINVAL);
    CHECK(sim_dom0_decrease_reservation(99, mfn) == -ESRCH);

    /* M2P update of a live frame: set. */
    pfn = guest_data_pfn(d, pfn + 1, &pte);
    mfn = sim_domain_pfn_to_mfn((unsigned int)id, pfn);
    CHECK(sim_dom0_machphys_update((unsigned int)id, mfn, 12345) == 0 && sim_m2p[mfn] == 12345);
    CHECK(CNT(mfn) == 2);
    CHECK(sim_dom0_machphys_update((unsigned int)id, mfn, pfn) == 0);
    CHECK(sim_bugs == 0);
    sim_host_destroy();
}

/*
 * XSA-402: a writable write-combining mapping marks the frame
 * PGT_non_coherent; using it as anything but a writable page, or freeing
 * it, flushes its cache lines first and clears the mark.
 */
TEST(non_coherent_frames_are_flushed)
{
    unsigned long m[4];
    struct domain *d;
    uint64_t *l1;

    CHECK(host(128 << 20, 1) == 0);
    d = bare_domain(7, m, 4);
    l1 = sim_map_frame(m[0]);
    l1[0] = PT(m[1], SIM_PTE_RW | SIM_PTE_WC);             /* WC, writable */
    l1[1] = PT(m[2], SIM_PTE_WC);                           /* WC, read-only: coherent enough */
    l1[2] = PT(m[3], SIM_PTE_RW);                           /* WB */
    sim_log_clear();
    CHECK(sim_pin_table(d, m[0], 1) == 0);
    CHECK(sim_mfn_to_page(m[1])->u.inuse.type_info & PGT_non_coherent);
    CHECK(!(sim_mfn_to_page(m[2])->u.inuse.type_info & PGT_non_coherent));
    CHECK(!(sim_mfn_to_page(m[3])->u.inuse.type_info & PGT_non_coherent));
    /* Unmapped, then used as a table: flushed before validation. */
    CHECK(sim_mmu_update(d, (uint64_t)m[0] << PAGE_SHIFT, 0) == 0);
    memset(sim_map_frame(m[1]), 0, PAGE_SIZE);
    CHECK(sim_log_count("cache flush") == 0);
    CHECK(sim_pin_table(d, m[1], 1) == 0);
    CHECK(sim_log_count("cache flush") == 1);
    CHECK(!(sim_mfn_to_page(m[1])->u.inuse.type_info & PGT_non_coherent));
    CHECK(sim_unpin_table(d, m[1]) == 0);
    /* Mapped WC again, then freed with its last reference: flushed. */
    CHECK(sim_mmu_update(d, (uint64_t)m[0] << PAGE_SHIFT | 2 * 8, PT(m[3], SIM_PTE_RW | SIM_PTE_WC)) == 0);
    CHECK(sim_mfn_to_page(m[3])->u.inuse.type_info & PGT_non_coherent);
    CHECK(sim_dom0_decrease_reservation(7, m[3]) == 0);
    CHECK(sim_log_count("cache flush") == 1);
    CHECK(sim_mmu_update(d, (uint64_t)m[0] << PAGE_SHIFT | 2 * 8, 0) == 0);
    CHECK(page_state_is(sim_mfn_to_page(m[3]), free));
    CHECK(sim_log_count("cache flush") == 2);
    sim_domain_destroy(7);
    CHECK(sim_bugs == 0 && audit() == 0);
    sim_host_destroy();
}
