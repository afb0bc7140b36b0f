/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memswap-agent: runs inside a guest and publishes what the guest can
 * measure of itself in xenstore, for memswapd in dom0 (its "agent" metric
 * source). Every interval, in one xenstore transaction, under the guest's
 * home (/local/domain/<id>/, the base of relative paths), default prefix
 * data/memswap/:
 *
 *   instructions, cycles,          hardware counters, cumulative, summed over
 *   llc_references, llc_misses     vCPUs (CPU-wide perf_event groups, scaled
 *                                  by time_enabled/time_running); a guest
 *                                  without a virtual PMU has none
 *   task_clock_ns                  CPU time spent busy, all vCPUs (/proc/stat)
 *   page_faults                    /proc/vmstat pgfault
 *   context_switches               /proc/stat ctxt
 *   unavailable                    space-separated names of the counters above
 *                                  this guest cannot count now; their keys are
 *                                  removed (unavailable is never 0)
 *   app/<name>                     gauges the guest's applications supply: the
 *                                  number in the file /run/memswap-agent/app/
 *                                  <name> (name [a-z0-9_]{1,32}, at most 32
 *                                  files, a decimal that may be fractional); a
 *                                  file older than 3 intervals, unreadable or
 *                                  not a number is withdrawn (its key removed)
 *   timestamp                      CLOCK_REALTIME, seconds with 9 decimals
 *   interval                       seconds between publishes
 *   seq                            +1 every publish (continues a previous run's)
 *
 * It needs perf_event_open for the hardware counters (root or CAP_PERFMON)
 * and xenstore: libxenstore reaches it through /dev/xen/xenbus in a guest
 * (or xenstored's socket). Built twice (make agent): linked with Debian's
 * libxenstore for Debian guests, and static for minimal guests (a busybox
 * initramfs has no shared libraries of ours).
 *
 * Under systemd (agent/memswap-agent.service, Type=notify) it reports READY
 * after its first publish and pings the watchdog after every publish.
 *
 * usage: memswap-agent [--interval SECONDS] [--once] [--stdout] [--prefix P]
 *                      [--app-dir DIR] [--proc DIR]
 *   --stdout   print the publishes as key=value lines instead (testing)
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <xenstore.h>

#include "cext/perf_core.h"

#define NR_HW 4
static const char *const hw_events[NR_HW] = {
    "instructions", "cycles", "cache-references", "cache-misses",
};
static const char *const hw_keys[NR_HW] = {
    "instructions", "cycles", "llc_references", "llc_misses",
};

#define APP_MAX         32          /* gauges published at most */
#define APP_NAME_MAX    32
#define APP_VALUE_MAX   32          /* characters of a gauge's number */
#define APP_STALE       3           /* intervals after which a file is withdrawn */
#define XS_TRIES        16          /* transaction conflicts in a row before giving up */

struct kv {
    char key[8 + APP_NAME_MAX];     /* "app/" + name, or a counter's name */
    char val[128];                  /* the longest: unavailable, every name */
    bool remove;
};
#define MAX_KV (NR_HW + 3 + 1 + APP_MAX + 3)

struct names {
    char v[APP_MAX][APP_NAME_MAX + 1];
    int n;
};

struct publish {
    struct kv kv[MAX_KV];
    int n;
    struct names apps;              /* the gauges published */
};

#define MAX_PROBLEMS 8
struct problems {
    char v[MAX_PROBLEMS][200];
    int n;
};

struct agent {
    double interval;
    const char *prefix, *app_dir, *proc;
    bool to_stdout;
    struct perf_group g;
    bool have_perf;
    struct xs_handle *xs;
    unsigned long long seq;
    struct names prev_apps;         /* --stdout: the gauges published last time */
    /* A problem is logged when it appears, not again while it lasts. */
    struct problems problems, prev_problems;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static bool has(const struct names *s, const char *name)
{
    int i;

    for ( i = 0; i < s->n; i++ )
        if ( !strcmp(s->v[i], name) )
            return true;
    return false;
}

static void say(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct agent *a, const char *fmt, ...)
{
    struct problems *cur = &a->problems, *prev = &a->prev_problems;
    char buf[sizeof(cur->v[0])];
    bool known = false;
    va_list ap;
    int i;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for ( i = 0; i < prev->n; i++ )
        known |= !strcmp(prev->v[i], buf);
    for ( i = 0; i < cur->n; i++ )
        if ( !strcmp(cur->v[i], buf) )
            return;
    if ( cur->n < MAX_PROBLEMS )
        strcpy(cur->v[cur->n++], buf);
    if ( !known )
        fprintf(stderr, "memswap-agent: %s\n", buf);
}

/* The end of one round: what was said now is what is known next time. */
static void problems_round(struct agent *a)
{
    a->prev_problems = a->problems;
    a->problems.n = 0;
}

static void add(struct publish *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add(struct publish *p, const char *key, const char *fmt, ...)
{
    struct kv *kv = &p->kv[p->n++];
    va_list ap;

    snprintf(kv->key, sizeof(kv->key), "%s", key);
    kv->remove = fmt == NULL;
    kv->val[0] = 0;
    if ( fmt )
    {
        va_start(ap, fmt);
        vsnprintf(kv->val, sizeof(kv->val), fmt, ap);
        va_end(ap);
    }
}

static void unavailable(char *list, size_t len, const char *name)
{
    size_t l = strlen(list);

    snprintf(list + l, len - l, "%s%s", l ? " " : "", name);
}

/* ---- software counters from /proc ---------------------------------------------- */

/* busy CPU time (ns) and context switches from /proc/stat; 0 or -errno */
static int read_proc_stat(const char *proc, unsigned long long *busy_ns,
                          unsigned long long *ctxt, bool *have_busy, bool *have_ctxt)
{
    char path[4096], line[1024];
    long hz = sysconf(_SC_CLK_TCK);
    FILE *f;

    snprintf(path, sizeof(path), "%s/stat", proc);
    *have_busy = *have_ctxt = false;
    f = fopen(path, "re");
    if ( !f )
        return -errno;
    while ( fgets(line, sizeof(line), f) )
    {
        unsigned long long v[8] = { 0 };

        if ( !strncmp(line, "cpu ", 4) &&
             sscanf(line + 4, "%llu %llu %llu %llu %llu %llu %llu %llu",
                    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) >= 7 &&
             hz > 0 )
        {
            /* user nice system [idle iowait] irq softirq; steal is time the
             * vCPUs wanted but Xen did not give them: not the guest's work */
            unsigned long long ticks = v[0] + v[1] + v[2] + v[5] + v[6];

            *busy_ns = ticks * (1000000000ull / (unsigned long long)hz);
            *have_busy = true;
        }
        else if ( !strncmp(line, "ctxt ", 5) && sscanf(line + 5, "%llu", ctxt) == 1 )
            *have_ctxt = true;
    }
    fclose(f);
    return 0;
}

static int read_vmstat(const char *proc, const char *name, unsigned long long *v)
{
    char path[4096], line[256];
    size_t nl = strlen(name);
    FILE *f;
    int rc = -ENOENT;

    snprintf(path, sizeof(path), "%s/vmstat", proc);
    f = fopen(path, "re");
    if ( !f )
        return -errno;
    while ( rc && fgets(line, sizeof(line), f) )
        if ( !strncmp(line, name, nl) && line[nl] == ' ' &&
             sscanf(line + nl + 1, "%llu", v) == 1 )
            rc = 0;
    fclose(f);
    return rc;
}

/* ---- application gauges ------------------------------------------------------------ */

static bool app_name_ok(const char *s)
{
    size_t i;

    for ( i = 0; s[i]; i++ )
        if ( i >= APP_NAME_MAX ||
             !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_') )
            return false;
    return i > 0;
}

/* A decimal, possibly fractional: -?[0-9]+(.[0-9]+)?, surrounding blanks ignored. */
static bool number_ok(char *s, char **out)
{
    char *e, *p;

    while ( isspace((unsigned char)*s) )
        s++;
    e = s + strlen(s);
    while ( e > s && isspace((unsigned char)e[-1]) )
        *--e = 0;
    p = s + (*s == '-');
    if ( !isdigit((unsigned char)*p) )
        return false;
    while ( isdigit((unsigned char)*p) )
        p++;
    if ( *p == '.' )
    {
        p++;
        if ( !isdigit((unsigned char)*p) )
            return false;
        while ( isdigit((unsigned char)*p) )
            p++;
    }
    if ( *p || e - s > APP_VALUE_MAX )
        return false;
    *out = s;
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read one gauge file: 0 and the number in @val, or a reason it is not used. */
static const char *read_gauge(int dfd, const char *name, double max_age, char *val, size_t len)
{
    char buf[APP_VALUE_MAX + 16], *num;
    struct stat st;
    struct timespec now;
    ssize_t n;
    int fd;

    /* Never follow a link or block on a FIFO someone left there. */
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if ( fd < 0 )
        return strerror(errno);
    if ( fstat(fd, &st) || !S_ISREG(st.st_mode) )
    {
        close(fd);
        return "not a regular file";
    }
    clock_gettime(CLOCK_REALTIME, &now);
    if ( (now.tv_sec - st.st_mtim.tv_sec) + (now.tv_nsec - st.st_mtim.tv_nsec) / 1e9 > max_age )
    {
        close(fd);
        return "stale";
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if ( n < 0 )
        return strerror(errno);
    buf[n] = 0;
    if ( n == (ssize_t)sizeof(buf) - 1 || !number_ok(buf, &num) )
        return "not a decimal number";
    snprintf(val, len, "%s", num);
    return NULL;
}

static void collect_apps(struct agent *a, struct publish *p)
{
    char *names[APP_MAX * 4];
    int n = 0, i, skipped = 0;
    struct dirent *de;
    DIR *d;

    p->apps.n = 0;
    d = opendir(a->app_dir);
    if ( !d )
    {
        if ( errno != ENOENT )
            say(a, "%s: %s", a->app_dir, strerror(errno));
        return;
    }
    while ( (de = readdir(d)) )
    {
        if ( de->d_name[0] == '.' )
            continue;
        if ( !app_name_ok(de->d_name) )
        {
            say(a, "%s/%s: not a gauge name ([a-z0-9_]{1,32})", a->app_dir, de->d_name);
            continue;
        }
        if ( n < (int)(sizeof(names) / sizeof(names[0])) && (names[n] = strdup(de->d_name)) )
            n++;
        else
            skipped++;
    }
    qsort(names, (size_t)n, sizeof(names[0]), cmp_str);
    for ( i = 0; i < n; i++ )
    {
        char key[8 + APP_NAME_MAX], val[APP_VALUE_MAX + 1];
        const char *why;

        if ( p->apps.n == APP_MAX )
        {
            skipped += n - i;
            break;
        }
        why = read_gauge(dirfd(d), names[i], APP_STALE * a->interval, val, sizeof(val));
        if ( why )
        {
            if ( strcmp(why, "stale") )
                say(a, "%s/%s: %s", a->app_dir, names[i], why);
            continue;
        }
        snprintf(key, sizeof(key), "app/%s", names[i]);
        add(p, key, "%s", val);
        strcpy(p->apps.v[p->apps.n++], names[i]);
    }
    if ( skipped )
        say(a, "%s: more than %d gauges, %d not published", a->app_dir, APP_MAX, skipped);
    for ( i = 0; i < n; i++ )
        free(names[i]);
    closedir(d);
}

/* ---- one sample -------------------------------------------------------------------- */

static void sample(struct agent *a, struct publish *p)
{
    char unav[128] = "";
    struct pg_reading r;
    struct timespec ts;
    unsigned long long busy = 0, ctxt = 0, faults = 0;
    bool have_busy = false, have_ctxt = false;
    int i, rc;

    p->n = 0;
    memset(&r, 0, sizeof(r));
    if ( a->have_perf && (rc = pg_read(&a->g, &r)) < 0 )
    {
        say(a, "reading perf counters: %s", strerror(-rc));
        memset(&r, 0, sizeof(r));
    }
    for ( i = 0; i < NR_HW; i++ )
    {
        if ( r.valid[i] )
            add(p, hw_keys[i], "%llu", (unsigned long long)r.scaled[i]);
        else
        {
            add(p, hw_keys[i], NULL);
            unavailable(unav, sizeof(unav), hw_keys[i]);
        }
    }
    if ( (rc = read_proc_stat(a->proc, &busy, &ctxt, &have_busy, &have_ctxt)) < 0 )
        say(a, "%s/stat: %s", a->proc, strerror(-rc));
    if ( have_busy )
        add(p, "task_clock_ns", "%llu", busy);
    else
    {
        add(p, "task_clock_ns", NULL);
        unavailable(unav, sizeof(unav), "task_clock_ns");
    }
    if ( (rc = read_vmstat(a->proc, "pgfault", &faults)) == 0 )
        add(p, "page_faults", "%llu", faults);
    else
    {
        say(a, "%s/vmstat pgfault: %s", a->proc, strerror(-rc));
        add(p, "page_faults", NULL);
        unavailable(unav, sizeof(unav), "page_faults");
    }
    if ( have_ctxt )
        add(p, "context_switches", "%llu", ctxt);
    else
    {
        add(p, "context_switches", NULL);
        unavailable(unav, sizeof(unav), "context_switches");
    }
    add(p, "unavailable", "%s", unav);
    collect_apps(a, p);
    clock_gettime(CLOCK_REALTIME, &ts);
    add(p, "timestamp", "%lld.%09ld", (long long)ts.tv_sec, ts.tv_nsec);
    add(p, "interval", "%g", a->interval);
    add(p, "seq", "%llu", a->seq + 1);
}

/* ---- publishing -------------------------------------------------------------------- */

static int publish_stdout(struct agent *a, const struct publish *p)
{
    int i;

    for ( i = 0; i < p->n; i++ )
    {
        if ( p->kv[i].remove )
            printf("%s/%s (removed)\n", a->prefix, p->kv[i].key);
        else
            printf("%s/%s=%s\n", a->prefix, p->kv[i].key, p->kv[i].val);
    }
    for ( i = 0; i < a->prev_apps.n; i++ )
        if ( !has(&p->apps, a->prev_apps.v[i]) )
            printf("%s/app/%s (removed)\n", a->prefix, a->prev_apps.v[i]);
    printf("\n");
    return fflush(stdout) ? -errno : 0;
}

/* Every write and removal of one publish in one transaction, and gauges
 * no longer supplied (also by an earlier run) withdrawn in it. */
static int publish_xs(struct agent *a, const struct publish *p)
{
    char path[4200], app_dir[4100];
    int i, tries, err;

    snprintf(app_dir, sizeof(app_dir), "%s/app", a->prefix);
    for ( tries = 0; tries < XS_TRIES; tries++ )
    {
        xs_transaction_t t = xs_transaction_start(a->xs);
        unsigned int nold = 0, k;
        char **old;

        if ( t == XBT_NULL )
            return -errno;
        for ( i = 0; i < p->n; i++ )
        {
            snprintf(path, sizeof(path), "%s/%s", a->prefix, p->kv[i].key);
            if ( p->kv[i].remove ? !xs_rm(a->xs, t, path) && errno != ENOENT
                                 : !xs_write(a->xs, t, path, p->kv[i].val,
                                             (unsigned int)strlen(p->kv[i].val)) )
                goto abort;
        }
        old = xs_directory(a->xs, t, app_dir, &nold);
        if ( !p->apps.n && old )
        {
            free(old);
            if ( !xs_rm(a->xs, t, app_dir) && errno != ENOENT )
                goto abort;
        }
        else if ( old )
        {
            for ( k = 0; k < nold; k++ )
            {
                if ( has(&p->apps, old[k]) )
                    continue;
                snprintf(path, sizeof(path), "%s/%s", app_dir, old[k]);
                if ( !xs_rm(a->xs, t, path) && errno != ENOENT )
                {
                    free(old);
                    goto abort;
                }
            }
            free(old);
        }
        if ( xs_transaction_end(a->xs, t, false) )
            return 0;
        if ( errno != EAGAIN )
            return -errno;
        continue;
     abort:
        err = errno;
        xs_transaction_end(a->xs, t, true);
        return -err;
    }
    return -EAGAIN;
}

/* A previous run's seq, so that readers never see it go back. */
static unsigned long long stored_seq(struct agent *a)
{
    char path[4100], *v, *end;
    unsigned int len = 0;
    unsigned long long s;

    snprintf(path, sizeof(path), "%s/seq", a->prefix);
    v = xs_read(a->xs, XBT_NULL, path, &len);
    if ( !v )
        return 0;
    errno = 0;
    s = strtoull(v, &end, 10);
    if ( errno || end == v || *end )
        s = 0;
    free(v);
    return s;
}

/* ---- systemd notification (no libsystemd in a minimal guest) ------------------------ */

static void sd_notify_msg(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    socklen_t salen;
    int fd;

    if ( !path || !*path || strlen(path) >= sizeof(sa.sun_path) )
        return;
    memcpy(sa.sun_path, path, strlen(path));
    if ( sa.sun_path[0] == '@' )
        sa.sun_path[0] = 0;         /* abstract namespace */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if ( fd < 0 )
        return;
    (void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    close(fd);
}

/* ---- main -------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: memswap-agent [--interval SECONDS] [--once] [--stdout] [--prefix PATH]\n"
               "                     [--app-dir DIR] [--proc DIR]\n"
               "Publish this guest's counters and application gauges under its xenstore\n"
               "home (default prefix data/memswap, gauges from /run/memswap-agent/app).\n");
}

static void open_perf(struct agent *a)
{
    const char *call;
    int rc, i;

    rc = pg_open(&a->g, PG_TARGET_CPU, -1, -1, -1, hw_events, NR_HW, &call);
    if ( rc < 0 )
    {
        fprintf(stderr, "memswap-agent: %s: %s: hardware counters unavailable\n", call,
                strerror(-rc));
        return;
    }
    a->have_perf = true;
    for ( i = 0; i < NR_HW; i++ )
        if ( !a->g.available[i] )
            fprintf(stderr, "memswap-agent: %s unavailable (%s)\n", hw_events[i],
                    strerror(a->g.open_errno[i]));
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "interval", required_argument, NULL, 'i' },
        { "once", no_argument, NULL, '1' },
        { "stdout", no_argument, NULL, 's' },
        { "prefix", required_argument, NULL, 'p' },
        { "app-dir", required_argument, NULL, 'a' },
        { "proc", required_argument, NULL, 'P' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    struct agent a = { .interval = 5.0, .prefix = "data/memswap",
                       .app_dir = "/run/memswap-agent/app", .proc = "/proc" };
    struct publish p;
    struct sigaction sa;
    bool once = false, ready = false;
    char *end;
    int c, rc = 0;

    while ( (c = getopt_long(argc, argv, "i:1sp:a:P:h", opts, NULL)) != -1 )
    {
        switch ( c )
        {
        case 'i':
            a.interval = strtod(optarg, &end);
            if ( end == optarg || *end || !isfinite(a.interval) || a.interval < 0.05 ||
                 a.interval > 3600 )
            {
                fprintf(stderr, "memswap-agent: --interval must be 0.05..3600 seconds, "
                        "not %s\n", optarg);
                return 2;
            }
            break;
        case '1': once = true; break;
        case 's': a.to_stdout = true; break;
        case 'p':
            a.prefix = optarg;
            if ( !*optarg || strlen(optarg) > 3000 )
            {
                fprintf(stderr, "memswap-agent: --prefix must be 1..3000 characters\n");
                return 2;
            }
            break;
        case 'a': a.app_dir = optarg; break;
        case 'P': a.proc = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if ( optind < argc )
    {
        usage(stderr);
        return 2;
    }

    open_perf(&a);
    if ( !a.to_stdout )
    {
        a.xs = xs_open(0);
        if ( !a.xs )
        {
            fprintf(stderr, "memswap-agent: xs_open: %s (not in a Xen guest, or no "
                    "/dev/xen/xenbus?)\n", strerror(errno));
            if ( a.have_perf )
                pg_close(&a.g);
            return 1;
        }
        a.seq = stored_seq(&a);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    while ( !stop )
    {
        struct timespec d;

        sample(&a, &p);
        rc = a.to_stdout ? publish_stdout(&a, &p) : publish_xs(&a, &p);
        if ( rc < 0 )
        {
            say(&a, "publish: %s", strerror(-rc));
            if ( once )
                break;
        }
        else
        {
            a.seq++;
            a.prev_apps = p.apps;
            sd_notify_msg(ready ? "WATCHDOG=1" : "READY=1\nSTATUS=publishing");
            ready = true;
        }
        problems_round(&a);
        if ( once )
            break;
        d.tv_sec = (time_t)a.interval;
        d.tv_nsec = (long)((a.interval - (double)d.tv_sec) * 1e9);
        while ( !stop && nanosleep(&d, &d) < 0 && errno == EINTR )
            ;
    }
    sd_notify_msg("STOPPING=1");
    if ( a.xs )
        xs_close(a.xs);
    if ( a.have_perf )
        pg_close(&a.g);
    return rc < 0 ? 1 : 0;
}
