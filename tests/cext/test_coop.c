/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The swap sequence of cext/coop.h with scripted steps: which steps run in
 * which order for every outcome (a refusal touches nothing, a suspended
 * guest is always resumed, EAGAIN is retried with the caller's backoff and
 * every retry is checked afresh), and the refusal decisions of contract A.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cext/coop.h"
#include "tests/c/harness.h"

/* ---- scripted steps -------------------------------------------------------- */

#define MAX_CALLS 64

struct script {
    /* results, consumed in order; past the end: 0 */
    int preflight[8], suspend[8], swap[8], resume[8];
    int np, ns, nw, nr;
    int translated, live;       /* what the preflight reports */
    char trace[256];            /* P S W R and w<units> per call */
    unsigned int waits[MAX_CALLS];
    int nwaits;
};

static void note(struct script *s, const char *what)
{
    strncat(s->trace, what, sizeof(s->trace) - strlen(s->trace) - 1);
}

static int next(const int *v, int *i)
{
    int r = *i < 8 ? v[*i] : 0;

    (*i)++;
    return r;
}

static int f_preflight(void *a, struct ms_swap_facts *f)
{
    struct script *s = a;

    note(a, "P");
    f->translated = s->translated;
    f->live = s->live;
    return next(s->preflight, &s->np);
}
static int f_suspend(void *a)   { note(a, "S"); return next(((struct script *)a)->suspend, &((struct script *)a)->ns); }
static int f_swap(void *a)      { note(a, "W"); return next(((struct script *)a)->swap, &((struct script *)a)->nw); }
static int f_resume(void *a)    { note(a, "R"); return next(((struct script *)a)->resume, &((struct script *)a)->nr); }

/* A held swap: H at the hold, then what at_hold does, then its result (W's). */
static int f_swap_held(void *a, int (*at_hold)(void *ctx), void *ctx)
{
    struct script *s = a;
    int err;

    note(a, "H");
    if ( (err = at_hold(ctx)) )
        return err;             /* cancelled */
    return next(s->swap, &s->nw);
}

static void f_wait(void *a, unsigned int units)
{
    struct script *s = a;

    note(a, "w");
    if ( s->nwaits < MAX_CALLS )
        s->waits[s->nwaits++] = units;
}

static const struct ms_coop_ops ops = {
    .preflight = f_preflight, .suspend = f_suspend, .swap = f_swap, .swap_held = f_swap_held,
    .resume = f_resume, .wait = f_wait,
};

static struct ms_coop_policy policy(int coop, unsigned int retries)
{
    return (struct ms_coop_policy){ .cooperative = coop, .retries = retries,
                                    .backoff = 10, .backoff_max = 250 };
}

/* ---- the sequence ----------------------------------------------------------- */

TEST(plain_swap_never_suspends)
{
    struct script s = { 0 };
    struct ms_coop_policy p = policy(0, 3);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == 0);
    CHECKF(!strcmp(s.trace, "PW"), "%s", s.trace);
    CHECK(o.err == 0 && o.stage == MS_COOP_DONE && o.attempts == 1 && !o.suspended);
}

TEST(cooperative_swap_suspends_swaps_resumes)
{
    struct script s = { 0 };
    struct ms_coop_policy p = policy(1, 3);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == 0);
    CHECKF(!strcmp(s.trace, "PSWR"), "%s", s.trace);
    CHECK(o.suspended && o.retries == 0 && o.attempts == 1);
}

TEST(translated_guest_is_never_suspended)
{
    struct script s = { .translated = 1, .swap = { EAGAIN, 0 } };
    struct ms_coop_policy p = policy(1, 3);
    struct ms_coop_outcome o;

    /* Asked to cooperate, but an HVM/PVH guest is swapped behind its p2m:
     * Xen pauses it itself. EAGAIN (it gained frames) is still retried. */
    CHECK(ms_coop_run(&ops, &s, &p, &o) == 0);
    CHECKF(!strcmp(s.trace, "PWwPW"), "%s", s.trace);
    CHECK(!o.suspended && o.translated && o.retries == 1 && o.attempts == 2);
}

