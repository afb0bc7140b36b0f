/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Program traces (sim/trace.c) and their replay (sim/llc.c):
 *  - the format round-trips every kind of record exactly, and the loader
 *    refuses damaged or foreign files with a reason, loading nothing;
 *  - a flat replay (validation mode) counts exactly what an independent,
 *    brute-force rendering of cachegrind's rules counts (split L1, LLC fed
 *    by L1 misses, straddling accesses, modifies, cut sizes), looping too;
 *  - a trace-driven domain references the machine frames of the pfns its
 *    trace pages land on, shares sim_llc_run() by weight, loops or stops;
 *  - a swap of a trace-driven domain moves those references to the new
 *    frames (the pfns stay), the replay carries on where it was, and a
 *    trace victim sharing colours with a streaming aggressor stops missing
 *    once swapped to other colours.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/sim.h"
#include "sim/trace.h"
#include "core/private.h"
#include "harness.h"

#define MiB         (1ULL << 20)
#define LLC_SIZE    (4 * MiB)
#define LLC_WAYS    16
#define NR_COLOURS  (LLC_SIZE / LLC_WAYS / 4096)
#define WS_FIRST    1024UL              /* first pfn of every working set */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* A scratch directory for the test's trace files, removed at exit. */
static char tmpdir[64];
static void tmp_cleanup(void)
{
    char cmd[128];

    if ( tmpdir[0] )
    {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if ( system(cmd) )
            fprintf(stderr, "  could not remove %s\n", tmpdir);
    }
}
static const char *tmp_path(const char *name)
{
    static char path[128];

    if ( !tmpdir[0] )
    {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_trace.XXXXXX");
        if ( !mkdtemp(tmpdir) )
        {
            perror("mkdtemp");
            exit(1);
        }
        atexit(tmp_cleanup);
    }
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return path;
}

/* Write @n records to @path; 0 or the first error. */
static int write_trace(const char *path, const char *program,
                       const struct sim_trace_ref *refs, size_t n)
{
    struct sim_trace_writer *w;
    char err[256];
    size_t i;
    int rc = sim_trace_writer_open(path, program, &w, err, sizeof(err));

    if ( rc )
    {
        fprintf(stderr, "  writer_open: %s\n", err);
        return rc;
    }
    for ( i = 0; i < n && !rc; i++ )
        rc = sim_trace_writer_add(w, refs[i].kind, refs[i].addr, refs[i].size);
    if ( rc )
    {
        sim_trace_writer_close(w, false, NULL, 0);
        return rc;
    }
    rc = sim_trace_writer_close(w, true, err, sizeof(err));
    if ( rc )
        fprintf(stderr, "  writer_close: %s\n", err);
    return rc;
}

static struct sim_trace *load_ok(const char *path)
{
    struct sim_trace *t = NULL;
    char err[256];

