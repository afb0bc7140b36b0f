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

GAIN (misses avoided per second, times miss_ns): a model of the LLC,
calibrated on what the metric sources measure for every domain over the
policy window (LLC misses and references per second, Intel CMT occupancy
where the host has it) and the colour occupancy of every domain's frames,
then run on the placement the plan makes. Its assumptions:

  C1 colours. A domain spreads its references and its footprint evenly
     over the colours it uses (planner.used_colours: a tenth of its fair
     share or more). Colours used by the same set of domains behave alike;
     each is a cache of llc_bytes / nr_colours shared by those domains.
  C2 reuse. A domain's references are independent and uniform over a
     footprint of F lines (the independent reference model). F is what
     more cache can do for it: misses are what does not fit.
  C3 LRU. Each shared colour is least-recently-used with a characteristic
     time T (Che's approximation): a line stays for T after its last
     reference, and the lines held fill the colour. A domain with r
     references/s per colour and f lines of footprint per colour holds
     f * (1 - exp(-r T / f)) lines there and misses at r * exp(-r T / f).
  C4 steady rates. Every domain keeps its reference rate and footprint
     after the move (a domain that misses less does not run faster in the
     model: the gain is counted in misses, not in work done).

  Calibration: F of every domain is chosen so that the model reproduces
  its measured miss ratio (misses / references) in the current placement.
  A miss ratio near 1 gives a footprint far beyond any cache: a streaming
  domain, whose misses are compulsory and which no placement helps. A
  domain that misses less than FITS_MR of its references fits: its
  footprint is its CMT occupancy where a source measures it, else the most
  its miss ratio allows (it fills what the others leave it: the safe side,
  the most it can lose to a domain moving in). A domain whose rate is
  unknown but whose occupancy is measured holds that many lines in the
  model; one with neither is left out and named (the model then sees
  more room on its colours than there is).

  For the swap of a mover M (the domain the policy is for, or an
  aggressor confined to relieve it) to the plan's colours:
    victim_change = V's misses now - after        (model, V: the domain
                                                   the policy is for)
    harm          = increase of every other domain's misses (those on the
                    colours M moves onto lose capacity, also quiet ones
                    whose data fits there now)
    relief        = decrease of every other domain's misses (those M
                    leaves, or M itself when it is not V)
    gain          = victim_change + relief - harm
  avoidable, V's misses now minus those it would have alone on the whole
  LLC, is what more cache could do for V at most: ~0 for a streamer.

  The model is the study's (premise/study.py prints predicted against
  measured changes for every swap). Its main error: C2 makes a program's
  footprint the smallest one consistent with one measured miss ratio, so
  it predicts fewer misses than a program with a long tail of rarely used
  lines shows after it gets more cache, and more harm than it does to a
  neighbour whose footprint was taken as a bound.

  Unavailable: V's or M's miss or reference rate unknown (the guest
  cannot count LLC events: without a miss ratio a capacity miss cannot be
  told from a compulsory one), its colour occupancy unknown, no
  references in the window, or a move between NUMA nodes that keeps the
  colours (not modelled). Then no gain is invented: the estimate says why
  and memswapd does not swap (settings.payoff.without_estimate: swap lets
  the trigger alone decide a swap of the policy's own domain; an
  aggressor is never moved without an estimate).

HYSTERESIS on the plan itself (Placements), each placement held for the
horizon its swap was justified with (H):
  R1 sticky: a domain memswapd swapped is not moved by a policy again
     before H has passed - the move was justified over H.
  R2 no return: the colours a domain left are barred to it for 2H - a
     round trip costs two swaps and must pay over both horizons.
  R3 no following: the domains a swap fled (those using the colours it
     left) may not be moved onto its new colours for H.
  margin: the plan must avoid, net, at least `margin` of V's avoidable
     misses.
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


# ---- the cache model -------------------------------------------------------------------------

