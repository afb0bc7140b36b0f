/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * guest-verifier: the PV guest's workload in the end-to-end test (static,
 * runs from the guest's busybox initramfs), and its dom0-side peers
 * (net-client, disk-check).
 *
 *   guest-verifier heartbeat [PERIOD_MS]
 *       every PERIOD_MS (500) print "HB <n> t=<ms> gap=<ms>" on stdout and
 *       write <n> to the guest's xenstore key data/heartbeat (through
 *       /dev/xen/xenbus, the xenstore wire protocol, no libraries).
 *       t is CLOCK_BOOTTIME (keeps counting across a suspend, so a
 *       save/restore shows up as a gap); gap is the largest interval
 *       between two consecutive 10 ms ticks since the previous line: the
 *       time the guest could not run (e.g. paused for a swap).
 *
 *   guest-verifier verify MIB
 *       fill MIB MiB with a pattern that depends on each word's index and
 *       a generation number, then forever: check every word against the
 *       previous generation and rewrite it with the next one. Prints
 *       "VERIFY-OK pass=<n> mib=<m> ms=<t>" after each clean pass and
 *       "VERIFY-BAD pass=<n> word=<i> ..." for each bad word (first 8).
 *
 *   guest-verifier disk DEVICE MIB [METRIC_FILE]
 *       block I/O through the device (O_DIRECT: every request reaches the
 *       backend): each pass writes MIB MiB of 4 KiB blocks, each carrying
 *       its index, the pass number and a payload derived from both, flushes
 *       the device, then reads them all back and checks them, then rests
 *       a second. Prints "DISK-OK pass=<n> mib=<m> ms=<t> write_ms=<mean
 *       per 64 KiB>" after a clean pass and "DISK-BAD ..." for a bad block
 *       (first 8 per pass). With
 *       METRIC_FILE, the mean write latency of the last second (ms per
 *       64 KiB request) is written there every second (atomically: the
 *       application metric memswap-agent publishes).
 *
 *   guest-verifier disk-check FILE MIB
 *       (dom0, on the guest's disk image, the guest paused) every block
 *       written is whole (its header names its own index, its payload is
 *       the one its pass number implies) and none was lost: the blocks of
 *       the last pass P form a prefix, all others are from pass P-1.
 *       Prints "DISK-CHECK blocks=<n> written=<w> last_pass=<P> bad=<b>";
 *       exit status 1 if any block is bad or stale.
 *
 *   guest-verifier net-server PORT
 *       accept TCP connections one at a time; check that every byte
 *       received is the next byte of the pattern stream and echo it back.
 *       Prints "NET-SERVER rx=<bytes> bad=<n>" every 4 MiB and at the end
 *       of a connection, "NET-BAD ..." on the first bad byte of each.
 *
 *   guest-verifier net-client IPV4 PORT KIB_PER_S
 *       send the pattern stream at about KIB_PER_S and check that the echo
 *       is the same stream. Prints "NET-CLIENT tx=<bytes> rx=<bytes> bad=0
 *       stall_ms=<longest wait for echoed data>" every 2 s; "NET-BAD ..."
 *       and exit status 1 on a wrong byte, "NET-ERR ..." and exit status 1
 *       when the connection breaks.
 */
#define _GNU_SOURCE             /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

static double ms(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- xenstore over /dev/xen/xenbus ------------------------------------- */

struct xsd_msg { uint32_t type, req_id, tx_id, len; };
#define XS_WRITE 11
#define XS_ERROR 16

static int xs_fd = -1;

static int xs_write(const char *path, const char *val)
{
    char buf[4096];
    struct xsd_msg h = { XS_WRITE, 1, 0, 0 };
    size_t pl = strlen(path) + 1, vl = strlen(val);
    ssize_t n;

    if ( xs_fd < 0 )
        xs_fd = open("/dev/xen/xenbus", O_RDWR);
    if ( xs_fd < 0 )
        return -errno;
    h.len = pl + vl;
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), path, pl);
    memcpy(buf + sizeof(h) + pl, val, vl);
    if ( write(xs_fd, buf, sizeof(h) + h.len) != (ssize_t)(sizeof(h) + h.len) )
        goto reopen;
    n = read(xs_fd, buf, sizeof(buf));
    if ( n < (ssize_t)sizeof(h) )
        goto reopen;
    memcpy(&h, buf, sizeof(h));
    return h.type == XS_ERROR ? -EIO : 0;
 reopen:
    close(xs_fd);       /* resynchronise on the next call */
    xs_fd = -1;
    return -EIO;
}