    if ( sim_trace_load(path, &t, err, sizeof(err)) )
    {
        fprintf(stderr, "  load %s: %s\n", path, err);
        return NULL;
    }
    return t;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* ---- 1. the format -------------------------------------------------------- */

/* Records exercising every encoding: fall-through and jumping fetches, every size
 * code and the escape, all kinds, addresses at both ends of the address space. */
static size_t mixed_records(struct sim_trace_ref *r, size_t max)
{
    static const uint32_t sizes[] = { 1, 2, 4, 8, 16, 32, 64, 3, 10, 28, 108, 512, 4096 };
    static const uint64_t regions[] = {
        0x400000, 0x7ffff7dd0000ULL, 0x1ffeffe000ULL, 0x0, 0xfffffffffffff000ULL, 0x4a2e000,
    };
    uint64_t ip = 0x401000;
    size_t n = 0;

    while ( n < max )
    {
        uint32_t len = 1 + rnd() % 15, k;

        if ( rnd() % 8 == 0 )
            ip = (rnd() & 1) ? ip - (rnd() % 100000) : 0x400000 + rnd() % (1 << 24);
        if ( rnd() % 1000 == 0 )
            ip = 0xffffffff81000000ULL + rnd() % 4096;          /* far: a 10-byte varint */
        r[n++] = (struct sim_trace_ref){ .addr = ip, .size = len, .kind = SIM_TRACE_INSTR };
        ip += len;
        for ( k = rnd() % 3; k && n < max; k-- )
        {
            uint64_t base = regions[rnd() % 6];
            uint32_t size = sizes[rnd() % 13];
            uint64_t addr = base + (rnd() % 3 == 0 ? 0 : rnd() % (1 << 16));

            if ( base == 0xfffffffffffff000ULL )
                addr = base + rnd() % (4096 - size + 1);       /* up to the very last byte */
            if ( n && rnd() % 5 == 0 && r[n - 1].kind != SIM_TRACE_INSTR &&
                 r[n - 1].addr + size - 1 >= r[n - 1].addr )
                addr = r[n - 1].addr;                           /* the same address again */
            r[n++] = (struct sim_trace_ref){ .addr = addr, .size = size,
                                             .kind = (enum sim_trace_kind)(1 + rnd() % 3) };
        }
    }
    return n;
}

TEST(test_roundtrip)
{
    const size_t n = 200000;
    struct sim_trace_ref *refs = calloc(n, sizeof(*refs));
    uint64_t *vpns = calloc(2 * n, sizeof(*vpns));
    const char *path = tmp_path("mixed.mtr");
    struct sim_trace_cursor c;
    struct sim_trace_ref got;
    struct sim_trace_info info;
    struct sim_trace *t;
    uint64_t kinds[4] = { 0 }, nv = 0, uniq = 0, i;
    struct stat st;
    int rc;

    CHECK(refs && vpns);
    mixed_records(refs, n);
    rc = write_trace(path, "mixed: every encoding", refs, n);
    CHECKF(rc == 0, "%d", rc);
    CHECK(stat(path, &st) == 0);
    t = load_ok(path);
    CHECK(t != NULL);

    /* Every record back, in order. */
    sim_trace_cursor_init(&c, t->body, t->h.body_bytes);
    for ( i = 0; i < n; i++ )
    {
        rc = sim_trace_next(&c, &got);
        CHECKF(rc == 1, "record %llu: %d", (unsigned long long)i, rc);
        CHECKF(got.addr == refs[i].addr && got.size == refs[i].size && got.kind == refs[i].kind,
               "record %llu: %d %#llx,%u != %d %#llx,%u", (unsigned long long)i, got.kind,
               (unsigned long long)got.addr, got.size, refs[i].kind,
               (unsigned long long)refs[i].addr, refs[i].size);
        kinds[refs[i].kind]++;
        vpns[nv++] = refs[i].addr >> 12;
        vpns[nv++] = (refs[i].addr + refs[i].size - 1) >> 12;
    }
    CHECK(sim_trace_next(&c, &got) == 0);

    /* Header and page list as computed independently. */
    qsort(vpns, nv, sizeof(*vpns), cmp_u64);
    for ( i = 0; i < nv; i++ )
        if ( !i || vpns[i] != vpns[i - 1] )
            vpns[uniq++] = vpns[i];
    sim_trace_info(t, &info);
    CHECK(strcmp(info.program, "mixed: every encoding") == 0);
    CHECK(info.records == n && info.instructions == kinds[0] && info.loads == kinds[1] &&
          info.stores == kinds[2] && info.modifies == kinds[3]);
    CHECKF(info.nr_pages == uniq, "%llu pages, expected %llu",
           (unsigned long long)info.nr_pages, (unsigned long long)uniq);
    for ( i = 0; i < uniq; i++ )
        CHECK(t->pages[i] == vpns[i] && sim_trace_page_index(t, vpns[i]) == (long)i);
    CHECK(sim_trace_page_index(t, vpns[uniq - 1] + 1) == -1 || vpns[uniq - 1] == UINT64_MAX);
    CHECK(info.file_bytes == (uint64_t)st.st_size);
    printf("  roundtrip: %zu records, %llu pages, %.2f bytes/record\n", n,
           (unsigned long long)uniq, (double)t->h.body_bytes / n);
    sim_trace_put(t);
    free(refs);
    free(vpns);
}

TEST(test_writer_refuses)
{
    const char *path = tmp_path("refused.mtr");
    struct sim_trace_writer *w;
    char err[256];

    CHECK(sim_trace_writer_open(path, "x", &w, err, sizeof(err)) == 0);
    CHECK(sim_trace_writer_add(w, SIM_TRACE_LOAD, 0x1000, 0) == -EINVAL);
    CHECK(sim_trace_writer_add(w, SIM_TRACE_LOAD, 0x1000, SIM_TRACE_MAX_SIZE + 1) == -EINVAL);
    CHECK(sim_trace_writer_add(w, SIM_TRACE_INSTR, 0x1000, 32) == -EINVAL);
    CHECK(sim_trace_writer_add(w, SIM_TRACE_STORE, UINT64_MAX - 2, 8) == -EINVAL); /* wraps */
    CHECK(sim_trace_writer_add(w, SIM_TRACE_LOAD, 0x1000, 8) == 0);
    /* Abandoned: nothing is left under the name, nor a temporary. */
    CHECK(sim_trace_writer_close(w, false, NULL, 0) == 0);
    CHECK(access(path, F_OK) != 0);
    CHECK(sim_trace_writer_open("/nonexistent-dir/x.mtr", "x", &w, err, sizeof(err)) == -ENOENT);
    CHECKF(strstr(err, "nonexistent-dir") != NULL, "%s", err);
}

/* Copy @src to @dst with @len bytes at @off replaced by @bytes (NULL: cut the file at @off). */
static int damaged_copy(const char *src, const char *dst, long off, const void *bytes, size_t len)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    long i = 0;
    int ch, rc = -1;

    if ( in && out )
    {
        while ( (ch = fgetc(in)) != EOF )
        {
            if ( !bytes && i == off )
                break;
            if ( bytes && i >= off && (size_t)(i - off) < len )
                ch = ((const uint8_t *)bytes)[i - off];
            fputc(ch, out);
            i++;
        }
        rc = 0;
    }
    if ( in )
        fclose(in);
    if ( out && fclose(out) )
        rc = -1;
    return rc;
}