#: A miss ratio of 0 is taken as this (in a full cache the model has no exact 0),
#: one of 1 as MR_MAX (a finite footprint, far beyond any cache).
MR_MIN, MR_MAX = 1e-6, 1.0 - 1e-9
#: Below this miss ratio a domain fits: its footprint is its occupancy where a
#: source measures it (its few misses say nothing about its size).
FITS_MR = 0.01
F_MAX = 1e15              # lines: "larger than any cache"
T_INF = float("inf")


def _occupied(t, members):
    """Lines held at characteristic time t by members [(f lines, rho refs/s or None)]."""
    s = 0.0
    for f, rho in members:
        if rho is None or t == T_INF:
            s += f
        elif rho > 0 and f > 0:
            s += f * -math.expm1(-rho * t / f)
    return s


def _char_time(members, lines):
    """Che's characteristic time of an LRU cache of `lines` shared by members:
    occupied(t) = lines; T_INF when everything fits, 0 when static
    occupants fill it."""
    if sum(f for f, _ in members) <= lines:
        return T_INF
    static = sum(f for f, rho in members if rho is None)
    refs = sum(rho for f, rho in members if rho)
    if static >= lines or refs <= 0:
        return 0.0
    lo = (lines - static) / refs             # every reference a new line: the least t
    hi = lo
    while _occupied(hi, members) < lines:
        hi *= 2.0
    for _ in range(64):
        mid = math.sqrt(lo * hi)
        if _occupied(mid, members) < lines:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def _miss_prob(rho, f, t):
    """The chance that a reference of a domain (rho refs/s over f lines) misses."""
    if t == T_INF or f <= 0:
        return 0.0
    if rho is None:
        return 0.0
    return math.exp(-rho * t / f) if t > 0 else 1.0


class CacheModel:
    """An LLC shared by domains, by colour (see the module docstring: C1-C4).

    colours: {key: set of colours}; refs: {key: LLC references/s, or None
    for a domain that only holds lines (its occupancy, no rate known)};
    footprint: {key: lines}."""

    def __init__(self, lines_per_colour, nr_colours):
        self.lines = float(lines_per_colour)
        self.nr = int(nr_colours)

    def groups(self, colours):
        """{frozenset of keys sharing the same colours: how many such colours}."""
        out = {}
        for c in range(self.nr):
            k = frozenset(x for x, cs in colours.items() if c in cs)
            if k:
                out[k] = out.get(k, 0) + 1
        return out

    @staticmethod
    def _per_colour(x, footprint, refs, colours):
        n = len(colours[x])
        return footprint[x] / n, (None if refs[x] is None else refs[x] / n)

    def times(self, footprint, refs, colours, groups=None):
        groups = self.groups(colours) if groups is None else groups
        return {g: _char_time([self._per_colour(x, footprint, refs, colours) for x in g],
                              self.lines) for g in groups}

    def predict(self, footprint, refs, colours):
        """-> ({key: misses/s}, {key: lines held}) in steady state."""
        groups = self.groups(colours)
        times = self.times(footprint, refs, colours, groups)
        misses = {x: 0.0 for x in colours}
        held = {x: 0.0 for x in colours}
        for g, n in groups.items():
            t = times[g]
            for x in g:
                f, rho = self._per_colour(x, footprint, refs, colours)
                held[x] += n * _occupied(t, [(f, rho)])
                if rho is not None:
                    misses[x] += n * rho * _miss_prob(rho, f, t)
        return misses, held

    def calibrate(self, miss_ratio, refs, colours, known):
        """Footprints (lines) that reproduce the observed miss ratios.
        miss_ratio: {key: ratio} of the domains to fit; known: {key: lines}
        of the others (a measured or fixed footprint). -> ({key: lines},
        iterations). Alternates: each domain's footprint for the current
        characteristic times (one-dimensional, monotonic), then each colour
        group's time scaled towards a full cache (exact in one step for a
        group of fitted domains)."""
        fp = dict(known)
        fit = {x: min(MR_MAX, max(MR_MIN, r)) for x, r in miss_ratio.items()}
        for x in fit:
            fp[x] = self.lines * len(colours[x])
        groups = self.groups(colours)
        times = {}
        for g in groups:
            rate = sum(refs[x] / len(colours[x]) for x in g if refs[x])
            times[g] = self.lines / rate if rate > 0 else T_INF
        mine = {x: [(g, n) for g, n in groups.items() if x in g] for x in fit}
        it = 0
        for it in range(1, 201):
            for x, mr in fit.items():
                fp[x] = self._fit_one(mr, refs[x], len(colours[x]), mine[x], times)
            worst = 0.0
            for g in groups:
                members = [self._per_colour(x, fp, refs, colours) for x in g]
                if not fit.keys() & g:
                    times[g] = _char_time(members, self.lines)
                    continue
                if sum(f for f, rho in members if rho is None) >= self.lines:
                    times[g] = 0.0                  # static occupants fill it
                    continue
                t = times[g]
                if t == T_INF:
                    if sum(f for f, _ in members) <= self.lines:
                        continue                    # everything fits: stays so
                    t = self.lines / sum(rho for _, rho in members if rho)
                new = t * self.lines / _occupied(t, members)
                if new > 1e30:
                    new = T_INF
                else:
                    worst = max(worst, abs(math.log(new / t)))
                times[g] = new
            if worst < 1e-9:
                break
        return fp, it

    @staticmethod
    def _fit_one(mr, rho, k, mine, times):
        """The footprint whose miss ratio over x's colour groups is mr."""
        per = rho / k

        def ratio(F):
            f = F / k
            return sum(n * _miss_prob(per, f, times[g]) for g, n in mine) / k
        lo, hi = 1e-6, F_MAX
        if ratio(hi) <= mr:
            return hi
        if ratio(lo) >= mr:
            return lo
        for _ in range(80):
            mid = math.sqrt(lo * hi)
            if ratio(mid) < mr:
                lo = mid
            else:
                hi = mid
        return math.sqrt(lo * hi)


