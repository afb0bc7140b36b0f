# SPDX-License-Identifier: GPL-2.0-only
"""Colour planning: where to move a hot domain.

Every domain's colour occupancy comes from Host.colour_counts(). A colour is
"used" by a domain when it holds at least a tenth of its fair share of the
domain's frames there (so a few device or kept frames do not count). The
hot domain is offered every colour that no *other busy* domain uses; among
those, colours lightly used by quiet domains come first. The plan is
refused, with the reason, when no such colour exists, when it would not
give the domain any colour it does not already have, or when the free
memory on those colours (and node) is short of the domain's size plus a
margin.
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


def plan_swap(geometry, domid, occupancy, busy, frames, free_fn, node=None,
              colours=None, max_colours=None, margin=0.05):
    """
    geometry: Geometry; occupancy: {domid: [frames per colour]};
    busy: set of domids using the cache heavily; frames: the domain's size
    in frames; free_fn(node, colours) -> free frames.
    """
    nr = geometry.nr_colours
    mine = used_colours(occupancy.get(domid, [0] * nr))
    taken = {}
    for d, counts in occupancy.items():
        if d == domid or d not in busy:
            continue
        for c in used_colours(counts):
            taken.setdefault(c, []).append(d)
    need = int(math.ceil(frames * (1.0 + margin)))
    if colours is not None:
        bad = [c for c in colours if c >= nr or c < 0]
        if bad:
            return Plan(False, f"colour {bad[0]} out of range (host has {nr} colours)")
        cands = sorted(set(colours))
    else:
        cands = [c for c in range(nr) if c not in taken]
        if not cands:
            return Plan(False, "every colour is used by another busy domain")
        if set(cands) <= mine:
            return Plan(False, "already on colours no other busy domain uses")
        # colours lightly used by anyone else first (quiet domains too)
        load = [0] * nr
        for d, counts in occupancy.items():
            if d != domid:
                for c, n in enumerate(counts):
                    load[c] += n
        cands.sort(key=lambda c: (load[c], c))
    chosen = cands[:max_colours] if max_colours else list(cands)

    def pick_node(cs):
        if node is not None:
            return node, free_fn(node, cs)
        nodes = getattr(geometry, "nr_nodes", 1) or 1
        if nodes > 1:
            best = max(range(nodes), key=lambda n: free_fn(n, cs))
            f = free_fn(best, cs)
            if f >= need:
                return best, f
        return None, free_fn(None, cs)

    n, free = pick_node(chosen)
    if free < need and max_colours and len(chosen) < len(cands):
        chosen = list(cands)           # widen to every candidate before giving up
        n, free = pick_node(chosen)
    chosen.sort()
    if free < need:
        return Plan(False, f"free memory short: need {need} frames on the target colours"
                           f"{'' if n is None else f' of node {n}'}, {free} free",
                    colours=chosen, node=n, need_frames=need, free_frames=free)
    shared = sorted({d for c in mine for d in taken.get(c, [])})
    why = (f"{len(chosen)} colours free of other busy domains"
           + (f" (leaving colours shared with domain(s) {', '.join(map(str, shared))})" if shared else ""))
    return Plan(True, why, colours=chosen, node=n, need_frames=need, free_frames=free)