TEST(pv_live_swap_suspends_only_at_the_hold)
{
    struct script s = { .live = 1 };
    struct script f = { .live = 1, .suspend = { ETIMEDOUT } };
    struct script e = { .live = 1, .swap = { EAGAIN, 0 } };
    struct script n = { .live = 1 };
    struct ms_coop_policy p = policy(1, 3);
    struct ms_coop_policy plain = policy(0, 3);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == 0);
    CHECKF(!strcmp(s.trace, "PHSR"), "%s", s.trace);
    CHECK(o.suspended && o.attempts == 1 && !o.translated);
    /* The guest does not suspend: the held swap is cancelled, nothing resumed. */
    CHECK(ms_coop_run(&ops, &f, &p, &o) == ETIMEDOUT);
    CHECKF(!strcmp(f.trace, "PHS"), "%s", f.trace);
    CHECK(o.stage == MS_COOP_SUSPEND && !o.suspended);
    /* EAGAIN in the final stop: resumed, retried the same way. */
    CHECK(ms_coop_run(&ops, &e, &p, &o) == 0);
    CHECKF(!strcmp(e.trace, "PHSRwPHSR"), "%s", e.trace);
    CHECK(o.retries == 1 && o.attempts == 2);
    /* Without cooperation a PV live swap is one request (Xen pauses it). */
    CHECK(ms_coop_run(&ops, &n, &plain, &o) == 0);
    CHECKF(!strcmp(n.trace, "PW"), "%s", n.trace);
}

TEST(translated_live_swap_is_one_request)
{
    struct script s = { .live = 1, .translated = 1 };
    struct ms_coop_policy p = policy(1, 3);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == 0);
    CHECKF(!strcmp(s.trace, "PW"), "%s", s.trace);
    CHECK(!o.suspended && o.translated);
}

TEST(refusal_touches_nothing)
{
    static const int refusals[] = { EACCES, EDEADLK, EBUSY, ENODEV, EOPNOTSUPP };
    unsigned int i;

    for ( i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++ )
    {
        struct script s = { .preflight = { refusals[i] } };
        struct ms_coop_policy p = policy(1, 5);
        struct ms_coop_outcome o;

        CHECK(ms_coop_run(&ops, &s, &p, &o) == refusals[i]);
        CHECKF(!strcmp(s.trace, "P"), "%s", s.trace);
        CHECK(o.stage == MS_COOP_PREFLIGHT && o.attempts == 0 && !o.suspended);
    }
}

TEST(failed_suspend_is_not_swapped_or_resumed)
{
    struct script s = { .suspend = { ETIMEDOUT } };
    struct ms_coop_policy p = policy(1, 5);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == ETIMEDOUT);
    CHECKF(!strcmp(s.trace, "PS"), "%s", s.trace);
    CHECK(o.stage == MS_COOP_SUSPEND && o.attempts == 0);
}

TEST(failed_swap_is_resumed_and_not_retried)
{
    struct script s = { .swap = { ENOMEM } };
    struct ms_coop_policy p = policy(1, 5);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == ENOMEM);
    CHECKF(!strcmp(s.trace, "PSWR"), "%s", s.trace);
    CHECK(o.stage == MS_COOP_SWAP && o.retries == 0 && o.swap_err == 0);
}

TEST(eagain_is_retried_with_backoff_and_checked_afresh)
{
    struct script s = { .swap = { EAGAIN, EAGAIN, 0 } };
    struct ms_coop_policy p = policy(1, 3);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == 0);
    CHECKF(!strcmp(s.trace, "PSWRwPSWRwPSWR"), "%s", s.trace);
    CHECK(o.retries == 2 && o.attempts == 3 && o.suspended);
    CHECK(s.nwaits == 2 && s.waits[0] == 10 && s.waits[1] == 20);
}

TEST(eagain_retries_run_out)
{
    struct script s = { .swap = { EAGAIN, EAGAIN, EAGAIN, EAGAIN } };
    struct ms_coop_policy p = policy(0, 2);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == EAGAIN);
    CHECKF(!strcmp(s.trace, "PWwPWwPW"), "%s", s.trace);
    CHECK(o.stage == MS_COOP_SWAP && o.retries == 2 && o.attempts == 3);
}

