# SPDX-License-Identifier: GPL-2.0-only
"""Simulated hosts for `memswapd --scenario FILE` (and `memswapctl swap
--direct --scenario FILE`): open_host(FILE) returns a memswap.SimHost with
the scenario's domains built and their workloads set.

A scenario is a YAML file:

  host:                      # the simulated machine
    ram_mb: 2048
    nr_nodes: 1
    llc_mb: 8                # or llc_bytes
    ways: 16
    line_bytes: 64
    seed: 1
  sim:
    accesses_per_second: 400000   # LLC references per simulated second, all domains
    max_accesses_per_step: 4000000  # at most this many between two world steps
  domains:
    - name: db
      mem_mb: 64
      vcpus: 2
      colours: 0-15          # colour list (as in memswapctl), or omitted: any
      node: 0                # optional
      workload: {wss_mb: 1.5, pattern: random, intensity: 30, weight: 1}

Every key but a domain's name has a default (the ones shown, 64 MiB and 1
vCPU for a domain, no workload). Errors are ScenarioError naming the file
and the domain. Time passes in the simulated host only through
Host.advance(dt), which memswapd calls once per loop iteration.
"""

import yaml

from .policy import parse_colours

MiB = 1 << 20


class ScenarioError(Exception):
    pass


def _mb(d, key_mb, key_bytes, default=None):
    if key_bytes in d:
        return int(d[key_bytes])
    if key_mb in d:
        return int(float(d[key_mb]) * MiB)
    return default


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as e:
        raise ScenarioError(f"{path}: {e}") from e
    if not isinstance(doc, dict):
        raise ScenarioError(f"{path}: expected a mapping with host/sim/domains")
    h = doc.get("host") or {}
    sim = doc.get("sim") or {}
    if not isinstance(h, dict) or not isinstance(sim, dict):
        raise ScenarioError(f"{path}: host and sim must be mappings")
    try:
        host = {
            "ram_bytes": _mb(h, "ram_mb", "ram_bytes", 1024 * MiB),
            "nr_nodes": int(h.get("nr_nodes", 1)),
            "llc_bytes": _mb(h, "llc_mb", "llc_bytes", 8 * MiB),
            "ways": int(h.get("ways", 16)),
            "line_bytes": int(h.get("line_bytes", 64)),
            "seed": int(h.get("seed", 1)),
        }
        rates = {"accesses_per_second": int(sim.get("accesses_per_second", 400000)),
                 "max_accesses_per_step": int(sim.get("max_accesses_per_step", 4000000))}
    except (ValueError, TypeError, OverflowError) as e:
        raise ScenarioError(f"{path}: host/sim: {e}") from e
    doms = []
    for i, d in enumerate(doc.get("domains") or []):
        if not isinstance(d, dict) or "name" not in d:
            raise ScenarioError(f"{path}: domains[{i}]: needs at least a name")
        w = d.get("workload")
        if w is not None and not isinstance(w, dict):
            raise ScenarioError(f"{path}: domains[{i}].workload: expected a mapping")
        try:
            dom = {
                "name": str(d["name"]),
                "mem_bytes": _mb(d, "mem_mb", "mem_bytes", 64 * MiB),
                "vcpus": int(d.get("vcpus", 1)),
                "colours": parse_colours(d["colours"]) if d.get("colours") not in (None, "any") else None,
                "node": d.get("node"),
                "with_devices": bool(d.get("with_devices", True)),
                "seed": int(d.get("seed", i + 1)),
                "workload": None,
            }
            if w:
                dom["workload"] = {
                    "wss_bytes": _mb(w, "wss_mb", "wss_bytes", 1 * MiB),
                    "pattern": str(w.get("pattern", "random")),
                    "intensity": int(w.get("intensity", 30)),
                    "weight": int(w.get("weight", 1)),
                    "stride": int(w.get("stride", 64)),
                }
        except (ValueError, TypeError, OverflowError) as e:
            raise ScenarioError(f"{path}: domains[{i}]: {e}") from e
        doms.append(dom)
    return {"host": host, "sim": rates, "domains": doms}


def open_host(path):
    """A new simulated host built from the scenario file (memswap.SimHost)."""
    import memswap
    scen = load(path)
    host = memswap.open_host(backend="sim", **scen["host"], **scen["sim"])
    try:
        build(host, scen)
    except (OSError, ValueError, TypeError) as e:
        host.close()
        raise ScenarioError(f"{path}: {e}") from e
    return host


def build(host, scen):
    """Create the scenario's domains on a fresh simulated host. -> {name: domid}."""
    ids = {}
    for d in scen["domains"]:
        kw = dict(vcpus=d["vcpus"], with_devices=d["with_devices"], seed=d["seed"])
        if d["colours"] is not None:
            kw["colours"] = d["colours"]
        if d["node"] is not None:
            kw["node"] = int(d["node"])
        domid = host.create_domain(d["name"], max(16, d["mem_bytes"] // MiB), **kw)
        ids[d["name"]] = domid
        w = d["workload"]
        if w:
            host.set_workload(domid, w["wss_bytes"], pattern=w["pattern"], intensity=w["intensity"],
                              weight=w["weight"], stride=w["stride"])
    return ids
