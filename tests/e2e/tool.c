/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap-e2e-tool: what the end-to-end test observes from dom0 on real
 * Xen. It never swaps, suspends or resumes anything: every swap of the test
 * is made by the product (memswapctl, memswapd). It reads, through
 * libxenctrl and the P2M reader the extension uses (cext/xen/):
 *
 *   info DOMID                        domain info (tot_pages, flags)
 *   physinfo                          free/total/scrub pages of the host
 *   p2m DOMID FILE                    write the guest's P2M ("pfn mfn" hex,
 *                                     valid entries, ascending pfn)
 *   compare BEFORE AFTER [--nr-colours N] [--shift S] [--colours LIST]
 *        [--expect-kept FILE] [--min-moved PCT]
 *                                     frames changed between two P2M dumps,
 *                                     colours of the new frames, frames that
 *                                     had to stay
 *   hold DOMID                        foreign-map one of DOMID's frames and
 *                                     keep it until stdin closes (turns a
 *                                     destroyed domain into a dying zombie)
 *   watch FILE                        follow a console log; for each
 *                                     heartbeat line "HB <n> ..." print
 *                                     "<dom0 monotonic seconds> <n>" as it
 *                                     arrives (20 ms polling)
 *
 * LIST is a comma-separated list of colours and ranges ("0-7,16"). Colour
 * of a frame: (mfn >> shift) & (nr_colours - 1), as in core/memswap.h.
 * Built static (make e2e-programs): the test's images carry no libraries
 * of ours. Exit status: 0 success, 1 a check or query failed, 2 usage,
 * 125 an error of the tool itself (message on stderr).
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
#include <sys/mman.h>
#include <sys/stat.h>

#include "cext/xen/xenhost.h"

#define MAX_COLOURS XEN_DOMCTL_MEMSWAP_MAX_COLOURS
#define NR_COLOUR_WORDS (MAX_COLOURS / 64)

static struct ms_xen xen;

static void die(const char *what)
{
    fprintf(stderr, "memswap-e2e-tool: %s: %s\n", what, strerror(errno));
    exit(125);
}

static void die_xen(const struct ms_xen_error *e)
{
    fprintf(stderr, "memswap-e2e-tool: %s: %s%s%s\n", e->call, strerror(e->err),
            e->msg[0] ? ": " : "", e->msg);
    exit(125);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if ( !p )
        die("malloc");
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if ( !p )
        die("realloc");
    return p;
}