TEST(test_loader_refuses)
{
    const char *good = strdup(tmp_path("good.mtr")), *bad = strdup(tmp_path("bad.mtr"));
    struct sim_trace_ref refs[3000];
    struct sim_trace *t;
    struct sim_trace_header h;
    char err[256];
    uint8_t b8[8];
    long body, pages;
    unsigned int i;
    static const struct { const char *what, *expect; } cases[] = {
        { "magic", "bad magic" },
        { "version", "version" },
        { "truncated", "truncated" },
        { "body byte", "checksum" },
        { "count", "header says" },
        { "page list order", "not strictly increasing" },
        { "missing page", "not in the page list" },
        { "page shift", "page shift" },
        { "empty", "too short" },
    };

    CHECK(good && bad);
    mixed_records(refs, 3000);
    CHECK(write_trace(good, "good", refs, 3000) == 0);
    t = load_ok(good);
    CHECK(t != NULL);
    h = t->h;
    body = SIM_TRACE_HEADER_BYTES + h.program_len;
    pages = body + (long)h.body_bytes;
    sim_trace_put(t);
    CHECK(h.nr_pages >= 3);

    for ( i = 0; i < sizeof(cases) / sizeof(cases[0]); i++ )
    {
        int rc = -1;

        memset(err, 0, sizeof(err));
        switch ( i )
        {
        case 0: rc = damaged_copy(good, bad, 0, "MSWTRACX", 8); break;
        case 1: rc = damaged_copy(good, bad, 8, "\x02\0\0\0", 4); break;
        case 2: rc = damaged_copy(good, bad, pages + 4, NULL, 0); break;
        case 3:     /* one body byte flipped */
        {
            FILE *f = fopen(good, "rb");
            int ch = -1;

            if ( f && fseek(f, body + (long)h.body_bytes / 2, SEEK_SET) == 0 )
                ch = fgetc(f);
            if ( f )
                fclose(f);
            rc = ch < 0 ? -1 : damaged_copy(good, bad, body + (long)h.body_bytes / 2,
                                            (uint8_t[]){ (uint8_t)(ch ^ 0xff) }, 1);
            break;
        }
        case 4:
        {
            uint64_t more = h.loads + 1;

            for ( rc = 0; rc < 8; rc++ )
                b8[rc] = (uint8_t)(more >> (8 * rc));
            rc = damaged_copy(good, bad, 32, b8, 8);
            break;
        }
        case 5:     /* the first two pages swapped */
        {
            uint8_t two[16];
            FILE *f = fopen(good, "rb");

            rc = -1;
            if ( f && fseek(f, pages, SEEK_SET) == 0 && fread(two, 16, 1, f) == 1 )
            {
                uint8_t sw[16];

                memcpy(sw, two + 8, 8);
                memcpy(sw + 8, two, 8);
                rc = damaged_copy(good, bad, pages, sw, 16);
            }
            if ( f )
                fclose(f);
            break;
        }
        case 6:     /* the last page replaced by the next one, which nobody touches */
        {
            FILE *f = fopen(good, "rb");

            rc = -1;
            if ( f && fseek(f, pages + 8 * (long)(h.nr_pages - 1), SEEK_SET) == 0 &&
                 fread(b8, 8, 1, f) == 1 )
            {
                unsigned int byte = 0;

                while ( byte < 8 && ++b8[byte] == 0 )   /* little-endian + 1 */
                    byte++;
                rc = damaged_copy(good, bad, pages + 8 * (long)(h.nr_pages - 1), b8, 8);
            }
            if ( f )
                fclose(f);
            break;
        }
        case 7: rc = damaged_copy(good, bad, 12, "\x0d\0\0\0", 4); break;
        case 8: rc = damaged_copy(good, bad, 0, NULL, 0); break;
        }
        CHECKF(rc == 0, "making case %s", cases[i].what);
        t = (struct sim_trace *)&rc;             /* must be reset to NULL */
        rc = sim_trace_load(bad, &t, err, sizeof(err));
        CHECKF(rc == -EINVAL && t == NULL, "%s: rc %d", cases[i].what, rc);
        CHECKF(strstr(err, cases[i].expect) && strstr(err, bad), "%s: \"%s\"", cases[i].what, err);
        printf("  refused (%s): %s\n", cases[i].what, err + strlen(bad) + 2);
    }
    t = (struct sim_trace *)&i;
    CHECK(sim_trace_load(tmp_path("absent.mtr"), &t, err, sizeof(err)) == -ENOENT && t == NULL);
    free((void *)good);
    free((void *)bad);
}

/* ---- 2. flat replay against a brute-force rendering of cachegrind's rules -- */

struct ref_line { uint64_t line, last; bool valid; };
struct ref_cache { struct ref_line *l; uint64_t sets; unsigned int ways, line_bytes; };

static uint64_t ref_now;

