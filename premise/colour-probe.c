/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * colour-probe: does page colouring separate two programs in this CPU's
 * last-level cache? A userspace experiment on the host, as root.
 *
 * 1. The LLC's geometry from /sys/devices/system/cpu/cpu0/cache (level 3, or
 *    the highest level); page colours = sets * line / 4096. A sliced LLC
 *    (its set count not a power of two: slices picked by a hash of the
 *    physical address) still indexes sets within a slice by plain address
 *    bits, so colours are taken from the low bits only: the largest power of
 *    two dividing that count.
 * 2. A pool of anonymous 4 KiB pages (no transparent huge pages), locked,
 *    whose physical frames are read from /proc/self/pagemap. Frame numbers
 *    of 0 (not root, or a kernel that hides them) end the experiment: no
 *    colour can be known, and nothing is made up.
 * 3. Colour classes by the low three colour bits: the victim's pages are
 *    those of class 0 (an eighth of the cache if colouring works), the
 *    "same colours" aggressor streams over other pages of class 0, the
 *    "disjoint colours" aggressor over pages of class 4 - as many bytes.
 * 4. The victim (CPU 0) chases pointers through all lines of its pages in a
 *    random cyclic order (no prefetcher can follow), at several working-set
 *    sizes around its colours' capacity (LLC / 8); the aggressor (a thread
 *    on CPU 1) streams meanwhile. Time per access is the victim thread's CPU
 *    time (preemption by other load does not count) over chunks of
 *    accesses, median of chunks, then median of repetitions; the three
 *    arrangements (alone, same, disjoint) are interleaved, and the spread
 *    of the gain over the repetitions is printed with it: a gain smaller
 *    than its spread is noise, not colouring.
 * 5. Also, alone and on any colours, time per access against working-set
 *    size: where the caches this machine really gives the victim end.
 *
 * Prints the tables and, for the working set equal to its colours'
 * capacity:
 *   colour-probe: llc_mb=<x> same_colours_ns=<a> disjoint_colours_ns=<b> gain_pct=<g>
 * gain_pct = (a - b) / a * 100: what moving the aggressor to other colours
 * saves the victim. Exit status 0, or 1 if the experiment cannot run here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE            4096UL
#define MiB             (1024.0 * 1024.0)
#define CLASSES         8               /* colour classes: low three colour bits */
#define VICTIM_CLASS    0
#define OTHER_CLASS     4
#define CHUNK           (1u << 17)      /* accesses per timed chunk */
#define CHUNKS          9
#define REPEATS         7
#define SWEEP_REPEATS   3
#define SWEEP_MAX       (512UL << 20)

