/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The simulated Xen x86-64 host: public interface.
 *
 * Used by the C tests (tests/c), the benchmark (bench/), the Python
 * extension's simulator backend (cext/) and the demo. One host per process:
 * the frame table, RAM and M2P are process globals (sim/xen_compat.h) so
 * that core/ can reach them with inline accessors, as Xen reaches its own.
 *
 * Errors are negative errno values.
 */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../core/memswap.h"

#define SIM_MAX_DOMAINS     64
#define SIM_NAME_LEN        32
#define SIM_DOMID_XEN       0x7ff2u
#define SIM_DOMID_INVALID   0x7ff4u

/* ---- host --------------------------------------------------------------- */

struct sim_llc_config {
    uint64_t size_bytes;        /* e.g. 8 MiB */
    uint32_t ways;              /* e.g. 16 */
    uint32_t line_bytes;        /* 64 */
};

struct sim_host_config {
    uint64_t ram_bytes;         /* machine RAM, split evenly over nodes */
    uint32_t nr_nodes;          /* 1.. 8 */
    struct sim_llc_config llc;
    uint64_t seed;
    bool prefault;              /* touch all RAM at creation (benchmarks) */
    bool no_shadow_paging;      /* like Debian's Xen: no log-dirty for PV guests */
    bool scrub_freed;           /* as Xen scrubs a freed frame: its first word poisoned
                                 * (tests: a stale translation reads the poison) */
};

int  sim_host_create(const struct sim_host_config *cfg);
void sim_host_destroy(void);
/* LLC geometry as page colours: nr_colours = sets * line / 4096. */
void sim_host_geometry(struct memswap_geometry *g);
unsigned int sim_host_nr_nodes(void);
unsigned int sim_mfn_node(unsigned long mfn);
unsigned long sim_host_free_frames(int node /* -1: any */, const uint64_t *colours /* NULL: any */);
unsigned long sim_host_total_frames(void);
/*
 * Frames the heap has handed out for the first time since the host was
 * created: RAM the simulator has never written, whose first write costs the
 * host a page fault (freed frames are reused first, as Xen's heap does).
 */
unsigned long sim_heap_fresh_frames(void);

/* ---- domains ------------------------------------------------------------ */

enum sim_dom_state { SIM_DOM_RUNNING, SIM_DOM_PAUSED, SIM_DOM_DYING };

/*
 * The kinds of guest. A PV guest is built the way Linux PV builds itself
 * (its own P2M, page tables holding machine frame numbers). A translated
 * guest - PVH, or HVM with a device model in dom0 - has Xen's p2m (gfn ->
 * frame and p2m type), page tables and grant entries holding gfns, its
 * vcpu_info and FIFO event-channel pages registered by gfn and mapped by
 * Xen, an ioreq server page and an MMIO hole in its p2m, and Xen's
 * shared_info and grant-table frames mapped at gfns of its own.
 */
enum sim_guest_type { SIM_GUEST_PV = 0, SIM_GUEST_PVH, SIM_GUEST_HVM };

struct sim_guest_config {
    char name[SIM_NAME_LEN];
    uint64_t mem_bytes;         /* RAM of the guest (>= 16 MiB) */
    uint32_t nr_vcpus;          /* 1..8 */
    uint32_t nr_address_spaces; /* processes, each with its own L4 (>= 1) */
    uint32_t node;              /* node to build on, or MEMSWAP_NODE_ANY */
    uint64_t colours[MEMSWAP_COLOUR_WORDS]; /* colours to build on; 0s: any */
    bool hvm;                   /* the same as type = SIM_GUEST_HVM */
    uint32_t type;              /* enum sim_guest_type */
    bool with_devices;          /* console + xenstore rings, netfront, grants;
                                 * HVM: the device model's mappings too */
    uint64_t seed;              /* contents and layout */
    bool forks;                 /* PV: run the fork actor (sim/actors.c); off by default */
    uint32_t pfn_stride;        /* > 1: a sparse P2M, one RAM pfn every pfn_stride */
};