static bool ref_cache_init(struct ref_cache *c, const struct sim_llc_config *g)
{
    c->sets = g->size_bytes / g->ways / g->line_bytes;
    c->ways = g->ways;
    c->line_bytes = g->line_bytes;
    c->l = calloc(c->sets * c->ways, sizeof(*c->l));
    return c->l != NULL;
}

/* One line looked up: true on a hit; the LRU line of the set is replaced on a miss. */
static bool ref_line_access(struct ref_cache *c, uint64_t line)
{
    struct ref_line *s = c->l + (line % c->sets) * c->ways;
    unsigned int i, victim = 0;

    ref_now++;
    for ( i = 0; i < c->ways; i++ )
        if ( s[i].valid && s[i].line == line )
        {
            s[i].last = ref_now;
            return true;
        }
    for ( i = 0; i < c->ways; i++ )
    {
        if ( !s[i].valid )
        {
            victim = i;
            break;
        }
        if ( s[i].last < s[victim].last )
            victim = i;
    }
    s[victim] = (struct ref_line){ .line = line, .last = ref_now, .valid = true };
    return false;
}

/* An access of [addr, addr + size): every line it covers looked up; a miss if any missed. */
static bool ref_access(struct ref_cache *c, uint64_t addr, uint32_t size)
{
    uint64_t l, first = addr / c->line_bytes, last = (addr + size - 1) / c->line_bytes;
    bool hit = true;

    for ( l = first; l <= last; l++ )
        hit = ref_line_access(c, l) && hit;
    return hit;
}

/* The counts cachegrind's rules give for @refs replayed @times over, from cold caches. */
static void ref_replay(const struct sim_trace_ref *refs, size_t n, unsigned int times,
                       const struct sim_l1_config *l1, const struct sim_llc_config *ll,
                       struct sim_trace_counts *c)
{
    struct ref_cache i1, d1, llc;
    uint32_t cut = l1->i1.line_bytes;
    unsigned int k;
    size_t i;

    memset(c, 0, sizeof(*c));
    if ( !ref_cache_init(&i1, &l1->i1) || !ref_cache_init(&d1, &l1->d1) || !ref_cache_init(&llc, ll) )
        exit(1);
    if ( l1->d1.line_bytes < cut )
        cut = l1->d1.line_bytes;
    if ( ll->line_bytes < cut )
        cut = ll->line_bytes;
    for ( k = 0; k < times; k++ )
        for ( i = 0; i < n; i++ )
        {
            const struct sim_trace_ref *r = &refs[i];
            uint32_t size = r->size < cut ? r->size : cut;
            struct ref_cache *l1c = r->kind == SIM_TRACE_INSTR ? &i1 : &d1;
            uint64_t *refs_n, *l1_miss, *ll_miss;

            if ( r->kind == SIM_TRACE_INSTR )
            {
                refs_n = &c->i_refs;
                l1_miss = &c->i1_misses;
                ll_miss = &c->ll_i_misses;
            }
            else if ( r->kind == SIM_TRACE_STORE )
            {
                refs_n = &c->d_writes;
                l1_miss = &c->d1_write_misses;
                ll_miss = &c->ll_d_write_misses;
            }
            else
            {
                refs_n = &c->d_reads;
                l1_miss = &c->d1_read_misses;
                ll_miss = &c->ll_d_read_misses;
            }
            c->records++;
            ++*refs_n;
            if ( ref_access(l1c, r->addr, size) )
                continue;
            ++*l1_miss;
            if ( !ref_access(&llc, r->addr, size) )
                ++*ll_miss;
        }
    c->loops = times - 1;
    free(i1.l);
    free(d1.l);
    free(llc.l);
}

/* A program-like trace: a 96 KiB code loop, a hot stack, a heap with reuse, a stream. */
static size_t program_records(struct sim_trace_ref *r, size_t max)
{
    static const uint32_t sizes[] = { 1, 2, 4, 8, 8, 8, 16, 32, 3, 10, 108 };
    uint64_t ip = 0x400000, stream = 0x7f0000000000ULL;
    size_t n = 0;

    while ( n < max )
    {
        uint32_t len = 1 + rnd() % 11;

        if ( rnd() % 6 == 0 )
            ip = 0x400000 + rnd() % (96 << 10);
        r[n++] = (struct sim_trace_ref){ .addr = ip, .size = len, .kind = SIM_TRACE_INSTR };
        ip += len;
        if ( n < max && rnd() % 2 )
        {
            uint64_t x = rnd(), addr;
            uint32_t size = sizes[x % 11];

            switch ( (x >> 8) % 4 )
            {
            case 0: addr = 0x1fff000000ULL - (x >> 16) % 8192; break;           /* stack */
            case 1: addr = 0x5000000 + (x >> 16) % (256 << 10); break;          /* hot heap */
            case 2: addr = 0x8000000 + (x >> 16) % (6 << 20); break;            /* big heap */
            default: addr = stream; stream += size; break;                     /* stream */
            }
            r[n++] = (struct sim_trace_ref){ .addr = addr, .size = size,
                                             .kind = (enum sim_trace_kind)(1 + (x >> 40) % 3) };
        }
    }
    return n;
}

