/* SPDX-License-Identifier: GPL-2.0-only */
/* perf_event counter groups (see perf_core.h). */
#include "perf_core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/perf_event.h>

const struct pg_event_def pg_events[] = {
    { "cycles",           PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES },
    { "instructions",     PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS },
    { "cache-references", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_REFERENCES },
    { "cache-misses",     PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES },
    { "branches",         PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_INSTRUCTIONS },
    { "branch-misses",    PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_MISSES },
    { "cpu-clock",        PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK },
    { "task-clock",       PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK },
    { "page-faults",      PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS },
    { "context-switches", PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES },
    { "cpu-migrations",   PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_MIGRATIONS },
    { "minor-faults",     PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MIN },
    { "major-faults",     PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS_MAJ },
    { NULL, 0, 0 }
};

const struct pg_event_def *pg_event_lookup(const char *name)
{
    const struct pg_event_def *e;

    for ( e = pg_events; e->name; e++ )
        if ( !strcmp(e->name, name) )
            return e;
    return NULL;
}

static int sys_perf_event_open(struct perf_event_attr *attr, int pid, int cpu,
                               int group_fd, unsigned long flags)
{
    return (int)syscall(SYS_perf_event_open, attr, pid, cpu, group_fd, flags);
}

int pg_online_cpus(int *cpus, int max)
{
    char buf[4096], *p;
    int n = 0;
    FILE *f = fopen("/sys/devices/system/cpu/online", "r");

    if ( !f )
        return -errno;
    if ( !fgets(buf, sizeof(buf), f) )
    {
        fclose(f);
        return -EIO;
    }
    fclose(f);
    for ( p = buf; *p && *p != '\n'; )
    {
        char *end;
        long a = strtol(p, &end, 10), b;

        if ( end == p )
            return -EINVAL;
        b = a;
        if ( *end == '-' )
        {
            p = end + 1;
            b = strtol(p, &end, 10);
            if ( end == p )
                return -EINVAL;
        }
        for ( ; a <= b && n < max; a++ )
            cpus[n++] = (int)a;
        p = end;
        if ( *p == ',' )
            p++;
    }
    return n;
}

/* A hardware event this machine (or its hypervisor) cannot count. */
static int unsupported(const struct pg_event_def *e, int err)
{
    if ( err == ENOENT || err == EOPNOTSUPP || err == ENODEV )
        return 1;
    return err == EINVAL && e->type != PERF_TYPE_SOFTWARE;
}

static int open_one(const struct pg_event_def *e, struct perf_group *g, int cpu,
                    int group_fd, int leader)
{
    struct perf_event_attr attr;
    int pid, fd, tries;
    unsigned long flags = PERF_FLAG_FD_CLOEXEC;

    switch ( g->target )
    {
    case PG_TARGET_PID:    pid = g->pid; break;
    case PG_TARGET_CGROUP: pid = g->cgroup_fd; flags |= PERF_FLAG_PID_CGROUP; break;
    default:               pid = -1; break;
    }
    for ( tries = 0; tries < 2; tries++ )
    {
        memset(&attr, 0, sizeof(attr));
        attr.size = sizeof(attr);
        attr.type = e->type;
        attr.config = e->config;
        attr.read_format = PERF_FORMAT_GROUP | PERF_FORMAT_TOTAL_TIME_ENABLED |
                           PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_ID;
        attr.disabled = leader;   /* the whole group starts at one ENABLE */
        attr.inherit = 0;
        /* Second try: user space only, for perf_event_paranoid >= 2 */
        attr.exclude_kernel = tries;
        attr.exclude_hv = tries;
        fd = sys_perf_event_open(&attr, pid, cpu, group_fd, flags);
        if ( fd >= 0 || (errno != EACCES && errno != EPERM) )
            break;
    }
    return fd;
}

