# SPDX-License-Identifier: GPL-2.0-only
"""Colour planning: where to move a hot domain.

Every domain's occupancy comes from Host.occupancy() (frames per colour,
and per NUMA node where the backend knows). A colour is "used" by a domain
when it holds at least a tenth of its fair share of the domain's frames
there (so a few device or kept frames do not count). The hot domain is
offered every colour that no *other busy* domain uses; among those,
colours lightly used by quiet domains come first. The plan is refused,
with the reason, when no such colour exists, when it would not give the
domain any colour it does not already have, or when the free memory on
those colours (and node) is short of the domain's size plus a margin.

NUMA: node=<n> takes node n; node=None lets the allocator take any node;
node="auto" (the default) picks, on a host with several nodes, among the
nodes with enough free frames on the chosen colours the one where the
fewest other busy domains live (a domain lives on a node holding a tenth
of its frames), then the one with the most free frames. A domain already
on colours no other busy domain uses is still moved when such a node has
fewer busy domains than the node(s) it lives on.

Hysteresis (memswap.payoff.Placements): `barred` maps colours the domain
may not be moved onto now to the reason (it left them recently, or the
domain there moved to get away from it); they are never offered, and a
plan whose only candidates are barred is refused saying so. A plan that
would leave the domain on the colours (and node) it has is refused: it
moves memory for nothing.
"""

import math
from dataclasses import dataclass, field


@dataclass
class Plan:
    ok: bool
    reason: str
    colours: list = field(default_factory=list)
    node: int | None = None
    need_frames: int = 0
    free_frames: int = 0


def used_colours(counts, share=0.1):
    total = sum(counts)
    if not total:
        return set()
    thresh = max(1, share * total / len(counts))
    return {c for c, n in enumerate(counts) if n >= thresh}


def _colours(occ):
    """Frames per colour of an Occupancy (or of a plain list of counts)."""
    return list(getattr(occ, "colours", occ))


def _nodes(occ, share=0.1):
    """The nodes holding at least `share` of a domain's frames (empty if unknown)."""
    counts = getattr(occ, "nodes", None)
    if not counts:
        return set()
    total = sum(counts)
    return {n for n, k in enumerate(counts) if total and k >= share * total}


def _barred_note(barred, colours):
    """'colours 0-15 are barred: <why>' for the barred colours among `colours`."""
    hit = sorted(c for c in colours if c in barred)
    if not hit:
        return ""
    from .policy import format_colours
    whys = sorted({barred[c] for c in hit})
    return (f"colour{'s' if len(hit) > 1 else ''} {format_colours(hit)} "
            f"{'are' if len(hit) > 1 else 'is'} barred: {'; '.join(whys[:2])}")