/* Build a PV guest the way Linux builds itself; returns the domid (>0). */
int sim_domain_create(const struct sim_guest_config *cfg);
int sim_domain_destroy(unsigned int domid);
struct domain *sim_domain_lookup(unsigned int domid);
int sim_domain_pause(unsigned int domid);
int sim_domain_unpause(unsigned int domid);
int sim_domain_set_dying(unsigned int domid);
/*
 * What a toolstack can turn on under a running domain: log-dirty mode
 * (live migration, xl save: -EBUSY while a swap holds it; -EOPNOTSUPP for
 * PV on a host without shadow paging), an IOMMU (a passed-through device),
 * and memory sharing, paging or altp2m (SIM_FEAT_*).
 */
int sim_domain_set_log_dirty(unsigned int domid, bool on);
int sim_domain_set_iommu(unsigned int domid, bool on);
#define SIM_FEAT_SHARING    0
#define SIM_FEAT_PAGING     1
#define SIM_FEAT_ALTP2M     2
int sim_domain_set_feature(unsigned int domid, unsigned int feature, bool on);

struct sim_domain_info {
    unsigned int domid;
    char name[SIM_NAME_LEN];
    enum sim_dom_state state;
    unsigned int nr_vcpus;
    uint64_t tot_pages;
    uint64_t max_pages;
    unsigned long max_pfn;
    bool hvm;                   /* translated (PVH or HVM) */
    unsigned int type;          /* enum sim_guest_type */
};
int sim_domain_info(unsigned int domid, struct sim_domain_info *info);
/* domids of existing domains (including dom0 = 0); returns the count. */
int sim_domain_list(unsigned int *domids, int max);

/* Frames per colour the domain's P2M-mapped memory occupies (counts[nr_colours]). */
int sim_domain_colour_counts(unsigned int domid, uint64_t *counts, unsigned int nr);
/* pfn -> mfn through the guest's P2M, or Xen's p2m for a translated guest
 * (MS_INVALID_MFN if absent or not the guest's own RAM). */
unsigned long sim_domain_pfn_to_mfn(unsigned int domid, unsigned long pfn);

/*
 * Where a domain's memory is, as XEN_DOMCTL_MEMSWAP_OP_QUERY reports it
 * (the engine's memswap_query_range() over the whole pfn space): frames per
 * colour of @g (NULL or nr_colours 0: none; colour_counts[g->nr_colours])
 * and per node (node_counts[nr_nodes], nodes beyond zeroed), and the frame
 * of each pfn of [first_pfn, first_pfn + nr_frames) (MEMSWAP_NO_FRAME where
 * none; @frames may be NULL). 0, -ESRCH, -EINVAL (a PV guest without a
 * usable P2M, a bad geometry).
 */
struct sim_query_info {
    uint64_t nr_pfns;           /* the domain's pfn space */
    uint64_t frames_counted;
    uint64_t tot_pages;
    bool translated;
};
int sim_query(unsigned int domid, const struct memswap_geometry *g,
              uint64_t *colour_counts, uint64_t *node_counts, unsigned int nr_nodes,
              uint64_t first_pfn, uint64_t nr_frames, uint64_t *frames,
              struct sim_query_info *info);

/*
 * Guest-visible memory: read the bytes of @pfn through the guest's own page
 * tables (kernel direct map of its first address space). -EFAULT if the
 * translation fails.
 */
int sim_guest_read_pfn(unsigned int domid, unsigned long pfn, void *buf4k);
/* Checksum of every populated pfn's bytes read that way (for before/after). */
int sim_guest_checksums(unsigned int domid, uint64_t *sums, unsigned long nr);

/*
 * A guest that keeps writing. sim_guest_dirty_pages(): the guest's vCPU
 * writes @n random data pages of its own through its page tables (so the
 * writes are logged in log-dirty mode, as a vCPU's are); -EBUSY while it is
 * paused. sim_domain_set_dirty_rate(): that many more pages at each of its
 * scheduling steps (sim_world_step). Every write to a data page - by the
 * guest, or by an HVM guest's device model - is recorded, so that
 * sim_guest_verify() can compare every data page, read the guest's way,
 * with what it must hold: 0 when all are right, else the number wrong
 * (*@first_bad the first such pfn), or -ESRCH.
 */
