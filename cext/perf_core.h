/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * perf_event counter groups, without Python: used by the extension
 * (cext/perf.c) and by the guest agent (agent/memswap-agent.c).
 *
 * A group is one leader and its members opened with perf_event_open() and
 * read with one read() (PERF_FORMAT_GROUP | TOTAL_TIME_ENABLED |
 * TOTAL_TIME_RUNNING | ID), on one CPU or, for CPU-wide and cgroup
 * counting over every online CPU, one such group per CPU, summed.
 *
 * An event the machine cannot count (no PMU, or a hypervisor that hides
 * it: perf_event_open fails with ENOENT/EOPNOTSUPP/ENODEV/EINVAL for a
 * hardware event) is *unavailable*: it is left out of the group and
 * reported as such, never as 0. A read in which a counter was enabled but
 * never ran (multiplexed out) reports it unavailable for that read too.
 */
#ifndef MEMSWAP_PERF_CORE_H
#define MEMSWAP_PERF_CORE_H

#include <stdint.h>

#define PG_MAX_EVENTS   16
#define PG_MAX_CPUS     1024

enum pg_target { PG_TARGET_PID, PG_TARGET_CGROUP, PG_TARGET_CPU };

struct pg_event_def {
    const char *name;           /* perf's name: "cycles", "task-clock", ... */
    uint32_t type;              /* PERF_TYPE_* */
    uint64_t config;
};

/* Known events by name; NULL if unknown. */
const struct pg_event_def *pg_event_lookup(const char *name);
/* All known events (NULL-terminated by name). */
extern const struct pg_event_def pg_events[];

struct perf_group {
    enum pg_target target;
    int pid;                    /* PG_TARGET_PID */
    int cgroup_fd;              /* PG_TARGET_CGROUP (owned if cgroup_fd_owned) */
    int cgroup_fd_owned;
    int nr_cpus;                /* groups: one per entry of cpus[] */
    int *cpus;                  /* -1 alone: any CPU (pid target) */
    int nr_events;
    const struct pg_event_def *ev[PG_MAX_EVENTS];
    int available[PG_MAX_EVENTS];   /* opened on every CPU */
    int open_errno[PG_MAX_EVENTS];  /* why not, if unavailable */
    int *fds;                   /* [nr_cpus * nr_events], -1 if absent */
    uint64_t *ids;              /* same shape */
    int *leader;                /* [nr_cpus]: leader fd per CPU, -1 if none */
};

struct pg_reading {
    uint64_t time_enabled;      /* ns, summed over CPUs */
    uint64_t time_running;
    uint64_t raw[PG_MAX_EVENTS];
    uint64_t scaled[PG_MAX_EVENTS]; /* raw * enabled / running, per CPU, summed */
    int valid[PG_MAX_EVENTS];   /* 0: unavailable (never opened, or not run) */
};

/*
 * Open a group. @target selects pid (@pid >= 0, @cpu: a CPU or -1 for
 * any), cgroup (@cgroup_fd of a cgroup directory; @cpu or -1 for all
 * online CPUs) or CPU-wide (@cpu or -1 for all online CPUs). The group is
 * created enabled. Returns 0, or -errno with *failed_call set.
 */
int pg_open(struct perf_group *g, enum pg_target target, int pid, int cgroup_fd,
            int cpu, const char *const *events, int nr_events,
            const char **failed_call);
int pg_read(struct perf_group *g, struct pg_reading *r);   /* 0 or -errno */
int pg_ioctl_all(struct perf_group *g, unsigned long req); /* ENABLE/DISABLE/RESET */
void pg_close(struct perf_group *g);

/* Online CPUs from /sys/devices/system/cpu/online; returns count or -errno. */
int pg_online_cpus(int *cpus, int max);

#endif /* MEMSWAP_PERF_CORE_H */