static bool counts_equal(const struct sim_trace_counts *a, const struct sim_trace_counts *b)
{
    return a->records == b->records && a->loops == b->loops && a->i_refs == b->i_refs &&
           a->d_reads == b->d_reads && a->d_writes == b->d_writes &&
           a->i1_misses == b->i1_misses && a->d1_read_misses == b->d1_read_misses &&
           a->d1_write_misses == b->d1_write_misses && a->ll_i_misses == b->ll_i_misses &&
           a->ll_d_read_misses == b->ll_d_read_misses &&
           a->ll_d_write_misses == b->ll_d_write_misses && a->unmapped == b->unmapped;
}

static void print_counts(const char *what, const struct sim_trace_counts *c)
{
    printf("  %s: %llu records, I %llu/%llu/%llu, Dr %llu/%llu/%llu, Dw %llu/%llu/%llu "
           "(refs/L1 misses/LL misses), %llu loops\n", what, (unsigned long long)c->records,
           (unsigned long long)c->i_refs, (unsigned long long)c->i1_misses,
           (unsigned long long)c->ll_i_misses, (unsigned long long)c->d_reads,
           (unsigned long long)c->d1_read_misses, (unsigned long long)c->ll_d_read_misses,
           (unsigned long long)c->d_writes, (unsigned long long)c->d1_write_misses,
           (unsigned long long)c->ll_d_write_misses, (unsigned long long)c->loops);
}

TEST(test_flat_replay)
{
    static const struct { struct sim_l1_config l1; struct sim_llc_config ll; } geo[] = {
        { { { 32768, 8, 64 }, { 49152, 12, 64 } }, { 1 << 20, 16, 64 } },
        { { { 16384, 4, 64 }, { 8192, 2, 32 } }, { 256 << 10, 8, 128 } },
        { { { 1024, 1, 64 }, { 2048, 2, 64 } }, { 64 << 10, 4, 64 } },
    };
    const size_t n = 300000;
    struct sim_trace_ref *refs = calloc(n, sizeof(*refs));
    const char *path = tmp_path("program.mtr");
    struct sim_trace_counts want, got;
    struct sim_trace *t;
    unsigned int g;

    CHECK(refs);
    program_records(refs, n);
    CHECK(write_trace(path, "program-like", refs, n) == 0);
    t = load_ok(path);
    CHECK(t != NULL);
    sim_host_destroy();
    for ( g = 0; g < sizeof(geo) / sizeof(geo[0]); g++ )
    {
        CHECK(sim_llc_init(&geo[g].ll) == 0);
        ref_replay(refs, n, 1, &geo[g].l1, &geo[g].ll, &want);
        CHECK(sim_trace_replay_flat(t, &geo[g].l1, 0, &got) == 0);
        print_counts("flat model ", &got);
        print_counts("brute force", &want);
        CHECK(counts_equal(&got, &want));
        CHECK(!got.done && got.records == n);
        /* Enough of every kind of event that the comparison means something. */
        CHECK(got.i1_misses > 100 && got.d1_read_misses > 100 && got.d1_write_misses > 100);
        CHECK(got.ll_i_misses > 10 && got.ll_d_read_misses > 100 && got.ll_d_write_misses > 100);

        /* Two and a half times over: the replay loops, caches warm. */
        sim_llc_invalidate();
        ref_replay(refs, n, 3, &geo[g].l1, &geo[g].ll, &want);
        CHECK(sim_trace_replay_flat(t, &geo[g].l1, 3 * n, &got) == 0);
        CHECK(counts_equal(&got, &want) && got.loops == 2);
        sim_llc_fini();
    }
    {
        struct sim_l1_config bad = { { 1000, 3, 64 }, { 0, 0, 0 } };

        CHECK(sim_trace_replay_flat(t, NULL, 0, &got) == -ENODEV);    /* no LLC */
        CHECK(sim_llc_init(&geo[0].ll) == 0);
        CHECK(sim_trace_replay_flat(t, &bad, 0, &got) == -EINVAL);
        /* Zeros: the documented default L1 (32 KiB/8, 48 KiB/12). */
        CHECK(sim_trace_replay_flat(t, NULL, 0, &got) == 0);
        ref_replay(refs, n, 1, &geo[0].l1, &geo[0].ll, &want);
        sim_llc_fini();
        CHECK(counts_equal(&got, &want));
    }
    sim_trace_put(t);
    free(refs);
}

/* ---- 3. trace-driven domains ---------------------------------------------- */

static int host_up(void)
{
    struct sim_host_config hc = {
        .ram_bytes = 512 * MiB, .nr_nodes = 1,
        .llc = { .size_bytes = LLC_SIZE, .ways = LLC_WAYS, .line_bytes = 64 },
        .seed = 7,
    };
    int rc;

    sim_host_destroy();
    rc = sim_host_create(&hc);
    if ( !rc )
        sim_llc_invalidate();
    return rc;
}