int sim_guest_dirty_pages(unsigned int domid, unsigned long n);
int sim_domain_set_dirty_rate(unsigned int domid, unsigned long pages_per_step);
long sim_guest_verify(unsigned int domid, unsigned long *first_bad);

/* ---- the actors of P1-P3 ------------------------------------------------ */

/*
 * One scheduling step of the world: running guests do their work (touch
 * memory, console heartbeat, xenstore requests, network packets); the
 * console daemon, xenstore daemon and network backend in dom0 serve them
 * through their foreign and grant mappings; Xen updates vcpu_info time and
 * delivers events, paused domains included.
 */
void sim_world_step(void);

struct sim_io_stats {
    uint64_t console_lines;     /* heartbeat lines xenconsoled received */
    uint64_t xenstore_replies;  /* replies the guest received and verified */
    uint64_t net_rx_ok;         /* packets the guest received intact */
    uint64_t net_tx_ok;         /* packets the backend received intact */
    uint64_t io_errors;         /* anything that arrived wrong */
    uint64_t pt_errors;         /* fork actor: pin failed / a child PTE maps a wrong frame */
    uint64_t fifo_events;       /* translated: FIFO events the guest saw, as Xen wrote them */
    uint64_t dm_writes;         /* HVM: the device model's DMA writes */
};
int sim_domain_io_stats(unsigned int domid, struct sim_io_stats *st);

/*
 * The fork actor of a guest created with .forks: every SIM_FORK_PERIOD
 * steps of its own the guest builds a child address space the way Linux PV
 * does (dup_mmap): a pgd from its spare pfns with the kernel half (L4 slots
 * 273..511) cloned from its kernel L4, then L3/L2/L1 and PTEs (MFNs read
 * through its P2M) over the next steps, all as plain writes to writable
 * pages; then it pins the pgd (xen_dup_mmap), runs the child on a vCPU for
 * a step, unpins (exit_mmap) and frees the tables. A pin that fails or a
 * child PTE mapping a wrong frame counts in pt_errors.
 *
 * sim_domain_fork_state(): 0 idle, 1 an unpinned pgd exists (being built
 * or torn down), 2 the child's tables are pinned; -ESRCH.
 */
#define SIM_FORK_PERIOD 16
int sim_domain_fork_state(unsigned int domid);

/*
 * A cooperative suspend, as Linux's xen_suspend path sees it: processes are
 * frozen (a fork in progress completes first and pins its pgd), every pgd
 * still unpinned is pinned (xen_mm_pin_all), then the domain is paused and
 * marked suspended. sim_domain_resume_cancelled() is the cancelled resume:
 * unpin what suspend pinned, drop whatever the guest derived from its P2M
 * (TLB), unpause. Returns 0 or -ESRCH / -EINVAL (already / not suspended).
 * sim_swap() works on a suspended domain.
 */
int sim_domain_suspend(unsigned int domid);
int sim_domain_resume_cancelled(unsigned int domid);

/* ---- audit -------------------------------------------------------------- */

/*
 * Recompute every frame's counts and type from scratch (page tables, pins,
 * vCPU holders, grant and foreign mappings) and compare with the frame
 * table; check P2M/M2P consistency and that no frame is leaked or owned
 * twice. Returns the number of problems; describes the first ones in @buf.
 */
int sim_audit(char *buf, size_t len);

/* ---- the swap, as the hypercall would run it ---------------------------- */