static void open_xen(void)
{
    if ( xen.xch )
        return;
    xen.xch = xc_interface_open(NULL, NULL, 0);
    if ( !xen.xch )
        die("xc_interface_open");
    xen.xfm = xenforeignmemory_open(NULL, 0);
    if ( !xen.xfm )
        die("xenforeignmemory_open");
    xen.xsh = xs_open(0);       /* optional: only to know our own domid */
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A number, all of it, in range: a typo never becomes domain 0. */
static unsigned long parse_ulong(const char *s, unsigned long max, const char *what)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 0);
    if ( !*s || *s == '-' || *end || errno || v > max )
    {
        fprintf(stderr, "memswap-e2e-tool: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static unsigned int parse_domid(const char *s)
{
    return (unsigned int)parse_ulong(s, DOMID_FIRST_RESERVED - 1, "domain id");
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
    if ( !s )
        die("strdup");
    for ( tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save) )
    {
        char *dash = strchr(tok, '-');
        unsigned long lo, hi;

        if ( dash )
            *dash = 0;
        lo = parse_ulong(tok, MAX_COLOURS - 1, "colour");
        hi = dash ? parse_ulong(dash + 1, MAX_COLOURS - 1, "colour") : lo;
        for ( ; lo <= hi; lo++ )
            c->map[lo / 64] |= 1ULL << (lo % 64);
        c->any = 0;
    }
    free(s);
}

static int colour_ok(const struct colours *c, uint64_t mfn)
{
    unsigned int col = c->nr ? (unsigned int)((mfn >> c->shift) & (c->nr - 1)) : 0;

    return c->any || ((c->map[col / 64] >> (col % 64)) & 1);
}

/* ---- domain/host info ------------------------------------------------- */

static int cmd_info(unsigned int domid)
{
    xc_domaininfo_t i;
    int err;

    open_xen();
    if ( (err = ms_xen_domain_info(&xen, domid, &i)) )
    {
        printf("info: domid=%u rc=%s\n", domid, strerrorname_np(err) ?: "E?");
        return 1;
    }
    printf("info: domid=%u tot_pages=%" PRIu64 " max_pages=%" PRIu64
           " shared_info=%#" PRIx64 " dying=%d paused=%d shutdown=%d hvm=%d"
           " shutdown_reason=%d\n",
           domid, (uint64_t)i.tot_pages, (uint64_t)i.max_pages,
           (uint64_t)i.shared_info_frame, !!(i.flags & XEN_DOMINF_dying),
           !!(i.flags & XEN_DOMINF_paused), !!(i.flags & XEN_DOMINF_shutdown),
           !!(i.flags & XEN_DOMINF_hvm_guest), ms_xen_shutdown_reason(&i));
    return 0;
}

static int cmd_physinfo(void)
{
    xc_physinfo_t pi;

    open_xen();
    memset(&pi, 0, sizeof(pi));
    if ( xc_physinfo(xen.xch, &pi) )
    {
        printf("physinfo: rc=%s\n", strerrorname_np(errno) ?: "E?");
        return 1;
    }
    printf("physinfo: total_pages=%" PRIu64 " free_pages=%" PRIu64
           " scrub_pages=%" PRIu64 " outstanding_pages=%" PRIu64 "\n",
           (uint64_t)pi.total_pages, (uint64_t)pi.free_pages,
           (uint64_t)pi.scrub_pages, (uint64_t)pi.outstanding_pages);
    return 0;
}

/* ---- the P2M ---------------------------------------------------------- */

static uint64_t *read_p2m(unsigned int domid, unsigned long *nr)
{
    struct ms_xen_error e;
    uint64_t *p2m;

    open_xen();
    if ( ms_xen_read_p2m(&xen, domid, xen.xsh ? ms_xen_read_own_domid(&xen) : -1,
                         &p2m, nr, &e) )
        die_xen(&e);
    return p2m;
}

static int cmd_p2m(unsigned int domid, const char *file)
{
    unsigned long nr, i, valid = 0;
    uint64_t *p2m = read_p2m(domid, &nr);
    FILE *f = fopen(file, "w");

    if ( !f )
        die(file);
    for ( i = 0; i < nr; i++ )
        if ( p2m[i] != MS_XEN_P2M_NONE )
        {
            fprintf(f, "%lx %" PRIx64 "\n", i, p2m[i]);
            valid++;
        }
    if ( fclose(f) )
        die(file);
    free(p2m);
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
    p->pfn = xmalloc(cap * sizeof(long));
    p->mfn = xmalloc(cap * sizeof(long));
    while ( fscanf(f, "%lx %lx", &pfn, &mfn) == 2 )
    {
        if ( p->nr && pfn <= p->pfn[p->nr - 1] )
        {
            fprintf(stderr, "memswap-e2e-tool: %s: pfns not ascending at %#lx\n", file, pfn);
            exit(125);
        }
        if ( p->nr == cap )
        {
            cap *= 2;
            p->pfn = xrealloc(p->pfn, cap * sizeof(long));
            p->mfn = xrealloc(p->mfn, cap * sizeof(long));
        }
        p->pfn[p->nr] = pfn;
        p->mfn[p->nr++] = mfn;
    }
    if ( ferror(f) )
        die(file);
    fclose(f);
}

static long lookup(const struct p2m_file *p, unsigned long pfn)
{
    unsigned long lo = 0, hi = p->nr;

    while ( lo < hi )
    {
        unsigned long mid = (lo + hi) / 2;

        if ( p->pfn[mid] == pfn )
            return (long)mid;
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
    unsigned long i, changed = 0, kept = 0, lost = 0, off_colour = 0, dup = 0, *all;
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
    all = xmalloc(a.nr * sizeof(long));
    memcpy(all, a.mfn, a.nr * sizeof(long));
    qsort(all, a.nr, sizeof(long), cmp_ul);
    for ( i = 1; i < a.nr; i++ )
        if ( all[i] == all[i - 1] )
            dup++;
    free(all);
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
    free(a.pfn);
    free(a.mfn);
    free(b.pfn);
    free(b.mfn);
    return ok ? 0 : 1;
}

/* ---- hold a frame of a domain (dying-domain test) ---------------------- */

static int cmd_hold(unsigned int domid)
{
    unsigned long nr, i;
    uint64_t *p2m = read_p2m(domid, &nr);
    xen_pfn_t mfn = 0;
    int err = 0;
    void *p;
    char buf[64];

    for ( i = 0; i < nr && !mfn; i++ )
        if ( p2m[i] != MS_XEN_P2M_NONE )
            mfn = p2m[i];
    free(p2m);
    if ( !mfn )
    {
        fprintf(stderr, "memswap-e2e-tool: d%u has no frame in its P2M\n", domid);
        return 125;
    }
    p = xenforeignmemory_map(xen.xfm, domid, PROT_READ, 1, &mfn, &err);
    if ( !p || err )
    {
        errno = p ? err : errno;
        die("map the frame to hold");
    }
    printf("hold: domid=%u mfn=%#lx held\n", domid, (unsigned long)mfn);
    fflush(stdout);
    while ( read(0, buf, sizeof(buf)) > 0 )
        ;
    xenforeignmemory_unmap(xen.xfm, p, 1);
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
            "usage: memswap-e2e-tool info DOMID | physinfo | p2m DOMID FILE | hold DOMID\n"
            "       memswap-e2e-tool watch CONSOLE-LOG\n"
            "       memswap-e2e-tool compare BEFORE AFTER [--nr-colours N] [--shift S]\n"
            "                        [--colours LIST] [--expect-kept FILE] [--min-moved PCT]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct colours c = { .nr = 0, .shift = 0, .any = 1 };
    const char *list = NULL, *expect = NULL;
    double min_moved = 0;
    int i, npos = 0;
    char *pos[2];

    if ( argc < 2 )
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    for ( i = 2; i < argc; i++ )
    {
        if ( !strcmp(argv[i], "--nr-colours") && i + 1 < argc )
            c.nr = (uint32_t)parse_ulong(argv[++i], MAX_COLOURS, "--nr-colours");
        else if ( !strcmp(argv[i], "--shift") && i + 1 < argc )
            c.shift = (uint32_t)parse_ulong(argv[++i], 32, "--shift");
        else if ( !strcmp(argv[i], "--colours") && i + 1 < argc )
            list = argv[++i];
        else if ( !strcmp(argv[i], "--expect-kept") && i + 1 < argc )
            expect = argv[++i];
        else if ( !strcmp(argv[i], "--min-moved") && i + 1 < argc )
            min_moved = strtod(argv[++i], NULL);
        else if ( argv[i][0] == '-' && argv[i][1] == '-' )
            usage();
        else if ( npos < 2 )
            pos[npos++] = argv[i];
        else
            usage();
    }
    parse_colours(&c, list);
    if ( c.any && c.nr == 0 )
        c.nr = 1;               /* one colour: every frame */
    if ( c.nr == 0 || (c.nr & (c.nr - 1)) )
    {
        fprintf(stderr, "memswap-e2e-tool: --colours needs --nr-colours, a power of two "
                "1..%d\n", MAX_COLOURS);
        return 2;
    }

    if ( !strcmp(argv[1], "info") && npos == 1 )
        return cmd_info(parse_domid(pos[0]));
    if ( !strcmp(argv[1], "physinfo") && npos == 0 )
        return cmd_physinfo();
    if ( !strcmp(argv[1], "p2m") && npos == 2 )
        return cmd_p2m(parse_domid(pos[0]), pos[1]);
    if ( !strcmp(argv[1], "compare") && npos == 2 )
        return cmd_compare(pos[0], pos[1], &c, expect, min_moved);
    if ( !strcmp(argv[1], "watch") && npos == 1 )
        return cmd_watch(pos[0]);
    if ( !strcmp(argv[1], "hold") && npos == 1 )
        return cmd_hold(parse_domid(pos[0]));
    usage();
    return 2;
}