# ---- gain ------------------------------------------------------------------------------------

@dataclass
class Gain:
    available: bool
    reason: str = ""                      # why not available
    victim: str = ""                      # the domain the swap is for
    mover: str = ""                       # the domain it moves (the victim, or the aggressor)
    misses_per_s: float | None = None     # the victim's, measured now
    miss_ratio: float | None = None       # the victim's
    avoidable: float = 0.0                # the victim's misses/s that more cache could avoid
    victim_change: float = 0.0            # the victim's misses/s the plan avoids
    harm: float = 0.0                     # the other domains' misses/s the plan adds
    relief: float = 0.0                   # the other domains' misses/s the plan avoids
    avoided: float = 0.0                  # net: victim_change + relief - harm
    domains: list = field(default_factory=list)     # per domain: inputs and predictions
    sharing: list = field(default_factory=list)     # [{domain, misses_per_s, colours}] now
    uncounted: list = field(default_factory=list)   # [{domain, why}]
    iterations: int = 0                   # of the calibration
    llc_bytes: int = 0
    # The JSON's version-1 names (keys are only ever added): what more cache
    # could avoid for the victim now, and what of it is left after the plan.
    interference_now: float = 0.0
    interference_plan: float = 0.0

    def __post_init__(self):
        self.interference_now = self.avoidable
        self.interference_plan = max(0.0, self.avoidable - self.victim_change)

    def text(self):
        if not self.available:
            return f"gain unavailable: {self.reason}"
        v = next((d for d in self.domains if d["domain"] == self.victim), None)
        fp = v["footprint_bytes"]
        size = (f"over {fmt_bytes(1024 * self.llc_bytes)}" if self.llc_bytes and
                fp > 1024 * self.llc_bytes else fmt_bytes(fp))
        head = (f"{self.victim} {_num(self.misses_per_s)} misses/s at miss ratio "
                f"{_num(self.miss_ratio)}, footprint {size} by its {v['footprint_from']}; "
                f"more cache could avoid {_num(self.avoidable)}/s")
        if self.mover != self.victim:
            head += f"; confining {self.mover}"
        moved = [d for d in self.domains if abs(d["change"]) >= 1e-3 * max(
            1.0, abs(d["predicted_now"])) or d["domain"] in (self.victim, self.mover)]
        pred = ", ".join(f"{d['domain']} {_num(d['predicted_now'])} -> "
                         f"{_num(d['predicted_plan'])}" for d in moved[:5])
        more = f" and {len(moved) - 5} more" if len(moved) > 5 else ""
        unc = (f"; not counted: {', '.join(u['domain'] for u in self.uncounted[:3])}"
               f"{'...' if len(self.uncounted) > 3 else ''}") if self.uncounted else ""
        return (f"{head}; predicted misses/s: {pred}{more}; net {_num(self.avoided)}/s avoided "
                f"(harm to others {_num(self.harm)}/s, relief {_num(self.relief)}/s){unc}")