struct sim_swap_opts {
    uint32_t preempt_every;     /* force a preemption at every Nth check (0: never) */
    uint32_t preempt_at_phase;  /* with preempt_every: only in this phase (0: any) */
    int64_t  alloc_fail_at;     /* fail the Nth frame allocation (-1: never) */
    uint32_t abort_after_continuations; /* memswap_abort() after N (0: never) */
    bool     world_runs;        /* sim_world_step() at every continuation */
    void   (*progress)(void *arg, enum memswap_phase ph, uint64_t done, uint64_t total);
    void    *progress_arg;
    /* Also preempt once this much engine time has passed since the last
     * continuation, as a hypervisor's softirq would (0: never). */
    uint64_t preempt_ns;
    /* Called at every continuation, with the engine's context before the
     * world's step (@at), and after it (@between) (tests, bench). */
    void   (*at)(struct memswap_ctx *ctx, void *arg);
    void    *at_arg;
    void   (*between)(void *arg);
    void    *between_arg;
    /*
     * A HOLD swap's pre-copy is done (memswap_run() returned MEMSWAP_HELD):
     * called, then the swap goes on to its final stop - or is cancelled
     * (memswap_cancel()) if it returns non-zero. NULL: go on at once.
     */
    int    (*held)(void *arg);
    void    *held_arg;
    /* Failure injection, 1-based (0: never): the Nth p2m prepare fails
     * with -ENOMEM; the Nth read of the dirty log fails. */
    uint32_t prepare_fail_nth;
    uint32_t logdirty_read_fail_nth;
};

/*
 * Swap a domain: validates the domid (-ESRCH), then drives memswap_begin /
 * memswap_run / continuations / memswap_end as the hypercall glue does
 * (MEMSWAP_HELD included, see opts->held).
 */
int sim_swap(const struct memswap_request *req, const struct sim_swap_opts *opts,
             struct memswap_result *res);

/* ---- the cache model ---------------------------------------------------- */

enum sim_pattern { SIM_PAT_SEQUENTIAL, SIM_PAT_RANDOM, SIM_PAT_STRIDE };

struct sim_workload {
    uint64_t wss_bytes;         /* working set, in the guest's kernel direct map */
    enum sim_pattern pattern;
    uint32_t stride_bytes;      /* for SIM_PAT_STRIDE */
    uint32_t intensity;         /* memory accesses per 1000 instructions */
    uint32_t weight;            /* share of the CPU: accesses per round relative to others */
};
/*
 * The working set is the pages of the direct map from guest pfn 1024 on
 * (wrapping within guest RAM, skipping unmapped pfns); each reference is one
 * cache line. NULL clears the workload; weight 0 keeps it idle. Counters
 * are cumulative. -ESRCH, -ENODEV (no host), -EINVAL (wss 0, intensity not
 * 1..1000, stride 0 for SIM_PAT_STRIDE), -EFAULT (nothing mapped).
 */
int sim_domain_set_workload(unsigned int domid, const struct sim_workload *w);

struct sim_counters {
    uint64_t instructions;
    uint64_t accesses;          /* LLC references */
    uint64_t misses;            /* LLC misses */
    uint64_t cycles;            /* modelled: instructions + 40/hit + 200/miss */
};
/* Run every domain's workload for @accesses LLC references in total. */
void sim_llc_run(uint64_t accesses);
int sim_domain_counters(unsigned int domid, struct sim_counters *c);
/*
 * The domain's LLC occupancy in bytes, as Intel CMT reports it through Xen:
 * the lines now in the cache whose frame the domain owns. -ESRCH.
 */
int sim_domain_llc_occupancy(unsigned int domid, uint64_t *bytes);
void sim_llc_flush_translations(unsigned int domid); /* after a swap (TLB flush) */

/*
 * Life cycle of the cache model (sim/llc.c), called by the host:
 * sim_llc_init() from sim_host_create() (0, or -EINVAL for a geometry the
 * model refuses: line a power of two 16..4096, ways 1..64, a power-of-two
 * number of sets; -ENOMEM), sim_llc_fini() from sim_host_destroy(), and
 * sim_llc_forget_domain() when a domain is destroyed (drops its workload,
 * translations and counters; its lines stay cached, as in hardware).
 */
int  sim_llc_init(const struct sim_llc_config *cfg);
void sim_llc_fini(void);
void sim_llc_forget_domain(unsigned int domid);
/* Invalidate every line (wbinvd); counters are kept. For tests and the demo. */
void sim_llc_invalidate(void);
/* One LLC reference by machine address, outside any domain: 1 hit, 0 miss,
 * -ENODEV without a cache. For tests (probing what is cached). */
int  sim_llc_access(uint64_t maddr);

/* ---- additions by the simulator (sim/) ----------------------------------- */

/* Linux x86-64 PAGE_OFFSET: the guest kernel's direct map of all its RAM. */
#define SIM_GUEST_PAGE_OFFSET 0xffff888000000000ULL