TEST(no_retries_means_one_attempt)
{
    struct script s = { .swap = { EAGAIN } };
    struct ms_coop_policy p = policy(1, 0);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == EAGAIN);
    CHECKF(!strcmp(s.trace, "PSWR"), "%s", s.trace);
    CHECK(s.nwaits == 0);
}

TEST(refusal_between_retries_stops_with_the_guest_resumed)
{
    /* The toolstack started saving the guest while it ran between attempts. */
    struct script s = { .preflight = { 0, EBUSY }, .swap = { EAGAIN } };
    struct ms_coop_policy p = policy(1, 5);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == EBUSY);
    CHECKF(!strcmp(s.trace, "PSWRwP"), "%s", s.trace);
    CHECK(o.stage == MS_COOP_PREFLIGHT && o.retries == 1);
}

TEST(failed_resume_is_reported_with_the_swap_result)
{
    struct script s = { .resume = { EIO } };
    struct script t = { .swap = { ENOMEM }, .resume = { EINVAL } };
    struct script u = { .swap = { EAGAIN }, .resume = { EIO } };
    struct ms_coop_policy p = policy(1, 5);
    struct ms_coop_outcome o;

    CHECK(ms_coop_run(&ops, &s, &p, &o) == EIO);
    CHECK(o.stage == MS_COOP_RESUME && o.swap_err == 0 && o.suspended);
    CHECK(ms_coop_run(&ops, &t, &p, &o) == EINVAL);
    CHECK(o.stage == MS_COOP_RESUME && o.swap_err == ENOMEM);
    /* never retried on top of a guest left suspended */
    CHECK(ms_coop_run(&ops, &u, &p, &o) == EIO);
    CHECKF(!strcmp(u.trace, "PSWR"), "%s", u.trace);
    CHECK(o.swap_err == EAGAIN && o.retries == 0);
}

TEST(backoff_doubles_to_its_cap_without_overflow)
{
    struct ms_coop_policy p = policy(1, 0);
    static const unsigned int want[] = { 10, 20, 40, 80, 160, 250, 250, 250 };
    unsigned int n;

    for ( n = 0; n < sizeof(want) / sizeof(want[0]); n++ )
        CHECKF(ms_coop_backoff(&p, n) == want[n], "n=%u got %u", n, ms_coop_backoff(&p, n));
    p.backoff = 0;
    CHECK(ms_coop_backoff(&p, 7) == 0);
    p.backoff = 3;
    p.backoff_max = UINT_MAX;
    CHECK(ms_coop_backoff(&p, 1000) == UINT_MAX);
    CHECK(ms_coop_backoff(&p, 2) == 12);
    p.backoff = 300;
    p.backoff_max = 250;        /* a first wait above the cap is capped */
    CHECK(ms_coop_backoff(&p, 0) == 250);
}

/* ---- refusals --------------------------------------------------------------- */

static struct ms_swap_facts facts(unsigned int domid)
{
    return (struct ms_swap_facts){ .domid = domid, .own_domid = 0, .have_info = 1 };
}

TEST(a_runnable_guest_is_not_refused)
{
    struct ms_swap_facts f = facts(7);
    char msg[256];

    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == 0 && msg[0] == 0);
    f.pending_request = "";           /* the guest acknowledged an old request */
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == 0);
}

TEST(domain_zero_is_refused_whatever_else)
{
    struct ms_swap_facts f = facts(0);
    char msg[256];

    f.dry_run_err = ENOSYS;             /* an unpatched Xen still never swaps dom0 */
    f.paused = 1;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EACCES);
    CHECK(strstr(msg, "control domain"));
}