static int heartbeat(unsigned int period)
{
    const struct timespec tick = { 0, 10 * 1000 * 1000 };
    double last = ms(CLOCK_BOOTTIME), next = last + period, gap = 0;
    unsigned long n = 0;
    int xs_errs = 0;
    char val[32];

    setvbuf(stdout, NULL, _IOLBF, 0);
    for ( ;; )
    {
        double t;

        nanosleep(&tick, NULL);
        t = ms(CLOCK_BOOTTIME);
        if ( t - last > gap )
            gap = t - last;
        last = t;
        if ( t < next )
            continue;
        snprintf(val, sizeof(val), "%lu", n);
        if ( xs_write("data/heartbeat", val) )
            xs_errs++;
        printf("HB %lu t=%.1f gap=%.1f xs_errs=%d\n", n, t, gap, xs_errs);
        n++;
        gap = 0;
        next += period;
        if ( next < t )
            next = t + period; /* after a long pause: no burst of lines */
    }
    return 0;
}

/* ---- memory pattern ---------------------------------------------------- */

static inline uint64_t pattern(uint64_t i, uint64_t gen)
{
    uint64_t z = i * 0x9e3779b97f4a7c15ULL + gen * 0xbf58476d1ce4e5b9ULL + 1;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int verify(unsigned long mib)
{
    size_t words = mib * 1024 * 1024 / 8, i;
    uint64_t *m = mmap(NULL, words * 8, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    uint64_t gen = 0;
    unsigned long pass = 0, bad_total = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if ( m == MAP_FAILED )
    {
        printf("VERIFY-BAD cannot map %lu MiB: %s\n", mib, strerror(errno));
        return 1;
    }
    mlock(m, words * 8);        /* keep it resident: no swap, no reclaim */
    for ( i = 0; i < words; i++ )
        m[i] = pattern(i, gen);
    printf("VERIFY-FILLED mib=%lu\n", mib);
    for ( ;; )
    {
        double t0 = ms(CLOCK_MONOTONIC);
        unsigned long bad = 0;

        for ( i = 0; i < words; i++ )
        {
            uint64_t want = pattern(i, gen);

            if ( m[i] != want )
            {
                if ( bad < 8 )
                    printf("VERIFY-BAD pass=%lu word=%zu page_off=%#zx have=%016" PRIx64
                           " want=%016" PRIx64 "\n", pass, i, (i * 8) & 4095, m[i], want);
                bad++;
            }
            m[i] = pattern(i, gen + 1);
        }
        gen++;
        pass++;
        bad_total += bad;
        if ( bad )
            printf("VERIFY-BAD pass=%lu bad_words=%lu total=%lu\n", pass, bad, bad_total);
        else
            printf("VERIFY-OK pass=%lu mib=%lu ms=%.0f\n", pass, mib, ms(CLOCK_MONOTONIC) - t0);
    }
    return 0;
}

/* ---- block I/O ---------------------------------------------------------- */

#define BLK 4096
#define BLK_WORDS (BLK / 8)
#define BLK_MAGIC 0x6d656d7377617062ULL          /* "memswapb" */
#define CHUNK_BLKS 16                             /* 64 KiB per request */

/* Word w of block b written in pass p; words 0-2 are the header. */
static void fill_block(uint64_t *b, uint64_t idx, uint64_t pass)
{
    unsigned int w;

    b[0] = BLK_MAGIC;
    b[1] = idx;
    b[2] = pass;
    for ( w = 3; w < BLK_WORDS; w++ )
        b[w] = pattern(idx * BLK_WORDS + w, pass ^ 0x5a5a5a5aULL);
}

/* 0: the block is whole and from pass `*pass` (set from its header);
 * 1: never written (all zeroes); -1: bad. */
static int check_block(const uint64_t *b, uint64_t idx, uint64_t *pass)
{
    unsigned int w;

    if ( b[0] == 0 && b[1] == 0 && b[2] == 0 )
    {
        for ( w = 3; w < BLK_WORDS && !b[w]; w++ )
            ;
        if ( w == BLK_WORDS )
            return 1;
    }
    if ( b[0] != BLK_MAGIC || b[1] != idx )
        return -1;
    *pass = b[2];
    for ( w = 3; w < BLK_WORDS; w++ )
        if ( b[w] != pattern(idx * BLK_WORDS + w, *pass ^ 0x5a5a5a5aULL) )
            return -1;
    return 0;
}

/*
 * Written whole, then renamed over the gauge, so the agent never reads a
 * half-written number. The temporary name starts with a dot: memswap-agent
 * skips dot files in its app/ directory (anything else there must be a
 * gauge name).
 */
static void put_metric(const char *file, double value)
{
    char tmp[4096], val[64];
    const char *base = strrchr(file, '/');
    int fd, n;

    base = base ? base + 1 : file;
    snprintf(tmp, sizeof(tmp), "%.*s.%s.tmp", (int)(base - file), file, base);
    n = snprintf(val, sizeof(val), "%.3f\n", value);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if ( fd < 0 )
        return;
    if ( write(fd, val, n) != n )
    {
        close(fd);
        return;
    }
    close(fd);
    rename(tmp, file);
}

static int disk(const char *dev, unsigned long mib, const char *metric)
{
    const struct timespec pass_rest = { 1, 0 };
    uint64_t nblk = mib * 1024 * 1024 / BLK, i, pass = 0;
    uint64_t *buf;
    double win_t0 = ms(CLOCK_MONOTONIC), win_sum = 0;
    unsigned long win_n = 0;
    int fd = open(dev, O_RDWR | O_DIRECT);

    setvbuf(stdout, NULL, _IOLBF, 0);
    if ( fd < 0 )
    {
        printf("DISK-BAD cannot open %s: %s\n", dev, strerror(errno));
        return 1;
    }
    if ( posix_memalign((void **)&buf, BLK, CHUNK_BLKS * BLK) )
    {
        printf("DISK-BAD out of memory\n");
        return 1;
    }
    for ( ;; )
    {
        double t0 = ms(CLOCK_MONOTONIC), wsum = 0;
        unsigned long bad = 0, wn = 0;

        pass++;
        for ( i = 0; i < nblk; i += CHUNK_BLKS )
        {
            unsigned int k, n = nblk - i < CHUNK_BLKS ? nblk - i : CHUNK_BLKS;
            double w0, dt;

            for ( k = 0; k < n; k++ )
                fill_block(buf + k * BLK_WORDS, i + k, pass);
            w0 = ms(CLOCK_MONOTONIC);
            if ( pwrite(fd, buf, n * BLK, i * BLK) != (ssize_t)(n * BLK) )
            {
                printf("DISK-BAD pass=%" PRIu64 " write at block %" PRIu64 ": %s\n",
                       pass, i, strerror(errno));
                return 1;
            }
            dt = ms(CLOCK_MONOTONIC) - w0;
            wsum += dt;
            wn++;
            win_sum += dt;
            win_n++;
            if ( metric && ms(CLOCK_MONOTONIC) - win_t0 >= 1000 )
            {
                put_metric(metric, win_sum / win_n);
                win_t0 = ms(CLOCK_MONOTONIC);
                win_sum = 0;
                win_n = 0;
            }
        }
        /* One flush per pass (a flush per request made a pass take minutes
         * under TCG). */
        if ( fdatasync(fd) )
        {
            printf("DISK-BAD pass=%" PRIu64 " flush: %s\n", pass, strerror(errno));
            return 1;
        }
        for ( i = 0; i < nblk; i += CHUNK_BLKS )
        {
            unsigned int k, n = nblk - i < CHUNK_BLKS ? nblk - i : CHUNK_BLKS;

            memset(buf, 0, CHUNK_BLKS * BLK);
            if ( pread(fd, buf, n * BLK, i * BLK) != (ssize_t)(n * BLK) )
            {
                printf("DISK-BAD pass=%" PRIu64 " read at block %" PRIu64 ": %s\n",
                       pass, i, strerror(errno));
                return 1;
            }
            for ( k = 0; k < n; k++ )
            {
                uint64_t p = 0, *b = buf + k * BLK_WORDS;

                if ( check_block(b, i + k, &p) == 0 && p == pass )
                    continue;
                if ( bad < 8 )
                    printf("DISK-BAD pass=%" PRIu64 " block=%" PRIu64 " magic=%016" PRIx64
                           " idx=%" PRIu64 " pass_in_block=%" PRIu64 "\n",
                           pass, i + k, b[0], b[1], b[2]);
                bad++;
            }
        }
        if ( bad )
            printf("DISK-BAD pass=%" PRIu64 " bad_blocks=%lu\n", pass, bad);
        else
            printf("DISK-OK pass=%" PRIu64 " mib=%lu ms=%.0f write_ms=%.2f\n", pass, mib,
                   ms(CLOCK_MONOTONIC) - t0, wn ? wsum / wn : 0.0);
        /*
         * A rest between passes: back to back, they kept blkback and the
         * loop device busy all the time, and under TCG every other process
         * in dom0 (memswapctl's Python above all) crawled.
         */
        nanosleep(&pass_rest, NULL);
    }
}

static int disk_check(const char *file, unsigned long mib)
{
    uint64_t nblk = mib * 1024 * 1024 / BLK, i, written = 0, bad = 0, last = 0;
    uint64_t *pass = calloc(nblk, sizeof(*pass));  /* 0: never written */
    uint64_t b[BLK_WORDS];
    int fd = open(file, O_RDONLY);

    if ( fd < 0 || !pass )
    {
        printf("DISK-CHECK cannot open %s: %s\n", file, strerror(errno));
        return 1;
    }
    for ( i = 0; i < nblk; i++ )
    {
        int r;

        if ( pread(fd, b, BLK, i * BLK) != BLK )
        {
            printf("DISK-CHECK short read at block %" PRIu64 "\n", i);
            return 1;
        }
        r = check_block(b, i, &pass[i]);
        if ( r == 0 )
        {
            written++;
            if ( pass[i] > last )
                last = pass[i];
        }
        else if ( r < 0 )
        {
            if ( bad < 8 )
                printf("DISK-CHECK bad block=%" PRIu64 " magic=%016" PRIx64 " idx=%" PRIu64
                       " pass=%" PRIu64 "\n", i, b[0], b[1], b[2]);
            pass[i] = 0;
            bad++;
        }
    }
    /* Passes write blocks in order: P on a prefix, P-1 after it. */
    for ( i = 0; i < nblk; i++ )
    {
        int want_last = i == 0 || pass[i - 1] == last;
        uint64_t want = want_last ? last : last - 1;

        if ( pass[i] == want || (want_last && last > 1 && pass[i] == last - 1) )
            continue;
        if ( bad < 8 )
            printf("DISK-CHECK stale block=%" PRIu64 " pass=%" PRIu64 " (last pass %" PRIu64 ")\n",
                   i, pass[i], last);
        bad++;
    }
    printf("DISK-CHECK blocks=%" PRIu64 " written=%" PRIu64 " last_pass=%" PRIu64 " bad=%" PRIu64 "\n",
           nblk, written, last, bad);
    free(pass);
    return bad ? 1 : 0;
}

/* ---- network ------------------------------------------------------------ */

/* Byte `off` of the pattern stream. */
static inline uint8_t stream_byte(uint64_t off)
{
    return pattern(off / 8, 0x7e7e) >> (8 * (off % 8));
}

static void stream_fill(uint8_t *p, size_t n, uint64_t off)
{
    size_t i;

    for ( i = 0; i < n; i++ )
        p[i] = stream_byte(off + i);
}

/* Index of the first byte that is not the stream's, or n. */
static size_t stream_check(const uint8_t *p, size_t n, uint64_t off)
{
    size_t i;

    for ( i = 0; i < n; i++ )
        if ( p[i] != stream_byte(off + i) )
            break;
    return i;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while ( n )
    {
        ssize_t w = write(fd, p, n);

        if ( w < 0 && errno == EINTR )
            continue;
        if ( w <= 0 )
            return -1;
        p += w;
        n -= w;
    }
    return 0;
}

static int net_server(unsigned int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
    static uint8_t buf[65536];

    setvbuf(stdout, NULL, _IOLBF, 0);
    if ( ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
         bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4) )
    {
        printf("NET-ERR server on port %u: %s\n", port, strerror(errno));
        return 1;
    }
    for ( ;; )
    {
        uint64_t rx = 0, next_report = 4 << 20;
        unsigned long bad = 0;
        int c = accept(ls, NULL, NULL);

        if ( c < 0 )
            continue;
        for ( ;; )
        {
            ssize_t n = read(c, buf, sizeof(buf));
            size_t ok;

            if ( n < 0 && errno == EINTR )
                continue;
            if ( n <= 0 )
                break;
            ok = stream_check(buf, n, rx);
            if ( ok != (size_t)n && !bad++ )
                printf("NET-BAD server offset=%" PRIu64 " have=%#x want=%#x\n",
                       rx + ok, buf[ok], stream_byte(rx + ok));
            if ( write_all(c, buf, n) )
                break;
            rx += n;
            if ( rx >= next_report )
            {
                printf("NET-SERVER rx=%" PRIu64 " bad=%lu\n", rx, bad);
                next_report += 4 << 20;
            }
        }
        printf("NET-SERVER rx=%" PRIu64 " bad=%lu closed\n", rx, bad);
        close(c);
    }
}

static int net_client(const char *host, const char *port, unsigned int kib_per_s)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(port)) };
    static uint8_t out[16384], in[65536];
    uint64_t tx = 0, rx = 0;
    double t_start, t_report, t_last_rx, stall = 0;
    int one = 1, s;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if ( inet_pton(AF_INET, host, &a.sin_addr) != 1 )
    {
        printf("NET-ERR not an IPv4 address: %s\n", host);
        return 1;
    }
    s = socket(AF_INET, SOCK_STREAM, 0);
    if ( s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) )
    {
        printf("NET-ERR connect %s:%s: %s\n", host, port, strerror(errno));
        return 1;
    }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    t_start = t_report = t_last_rx = ms(CLOCK_MONOTONIC);
    printf("NET-CLIENT connected to %s:%s\n", host, port);
    for ( ;; )
    {
        double now = ms(CLOCK_MONOTONIC);
        uint64_t allowed = (uint64_t)((now - t_start) * kib_per_s * 1024 / 1000);
        struct pollfd p = { .fd = s, .events = POLLIN };

        /* Keep at most 256 KiB in flight: the echo paces the sender too. */
        if ( tx < allowed && tx - rx < (256 << 10) )
        {
            size_t n = allowed - tx < sizeof(out) ? allowed - tx : sizeof(out);

            stream_fill(out, n, tx);
            if ( write_all(s, out, n) )
            {
                printf("NET-ERR send after tx=%" PRIu64 ": %s\n", tx, strerror(errno));
                return 1;
            }
            tx += n;
        }
        if ( poll(&p, 1, 20) > 0 )
        {
            ssize_t n = read(s, in, sizeof(in));
            size_t ok;

            if ( n <= 0 )
            {
                printf("NET-ERR connection closed after rx=%" PRIu64 ": %s\n", rx,
                       n ? strerror(errno) : "EOF");
                return 1;
            }
            ok = stream_check(in, n, rx);
            if ( ok != (size_t)n )
            {
                printf("NET-BAD client offset=%" PRIu64 " have=%#x want=%#x\n",
                       rx + ok, in[ok], stream_byte(rx + ok));
                return 1;
            }
            rx += n;
            now = ms(CLOCK_MONOTONIC);
            t_last_rx = now;
        }
        else if ( tx > rx && now - t_last_rx > stall )
            stall = now - t_last_rx;
        if ( now - t_report >= 2000 )
        {
            printf("NET-CLIENT tx=%" PRIu64 " rx=%" PRIu64 " bad=0 stall_ms=%.0f\n", tx, rx, stall);
            t_report = now;
            stall = 0;
        }
    }
}