def _lines(nbytes, line):
    return max(0.0, float(nbytes)) / line


def estimate_gain(mover, name_of, occupancy, rates, plan_colours, geometry, protected=(),
                  victim=None):
    """Misses per second the plan avoids, net, over every domain (see the
    module docstring: the cache model C1-C4 and GAIN).

    mover: the domid the plan moves to plan_colours; victim: the domid the
    swap is for (default: the mover); occupancy: {domid: Occupancy or
    [frames per colour]}; rates: {domid: {misses_per_s,
    llc_references_per_s, occupancy_bytes}} (the collector's rates over the
    policy window; a missing key is unknown); name_of(domid) -> name;
    protected: domids whose P2M memswap never reads (not reported as
    uncounted when they make no references)."""
    victim = mover if victim is None else victim
    vname, mname = name_of(victim), name_of(mover)

    def counts(o):
        return list(getattr(o, "colours", o))

    def rate(x, k):
        v = (rates.get(x) or {}).get(k)
        return None if v is None else float(v)
    nr = int(geometry.nr_colours)
    line = max(1, int(geometry.line_bytes))
    per_colour = max(1.0, geometry.llc_bytes / max(1, nr) / line)
    for x, who in ((victim, vname), (mover, mname)):
        if rate(x, "misses_per_s") is None:
            return Gain(False, f"{who} has no LLC miss rate (its metric sources do not count "
                               f"llc_misses)")
        if rate(x, "llc_references_per_s") is None:
            return Gain(False, f"{who} has no LLC reference rate (its metric sources do not "
                               f"count llc_references): without its miss ratio the model cannot "
                               f"tell misses more cache would avoid from compulsory ones")
        if occupancy.get(x) is None or not sum(counts(occupancy[x])):
            return Gain(False, f"{who}'s colour occupancy is unknown")
    for x, who in ((victim, vname), (mover, mname)):
        if not rate(x, "llc_references_per_s"):
            return Gain(False, f"{who} made no LLC references in the window")
    if not plan_colours:
        return Gain(False, "the plan names no colours")
    plan = {c for c in plan_colours if 0 <= c < nr}
    if plan == used_colours(counts(occupancy[mover])):
        return Gain(False, "the plan keeps the colours: the gain of a move between NUMA "
                           "nodes is not modelled")

    colours, refs, fit, known, how, uncounted = {}, {}, {}, {}, {}, []
    for x in sorted(set(occupancy) | set(rates)):
        m, r, occ_b = rate(x, "misses_per_s"), rate(x, "llc_references_per_s"), \
            rate(x, "occupancy_bytes")
        cs = used_colours(counts(occupancy[x])) if occupancy.get(x) is not None else set()
        if not cs:
            if x in protected and not r and not m:
                continue
            if r or m or r is None:
                uncounted.append({"domain": name_of(x), "why": "colour occupancy unknown"})
            continue
        if r is None or m is None:
            if occ_b is not None and x not in (victim, mover):
                colours[x], refs[x] = cs, None          # holds its lines, rate unknown
                known[x], how[x] = _lines(occ_b, line), "occupancy (rate unknown)"
                uncounted.append({"domain": name_of(x), "why": "no miss or reference rate: "
                                  "counted as holding its occupancy"})
            elif not (x in protected and not m):
                uncounted.append({"domain": name_of(x), "why": "no miss or reference rate"})
            continue
        if r <= 0:
            continue                                      # idle: its lines are the oldest
        colours[x], refs[x] = cs, r
        mr = min(1.0, max(0.0, m / r))
        if mr < FITS_MR and occ_b is not None and x != victim:
            known[x], how[x] = max(1.0, _lines(occ_b, line)), "occupancy"
        else:
            fit[x], how[x] = mr, "miss ratio"
    model = CacheModel(per_colour, nr)
    fp, iterations = model.calibrate(fit, refs, colours, known)
    now, held = model.predict(fp, refs, colours)
    moved = dict(colours)
    moved[mover] = plan
    after, _ = model.predict(fp, refs, moved)
    alone, _ = model.predict({victim: fp[victim]}, {victim: refs[victim]},
                             {victim: set(range(nr))})
    doms = []
    for x in colours:
        if refs[x] is None:
            continue
        role = "victim" if x == victim else "mover" if x == mover else "other"
        doms.append({"domain": name_of(x), "role": role,
                     "misses_per_s": rate(x, "misses_per_s"),
                     "references_per_s": refs[x], "miss_ratio": rate(x, "misses_per_s") / refs[x],
                     "footprint_bytes": fp[x] * line, "footprint_from": how[x],
                     "occupancy_bytes": rate(x, "occupancy_bytes"),
                     "model_occupancy_bytes": held[x] * line,
                     "colours": len(colours[x]),
                     "predicted_now": now[x], "predicted_plan": after[x],
                     "change": after[x] - now[x]})
    doms.sort(key=lambda d: (d["role"] != "victim", d["role"] != "mover", -abs(d["change"])))
    others = [d["change"] for d in doms if d["role"] != "victim"]
    harm = sum(c for c in others if c > 0)
    relief = -sum(c for c in others if c < 0)
    v_change = now[victim] - after[victim]
    mine = colours[victim]
    sharing = sorted(({"domain": name_of(x), "misses_per_s": rate(x, "misses_per_s"),
                       "colours": len(mine & colours[x])} for x in colours
                      if x != victim and refs[x] is not None and mine & colours[x]),
                     key=lambda s: -(s["misses_per_s"] or 0))
    uncounted.sort(key=lambda u: u["domain"])
    m_v = rate(victim, "misses_per_s")
    return Gain(True, victim=vname, mover=mname, misses_per_s=m_v,
                miss_ratio=m_v / refs[victim], avoidable=max(0.0, now[victim] - alone[victim]),
                victim_change=v_change, harm=harm, relief=relief,
                avoided=v_change + relief - harm, domains=doms, sharing=sharing,
                uncounted=uncounted, iterations=iterations, llc_bytes=int(geometry.llc_bytes))


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
                         and g.avoided >= self.margin * g.avoidable and g.avoided > 0)
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
        if g.avoidable <= 0.01 * (g.misses_per_s or 0.0):
            return (f"more cache would not avoid {g.victim}'s misses: at miss ratio "
                    f"{_num(g.miss_ratio)} they are compulsory (its footprint is far larger than "
                    f"any share of the LLC it could get)")
        if g.avoided <= 0:
            return (f"the plan adds {_num(g.harm)} misses/s to the others, more than the "
                    f"{_num(g.victim_change + g.relief)} it avoids")
        if g.avoided < self.margin * g.avoidable:
            return (f"the plan avoids {_num(g.avoided)} of the {_num(g.avoidable)} misses/s more "
                    f"cache could avoid for {g.victim}, less than the margin {self.margin:g}")
        return "the cost exceeds the gain over the horizon"

    def text(self):
        g, c = self.gain, self.cost
        if not g.available:
            head = f"gain unavailable ({g.reason}); cost {fmt_s(c.total_s)}"
        else:
            rel = ">" if self.gain_s > c.total_s else "<="
            head = (f"gain {fmt_s(self.gain_per_s)}/s x {self.horizon_s:g} s = "
                    f"{fmt_s(self.gain_s)} {rel} cost {fmt_s(c.total_s)}")
        gain = f"gain: {g.text()}; " if g.available else ""
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