int pg_open(struct perf_group *g, enum pg_target target, int pid, int cgroup_fd,
            int cpu, const char *const *events, int nr_events,
            const char **failed_call)
{
    int i, c, err = 0;

    memset(g, 0, sizeof(*g));
    g->cgroup_fd = -1;
    *failed_call = "perf_event_open";
    if ( nr_events <= 0 || nr_events > PG_MAX_EVENTS )
        return -EINVAL;
    for ( i = 0; i < nr_events; i++ )
    {
        g->ev[i] = pg_event_lookup(events[i]);
        if ( !g->ev[i] )
        {
            *failed_call = "pg_event_lookup";
            return -EINVAL;
        }
    }
    g->target = target;
    g->pid = pid;
    g->cgroup_fd = cgroup_fd;
    g->nr_events = nr_events;

    if ( cpu >= 0 || target == PG_TARGET_PID )
    {
        g->nr_cpus = 1;
        g->cpus = malloc(sizeof(int));
        if ( !g->cpus )
            return -ENOMEM;
        g->cpus[0] = cpu < 0 ? -1 : cpu;
    }
    else
    {
        int *buf = malloc(PG_MAX_CPUS * sizeof(int));
        int n;

        if ( !buf )
            return -ENOMEM;
        n = pg_online_cpus(buf, PG_MAX_CPUS);
        if ( n <= 0 )
        {
            free(buf);
            *failed_call = "pg_online_cpus";
            return n < 0 ? n : -ENODEV;
        }
        g->nr_cpus = n;
        g->cpus = buf;
    }

    g->fds = malloc((size_t)g->nr_cpus * nr_events * sizeof(int));
    g->ids = calloc((size_t)g->nr_cpus * nr_events, sizeof(uint64_t));
    g->leader = malloc((size_t)g->nr_cpus * sizeof(int));
    if ( !g->fds || !g->ids || !g->leader )
    {
        pg_close(g);
        return -ENOMEM;
    }
    for ( i = 0; i < g->nr_cpus * nr_events; i++ )
        g->fds[i] = -1;
    for ( c = 0; c < g->nr_cpus; c++ )
        g->leader[c] = -1;
    for ( i = 0; i < nr_events; i++ )
        g->available[i] = 1;

    for ( c = 0; c < g->nr_cpus; c++ )
    {
        for ( i = 0; i < nr_events; i++ )
        {
            int fd;

            if ( !g->available[i] )
                continue;
            fd = open_one(g->ev[i], g, g->cpus[c], g->leader[c], g->leader[c] < 0);
            if ( fd < 0 )
            {
                err = errno;
                /* The first CPU decides what the machine can count. */
                if ( c == 0 && unsupported(g->ev[i], err) )
                {
                    g->available[i] = 0;
                    g->open_errno[i] = err;
                    continue;
                }
                pg_close(g);
                return -err;
            }
            g->fds[c * nr_events + i] = fd;
            if ( g->leader[c] < 0 )
                g->leader[c] = fd;
            if ( ioctl(fd, PERF_EVENT_IOC_ID, &g->ids[c * nr_events + i]) < 0 )
            {
                err = errno;
                pg_close(g);
                *failed_call = "ioctl(PERF_EVENT_IOC_ID)";
                return -err;
            }
        }
    }
    if ( pg_ioctl_all(g, PERF_EVENT_IOC_ENABLE) < 0 )
    {
        err = errno;
        pg_close(g);
        *failed_call = "ioctl(PERF_EVENT_IOC_ENABLE)";
        return -err;
    }
    return 0;
}

int pg_ioctl_all(struct perf_group *g, unsigned long req)
{
    int c;

    for ( c = 0; c < g->nr_cpus; c++ )
        if ( g->leader[c] >= 0 &&
             ioctl(g->leader[c], req, PERF_IOC_FLAG_GROUP) < 0 )
            return -errno;
    return 0;
}

int pg_read(struct perf_group *g, struct pg_reading *r)
{
    uint64_t buf[3 + 2 * PG_MAX_EVENTS];
    int c, i, k;
    int ran_out[PG_MAX_EVENTS] = { 0 };

    memset(r, 0, sizeof(*r));
    for ( c = 0; c < g->nr_cpus; c++ )
    {
        ssize_t n;
        uint64_t nr, en, run;

        if ( g->leader[c] < 0 )
            continue;
        n = read(g->leader[c], buf, sizeof(buf));
        if ( n < 0 )
            return -errno;
        if ( n < (ssize_t)(3 * sizeof(uint64_t)) )
            return -EIO;
        nr = buf[0];
        en = buf[1];
        run = buf[2];
        if ( nr > PG_MAX_EVENTS || n < (ssize_t)((3 + 2 * nr) * sizeof(uint64_t)) )
            return -EIO;
        r->time_enabled += en;
        r->time_running += run;
        for ( k = 0; k < (int)nr; k++ )
        {
            uint64_t val = buf[3 + 2 * k], id = buf[4 + 2 * k];

            for ( i = 0; i < g->nr_events; i++ )
            {
                if ( g->fds[c * g->nr_events + i] < 0 ||
                     g->ids[c * g->nr_events + i] != id )
                    continue;
                r->raw[i] += val;
                if ( run == en || en == 0 )
                    r->scaled[i] += val;
                else if ( run == 0 )
                    ran_out[i] = 1;      /* enabled, never counted */
                else
                    r->scaled[i] += (uint64_t)((unsigned __int128)val * en / run);
                break;
            }
        }
    }
    for ( i = 0; i < g->nr_events; i++ )
        r->valid[i] = g->available[i] && !ran_out[i];
    return 0;
}

void pg_close(struct perf_group *g)
{
    int i;

    if ( g->fds )
        for ( i = 0; i < g->nr_cpus * g->nr_events; i++ )
            if ( g->fds[i] >= 0 )
                close(g->fds[i]);
    if ( g->cgroup_fd_owned && g->cgroup_fd >= 0 )
        close(g->cgroup_fd);
    free(g->fds);
    free(g->ids);
    free(g->leader);
    free(g->cpus);
    g->fds = NULL;
    g->ids = NULL;
    g->leader = NULL;
    g->cpus = NULL;
    g->nr_cpus = 0;
    g->cgroup_fd = -1;
    g->cgroup_fd_owned = 0;
}