struct cache_geom {
    unsigned int level;
    uint64_t size;
    unsigned int ways, line;
    uint64_t sets;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("colour-probe: ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    exit(1);
}

static bool read_sysfs(const char *dir, const char *name, char *buf, size_t len)
{
    char path[256];
    FILE *f;
    bool ok;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "r");
    if ( !f )
        return false;
    ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* The highest-level data/unified cache of CPU 0. */
static bool llc_geometry(struct cache_geom *g)
{
    unsigned int i;

    memset(g, 0, sizeof(*g));
    for ( i = 0; i < 16; i++ )
    {
        char dir[128], type[32], v[64];
        struct cache_geom c = { 0 };
        char unit;

        snprintf(dir, sizeof(dir), "/sys/devices/system/cpu/cpu0/cache/index%u", i);
        if ( !read_sysfs(dir, "level", v, sizeof(v)) )
            break;
        c.level = (unsigned int)atoi(v);
        if ( !read_sysfs(dir, "type", type, sizeof(type)) || !strcmp(type, "Instruction") )
            continue;
        if ( !read_sysfs(dir, "size", v, sizeof(v)) )
            continue;
        unit = v[strlen(v) - 1];
        c.size = strtoull(v, NULL, 10) * (unit == 'K' ? 1024 : unit == 'M' ? 1024 * 1024 : 1);
        if ( read_sysfs(dir, "ways_of_associativity", v, sizeof(v)) )
            c.ways = (unsigned int)atoi(v);
        if ( read_sysfs(dir, "coherency_line_size", v, sizeof(v)) )
            c.line = (unsigned int)atoi(v);
        if ( read_sysfs(dir, "number_of_sets", v, sizeof(v)) )
            c.sets = strtoull(v, NULL, 10);
        if ( c.level > g->level && c.size && c.line && c.sets )
            *g = c;
    }
    return g->level != 0;
}

static double now_thread_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, unsigned int n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t rng = 0x243f6a8885a308d3ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void pin(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if ( sched_setaffinity(0, sizeof(set), &set) )
        die("sched_setaffinity(CPU %d): %s", cpu, strerror(errno));
}

/* ---- the victim: a random cyclic pointer chase over every line of its pages -- */

/* Link every line of @pages[0..npages) into one random cycle; returns its start. */
static void *build_chase(char **pages, size_t npages, unsigned int line)
{
    size_t per = PAGE / line, n = npages * per, i;
    size_t *order = malloc(n * sizeof(*order));
    void *start;

    if ( !order )
        die("out of memory");
    for ( i = 0; i < n; i++ )
        order[i] = i;
    for ( i = n - 1; i > 0; i-- )
    {
        size_t j = rnd() % (i + 1), t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
    for ( i = 0; i < n; i++ )
    {
        size_t a = order[i], b = order[(i + 1) % n];

        *(void **)(pages[a / per] + (a % per) * line) = pages[b / per] + (b % per) * line;
    }
    start = pages[order[0] / per] + (order[0] % per) * line;
    free(order);
    return start;
}

static void *volatile chase_sink;

static void *chase(void *p, size_t n)
{
    while ( n-- )
        p = *(void **)p;
    return p;
}

/* ns per access: median over CHUNKS chunks of the thread's CPU time. */
static double time_chase(void *start, size_t lines)
{
    double t[CHUNKS];
    void *p = chase(start, lines);             /* one full cycle: warm */
    unsigned int i;

    for ( i = 0; i < CHUNKS; i++ )
    {
        double t0 = now_thread_ns();

        p = chase(p, CHUNK);
        t[i] = (now_thread_ns() - t0) / CHUNK;
    }
    chase_sink = p;
    return median(t, CHUNKS);
}

/* ---- the aggressor: a thread streaming over its pages on the other CPU ------ */

struct aggressor {
    pthread_t th;
    char **pages;
    size_t npages;
    unsigned int line, cpu;
    atomic_bool stop;
    atomic_uint_fast64_t lines;         /* lines streamed */
};

static void *aggressor_main(void *arg)
{
    struct aggressor *a = arg;
    uint64_t sum = 0, n = 0;

    pin((int)a->cpu);
    while ( !atomic_load_explicit(&a->stop, memory_order_relaxed) )
    {
        size_t i, off;

        for ( i = 0; i < a->npages; i++ )
            for ( off = 0; off < PAGE; off += a->line )
                sum += *(volatile uint64_t *)(a->pages[i] + off + 8);
        n += a->npages * (PAGE / a->line);
        atomic_store_explicit(&a->lines, n, memory_order_relaxed);
    }
    chase_sink = (void *)(uintptr_t)sum;
    return NULL;
}

static void aggressor_start(struct aggressor *a)
{
    atomic_store(&a->stop, false);
    atomic_store(&a->lines, 0);
    if ( pthread_create(&a->th, NULL, aggressor_main, a) )
        die("pthread_create failed");
}

static uint64_t aggressor_stop(struct aggressor *a)
{
    atomic_store(&a->stop, true);
    pthread_join(a->th, NULL);
    return atomic_load(&a->lines);
}

/* ---- main -------------------------------------------------------------------- */

int main(void)
{
    struct cache_geom g;
    uint64_t colours, cap, pool_bytes, avail = 0, i, zero_pfns = 0;
    uint64_t class_count[CLASSES] = { 0 };
    char **victim, **same, **other, **anyp;
    size_t nv = 0, ns = 0, no = 0, na, need_v, need_a, npool;
    char *pool;
    int fd;
    bool sliced;
    double fractions[] = { 0.25, 0.5, 1.0, 2.0 };
    unsigned int f, r;
    double final_same = 0, final_disj = 0;
    char line[256];
    FILE *mi;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if ( !llc_geometry(&g) )
        die("no cache geometry in /sys/devices/system/cpu/cpu0/cache");
    sliced = (g.sets & (g.sets - 1)) != 0;
    colours = g.sets * g.line / PAGE;
    if ( !colours )
        die("an LLC smaller than a page per way: no page colours");
    colours &= -colours;                        /* the largest power of two dividing it */
    printf("LLC (level %u, cpu0): %.1f MiB, %u ways, %u B lines, %llu sets%s\n", g.level,
           g.size / MiB, g.ways, g.line, (unsigned long long)g.sets,
           sliced ? " (not a power of two: a sliced LLC, slices chosen by an address hash)" : "");
    printf("page colours used: %llu (address bits 12..%u); classes by colour mod %u: "
           "victim class %u, other class %u\n", (unsigned long long)colours,
           11 + (unsigned int)__builtin_ctzll(colours), CLASSES, VICTIM_CLASS, OTHER_CLASS);
    if ( colours < CLASSES )
        die("only %llu page colours: nothing to separate", (unsigned long long)colours);
    if ( sysconf(_SC_NPROCESSORS_ONLN) < 2 )
        die("one CPU: no core for the aggressor");

    /* The victim's colours hold LLC / CLASSES if colouring works. */
    cap = g.size / CLASSES;
    need_v = (size_t)(2 * cap / PAGE);          /* largest victim: 2x capacity */
    need_a = (size_t)(2 * cap / PAGE);          /* aggressor stream: 2x capacity */
    pool_bytes = (need_v + need_a) * PAGE * CLASSES + (64ULL << 20);
    mi = fopen("/proc/meminfo", "r");
    while ( mi && fgets(line, sizeof(line), mi) )
        if ( sscanf(line, "MemAvailable: %llu kB", (unsigned long long *)&avail) == 1 )
            avail *= 1024;
    if ( mi )
        fclose(mi);
    if ( avail && pool_bytes > avail / 3 )
        die("needs %.0f MiB of memory for pages of the right colours; %.0f MiB available "
            "(at most a third is used)", pool_bytes / MiB, avail / MiB);
    printf("pool: %.0f MiB of 4 KiB pages; victim colours' capacity %.1f MiB\n",
           pool_bytes / MiB, cap / MiB);

    pool = mmap(NULL, pool_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if ( pool == MAP_FAILED )
        die("mmap %.0f MiB: %s", pool_bytes / MiB, strerror(errno));
    madvise(pool, pool_bytes, MADV_NOHUGEPAGE);
    npool = pool_bytes / PAGE;
    for ( i = 0; i < npool; i++ )
        pool[i * PAGE] = 1;                     /* fault every page in */
    if ( mlock(pool, pool_bytes) )
        printf("note: mlock failed (%s): pages may move during the run\n", strerror(errno));

    fd = open("/proc/self/pagemap", O_RDONLY);
    if ( fd < 0 )
        die("/proc/self/pagemap: %s", strerror(errno));
    victim = malloc(npool * sizeof(*victim));
    same = malloc(npool * sizeof(*same));
    other = malloc(npool * sizeof(*other));
    anyp = malloc(npool * sizeof(*anyp));
    if ( !victim || !same || !other || !anyp )
        die("out of memory");
    for ( i = 0; i < npool; i++ )
    {
        uint64_t e, pfn;
        unsigned int cls;

        if ( pread(fd, &e, 8, (off_t)(((uintptr_t)pool / PAGE + i) * 8)) != 8 )
            die("pagemap read: %s", strerror(errno));
        pfn = e & ((1ULL << 55) - 1);
        if ( !(e >> 63) || !pfn )
        {
            zero_pfns++;
            continue;
        }
        cls = (unsigned int)(pfn % colours) % CLASSES;
        class_count[cls]++;
        anyp[i] = pool + i * PAGE;
        if ( cls == VICTIM_CLASS )
        {
            if ( nv < need_v )
                victim[nv++] = pool + i * PAGE;
            else
                same[ns++] = pool + i * PAGE;
        }
        else if ( cls == OTHER_CLASS )
            other[no++] = pool + i * PAGE;
    }
    close(fd);
    if ( zero_pfns == npool )
        die("pagemap gives no frame numbers (not root, or hidden by the kernel): "
            "colours cannot be known, no measurement made");
    printf("pagemap: %llu pages, %llu without a frame number; pages per colour class:",
           (unsigned long long)npool, (unsigned long long)zero_pfns);
    for ( i = 0; i < CLASSES; i++ )
        printf(" %llu", (unsigned long long)class_count[i]);
    printf("\n");
    if ( zero_pfns )
        die("%llu pages without a frame number: the colour classes would be wrong",
            (unsigned long long)zero_pfns);
    if ( nv < need_v || ns < need_a || no < need_a )
        die("too few pages of the victim's or the other class (%zu, %zu, %zu; need %zu, %zu)",
            nv, ns, no, need_v, need_a);
    na = npool;

    pin(0);

    /* Where the caches end, as this machine gives them to the victim. */
    printf("\nalone, any colours: ns per access against working set\n%10s %10s\n", "MiB", "ns");
    {
        size_t pages;

        for ( pages = 256; pages * 2 <= na && pages * PAGE <= SWEEP_MAX; pages *= 2 )
        {
            double t[SWEEP_REPEATS];

            for ( r = 0; r < SWEEP_REPEATS; r++ )
            {
                size_t k;

                for ( k = 0; k < pages; k++ )   /* a different spread of pages each time */
                {
                    size_t j = k + rnd() % (na - k);
                    char *tmp = anyp[k];

                    anyp[k] = anyp[j];
                    anyp[j] = tmp;
                }
                t[r] = time_chase(build_chase(anyp, pages, g.line), pages * (PAGE / g.line));
            }
            printf("%10.1f %10.2f\n", pages * PAGE / MiB, median(t, SWEEP_REPEATS));
        }
    }

    /* Same against disjoint colours. */
    printf("\nvictim on colour class %u (CPU 0), aggressor streaming %.1f MiB (CPU 1) on the "
           "same class or on class %u; ns per access, median of %u\n", VICTIM_CLASS,
           need_a * PAGE / MiB, OTHER_CLASS, REPEATS);
    printf("(gain %%: of the medians; range: the least and greatest gain of one repetition's pair)\n");
    printf("%10s %8s %10s %10s %10s %9s %17s %11s %11s\n", "victim MiB", "x cap", "alone", "same",
           "disjoint", "gain %", "range %", "same GB/s", "disj GB/s");
    for ( f = 0; f < sizeof(fractions) / sizeof(fractions[0]); f++ )
    {
        size_t pages = (size_t)(fractions[f] * cap / PAGE);
        double ta[REPEATS], ts[REPEATS], td[REPEATS], gs[REPEATS], gd[REPEATS];
        double gmin = 1e9, gmax = -1e9;
        struct aggressor as = { .pages = same, .npages = need_a, .line = g.line, .cpu = 1 };
        struct aggressor ad = { .pages = other, .npages = need_a, .line = g.line, .cpu = 1 };
        void *start = build_chase(victim, pages, g.line);
        size_t lines = pages * (PAGE / g.line);
        double m_same, m_disj;

        for ( r = 0; r < REPEATS; r++ )
        {
            double t0;

            ta[r] = time_chase(start, lines);
            aggressor_start(&as);
            t0 = now_ns();
            ts[r] = time_chase(start, lines);
            gs[r] = aggressor_stop(&as) * (double)g.line / (now_ns() - t0);
            aggressor_start(&ad);
            t0 = now_ns();
            td[r] = time_chase(start, lines);
            gd[r] = aggressor_stop(&ad) * (double)g.line / (now_ns() - t0);
            if ( (ts[r] - td[r]) / ts[r] * 100 < gmin )
                gmin = (ts[r] - td[r]) / ts[r] * 100;
            if ( (ts[r] - td[r]) / ts[r] * 100 > gmax )
                gmax = (ts[r] - td[r]) / ts[r] * 100;
        }
        m_same = median(ts, REPEATS);
        m_disj = median(td, REPEATS);
        printf("%10.1f %8.2f %10.2f %10.2f %10.2f %9.1f %8.1f..%-7.1f %11.2f %11.2f\n",
               pages * PAGE / MiB, fractions[f], median(ta, REPEATS), m_same, m_disj,
               (m_same - m_disj) / m_same * 100, gmin, gmax, median(gs, REPEATS), median(gd, REPEATS));
        if ( fractions[f] == 1.0 )
        {
            final_same = m_same;
            final_disj = m_disj;
        }
    }
    printf("colour-probe: llc_mb=%.1f same_colours_ns=%.2f disjoint_colours_ns=%.2f gain_pct=%.1f\n",
           g.size / MiB, final_same, final_disj, (final_same - final_disj) / final_same * 100);
    return 0;
}