/*
 * Mutation knobs for tests: each bit makes sim/glue.c skip one part of a
 * holder update, so a test can show that the checks (audit, io stats,
 * guest-visible contents) catch a broken swap.
 */
extern unsigned int sim_mutations;
#define SIM_MUT_SKIP_GUEST_TABLE_USER   (1u << 0) /* user L4 pointer not re-pointed */
#define SIM_MUT_SKIP_VCPU_INFO_RECOPY   (1u << 1) /* vcpu_info not re-copied, no events re-marked */
#define SIM_MUT_SKIP_GDT                (1u << 2) /* GDT frames not re-pointed */
#define SIM_MUT_SKIP_P2M_INFO           (1u << 3) /* shared_info fll/p2m_cr3 not updated */
#define SIM_MUT_SKIP_TLB_FLUSH          (1u << 4) /* ms_host_flush_tlbs does nothing */
#define SIM_MUT_FREEZE_KEEPS_COUNT      (1u << 5) /* freezing checks the count but leaves it */
#define SIM_MUT_NO_RECHECK              (1u << 6) /* the domain is checked at the start only */
#define SIM_MUT_CLEAN_LIES              (1u << 7) /* p2m replace ignores writes since the copy */
#define SIM_MUT_VCPU_INFO_MAP_STALE     (1u << 8) /* Xen's vcpu_info mapping not re-pointed */
#define SIM_MUT_LOGDIRTY_BLIND          (1u << 9) /* reads of the dirty log find nothing */

/*
 * sim_log capture: the last lines logged are kept in a ring; tests count
 * those containing a substring (e.g. "Error pfn").
 */
unsigned long sim_log_count(const char *substr);
/* The last line kept that contains @substr, or NULL. */
const char *sim_log_last(const char *substr);
void sim_log_clear(void);

/*
 * dom0 maps a frame of @domid (privcmd mmap by MFN, as xc_map_foreign_range
 * does for PV guests): takes references like a dom0 L1 entry. Returns a
 * mapping id or -errno (get_page failure logs "Error pfn ...").
 */
int sim_dom0_map_foreign(unsigned int domid, unsigned long mfn, bool rw);
void sim_dom0_unmap_foreign(int id);

/* One step of only Xen's own writes (vcpu_info), as happens while paused. */
void sim_xen_step(void);

/*
 * dom0 acting on a guest's memory behind its back: XENMEM_decrease_reservation
 * of one frame (Xen 4.17's guest_remove_page(): 0, -ENXIO if no reference
 * can be taken, -EINVAL), and MMU_MACHPHYS_UPDATE of one M2P entry (0 or
 * -EINVAL if no reference can be taken).
 */
int sim_dom0_decrease_reservation(unsigned int domid, unsigned long mfn);
int sim_dom0_machphys_update(unsigned int domid, unsigned long mfn, unsigned long pfn);

/* ---- program traces as workloads (sim/trace.c, sim/llc.c) --------------- */

/*
 * A real program's memory-reference trace (captured by `make traces`; file
 * format in sim/trace.h), loaded, validated and shared read-only by every
 * domain that replays it. sim_trace_load() gives the caller one reference;
 * a domain replaying the trace holds its own, so the caller may
 * sim_trace_put() right after sim_domain_set_trace().
 * sim_trace_load: 0; -errno of open/read; -EINVAL for a file that is not a
 * valid trace (@err, if given, says what is wrong); -ENOMEM.
 */
struct sim_trace;
int  sim_trace_load(const char *path, struct sim_trace **out, char *err, size_t errlen);
void sim_trace_put(struct sim_trace *t);

struct sim_trace_info {
    const char *program;        /* the command line traced; valid while the trace is */
    uint64_t records;           /* instruction fetches + loads + stores + modifies */
    uint64_t instructions, loads, stores, modifies;
    uint64_t nr_pages;          /* distinct 4 KiB pages the program touched */
    uint64_t file_bytes;
};
void sim_trace_info(const struct sim_trace *t, struct sim_trace_info *info);

