# SPDX-License-Identifier: GPL-2.0-only
"""Swaps that pay for themselves: what a swap costs, what it gains, and the
hysteresis that keeps memswapd from moving domains back and forth.

Recolouring costs (Zhang, Dwarkadas and Shen, EuroSys 2009: adaptive
recolouring only pays when it is infrequent), so memswapd moves a domain
on a policy's behalf only when

    gain_per_s * horizon  >  cost

both in seconds of lost work, and only when the plan beats the current
placement by a margin and no placement hold forbids it. The numbers and
their inputs go into the decision log and the swap history.

COST (seconds), from the domain's size and how fast this host swaps:

  swap_s   = bytes / copy_bps                   the swap itself
  down_s   = coop_overhead_s + swap_s           cooperative: the guest is
                                                suspended around the swap
           = paused_s_per_gib * GiB             otherwise: the engine's pause
  cost     = down_s * vcpus                     the domain's vCPUs do nothing
           + swap_s                             a host CPU copies meanwhile
           + (refill + pollution) * miss_ns     cache refills afterwards

  refill     the domain's LLC-resident lines, fetched again from their new
             frames: occupancy_bytes (Intel CMT) when a source gives it,
             else the most the domain can hold in the LLC on its colours,
             min(size, llc_bytes * colours_used / nr_colours), over the line
             size. An upper bound when estimated.
  pollution  the other domains' lines the copy evicts: the copy reads the
             whole domain through the LLC, min(size, llc_bytes) / line.

  The speeds (copy_bps, paused_s_per_gib, coop_overhead_s) are a running
  estimate (SwapSpeed) over the swaps this host actually made, kept across
  restarts; before the first one, the backend's documented conservative
  default (Host.swap_speed_default).

GAIN (misses avoided per second, times miss_ns), from the colour
occupancy of every domain and the miss rates over the policy window. The
model, and what it assumes:

  U  A domain's misses are spread over its frames evenly (uniform access),
     so its fill rate into colour c is phi_X(c) = misses_per_s_X *
     frames_X(c) / frames_X.
  E  Every fill into a colour evicts a line there; the chance that the
     eviction that cost domain X a line was caused by another domain is
     the others' share of the fills into that colour. X's interference
     misses on c are I_X(c) = phi_X(c) * P(c) / (P(c) + phi_X(c)), P(c) =
     the other domains' fills into c. Only those misses can be avoided by
     moving: the rest are X's own (compulsory, capacity).
  M  After the move the victim V spreads evenly over the plan's colours,
     with the miss rate it has now (an overestimate: that makes its
     predicted interference there, and the harm it does, larger - the
     safe side). The other domains stay where they are.

  gain = I_V(now) - I_V(plan)              V's interference avoided
       - sum over Q != V of the increase of I_Q   harm to the domains whose
                                           colours V moves onto
  The relief of the domains V leaves behind is not counted: a streaming
  aggressor gains nothing from it, and dropping it only lowers the gain.
  The model attributes misses, it does not predict new ones: it cannot
  tell a streamer's misses (which no placement avoids) from a thrashed
  victim's, so swap policies belong on latency-sensitive domains, and
  the harm to a destination domain is counted only up to its current
  misses.

  Unavailable: V's miss rate unknown (the guest cannot count LLC misses),
  V's occupancy unknown, or a move between NUMA nodes that keeps the
  colours (not modelled). Then no gain is invented: the estimate says why
  and memswapd does not swap (settings.payoff.without_estimate: swap
  lets the trigger alone decide). A domain without a miss rate or an
  occupancy is left out of the pressure (it can only lower the gain) and
  named in the inputs.

HYSTERESIS on the plan itself (Placements), each placement held for the
horizon its swap was justified with (H):
  R1 sticky: a domain memswapd swapped is not moved by a policy again
     before H has passed - the move was justified over H.
  R2 no return: the colours a domain left are barred to it for 2H - a
     round trip costs two swaps and must pay over both horizons.
  R3 no following: the domains a swap fled (those using the colours it
     left) may not be moved onto its new colours for H.
  margin: the plan must avoid at least `margin` of V's interference misses.
So a policy moves any one domain at most once per H, never straight back,
and never after the domain it escaped: ping-pong is impossible by
construction, whatever the triggers do.
"""

