# SPDX-License-Identifier: GPL-2.0-only
"""Recovery resumes only what memswapd suspended (issue 8 section 3), on a
fake host that outlives the daemons: the mark on the domain must be the
token of memswapd's own intent record; xl save's or a migration's suspend,
a re-created domain and a dry run are left alone; a failed resume is
retried with backoff while memswapd runs, survives a restart, and is
reported by `status`."""

import pytest

import fixtures
from fakehost import FakeHost
from memswap import ctl as ctlmod

POLICY = """\
version: 1
settings:
  interval: {min: 1s, max: 1s}
  window: 2s
  metrics: sim
policies:
  - name: p
    domains: ["db"]
    trigger: {metric: mpki, above: 8}
    action: {type: swap, colours: "40-47"}
"""


def host():
    h = FakeHost(nr_colours=64)
    db = h.create_domain("db", 16, colours=range(16))
    other = h.create_domain("other", 16, colours=range(16, 32))
    return h, db, other


def start(tmp_path, h):
    return fixtures.inprocess_daemon(tmp_path, h, POLICY)


def crash_mid_swap(tmp_path, h, domid, dry_run=False, cooperative=True):
    """A daemon that starts a swap and dies inside it (the guest suspended,
    or paused, and memswapd's mark on it): its in-flight record stays."""
    d = start(tmp_path, h)

    class Died(BaseException):
        pass

    def die(phase, dom):
        if phase == "copy":
            raise Died()
    h.swap_hook = die
    h.leave_suspended = True
    plan = d.plan(d.host.domain(domid), {}, colours=list(range(40, 48)))
    job = d.start_swap(h.domain(domid), plan, dry_run, origin="test", reason="test",
                       suspend=cooperative)
    job.thread.join()                # the swap thread "died"; the daemon dies too
    h.swap_hook = None
    h.leave_suspended = False
    d.server.close()
    d.state.close()
    if not cooperative and not dry_run:
        h.doms[domid].state, h.doms[domid].shutdown_reason = "paused", None
    return job.rec


def kinds(d):
    return [x["kind"] for x in d.decisions]


def test_restart_resumes_what_it_suspended(tmp_path):
    h, db, _ = host()
    rec = crash_mid_swap(tmp_path, h, db)
    assert h.domain(db).suspended and h.marks[db] == rec["token"]
    d = start(tmp_path, h)
    try:
        assert h.domain(db).state == "running" and h.resumes == [db]
        assert h.marks == {}
        last = d.state.history[-1]
        assert last["id"] == rec["id"] and last["status"] == "interrupted"
        assert "left suspended; resumed" in last["note"]
        assert "recovered" in kinds(d) and not d.state.recoveries
    finally:
        d.shutdown()


def test_restart_unpauses_what_a_plain_swap_left_paused(tmp_path):
    h, db, _ = host()
    crash_mid_swap(tmp_path, h, db, cooperative=False)
    d = start(tmp_path, h)
    try:
        assert h.domain(db).state == "running" and ("unpause", db) in h.writes
        assert "left paused; unpaused" in d.state.history[-1]["note"]
    finally:
        d.shutdown()


def test_xl_save_suspend_is_left_alone(tmp_path):
    """memswapd died after its swap finished (mark cleared) but before it
    cleared its record; then `xl save` suspended the guest: not ours."""
    h, db, _ = host()
    rec = crash_mid_swap(tmp_path, h, db)
    h.resume_suspended(db)
    h.resumes.clear()
    h.writes.clear()
    h.clear_swap_mark(db)
    h.suspend(db)                                 # xl save / a migration
    d = start(tmp_path, h)
    try:
        assert h.domain(db).suspended and h.resumes == [] and h.writes == []
        last = d.state.history[-1]
        assert last["id"] == rec["id"] and "left it alone" in last["note"]
        assert not d.state.recoveries
    finally:
        d.shutdown()


def test_someone_elses_token_is_left_alone(tmp_path):
    h, db, _ = host()
    crash_mid_swap(tmp_path, h, db)
    h.marks[db] = "f" * 32                        # another memswapd's (or a forged) mark
    d = start(tmp_path, h)
    try:
        assert h.domain(db).suspended and h.resumes == []
        assert h.marks[db] == "f" * 32            # not ours to clear either
    finally:
        d.shutdown()


def test_recreated_domain_is_left_alone(tmp_path):
    """Same domid and name, another domain (new uuid), suspended by xl save."""
    h, db, _ = host()
    rec = crash_mid_swap(tmp_path, h, db)
    h.doms[db].uuid = "11111111-2222-3333-4444-555555555555"
    d = start(tmp_path, h)
    try:
        assert h.domain(db).suspended and h.resumes == []
        assert "no longer exists" in d.state.history[-1]["note"]
        assert d.state.history[-1]["id"] == rec["id"]
    finally:
        d.shutdown()


def test_dry_run_never_resumes(tmp_path):
    h, db, _ = host()
    rec = crash_mid_swap(tmp_path, h, db, dry_run=True)
    assert rec["token"] is None and h.marks == {}
    h.suspend(db)                                 # someone else suspends it meanwhile
    d = start(tmp_path, h)
    try:
        assert h.domain(db).suspended and h.resumes == []
        assert "a dry run" in d.state.history[-1]["note"]
    finally:
        d.shutdown()


