# SPDX-License-Identifier: GPL-2.0-only
"""Resuming what memswapd suspended (and only that).

Before a swap that may leave a guest suspended or paused (any swap that is
not a dry run), memswapd writes an intent record with a fresh random token
to its state directory and puts the same token on the domain
(Host.set_swap_mark: on Xen a dom0-owned xenstore node under the domain,
which the guest cannot write and which xenstored removes with the domain).
After the swap it clears the mark.

A domain left suspended or paused is resumed only when the mark on it is
still the token of memswapd's own record: a domain suspended by `xl save`
or a migration carries no such mark (or another token), a re-created
domain with the same id has no mark at all, a dry run never gets one.
A resume that fails is retried with exponential backoff while memswapd
runs; the pending ones are in `memswapctl status` ("recoveries") and are
persisted in state.json, so a restart carries on with them.
"""

import logging
import time

log = logging.getLogger("memswapd.recovery")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 300.0


def same_domain(dom, rec):
    """Is DomainInfo `dom` the domain the record was made for?"""
    if rec.get("uuid") and dom.uuid:
        return dom.uuid == rec["uuid"]
    return not rec.get("name") or dom.name == rec["name"]


class Recoveries:
    """The pending recoveries in state.state['recoveries'] (a list of dicts:
    id, domid, name, uuid, token, action resume|unpause, attempts, next_try
    (daemon clock), last_error, since (wall clock))."""

    def __init__(self, host, state, decide):
        self.host = host
        self.state = state
        self.decide = decide

    @property
    def pending(self):
        return self.state.recoveries

    def needed(self, rec, dom):
        """What the swap of `rec` left to undo on DomainInfo `dom`: 'resume',
        'unpause', or None (also when the mark on it is not rec's token)."""
        if rec.get("dry_run") or not rec.get("token"):
            return None
        if self.host.swap_mark(dom.domid) != rec["token"]:
            return None
        if dom.suspended and rec.get("suspend", True):
            return "resume"
        if dom.state == "paused":
            return "unpause"
        return None

    def add(self, rec, action, now):
        """Queue a recovery for the domain of swap record `rec` and try it
        once at once. -> (done, note)."""
        r = {"id": rec.get("id"), "domid": rec["domid"], "name": rec.get("name"),
             "uuid": rec.get("uuid"), "token": rec["token"], "action": action,
             "attempts": 0, "next_try": now, "last_error": None, "since": time.time()}
        self.pending.append(r)
        self.state.save()
        self.attempt(r, now)
        done = r not in self.pending
        verb = "resumed" if action == "resume" else "unpaused"
        if done:
            return True, verb
        return False, f"{action} failed ({r['last_error']}); retrying with backoff"

    def clear_mark(self, domid):
        try:
            self.host.clear_swap_mark(domid)
        except OSError as e:
            log.warning("clearing memswapd's mark on domain %d: %s", domid, e)

    def _drop(self, r, kind, why):
        if r in self.pending:
            self.pending.remove(r)
        self.state.save()
        self.decide(kind, r.get("name") or str(r["domid"]), f"swap #{r.get('id')}: {why}")

    def attempt(self, r, now):
        """One try at recovery r (after re-checking the domain and the mark)."""
        try:
            dom = self.host.domain(r["domid"])
        except OSError:
            dom = None
        if dom is None or not same_domain(dom, r):
            self._drop(r, "recovery", "the domain no longer exists; nothing to resume")
            return
        if self.host.swap_mark(dom.domid) != r["token"]:
            self._drop(r, "recovery", "memswapd's mark is no longer on the domain (someone "
                       "else took it over): left alone")
            return
        if not (dom.suspended if r["action"] == "resume" else dom.state == "paused"):
            self.clear_mark(dom.domid)
            self._drop(r, "recovery", f"the domain is {dom.state} now; nothing to do")
            return
        try:
            if r["action"] == "resume":
                self.host.resume_suspended(dom.domid)
            else:
                self.host.unpause(dom.domid)
        except OSError as e:
            r["attempts"] += 1
            r["last_error"] = str(e)[:300]
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (r["attempts"] - 1))
            r["next_try"] = now + delay
            self.state.save()
            log.error("recovery of %s (swap #%s): %s failed (attempt %d): %s; next try in %.0fs",
                      dom.name, r.get("id"), r["action"], r["attempts"], e, delay)
            self.decide("recovery-failed", dom.name, f"swap #{r.get('id')}: {r['action']} "
                        f"failed (attempt {r['attempts']}): {r['last_error']}; next try in "
                        f"{delay:.0f}s")
            return
        self.clear_mark(dom.domid)
        verb = "resumed" if r["action"] == "resume" else "unpaused"
        self._drop(r, "recovered", f"{verb} {dom.name}, which the swap left "
                   f"{'suspended' if r['action'] == 'resume' else 'paused'}"
                   + (f" (after {r['attempts']} failed attempts)" if r["attempts"] else ""))

    def run(self, now, force=False):
        """Try every recovery that is due (force: all of them)."""
        for r in list(self.pending):
            if force or r.get("next_try", 0) <= now:
                self.attempt(r, now)

    def next_due(self):
        return min((r.get("next_try", 0) for r in self.pending), default=None)