TEST(the_hypervisors_refusals_stand)
{
    static const int errs[] = { EACCES, EDEADLK, EBUSY, ENODEV, EOPNOTSUPP };
    unsigned int i;
    char msg[256];

    for ( i = 0; i < sizeof(errs) / sizeof(errs[0]); i++ )
    {
        struct ms_swap_facts f = facts(5);

        f.dry_run_err = errs[i];
        CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == errs[i]);
        CHECKF(strstr(msg, "hypervisor refuses domain 5"), "%s", msg);
    }
    /* An EDEADLK from Xen when we could not read our own domid: still refused. */
    {
        struct ms_swap_facts f = facts(5);

        f.own_domid = -1;
        f.dry_run_err = EDEADLK;
        CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EDEADLK);
    }
}

TEST(failures_that_are_not_refusals_are_left_to_the_caller)
{
    static const int errs[] = { ESRCH, ENOMEM, EINVAL, ENOSYS, EAGAIN, EPERM, EFAULT };
    unsigned int i;
    char msg[256];

    for ( i = 0; i < sizeof(errs) / sizeof(errs[0]); i++ )
    {
        struct ms_swap_facts f = facts(5);

        f.dry_run_err = errs[i];
        CHECK(!ms_is_refusal(errs[i]));
        CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == 0);
    }
}

TEST(own_domain_is_refused)
{
    struct ms_swap_facts f = facts(3);
    char msg[256];

    f.own_domid = 3;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EDEADLK);
    CHECK(strstr(msg, "own domain"));
    f.own_domid = -1;                   /* unknown: not guessed */
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == 0);
}

TEST(domain_state_refusals)
{
    struct ms_swap_facts f;
    char msg[256];

    f = facts(4); f.dying = 1; f.paused = 1; f.shutdown = 1;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == ENODEV);
    /* HVM/PVH guests are swapped, in either mode. */
    f = facts(4); f.translated = 1;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == 0);
    f.live = 1;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == 0);
    f = facts(4); f.shutdown = 1; f.shutdown_reason = 2; f.paused = 1;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EBUSY);
    CHECKF(strstr(msg, "shut down (suspend)"), "%s", msg);
    f.shutdown_reason = 0;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EBUSY && strstr(msg, "(poweroff)"));
    f.shutdown_reason = 99;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EBUSY && strstr(msg, "(reason 99)"));
    f = facts(4); f.paused = 1;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EBUSY && strstr(msg, "paused"));
    f = facts(4); f.paused = 1; f.have_info = 0;   /* no info: not used */
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == 0);
}

TEST(hypervisor_refusal_says_what_it_means_for_the_guest_type)
{
    struct ms_swap_facts f = facts(8);
    char msg[256];

    f.translated = 1;
    f.dry_run_err = EOPNOTSUPP;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EOPNOTSUPP);
    CHECKF(strstr(msg, "passed-through device") && strstr(msg, "altp2m"), "%s", msg);
    f.dry_run_err = EBUSY;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EBUSY);
    CHECKF(strstr(msg, "log-dirty"), "%s", msg);
    f.translated = 0;
    f.dry_run_err = EOPNOTSUPP;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EOPNOTSUPP);
    CHECKF(strstr(msg, "64-bit PV"), "%s", msg);
    f.live = 1;                         /* Debian's Xen: no shadow paging for PV log-dirty */
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EOPNOTSUPP);
    CHECKF(strstr(msg, "shadow paging"), "%s", msg);
}

TEST(pending_shutdown_request_is_refused_and_quoted_safely)
{
    struct ms_swap_facts f = facts(9);
    char msg[256], big[4096];

    f.pending_request = "poweroff";
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EBUSY);
    CHECKF(strstr(msg, "'poweroff'"), "%s", msg);
    f.pending_request = "suspend";      /* xl save's, or a swap of someone else's */
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EBUSY);
    /* guest-writable: a megabyte or control characters never reach the message */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    big[3] = '\n';
    big[4] = '\'';
    f.pending_request = big;
    CHECK(ms_swap_refusal(&f, msg, sizeof(msg)) == EBUSY);
    CHECKF(!strchr(msg, '\n') && strstr(msg, "\\x0a\\x27") && strstr(msg, "..."), "%s", msg);
    CHECK(strlen(msg) < 160);
    /* a tiny buffer is still terminated */
    CHECK(ms_swap_refusal(&f, msg, 8) == EBUSY && strlen(msg) == 7);
}