def test_failed_resume_retried_with_backoff_and_reported(tmp_path, monkeypatch):
    h, db, _ = host()
    rec = crash_mid_swap(tmp_path, h, db)
    h.fail_resume = 3
    d = start(tmp_path, h)
    try:
        assert h.domain(db).suspended
        assert "resume failed" in d.state.history[-1]["note"]
        (r,) = d.state.recoveries
        assert (r["id"], r["action"], r["attempts"]) == (rec["id"], "resume", 1)
        assert "resume failed (fake)" in r["last_error"]
        # memswapctl status shows it (and --json has it)
        st = d.cmd_status(None, {})
        assert st["recoveries"][0]["domid"] == db
        out = []
        ctl = ctlmod.Ctl(ctlmod.build_parser().parse_args(["status"]))
        ctl.args.json = False
        monkeypatch.setattr(ctl, "call", lambda cmd, **kw: st)
        monkeypatch.setattr(ctl, "emit", lambda obj, text: out.append(text))
        ctl.status()
        assert "PENDING RECOVERY: resume db" in out[0] and "1 failed attempt" in out[0]
        # retried only when due, with growing delays
        tries = [d.now()]
        for _ in range(12):
            h.advance(1.0)
            d.iterate()
            if r["attempts"] != len(tries):
                tries.append(d.now())
            if not d.state.recoveries:
                break
        assert not d.state.recoveries and h.domain(db).state == "running"
        assert h.marks == {}
        gaps = [b - a for a, b in zip(tries, tries[1:])]
        assert gaps == sorted(gaps) and gaps[-1] > gaps[0], tries
        assert "recovered" in kinds(d)
        assert sum(1 for k in kinds(d) if k == "recovery-failed") == 3
    finally:
        d.shutdown()


def test_pending_recovery_survives_restart(tmp_path):
    h, db, _ = host()
    crash_mid_swap(tmp_path, h, db)
    h.fail_resume = 1
    d = start(tmp_path, h)
    assert d.state.recoveries
    d.shutdown()
    d2 = start(tmp_path, h)                       # carries on at once
    try:
        assert h.domain(db).state == "running" and not d2.state.recoveries
    finally:
        d2.shutdown()


def test_swap_that_leaves_the_guest_suspended(tmp_path):
    """The backend's own resume failed: memswapd notices after the swap and
    resumes the guest itself (its mark is still there)."""
    h, db, other = host()
    h.leave_suspended = True
    h.fail_resume = 1
    d = start(tmp_path, h)
    try:
        plan = d.plan(h.domain(db), {}, colours=list(range(40, 48)))
        d.start_swap(h.domain(db), plan, False, origin="test", reason="test")
        d.wait_swap()
        assert h.domain(db).suspended and d.state.recoveries
        assert "retrying with backoff" in d.state.history[-1]["note"]
        h.advance(2.0)
        d.iterate()
        assert h.domain(db).state == "running" and not d.state.recoveries and h.marks == {}
        assert h.domain(other).state == "running"
    finally:
        d.shutdown()


def test_normal_swap_clears_its_mark(tmp_path):
    h, db, _ = host()
    d = start(tmp_path, h)
    seen = []
    h.swap_hook = lambda phase, dom: seen.append(dict(h.marks))
    try:
        plan = d.plan(h.domain(db), {}, colours=list(range(40, 48)))
        d.start_swap(h.domain(db), plan, False, origin="test", reason="test")
        rec = d.wait_swap().rec
        assert seen and seen[0] == {db: rec["token"]}     # marked during the swap
        assert h.marks == {} and d.state.history[-1]["status"] == "ok"
        assert h.writes[0] == ("mark", db)                # the mark comes first
    finally:
        d.shutdown()


@pytest.mark.parametrize("state", ["running", "dying"])
def test_recovery_dropped_when_nothing_is_left_to_do(tmp_path, state):
    h, db, _ = host()
    crash_mid_swap(tmp_path, h, db)
    h.fail_resume = 1
    d = start(tmp_path, h)
    try:
        assert d.state.recoveries
        h.doms[db].state, h.doms[db].shutdown_reason = state, None
        if state == "dying":
            h.destroy_domain(db)
        h.advance(5.0)
        d.iterate()
        assert not d.state.recoveries and h.resumes == []
    finally:
        d.shutdown()


def test_backend_refusal_leaves_a_toolstack_suspend_alone(tmp_path):
    """xl save asks between memswapd's checks and the backend's: the backend
    refuses (swap-preflight), and the guest xl save suspends is not ours."""
    from memswap.host import memswap_error
    from memswap.types import PREFLIGHT_CALL
    h, db, _ = host()
    d = start(tmp_path, h)

    def xl_save_first(domid, **kw):
        h.suspend(domid)                           # the toolstack's suspend
        raise memswap_error(16, "domain is shutting down", PREFLIGHT_CALL)
    h._swap = xl_save_first
    try:
        plan = d.plan(h.domain(db), {}, colours=list(range(40, 48)))
        d.start_swap(h.domain(db), plan, False, origin="test", reason="test")
        d.wait_swap()
        assert h.domain(db).suspended and h.resumes == [] and not d.state.recoveries
        assert h.marks == {} and d.state.history[-1]["status"] == "failed"
    finally:
        d.shutdown()