def plan_swap(geometry, domid, occupancy, busy, frames, free_fn, node="auto",
              colours=None, max_colours=None, margin=0.05, barred=None):
    """
    geometry: Geometry; occupancy: {domid: Occupancy or [frames per colour]};
    busy: set of domids using the cache heavily; frames: the domain's size
    in frames; free_fn(node, colours) -> free frames; node: an int, None
    (any) or "auto" (see the module docstring); barred: {colour: why} the
    domain may not be moved onto.
    """
    barred = barred or {}
    note = ""
    nr = geometry.nr_colours
    mine = used_colours(_colours(occupancy.get(domid, [0] * nr)))
    taken = {}
    for d, occ in occupancy.items():
        if d == domid or d not in busy:
            continue
        for c in used_colours(_colours(occ)):
            taken.setdefault(c, []).append(d)
    need = int(math.ceil(frames * (1.0 + margin)))
    if colours is not None:
        bad = [c for c in colours if c >= nr or c < 0]
        if bad:
            return Plan(False, f"colour {bad[0]} out of range (host has {nr} colours)")
        cands = sorted(set(colours))
        note = _barred_note(barred, cands)
        if note:
            return Plan(False, f"hold: {note}")
    else:
        cands = [c for c in range(nr) if c not in taken]
        if not cands:
            return Plan(False, "every colour is used by another busy domain")
        note = _barred_note(barred, cands)
        cands = [c for c in cands if c not in barred]
        if not cands:
            return Plan(False, f"hold: every colour free of other busy domains is barred ({note})")
        # colours lightly used by anyone else first (quiet domains too)
        load = [0] * nr
        for d, occ in occupancy.items():
            if d != domid:
                for c, n in enumerate(_colours(occ)):
                    load[c] += n
        cands.sort(key=lambda c: (load[c], c))
    chosen = cands[:max_colours] if max_colours else list(cands)

    nodes = getattr(geometry, "nr_nodes", 1) or 1
    busy_on = [0] * nodes
    for d in busy:
        if d != domid and d in occupancy:
            for n in _nodes(occupancy[d]):
                if n < nodes:
                    busy_on[n] += 1
    here = {h for h in _nodes(occupancy.get(domid, ())) if h < nodes}

    def pick_node(cs):
        """-> (node, free frames, why)"""
        if node != "auto":
            return node, free_fn(node, cs), ""
        if nodes <= 1:
            return None, free_fn(None, cs), ""
        free = [free_fn(n, cs) for n in range(nodes)]
        fit = [n for n in range(nodes) if free[n] >= need]
        if not fit:
            best = max(range(nodes), key=lambda n: free[n])
            return best, free[best], ""
        best = min(fit, key=lambda n: (busy_on[n], -free[n], n))
        return best, free[best], (f"; node {best}: {free[best]} free frames, "
                                  f"{busy_on[best]} other busy domain(s)")

    move_why = ""
    if colours is None and set(cands) <= mine and not isinstance(node, int):
        # No colour to gain: only a node with fewer busy domains than the
        # domain's own is worth a move (an explicit node always is).
        if node != "auto" or not here or nodes <= 1:
            return Plan(False, "already on colours no other busy domain uses")
        n, free, _ = pick_node(chosen)
        least = min(busy_on[h] for h in here)
        if n in here or busy_on[n] >= least or free < need:
            return Plan(False, "already on colours no other busy domain uses and on the "
                               "least busy node")
        move_why = (f"; to node {n}: {busy_on[n]} other busy domain(s) there against {least} "
                    f"on node {'/'.join(map(str, sorted(here)))}")
    n, free, node_why = pick_node(chosen)
    if free < need and max_colours and len(chosen) < len(cands):
        chosen = list(cands)           # widen to every candidate before giving up
        n, free, node_why = pick_node(chosen)
    chosen.sort()
    if set(chosen) == mine and (n is None or n in here or nodes <= 1):
        return Plan(False, "the plan would leave the domain on the colours it has",
                    colours=chosen, node=n)
    if free < need:
        return Plan(False, f"free memory short: need {need} frames on the target colours"
                           f"{'' if n is None else f' of node {n}'}, {free} free",
                    colours=chosen, node=n, need_frames=need, free_frames=free)
    shared = sorted({d for c in mine for d in taken.get(c, [])})
    why = (f"{len(chosen)} colours free of other busy domains"
           + (f" (leaving colours shared with domain(s) {', '.join(map(str, shared))})" if shared else "")
           + (move_why or node_why)
           + (f"; not offered: {note}" if note else ""))
    return Plan(True, why, colours=chosen, node=n, need_frames=need, free_frames=free)


def plan_confinement(geometry, domid, victim, occupancy, frames, free_fn, node="auto",
                     margin=0.05, barred=None):
    """Where to confine an aggressor (domid) so that it leaves the victim's
    cache alone: the fewest colours with room for it (its frames plus the
    margin, free now), taken first among the colours the victim does not
    use, then the least loaded by everyone else; never a barred colour.
    node: an int, None (any) or "auto" (the node holding most of the
    aggressor's frames: the move is about colours, not its node). A plan
    that would not shrink the set of colours it uses is refused: confining
    is only worth something when it uses fewer colours after."""
    barred = barred or {}
    nr = geometry.nr_colours
    mine = used_colours(_colours(occupancy.get(domid, [0] * nr)))
    theirs = used_colours(_colours(occupancy.get(victim, [0] * nr)))
    load = [0] * nr
    for d, occ in occupancy.items():
        if d != domid:
            for c, n in enumerate(_colours(occ)):
                load[c] += n
    cands = sorted((c for c in range(nr) if c not in barred), key=lambda c: (c in theirs, load[c], c))
    note = _barred_note(barred, range(nr))
    if not cands:
        return Plan(False, f"hold: every colour is barred ({note})")
    if node == "auto":
        counts = getattr(occupancy.get(domid), "nodes", None)
        nodes = getattr(geometry, "nr_nodes", 1) or 1
        node = max(range(len(counts)), key=lambda n: counts[n]) if counts and nodes > 1 else None
    need = int(math.ceil(frames * (1.0 + margin)))
    # the fewest leading candidates with room: free frames only grow with the prefix
    lo, hi = 1, len(cands)
    if free_fn(node, cands) < need:
        return Plan(False, f"free memory short: need {need} frames"
                           f"{'' if node is None else f' on node {node}'}, "
                           f"{free_fn(node, cands)} free on the colours it may use",
                    node=node, need_frames=need)
    while lo < hi:
        mid = (lo + hi) // 2
        if free_fn(node, cands[:mid]) >= need:
            hi = mid
        else:
            lo = mid + 1
    chosen = sorted(cands[:lo])
    if len(chosen) >= len(mine):
        return Plan(False, f"confining it would not shrink it: it needs {len(chosen)} colours "
                           f"for {frames} frames and uses {len(mine)} now", colours=chosen, node=node)
    shared = len(set(chosen) & theirs)
    why = (f"the {len(chosen)} colours with room for it"
           + (f", {shared} of them the victim's" if shared else ", none of them the victim's")
           + (f"; not offered: {note}" if note else ""))
    return Plan(True, why, colours=chosen, node=node, need_frames=need,
                free_frames=free_fn(node, chosen))