static int guest(const char *name, uint64_t mem, unsigned int first, unsigned int n)
{
    struct sim_guest_config gc;
    unsigned int c;
    int domid;

    memset(&gc, 0, sizeof(gc));
    snprintf(gc.name, sizeof(gc.name), "%s", name);
    gc.mem_bytes = mem;
    gc.nr_vcpus = 1;
    gc.nr_address_spaces = 1;
    gc.node = MEMSWAP_NODE_ANY;
    gc.seed = 42;
    for ( c = first; c < first + n; c++ )
        gc.colours[c / 64] |= 1ULL << (c % 64);
    domid = sim_domain_create(&gc);
    if ( domid <= 0 )
        fprintf(stderr, "  sim_domain_create(%s): %d\n", name, domid);
    return domid;
}

/* A tiny D1 and I1 (1 KiB direct-mapped): every data line of a page-sized stride misses them. */
static const struct sim_l1_config tiny_l1 = { { 1024, 1, 64 }, { 1024, 1, 64 } };

/*
 * PAGES pages at 0x10000000, every line loaded once, each load after one
 * fetch from a 64-byte code loop: 2 * PAGES * 64 records. The trace's pages
 * in address order: the code page (trace page 0), then data page k (trace
 * page k + 1).
 */
#define PAGES 8
#define SWEEP_PAGES (PAGES + 1)

/* The pfn data page @k of a sweep lands on, with @offset. */
static unsigned long sweep_pfn(unsigned int k, unsigned int offset)
{
    return WS_FIRST + (k + 1 + offset) % SWEEP_PAGES;
}
static size_t sweep_records(struct sim_trace_ref *r)
{
    size_t n = 0;
    unsigned int k, j;

    for ( k = 0; k < PAGES; k++ )
        for ( j = 0; j < 64; j++ )
        {
            r[n++] = (struct sim_trace_ref){ .addr = 0x400000 + 4 * (j % 16), .size = 4,
                                             .kind = SIM_TRACE_INSTR };
            r[n++] = (struct sim_trace_ref){ .addr = 0x10000000 + k * 4096 + j * 64, .size = 8,
                                             .kind = SIM_TRACE_LOAD };
        }
    return n;
}

/* How many of page k's 64 lines the LLC holds at the machine frame of guest pfn @pfn. */
static unsigned int cached_lines(int domid, unsigned long pfn, unsigned int first_line)
{
    unsigned long mfn = sim_domain_pfn_to_mfn(domid, pfn);
    unsigned int j, n = 0;

    for ( j = first_line; j < 64; j += 2 )      /* every other line: probing inserts */
        n += sim_llc_access((uint64_t)mfn * 4096 + j * 64) == 1;
    return n;
}