import math
from dataclasses import asdict, dataclass, field

from .planner import used_colours

GiB = 1 << 30
#: Weight of a new swap in the running speed estimate (the first replaces the default).
EWMA = 0.3


def _num(v, nd=3):
    """A number for the decision log: short and readable."""
    if v is None:
        return "?"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6 or a < 1e-3:
        return f"{v:.3g}"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.{nd}g}"


def fmt_s(sec):
    """Seconds as '412 ms', '3.2 s', '12 us'."""
    if sec is None:
        return "?"
    if sec == 0:
        return "0 s"
    a = abs(sec)
    if a >= 1:
        return f"{sec:.3g} s"
    if a >= 1e-3:
        return f"{sec * 1e3:.3g} ms"
    return f"{sec * 1e6:.3g} us"


def fmt_bytes(n):
    for unit, size in (("GiB", GiB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


# ---- how fast this host swaps ----------------------------------------------------------------

@dataclass
class SwapSpeed:
    """A running estimate of how fast the host swaps.

    copy_bps: bytes moved per second of swap (wall time without the guest's
    suspend and resume); paused_s_per_gib: the engine's pause per GiB moved;
    coop_overhead_s: a cooperative swap's suspend + resume. swaps /
    coop_swaps: measured swaps folded in (0: still the backend's default)."""
    copy_bps: float
    paused_s_per_gib: float
    coop_overhead_s: float
    swaps: int = 0
    coop_swaps: int = 0

    @classmethod
    def restore(cls, default, saved=None):
        """The saved estimate (state.json) over the backend's default."""
        sp = cls(**{k: float(v) for k, v in default.items()})
        if isinstance(saved, dict):
            for k in ("copy_bps", "paused_s_per_gib", "coop_overhead_s"):
                v = saved.get(k)
                if isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
                    setattr(sp, k, float(v))
            for k in ("swaps", "coop_swaps"):
                v = saved.get(k)
                if isinstance(v, int) and v >= 0:
                    setattr(sp, k, v)
        return sp

    @staticmethod
    def _fold(old, new, n):
        return new if n == 0 else old + EWMA * (new - old)

    def update(self, result, swap_s):
        """Fold in a completed swap: result (SwapResult or its dict), swap_s
        the wall time of the host call (without test stalls). -> True if it
        taught anything."""
        r = result if isinstance(result, dict) else asdict(result)
        moved = int(r.get("bytes_copied") or 0)
        if moved <= 0 or swap_s is None or r.get("dry_run"):
            return False
        coop_s = ((r.get("suspend_ns") or 0) + (r.get("resume_ns") or 0)) / 1e9 \
            if r.get("cooperative") else 0.0
        copy_s = max(swap_s - coop_s, 1e-6)
        self.copy_bps = self._fold(self.copy_bps, moved / copy_s, self.swaps)
        # A live swap's pause is its final stop's, which does not grow with
        # the size: it would make the stop-and-copy estimate optimistic.
        if r.get("mode") != "live":
            paused = (r.get("paused_ns") or 0) / 1e9
            self.paused_s_per_gib = self._fold(self.paused_s_per_gib, paused / (moved / GiB),
                                               self.swaps)
        self.swaps += 1
        if r.get("cooperative"):
            self.coop_overhead_s = self._fold(self.coop_overhead_s, coop_s, self.coop_swaps)
            self.coop_swaps += 1
        return True

    def as_dict(self):
        return asdict(self)

    def source(self, cooperative):
        if not self.swaps:
            return "backend default, no swap measured yet"
        s = f"measured over {self.swaps} swap{'s' if self.swaps != 1 else ''}"
        if cooperative and not self.coop_swaps:
            s += ", suspend/resume: backend default"
        return s


# ---- cost ------------------------------------------------------------------------------------

@dataclass
class Cost:
    bytes: int
    vcpus: int
    cooperative: bool
    swap_s: float
    down_s: float
    refill_bytes: int
    refill_from: str              # "occupancy_bytes" (measured) or "colours" (estimated bound)
    pollution_bytes: int
    refill_misses: float
    line_bytes: int
    miss_ns: float
    speed: dict
    speed_source: str
    total_s: float = 0.0

    def __post_init__(self):
        self.total_s = (self.down_s * self.vcpus + self.swap_s
                        + self.refill_misses * self.miss_ns * 1e-9)

    def text(self):
        return (f"{fmt_bytes(self.bytes)} at {fmt_bytes(self.speed['copy_bps'])}/s "
                f"({self.speed_source}) = {fmt_s(self.swap_s)}, down {fmt_s(self.down_s)} x "
                f"{self.vcpus} vCPU{'s' if self.vcpus != 1 else ''}"
                f"{' (suspended)' if self.cooperative else ''}, refill "
                f"{fmt_bytes(self.refill_bytes)}"
                f"{' (estimated)' if self.refill_from != 'occupancy_bytes' else ''} + "
                f"pollution {fmt_bytes(self.pollution_bytes)} = {_num(self.refill_misses)} misses")


def estimate_cost(frames, vcpus, speed, geometry, cooperative, miss_ns, colours_used,
                  occupancy_bytes=None, page=4096):
    """The cost of swapping a domain of `frames` frames (see the module docstring)."""
    size = int(frames) * page
    swap_s = size / speed.copy_bps if speed.copy_bps > 0 else float("inf")
    if cooperative:
        down_s = speed.coop_overhead_s + swap_s
    else:
        down_s = speed.paused_s_per_gib * size / GiB
    llc = int(geometry.llc_bytes)
    nr = max(1, int(geometry.nr_colours))
    if occupancy_bytes is not None and occupancy_bytes >= 0:
        refill, refill_from = int(min(occupancy_bytes, size)), "occupancy_bytes"
    else:
        refill = int(min(size, llc * max(1, colours_used) / nr))
        refill_from = "colours"
    pollution = min(size, llc)
    line = max(1, int(geometry.line_bytes))
    return Cost(bytes=size, vcpus=max(1, int(vcpus)), cooperative=bool(cooperative),
                swap_s=swap_s, down_s=down_s, refill_bytes=refill, refill_from=refill_from,
                pollution_bytes=pollution, refill_misses=(refill + pollution) / line,
                line_bytes=line, miss_ns=float(miss_ns), speed=speed.as_dict(),
                speed_source=speed.source(cooperative))


# ---- gain ------------------------------------------------------------------------------------

@dataclass
class Gain:
    available: bool
    reason: str = ""                      # why not available
    misses_per_s: float | None = None     # the victim's, now
    interference_now: float = 0.0         # I_V on its current colours (misses/s)
    interference_plan: float = 0.0        # I_V on the plan's colours
    harm: float = 0.0                     # increase of the other domains' interference
    avoided: float = 0.0                  # misses/s avoided, net
    sharing: list = field(default_factory=list)     # [{domain, misses_per_s, colours}] now
    uncounted: list = field(default_factory=list)   # [{domain, why}]

    def text(self, name):
        if not self.available:
            return f"gain unavailable: {self.reason}"
        share = ", ".join(f"{s['domain']} {_num(s['misses_per_s'])} misses/s on "
                          f"{s['colours']} colour{'s' if s['colours'] != 1 else ''}"
                          for s in self.sharing[:3]) or "no other domain"
        more = f" and {len(self.sharing) - 3} more" if len(self.sharing) > 3 else ""
        unc = (f"; not counted: {', '.join(u['domain'] for u in self.uncounted[:3])}"
               f"{'...' if len(self.uncounted) > 3 else ''}") if self.uncounted else ""
        return (f"{name} {_num(self.misses_per_s)} misses/s, of which interference "
                f"{_num(self.interference_now)} -> {_num(self.interference_plan)} "
                f"(sharing with {share}{more}), harm to others {_num(self.harm)}/s{unc}")


def _interference(own, others):
    """I = own * others / (others + own): the share of a domain's misses on a
    colour that the other domains' fills cause (assumption E)."""
    if own <= 0 or others <= 0:
        return 0.0
    return own * others / (others + own)


def estimate_gain(domid, name_of, occupancy, miss_rates, plan_colours, nr_colours,
                  protected=()):
    """Misses per second the plan avoids (see the module docstring).

    occupancy: {domid: Occupancy or [frames per colour]}; miss_rates:
    {domid: misses_per_s or None}; plan_colours: the colours the victim
    moves to; name_of(domid) -> name; protected: domids whose occupancy
    memswap never reads (not reported as uncounted when their rate is 0)."""
    def counts(o):
        return list(getattr(o, "colours", o))
    mine = occupancy.get(domid)
    m_v = miss_rates.get(domid)
    if m_v is None:
        return Gain(False, f"{name_of(domid)} has no LLC miss rate (its metric sources do "
                           f"not count llc_misses)")
    if mine is None or not sum(counts(mine)):
        return Gain(False, f"{name_of(domid)}'s colour occupancy is unknown")
    if not plan_colours:
        return Gain(False, "the plan names no colours")
    if set(plan_colours) == used_colours(counts(mine)):
        return Gain(False, "the plan keeps the colours: the gain of a move between NUMA "
                           "nodes is not modelled")
    nr = nr_colours

    def phi(o, rate):
        c = counts(o)
        tot = sum(c)
        return [rate * k / tot for k in c] if tot else [0.0] * nr
    uncounted, others = [], {}
    for x in set(occupancy) | set(miss_rates):
        if x == domid:
            continue
        rate, occ = miss_rates.get(x), occupancy.get(x)
        if rate is None or occ is None:
            if occ is None and x in protected and not rate:
                continue
            uncounted.append({"domain": name_of(x), "why": "no miss rate" if rate is None
                              else "occupancy unknown"})
            continue
        if rate > 0 and sum(counts(occ)):
            others[x] = phi(occ, rate)
    phi_v = phi(mine, max(0.0, float(m_v)))
    pressure = [sum(p[c] for p in others.values()) for c in range(nr)]
    i_now = sum(_interference(phi_v[c], pressure[c]) for c in range(nr))
    plan = sorted({c for c in plan_colours if 0 <= c < nr})
    phi_plan = [0.0] * nr
    for c in plan:
        phi_plan[c] = m_v / len(plan)
    i_plan = sum(_interference(phi_plan[c], pressure[c]) for c in plan)
    harm = 0.0
    for x, p in others.items():
        for c in range(nr):
            if p[c] <= 0 or phi_plan[c] <= phi_v[c]:
                continue
            rest = pressure[c] - p[c]          # the fills of everyone but X and V
            harm += (_interference(p[c], rest + phi_plan[c])
                     - _interference(p[c], rest + phi_v[c]))
    used_v = {c for c in range(nr) if phi_v[c] > 0}
    sharing = []
    for x, p in others.items():
        on = [c for c in used_v if p[c] > 0]
        if on:
            sharing.append({"domain": name_of(x), "misses_per_s": miss_rates[x],
                            "colours": len(on)})
    sharing.sort(key=lambda s: -s["misses_per_s"])
    uncounted.sort(key=lambda u: u["domain"])
    return Gain(True, misses_per_s=float(m_v), interference_now=i_now, interference_plan=i_plan,
                harm=harm, avoided=i_now - i_plan - harm, sharing=sharing, uncounted=uncounted)


# ---- the verdict -----------------------------------------------------------------------------

@dataclass
class Appraisal:
    """Cost against gain for one candidate swap."""
    horizon_s: float
    miss_ns: float
    margin: float
    gain: Gain
    cost: Cost
    pays: bool = False
    verdict: str = ""       # pays | no-pay | unavailable

    def __post_init__(self):
        g = self.gain
        if not g.available:
            self.pays, self.verdict = False, "unavailable"
        else:
            self.pays = (self.gain_s > self.cost.total_s
                         and g.avoided >= self.margin * g.interference_now and g.avoided > 0)
            self.verdict = "pays" if self.pays else "no-pay"

    @property
    def gain_per_s(self):
        """Seconds of stall avoided per second."""
        return max(0.0, self.gain.avoided) * self.miss_ns * 1e-9 if self.gain.available else None

    @property
    def gain_s(self):
        return None if self.gain_per_s is None else self.gain_per_s * self.horizon_s

    def why_not(self):
        g = self.gain
        if not g.available:
            return g.reason
        if g.avoided <= 0:
            return "no misses to avoid"
        if g.avoided < self.margin * g.interference_now:
            return (f"the plan avoids {_num(g.avoided)} of {_num(g.interference_now)} "
                    f"interference misses/s, less than the margin {self.margin:g}")
        return "the cost exceeds the gain over the horizon"

    def text(self, name):
        g, c = self.gain, self.cost
        if not g.available:
            head = f"gain unavailable ({g.reason}); cost {fmt_s(c.total_s)}"
        else:
            rel = ">" if self.gain_s > c.total_s else "<="
            head = (f"gain {fmt_s(self.gain_per_s)}/s x {self.horizon_s:g} s = "
                    f"{fmt_s(self.gain_s)} {rel} cost {fmt_s(c.total_s)}")
        gain = f"gain: {g.text(name)}; " if g.available else ""
        return f"{head} [{gain}cost: {c.text()}; miss {self.miss_ns:g} ns]"

    def as_dict(self):
        return {"verdict": self.verdict, "pays": self.pays, "horizon_s": self.horizon_s,
                "miss_ns": self.miss_ns, "margin": self.margin,
                "gain_s": self.gain_s, "gain_per_s": self.gain_per_s, "cost_s": self.cost.total_s,
                "gain": asdict(self.gain), "cost": asdict(self.cost)}


# ---- hysteresis on the plan ------------------------------------------------------------------

class Placements:
    """Where memswapd put domains, and what that forbids (R1-R3 in the module
    docstring). Kept in state.json as {name: record}; a record is dropped
    once every rule it carries has expired, or when its domain was
    re-created (another uuid)."""

    def __init__(self, records):
        self.records = records          # the dict in state.json, updated in place

    def record(self, name, uuid, before, after, fled, now, hold):
        """A swap moved `name` from colours `before` to `after`; `fled`: names
        of the domains using the colours it left."""
        before, after = set(before or ()), set(after or ())
        prev = self.records.get(name)
        barred = {}
        if prev and prev.get("uuid") == uuid:
            for c, until in (prev.get("barred") or {}).items():
                if float(until) > now:
                    barred[str(c)] = float(until)
        for c in before - after:
            barred[str(c)] = now + 2 * hold
        for c in after:
            barred.pop(str(c), None)
        self.records[name] = {"uuid": uuid, "at": now, "hold_until": now + hold,
                              "colours": sorted(after), "barred": barred,
                              "fled": sorted(set(fled) - {name}), "hold_s": hold}

    def prune(self, now, live=None):
        """Drop expired records (and those of domains gone, given live {name: uuid})."""
        for name in list(self.records):
            r = self.records[name]
            if live is not None and (name not in live or live[name] != r.get("uuid")):
                del self.records[name]
                continue
            r["barred"] = {c: u for c, u in (r.get("barred") or {}).items() if float(u) > now}
            if float(r.get("hold_until", 0)) <= now and not r["barred"]:
                del self.records[name]

    def held(self, name, now):
        """-> (seconds left, record) if R1 keeps the domain where it is, else None."""
        r = self.records.get(name)
        if r and float(r.get("hold_until", 0)) > now:
            return float(r["hold_until"]) - now, r
        return None

    def barred(self, name, now):
        """{colour: why} the domain may not be moved onto now (R2, R3)."""
        out = {}
        r = self.records.get(name)
        if r:
            for c, until in (r.get("barred") or {}).items():
                if float(until) > now:
                    out[int(c)] = (f"{name} left it {now - float(r['at']):.0f}s ago "
                                   f"(no return for another {float(until) - now:.0f}s)")
        for other, r in self.records.items():
            if other == name or name not in (r.get("fled") or ()) or \
                    float(r.get("hold_until", 0)) <= now:
                continue
            for c in r.get("colours") or ():
                out.setdefault(int(c), f"{other} moved there {now - float(r['at']):.0f}s ago "
                                       f"to get away from {name} (held another "
                                       f"{float(r['hold_until']) - now:.0f}s)")
        return out