int main(int argc, char **argv)
{
    if ( argc >= 2 && !strcmp(argv[1], "heartbeat") )
        return heartbeat(argc > 2 ? strtoul(argv[2], NULL, 0) : 500);
    if ( argc >= 3 && !strcmp(argv[1], "verify") )
        return verify(strtoul(argv[2], NULL, 0));
    if ( argc >= 4 && !strcmp(argv[1], "disk") )
        return disk(argv[2], strtoul(argv[3], NULL, 0), argc > 4 ? argv[4] : NULL);
    if ( argc == 4 && !strcmp(argv[1], "disk-check") )
        return disk_check(argv[2], strtoul(argv[3], NULL, 0));
    if ( argc == 3 && !strcmp(argv[1], "net-server") )
        return net_server(strtoul(argv[2], NULL, 0));
    if ( argc == 5 && !strcmp(argv[1], "net-client") )
        return net_client(argv[2], argv[3], strtoul(argv[4], NULL, 0));
    fprintf(stderr, "usage: guest-verifier heartbeat [PERIOD_MS] | verify MIB |\n"
            "       disk DEVICE MIB [METRIC_FILE] | disk-check FILE MIB |\n"
            "       net-server PORT | net-client HOST PORT KIB_PER_S\n");
    return 2;
}