TEST(test_domain_replay)
{
    struct sim_trace_ref refs[2 * PAGES * 64];
    size_t n = sweep_records(refs);
    const char *path = tmp_path("sweep.mtr");
    struct sim_trace_workload tw;
    struct sim_trace_counts tc;
    struct sim_counters c;
    struct sim_trace *t;
    unsigned int k;
    int d, e, rc;

    CHECK(write_trace(path, "sweep", refs, n) == 0);
    t = load_ok(path);
    CHECK(t != NULL);
    rc = host_up();
    CHECKF(rc == 0, "%d", rc);
    d = guest("tracer", 64 * MiB, 0, 0);
    e = guest("other", 64 * MiB, 0, 0);
    CHECK(d > 0 && e > 0);

    memset(&tw, 0, sizeof(tw));
    tw.trace = t;
    tw.weight = 1;
    tw.l1 = tiny_l1;
    CHECK(sim_domain_set_trace(30000, &tw) == -ESRCH);
    CHECK(sim_domain_set_trace(d, NULL) == -EINVAL);
    tw.weight = 0;
    CHECK(sim_domain_set_trace(d, &tw) == -EINVAL);
    tw.weight = 1;
    tw.l1.d1.ways = 3;                          /* 1024 / (3 * 64): not a power of two */
    CHECK(sim_domain_set_trace(d, &tw) == -EINVAL);
    tw.l1 = tiny_l1;
    CHECK(sim_domain_trace_counts(d, &tc) == -ENOENT);

    /* One pass, not looping: every line of trace page k lands on pfn 1024 + k's frame. */
    CHECK(sim_domain_set_trace(d, &tw) == 0);
    sim_trace_put(t);                           /* the domain holds its own reference */
    sim_llc_run(10 * n);
    CHECK(sim_domain_trace_counts(d, &tc) == 0);
    CHECK(tc.done && tc.records == n && tc.loops == 0 && tc.unmapped == 0);
    CHECK(tc.i_refs == n / 2 && tc.d_reads == n / 2 && tc.d1_read_misses == n / 2);
    CHECK(sim_domain_counters(d, &c) == 0);
    CHECK(c.instructions == n / 2);
    CHECK(c.accesses == tc.i1_misses + tc.d1_read_misses);
    CHECK(c.misses == tc.ll_i_misses + tc.ll_d_read_misses && c.misses == n / 2 + 1);
    CHECK(c.cycles == c.instructions + 40 * (c.accesses - c.misses) + 200 * c.misses);
    CHECK(t->h.nr_pages == SWEEP_PAGES);
    for ( k = 0; k < PAGES; k++ )
        CHECKF(cached_lines(d, sweep_pfn(k, 0), 0) == 32, "page %u", k);
    CHECK(cached_lines(d, WS_FIRST + SWEEP_PAGES, 0) == 0);
    /* Done: more running changes nothing. */
    sim_llc_run(n);
    CHECK(sim_domain_counters(d, &c) == 0 && c.instructions == n / 2);

    /* Offset 3, looping: trace page i on working-set page (i + 3) mod 9; 2.5 passes = 2 loops. */
    tw.loop = true;
    tw.offset_pages = 3 + SWEEP_PAGES;          /* reduced modulo the page count */
    CHECK(sim_domain_set_trace(d, &tw) == 0);
    sim_llc_invalidate();
    sim_llc_run(5 * n / 2);
    CHECK(sim_domain_trace_counts(d, &tc) == 0);
    CHECK(!tc.done && tc.records == 5 * n / 2 && tc.loops == 2);
    for ( k = 0; k < PAGES; k++ )
        CHECKF(cached_lines(d, sweep_pfn(k, 3), 0) == 32, "page %u", k);
    CHECK(cached_lines(d, WS_FIRST + SWEEP_PAGES, 1) == 0);

    /* The code loop is one line: it misses the I1 once, and again only after
     * a flush of the domain's translations (a swap) empties its L1. */
    {
        struct sim_trace_counts t1, t2;

        CHECK(tc.i1_misses == 1);
        sim_llc_run(n);
        CHECK(sim_domain_trace_counts(d, &t1) == 0 && t1.i1_misses == 1);
        sim_llc_flush_translations(d);
        sim_llc_run(n);
        CHECK(sim_domain_trace_counts(d, &t2) == 0 && t2.i1_misses == 2);
        CHECK(t2.d1_read_misses - t1.d1_read_misses == n / 2);   /* tiny D1: every line */
    }

    /* Shares by weight with a synthetic domain: records and LLC references add up. */
    {
        struct sim_workload w = { .wss_bytes = MiB, .pattern = SIM_PAT_RANDOM,
                                  .intensity = 20, .weight = 3 };
        struct sim_counters ce0, ce1;
        struct sim_trace_counts t0;

        CHECK(sim_domain_set_workload(e, &w) == 0);
        CHECK(sim_domain_trace_counts(e, &tc) == -ENOENT);
        CHECK(sim_domain_trace_counts(d, &t0) == 0 && sim_domain_counters(e, &ce0) == 0);
        sim_llc_run(4000000);
        CHECK(sim_domain_trace_counts(d, &tc) == 0 && sim_domain_counters(e, &ce1) == 0);
        CHECKF(tc.records - t0.records + ce1.accesses - ce0.accesses == 4000000, "%llu + %llu",
               (unsigned long long)(tc.records - t0.records),
               (unsigned long long)(ce1.accesses - ce0.accesses));
        CHECK(tc.records - t0.records > 990000 && tc.records - t0.records < 1010000);
    }

    /* Back to a synthetic workload, then none: the trace replay is gone. */
    {
        struct sim_workload w = { .wss_bytes = MiB, .pattern = SIM_PAT_SEQUENTIAL,
                                  .intensity = 20, .weight = 1 };

        CHECK(sim_domain_set_workload(d, &w) == 0);
        CHECK(sim_domain_trace_counts(d, &tc) == -ENOENT);
        CHECK(sim_domain_set_workload(d, NULL) == 0);
    }
    sim_host_destroy();
}

/* ---- 4. a swap of a trace-driven domain ------------------------------------ */

static int swap_to(int domid, unsigned int first, struct memswap_result *res)
{
    struct memswap_request req;
    struct sim_swap_opts opts;
    unsigned int c;

    memset(&req, 0, sizeof(req));
    memset(&opts, 0, sizeof(opts));
    memset(res, 0, sizeof(*res));
    opts.alloc_fail_at = -1;
    req.domid = domid;
    req.node = MEMSWAP_NODE_ANY;
    sim_host_geometry(&req.geom);
    for ( c = first; c < first + NR_COLOURS / 2; c++ )
        req.colours[c / 64] |= 1ULL << (c % 64);
    return sim_swap(&req, &opts, res);
}

/* LLC miss rate of @domid over @n further references of the mix. */
static double miss_rate(int domid, uint64_t n)
{
    struct sim_counters a, b;

    sim_domain_counters(domid, &a);
    sim_llc_run(n);
    sim_domain_counters(domid, &b);
    return b.accesses > a.accesses ?
           (double)(b.misses - a.misses) / (double)(b.accesses - a.accesses) : -1.0;
}

