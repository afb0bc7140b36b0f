/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A fake PMU for testing perf_event users (the guest agent) on machines
 * without hardware counters: an LD_PRELOAD library that answers
 * perf_event_open(PERF_TYPE_HARDWARE) from a script and passes every
 * other event through to the kernel.
 *
 *   FAKE_PERF="cycles=1000+100,instructions=5000+500,cache-misses=EOPNOTSUPP,scale=2"
 *
 * An event given as START+STEP counts START on the first read of its group
 * and STEP more on every read after, on each CPU; one given as an errno
 * name fails to open with it; a hardware event not named fails with
 * ENOENT (no such PMU event). scale=N reports time_running as
 * time_enabled / N (the counter was multiplexed; N = 0: it never ran).
 * Reads use PERF_FORMAT_GROUP | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING |
 * ID, the only format the agent asks for.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/perf_event.h>

#define MAX_FD      4096
#define MAX_MEMBERS 16

struct fake {
    int used, leader;           /* leader: fd of the group's leader */
    uint64_t start, step, id, reads;
    int members[MAX_MEMBERS], nmembers;
};

static struct fake fakes[MAX_FD];

static const char *const names[] = {
    [PERF_COUNT_HW_CPU_CYCLES] = "cycles",
    [PERF_COUNT_HW_INSTRUCTIONS] = "instructions",
    [PERF_COUNT_HW_CACHE_REFERENCES] = "cache-references",
    [PERF_COUNT_HW_CACHE_MISSES] = "cache-misses",
    [PERF_COUNT_HW_BRANCH_INSTRUCTIONS] = "branches",
    [PERF_COUNT_HW_BRANCH_MISSES] = "branch-misses",
};

static const struct { const char *name; int err; } errnos[] = {
    { "ENOENT", ENOENT }, { "EOPNOTSUPP", EOPNOTSUPP }, { "ENODEV", ENODEV },
    { "EINVAL", EINVAL }, { "EACCES", EACCES }, { "EBUSY", EBUSY },
};

/* The script's entry for @name: 0 and start/step, or an errno. */
static int lookup(const char *name, uint64_t *start, uint64_t *step)
{
    const char *spec = getenv("FAKE_PERF"), *p;
    size_t nl = strlen(name);
    unsigned int i;

    for ( p = spec; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL )
    {
        if ( strncmp(p, name, nl) || p[nl] != '=' )
            continue;
        p += nl + 1;
        for ( i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++ )
            if ( !strncmp(p, errnos[i].name, strlen(errnos[i].name)) )
                return errnos[i].err;
        *start = strtoull(p, (char **)&p, 10);
        *step = *p == '+' ? strtoull(p + 1, NULL, 10) : 0;
        return 0;
    }
    return ENOENT;
}

static uint64_t scale(void)
{
    uint64_t s = 1, st;

    return lookup("scale", &s, &st) ? 1 : s;
}

static int fake_open(const struct perf_event_attr *attr, int group_fd)
{
    const char *name = attr->config < sizeof(names) / sizeof(names[0]) ? names[attr->config]
                                                                        : NULL;
    uint64_t start = 0, step = 0;
    int err = name ? lookup(name, &start, &step) : ENOENT, fd;

    if ( err )
    {
        errno = err;
        return -1;
    }
    if ( group_fd >= 0 && (group_fd >= MAX_FD || !fakes[group_fd].used ||
                           fakes[group_fd].nmembers == MAX_MEMBERS) )
    {
        errno = EINVAL;
        return -1;
    }
    fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if ( fd < 0 || fd >= MAX_FD )
    {
        if ( fd >= 0 )
            close(fd);
        errno = EMFILE;
        return -1;
    }
    memset(&fakes[fd], 0, sizeof(fakes[fd]));
    fakes[fd].used = 1;
    fakes[fd].start = start;
    fakes[fd].step = step;
    fakes[fd].id = 1000 + (uint64_t)fd;
    fakes[fd].leader = group_fd >= 0 ? group_fd : fd;
    fakes[fakes[fd].leader].members[fakes[fakes[fd].leader].nmembers++] = fd;
    return fd;
}

long syscall(long nr, ...)
{
    static long (*real)(long, ...);
    long a[6];
    va_list ap;
    int i;

    va_start(ap, nr);
    for ( i = 0; i < 6; i++ )
        a[i] = va_arg(ap, long);
    va_end(ap);
    if ( nr == SYS_perf_event_open &&
         ((const struct perf_event_attr *)a[0])->type == PERF_TYPE_HARDWARE )
        return fake_open((const struct perf_event_attr *)a[0], (int)a[3]);
    if ( !real )
        real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static int is_fake(int fd)
{
    return fd >= 0 && fd < MAX_FD && fakes[fd].used;
}

int ioctl(int fd, unsigned long req, ...)
{
    static int (*real)(int, unsigned long, ...);
    va_list ap;
    void *arg;

    va_start(ap, req);
    arg = va_arg(ap, void *);
    va_end(ap);
    if ( is_fake(fd) )
    {
        if ( req == PERF_EVENT_IOC_ID )
            *(uint64_t *)arg = fakes[fd].id;
        return 0;               /* ENABLE, DISABLE, RESET */
    }
    if ( !real )
        real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    return real(fd, req, arg);
}

ssize_t read(int fd, void *buf, size_t len)
{
    static ssize_t (*real)(int, void *, size_t);
    struct fake *l = is_fake(fd) ? &fakes[fd] : NULL;
    uint64_t *out = buf, enabled, s;
    int i;

    if ( !l )
    {
        if ( !real )
            real = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
        return real(fd, buf, len);
    }
    if ( l->leader != fd || len < (3 + 2 * (size_t)l->nmembers) * sizeof(uint64_t) )
    {
        errno = EINVAL;
        return -1;
    }
    s = scale();
    enabled = 1000000000ull * (l->reads + 1);
    out[0] = (uint64_t)l->nmembers;
    out[1] = enabled;
    out[2] = s ? enabled / s : 0;
    for ( i = 0; i < l->nmembers; i++ )
    {
        struct fake *m = &fakes[l->members[i]];

        out[3 + 2 * i] = m->start + m->step * l->reads;
        out[4 + 2 * i] = m->id;
    }
    l->reads++;
    return (ssize_t)((3 + 2 * (size_t)l->nmembers) * sizeof(uint64_t));
}

int close(int fd)
{
    static int (*real)(int);

    if ( is_fake(fd) )
        fakes[fd].used = 0;
    if ( !real )
        real = (int (*)(int))dlsym(RTLD_NEXT, "close");
    return real(fd);
}