/*
 * The private first level a trace passes through before the LLC, as
 * cachegrind models it: split instruction (I1) and data (D1) caches, true
 * LRU, write-allocate, indexed by the program's virtual addresses (for a
 * 64-set, 64 B-line L1 the index lies within the page offset, so virtual and
 * physical indexing agree). Only its misses reach the LLC. Limits as for
 * sim_llc_config; all zeros: I1 32 KiB 8-way, D1 48 KiB 12-way, 64 B lines.
 * A private L2 is not modelled (neither is it by cachegrind).
 */
struct sim_l1_config {
    struct sim_llc_config i1, d1;
};

/*
 * Counts of one replay, in cachegrind's categories and by its rules: a
 * modify is one data read (it reaches the caches once); an access
 * straddling two lines is one reference that misses if either line misses
 * (both are looked up); an access longer than the smallest line size (L1 or
 * LLC) is cut to it, as cachegrind cuts to its L1 line; the LLC sees each
 * L1 miss, with the same address and size, whether a load or a store
 * (write-allocate, no write-backs).
 */
struct sim_trace_counts {
    uint64_t records;           /* records replayed */
    uint64_t loops;             /* times the trace restarted (sim_trace_workload.loop) */
    uint64_t i_refs, d_reads, d_writes;           /* d_reads: loads and modifies */
    uint64_t i1_misses, d1_read_misses, d1_write_misses;
    uint64_t ll_i_misses, ll_d_read_misses, ll_d_write_misses;
    uint64_t unmapped;          /* L1 misses dropped: the guest does not map their page */
    bool done;                  /* the trace ended and does not loop */
};

/*
 * Replay a trace as domain @domid's workload, on its vCPU 0's L1 and the
 * shared LLC. The trace's pages, in address order (trace page k = the k-th
 * distinct page the program touched), land on the guest's working set: the
 * kernel direct map from pfn 1024 on, as for sim_workload, trace page k on
 * working-set page (k + offset_pages) mod n, n = the trace's page count
 * (clamped to what the guest maps; then pages alias). The pfn a trace page
 * lands on is fixed, so a swap changes its machine frame - and colour - as
 * it would a real guest's, once sim_llc_flush_translations() is called
 * (which also empties the domain's L1: a real one is physically tagged).
 *
 * Rate: sim_llc_run() shares its references among domains by weight; a
 * trace domain's share is counted in trace records (each fetch or data
 * access, before the L1), a synthetic domain's in LLC references. Its
 * sim_counters are those of the program: instructions = fetches replayed,
 * accesses = L1 misses that reached the LLC, misses = LLC misses, cycles as
 * for sim_workload. Replaces any sim_workload (sim_domain_set_workload(domid,
 * NULL) clears either). Returns 0, -ESRCH, -ENODEV (no LLC), -EINVAL (no
 * trace, weight 0, bad L1 geometry), -EFAULT (nothing mapped), -ENOMEM.
 */
struct sim_trace_workload {
    struct sim_trace *trace;
    uint32_t weight;            /* share of sim_llc_run(), in trace records */
    bool loop;                  /* restart at the end (else the domain goes idle) */
    uint64_t offset_pages;
    struct sim_l1_config l1;
};
int sim_domain_set_trace(unsigned int domid, const struct sim_trace_workload *tw);
/* -ESRCH; -ENOENT when the domain has no trace workload. */
int sim_domain_trace_counts(unsigned int domid, struct sim_trace_counts *c);

/*
 * Validation mode: replay @max_records of the trace (0: all of it, once;
 * more than it holds: looping) through a cold L1 of geometry @l1 (NULL: the
 * default) and the host's LLC (sim_llc_init; its current contents are
 * kept) with the identity mapping: machine address = the program's virtual
 * address, as cachegrind indexes its caches. The replay loop is the
 * domains' one. 0, -ENODEV (no LLC), -EINVAL (geometry), -ENOMEM.
 * Like the rest of sim/, none of this is thread-safe: callers serialise.
 */
int sim_trace_replay_flat(struct sim_trace *t, const struct sim_l1_config *l1,
                          uint64_t max_records, struct sim_trace_counts *c);

#endif /* SIM_SIM_H */