TEST(test_swap)
{
    /* Victim: 1 MiB (256 pages) of random 8-byte loads, one fetch each, looping. */
    const size_t n = 400000;
    struct sim_trace_ref *refs = calloc(n, sizeof(*refs));
    struct sim_trace_ref sweep[2 * PAGES * 64];
    const char *path = tmp_path("victim.mtr");
    struct sim_workload aggr = { .wss_bytes = 32 * MiB, .pattern = SIM_PAT_SEQUENTIAL,
                                 .intensity = 20, .weight = 1 };
    struct sim_trace_workload tw;
    struct sim_trace_counts before, after;
    struct memswap_result res;
    double shared, swapped;
    unsigned long old_mfn[PAGES];
    struct sim_trace *t;
    char audit[512];
    size_t i;
    unsigned int k;
    int v, a, rc;

    CHECK(refs);
    for ( i = 0; i < n; i += 2 )
    {
        refs[i] = (struct sim_trace_ref){ .addr = 0x400000 + 4 * (i % 16), .size = 4,
                                          .kind = SIM_TRACE_INSTR };
        refs[i + 1] = (struct sim_trace_ref){ .addr = 0x20000000 + (rnd() % (MiB / 8)) * 8,
                                              .size = 8, .kind = SIM_TRACE_LOAD };
    }
    /* The sweep's pages first, so that trace pages 0..7 are the same 8 pages. */
    sweep_records(sweep);
    for ( i = 0; i < 2 * PAGES * 64; i++ )
        sweep[i].addr = sweep[i].kind == SIM_TRACE_LOAD ? sweep[i].addr - 0x10000000 + 0x20000000
                                                        : sweep[i].addr;
    memcpy(refs, sweep, sizeof(sweep));
    CHECK(write_trace(path, "victim", refs, n) == 0);
    free(refs);
    t = load_ok(path);
    CHECK(t != NULL && t->h.nr_pages == 256 + 1);

    rc = host_up();
    CHECKF(rc == 0, "%d", rc);
    v = guest("victim", 32 * MiB, 0, NR_COLOURS / 2);
    a = guest("aggressor", 64 * MiB, 0, NR_COLOURS / 2);
    CHECK(v > 0 && a > 0);
    memset(&tw, 0, sizeof(tw));
    tw.trace = t;
    tw.weight = 1;
    tw.loop = true;
    tw.l1 = tiny_l1;
    CHECK(sim_domain_set_trace(v, &tw) == 0);
    sim_trace_put(t);
    CHECK(sim_domain_set_workload(a, &aggr) == 0);

    /* Sharing colours 0-31 with the stream, the victim keeps missing. */
    miss_rate(v, 4000000);
    shared = miss_rate(v, 8000000);

    /* Swap the victim to colours 32-63, halfway through its trace. */
    for ( k = 0; k < PAGES; k++ )
        old_mfn[k] = sim_domain_pfn_to_mfn(v, sweep_pfn(k, 0));
    CHECK(sim_domain_trace_counts(v, &before) == 0);
    rc = swap_to(v, NR_COLOURS / 2, &res);
    CHECKF(rc == 0, "sim_swap: %d", rc);
    CHECK(res.frames_moved > 0);
    for ( k = 0; k < PAGES; k++ )
        CHECK(sim_domain_pfn_to_mfn(v, sweep_pfn(k, 0)) != old_mfn[k]);
    CHECK(sim_domain_trace_counts(v, &after) == 0);
    CHECK(after.records == before.records && after.loops == before.loops);  /* carries on */
    miss_rate(v, 4000000);
    swapped = miss_rate(v, 8000000);
    CHECK(sim_domain_trace_counts(v, &after) == 0);
    CHECK(after.records > before.records && after.unmapped == 0);
    printf("  swap: trace victim (1 MiB random) with a 32 MiB stream on colours 0-31: "
           "LLC miss rate %.4f; swapped to 32-63: %.4f (%llu frames moved, %llu loops)\n",
           shared, swapped, (unsigned long long)res.frames_moved, (unsigned long long)after.loops);
    CHECKF(shared > 0.2, "%f", shared);
    CHECKF(swapped < 0.05, "%f", swapped);

    /* Its trace pages now reach the new frames of the same pfns, not the old ones:
     * one clean pass of the trace's first 1024 records (the sweep) shows it. */
    CHECK(sim_domain_set_workload(a, NULL) == 0);
    tw.trace = load_ok(path);
    tw.loop = false;
    CHECK(tw.trace != NULL);
    CHECK(sim_domain_set_trace(v, &tw) == 0);
    sim_trace_put(tw.trace);
    sim_llc_invalidate();
    sim_llc_run(2 * PAGES * 64);
    for ( k = 0; k < PAGES; k++ )
    {
        unsigned long mfn = old_mfn[k];
        unsigned int j, old_hits = 0;

        CHECKF(cached_lines(v, sweep_pfn(k, 0), 0) == 32, "page %u", k);
        for ( j = 0; j < 64; j += 2 )
            old_hits += sim_llc_access((uint64_t)mfn * 4096 + j * 64) == 1;
        CHECK(old_hits == 0);
    }
    rc = sim_audit(audit, sizeof(audit));
    CHECKF(rc == 0, "%s", audit);
    /* A destroyed domain drops its trace (the sanitizer build checks the memory). */
    CHECK(sim_domain_destroy(v) == 0);
    sim_host_destroy();
}
