"""The query breakdown: SQLite probe data merged over processes and rounds, and what changed.

The tables follow the thesis' Tables 6.4 and 6.5 (calls, total, max, average, min time per
statement, with the five costliest callers); the "what changed" tables rank statements and callers
by how much their time per round moved between baseline and candidate, so a regression comes with
its most likely cause.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from harness.probes.sqlite import TOP_CALLERS
from harness.probes.sqlite import empty_totals as _empty
from harness.probes.sqlite import merge_totals as _add
from harness.results import Results


def _top(callers: dict[tuple[str, str], list[float]],
         limit: int = TOP_CALLERS) -> list[dict[str, Any]]:
    ranked = sorted(callers.items(), key=lambda kv: (-kv[1][1], kv[0]))[:limit]
    return [{"where": where, "via": via, "calls": calls, "total": total}
            for (where, via), (calls, total) in ranked]


def _clean(value: float, places: int = 9) -> float:
    """A difference of averages without float noise (+2.84e-14 is 0), and never -0.0."""
    return round(value, places) + 0.0


def merge_sqlite(parts: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Sum several sqlite probe snapshots (processes of one round, or rounds); None if none."""
    operations: dict[str, dict[str, Any]] = {}
    statements: dict[tuple[str, str], dict[str, Any]] = {}
    callers: dict[tuple[str, str], dict[tuple[str, str], list[float]]] = {}
    seen = False
    for part in parts:
        if not isinstance(part, dict):
            continue
        seen = True
        for operation, totals in part.get("operations", {}).items():
            _add(operations.setdefault(operation, _empty()), totals)
        for row in part.get("statements", []):
            key = (row["statement"], row["operation"])
            _add(statements.setdefault(key, _empty()), row)
            mine = callers.setdefault(key, {})
            for c in row.get("callers", []):
                slot = mine.setdefault((c["where"], c.get("via", "")), [0, 0.0])
                slot[0] += c["calls"]
                slot[1] += c["total"]
    if not seen:
        return None
    rows = [
        {"statement": s, "operation": o, **totals, "callers": _top(callers[(s, o)])}
        for (s, o), totals in statements.items()
    ]
    rows.sort(key=lambda r: (-r["total"], r["statement"], r["operation"]))
    return {"operations": operations, "statements": rows}


def _per_round(results: Results) -> tuple[list[dict[str, Any]], int]:
    """The side's statement rows summed over its rounds and divided by the number of rounds.

    Instances of one round are summed (they are one round of the system); max and min stay the
    extremes over all rounds. Each row gains "avg" (total / calls).
    """
    parts = [r.probes.get("sqlite") for r in results.rounds if r.probes.get("sqlite")]
    rounds = len({r.index for r in results.rounds if r.probes.get("sqlite")})
    merged = merge_sqlite(parts)
    if merged is None or not rounds:
        return [], 0
    out = []
    for row in merged["statements"]:
        scaled = dict(row)
        for key in ("calls", "total", "rows", "fetch_total", "loop_calls", "loop_total",
                    "write_bytes"):
            if key in row:
                scaled[key] = _clean(row[key] / rounds, 12)
        scaled["avg"] = row["total"] / row["calls"] if row["calls"] else 0.0
        scaled["callers"] = [dict(c, calls=_clean(c["calls"] / rounds),
                                  total=_clean(c["total"] / rounds, 12))
                             for c in row["callers"]]
        out.append(scaled)
    return out, rounds


def _change_row(key: tuple[str, ...], names: tuple[str, ...], base: dict[str, Any] | None,
                cand: dict[str, Any] | None) -> dict[str, Any]:
    b = base or {"total": 0.0, "calls": 0.0}
    c = cand or {"total": 0.0, "calls": 0.0}
    row: dict[str, Any] = dict(zip(names, key, strict=True))
    row.update(baseline_total=b["total"], candidate_total=c["total"],
               total_change=_clean(c["total"] - b["total"], 12), baseline_calls=b["calls"],
               candidate_calls=c["calls"], calls_change=_clean(c["calls"] - b["calls"]))
    if "rows" in b or "rows" in c:  # rows fetched: what explains a change in rows per request
        base_rows, cand_rows = b.get("rows", 0.0), c.get("rows", 0.0)
        row.update(baseline_rows=base_rows, candidate_rows=cand_rows,
                   rows_change=_clean(cand_rows - base_rows))
    return row


def _ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (-abs(r["total_change"]), -abs(r["calls_change"])))


_TABLE = re.compile(r"""\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(["`\[]?[\w.]+["`\]]?)""", re.I)


_CTE = re.compile(r"""(["`\[]?\w+["`\]]?)\s*(?:\([^()]*\))?\s+AS\s*\(""", re.I)


def tables(statement: str) -> frozenset[str]:
    """The tables a statement names (after FROM, JOIN, INTO, UPDATE, TABLE), lower case; names
    a WITH clause defines (common table expressions) are not tables."""
    named = {t.strip('"`[]').lower() for t in _TABLE.findall(statement)}
    return frozenset(named - {c.strip('"`[]').lower() for c in _CTE.findall(statement)})


def _verb(statement: str) -> str:
    words = statement.split(None, 1)
    return words[0].upper() if words else ""


def _top_where(row: dict[str, Any] | None) -> str | None:
    callers = (row or {}).get("callers") or []
    return callers[0]["where"] if callers else None


def _pair_replacements(rows: list[dict[str, Any]], base: dict[tuple[str, str], Any],
                       cand: dict[tuple[str, str], Any]) -> list[dict[str, Any]]:
    """Merge a removed and an added statement into one "changed" row when they replace each other:
    same operation, same verb (SELECT, UPDATE, ...), same tables and the same top caller."""
    removed = [r for r in rows if r["change"] == "removed"]
    added = [r for r in rows if r["change"] == "added"]
    used: set[int] = set()
    out = [r for r in rows if r["change"] not in ("removed", "added")]
    for old in removed:
        key_old = (old["statement"], old["operation"])
        old_sig = (old["operation"], _verb(old["statement"]), tables(old["statement"]),
                   _top_where(base.get(key_old)))
        match = None
        for i, new in enumerate(added):
            key_new = (new["statement"], new["operation"])
            sig = (new["operation"], _verb(new["statement"]), tables(new["statement"]),
                   _top_where(cand.get(key_new)))
            if i not in used and sig == old_sig and old_sig[2] and old_sig[3]:
                match = i
                break
        if match is None:
            out.append(old)
            continue
        used.add(match)
        new = added[match]
        row = _change_row((new["statement"], new["operation"]), ("statement", "operation"),
                          base.get(key_old), cand.get((new["statement"], new["operation"])))
        row.update(top_caller=new["top_caller"], change="changed",
                   baseline_statement=old["statement"])
        out.append(row)
    out.extend(r for i, r in enumerate(added) if i not in used)
    return out


def statement_changes(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]]):
    """Per (statement, operation): time and calls per round on each side, ranked by change.

    Each row has "change": "same" (on both sides), "added", "removed", or "changed" (a statement
    that replaces another one, see _pair_replacements; "baseline_statement" holds the old text).
    """
    base = {(r["statement"], r["operation"]): r for r in baseline}
    cand = {(r["statement"], r["operation"]): r for r in candidate}
    rows = []
    for key in sorted(set(base) | set(cand)):
        row = _change_row(key, ("statement", "operation"), base.get(key), cand.get(key))
        row["top_caller"] = _top_where(cand.get(key)) or _top_where(base.get(key))
        row["change"] = ("same" if key in base and key in cand
                         else "removed" if key in base else "added")
        rows.append(row)
    return _ranked(_pair_replacements(rows, base, cand))


def _by_caller(rows: list[dict[str, Any]]) -> dict[tuple[str], dict[str, float]]:
    out: dict[tuple[str], dict[str, float]] = {}
    for row in rows:
        for c in row["callers"]:
            slot = out.setdefault((c["where"],), {"total": 0.0, "calls": 0.0})
            slot["total"] += c["total"]
            slot["calls"] += c["calls"]
    return out


def caller_changes(baseline: list[dict[str, Any]], candidate: list[dict[str, Any]]):
    """Per caller (`file:line function`, over all its statements): time and calls, ranked."""
    base, cand = _by_caller(baseline), _by_caller(candidate)
    keys = sorted(set(base) | set(cand))
    return _ranked([_change_row(k, ("where",), base.get(k), cand.get(k)) for k in keys])


def merge_blocking(parts: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Sum blocking-call snapshots (harness/probes/loops.py) over processes or rounds."""
    kinds: dict[str, dict[str, float]] = {}
    sites: dict[tuple[str, str, str], list[float]] = {}
    longest: dict[str, Any] | None = None
    seen = False
    for part in parts:
        if not isinstance(part, dict):
            continue
        seen = True
        for kind, totals in part.get("kinds", {}).items():
            slot = kinds.setdefault(kind, {"calls": 0, "total": 0.0, "max": 0.0, "bytes": 0})
            for key in ("calls", "total", "bytes"):
                slot[key] += totals.get(key, 0)
            slot["max"] = max(slot["max"], totals.get("max", 0.0))
        for site in part.get("sites", []):
            entry = sites.setdefault((site["kind"], site["where"], site.get("via", "")), [0, 0.0])
            entry[0] += site["calls"]
            entry[1] += site["total"]
        other = part.get("longest")
        if other and (longest is None or other["seconds"] > longest.get("seconds", 0.0)):
            longest = dict(other)
    if not seen:
        return None
    ranked = sorted(sites.items(), key=lambda kv: (-kv[1][1], kv[0]))[:20]
    return {"kinds": kinds, "longest": longest,
            "sites": [{"kind": k, "where": w, "via": v, "calls": c, "total": t}
                      for (k, w, v), (c, t) in ranked]}


def merge_files(parts: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Sum file-probe snapshots (harness/probes/diskio.py) over processes or rounds."""
    files: dict[tuple[str, str], dict[str, int]] = {}
    process: dict[str, int] | None = None
    probe_bytes = 0
    measured = True
    seen = False
    for part in parts:
        if not isinstance(part, dict):
            continue
        seen = True
        for row in part.get("files", []):
            slot = files.setdefault((row["path"], row["kind"]), dict.fromkeys(_FILE_COUNTS, 0))
            for key in _FILE_COUNTS:
                slot[key] += row.get(key, 0)
        if part.get("process"):
            process = process or {"read_bytes": 0, "write_bytes": 0}
            for key in ("read_bytes", "write_bytes"):
                process[key] += part["process"].get(key, 0)
        probe_bytes += part.get("probe_bytes", 0)
        measured = measured and bool(part.get("database_measured", False))
    if not seen:
        return None
    rows: list[dict[str, Any]] = [{"path": path, "kind": kind, **counts}
                                  for (path, kind), counts in files.items()]
    rows.sort(key=lambda r: (-r["write_bytes"], -r["read_bytes"], r["path"]))
    return {"files": rows, "process": process, "probe_bytes": probe_bytes,
            "database_measured": measured}


_FILE_COUNTS = ("read_bytes", "write_bytes", "reads", "writes")
FILE_KINDS = ("database", "log", "state", "other")
_KIND_NAMES = {"database": "the database file", "log": "the log file", "state": "the state file",
               "other": "the file"}


def _requests(results: Results, probe: str) -> int:
    return sum(len(r.requests) for r in results.rounds if r.probes.get(probe))


def _files_side(results: Results) -> dict[str, Any] | None:
    """One side's file I/O per request: per file, per kind, and what no file accounts for."""
    merged = merge_files(r.probes.get("files") for r in results.rounds)
    requests = _requests(results, "files")
    if merged is None or not requests:
        return None
    per = float(requests)
    files = [dict(row, read_bytes=_clean(row["read_bytes"] / per, 3),
                  write_bytes=_clean(row["write_bytes"] / per, 3)) for row in merged["files"]]
    kinds = {kind: {"read_bytes": 0.0, "write_bytes": 0.0} for kind in FILE_KINDS}
    for row in files:
        slot = kinds.setdefault(row["kind"], {"read_bytes": 0.0, "write_bytes": 0.0})
        slot["read_bytes"] += row["read_bytes"]
        slot["write_bytes"] += row["write_bytes"]
    unattributed = None
    if merged["process"] is not None:
        written = sum(r["write_bytes"] for r in merged["files"]) + merged["probe_bytes"]
        unattributed = _clean((merged["process"]["write_bytes"] - written) / per, 3)
    return {"requests": requests, "files": files, "kinds": kinds,
            "unattributed_write_bytes": unattributed,
            "probe_bytes": _clean(merged["probe_bytes"] / per, 3),
            "database_measured": merged["database_measured"]}


def _files_headline(changes: list[dict[str, Any]]) -> str | None:
    """"+25 B written per request, all in the log file core.log" (None when nothing moved)."""
    total = sum(c["write_change"] for c in changes)
    if not changes or abs(total) < 0.5:
        return None
    top = changes[0]
    share = top["write_change"] / total if total else 0.0
    where = f"{_KIND_NAMES.get(top['kind'], 'the file')} {top['path']}"
    place = "all in" if share >= 0.95 else f"{share:.0%} in"
    return f"{total:+,.0f} B written per request, {place} {where}"


def files_details(baseline: Results, candidate: Results) -> dict[str, Any] | None:
    """details["files"]: each side's bytes per request by file and kind, and what changed.

        {"baseline": side | None, "candidate": side | None,
         "changes": [{"path", "kind", "baseline_write", "candidate_write", "write_change",
                      "baseline_read", "candidate_read", "read_change"}],   # B per request
         "headline": "+25 B written per request, all in the log file core.log" | None}

    A side is {"requests", "files": [{"path", "kind", "read_bytes", "write_bytes", "reads",
    "writes"}] (bytes per request), "kinds": {kind: {"read_bytes", "write_bytes"}},
    "unattributed_write_bytes" (the process's writes no file accounts for: sockets, pipes, C
    code; None where the OS does not say), "probe_bytes" (the probes' own output, left out),
    "database_measured"}.
    """
    base, cand = _files_side(baseline), _files_side(candidate)
    if base is None and cand is None:
        return None
    changes = []
    if base is not None and cand is not None:
        b_rows = {(r["path"], r["kind"]): r for r in base["files"]}
        c_rows = {(r["path"], r["kind"]): r for r in cand["files"]}
        for key in sorted(set(b_rows) | set(c_rows)):
            b = b_rows.get(key, {"write_bytes": 0.0, "read_bytes": 0.0})
            c = c_rows.get(key, {"write_bytes": 0.0, "read_bytes": 0.0})
            changes.append({"path": key[0], "kind": key[1],
                            "baseline_write": b["write_bytes"], "candidate_write": c["write_bytes"],
                            "write_change": _clean(c["write_bytes"] - b["write_bytes"], 3),
                            "baseline_read": b["read_bytes"], "candidate_read": c["read_bytes"],
                            "read_change": _clean(c["read_bytes"] - b["read_bytes"], 3)})
        changes = [c for c in changes if c["write_change"] or c["read_change"]]
        changes.sort(key=lambda c: (-abs(c["write_change"]), -abs(c["read_change"]), c["path"]))
    return {"baseline": base, "candidate": cand, "changes": changes,
            "headline": _files_headline(changes)}


def _blocking_side(results: Results) -> dict[str, Any] | None:
    merged = merge_blocking(r.probes.get("blocking") for r in results.rounds)
    requests = _requests(results, "blocking")
    if merged is None:
        return None
    per = float(requests or 1)
    kinds = {k: dict(v, calls_per_request=_clean(v["calls"] / per),
                     bytes_per_request=_clean(v["bytes"] / per, 3))
             for k, v in merged["kinds"].items()}
    sites = [dict(s, calls_per_request=_clean(s["calls"] / per)) for s in merged["sites"]]
    return {"requests": requests, "kinds": kinds, "longest": merged["longest"], "sites": sites}


def blocking_details(baseline: Results, candidate: Results) -> dict[str, Any] | None:
    """details["blocking"]: calls made on the event-loop thread, per side.

        {"baseline": side | None, "candidate": side | None}
        side = {"requests": n, "kinds": {KIND: {"calls", "total", "max", "bytes",
                                                "calls_per_request", "bytes_per_request"}},
                "longest": {"kind", "seconds", "where", "via"} | None,
                "sites": [{"kind", "where", "via", "calls", "total", "calls_per_request"}]}

    KIND is sqlite, file_read, file_write, sleep, socket or subprocess (harness/probes/loops.py);
    "where" is the project frame that made the call, "via" the library frame beside it.
    """
    base, cand = _blocking_side(baseline), _blocking_side(candidate)
    if base is None and cand is None:
        return None
    return {"baseline": base, "candidate": cand}


def _lag(results: Results) -> dict[str, Any] | None:
    found = [r.probes["loop_lag"] for r in results.rounds if r.probes.get("loop_lag")]
    if not found:
        return None
    samples = [s for lag in found for s in lag.get("samples", [])]
    return {"kind": found[0].get("kind"), "interval": found[0].get("interval"), "samples": samples}


def breakdown_details(baseline: Results, candidate: Results) -> dict[str, Any]:
    """Comparison.details entries: "queries" (see harness/probes/__init__.py) and "loop_lag".

    "loop_lag" holds each side's lag samples over all its rounds ({"kind", "interval",
    "samples"} or None), for the side-by-side ECDF. Entries are left out when neither side has
    that probe's data; the change tables are empty when only one side has it.
    """
    details: dict[str, Any] = {}
    base_rows, base_rounds = _per_round(baseline)
    cand_rows, cand_rounds = _per_round(candidate)
    if base_rounds or cand_rounds:
        both = bool(base_rounds and cand_rounds)
        details["queries"] = {
            "baseline": base_rows,
            "candidate": cand_rows,
            "baseline_rounds": base_rounds,
            "candidate_rounds": cand_rounds,
            "changes": statement_changes(base_rows, cand_rows) if both else [],
            "caller_changes": caller_changes(base_rows, cand_rows) if both else [],
        }
    for name, make in (("blocking", blocking_details), ("files", files_details)):
        found = make(baseline, candidate)
        if found is not None:
            details[name] = found
    base_lag, cand_lag = _lag(baseline), _lag(candidate)
    if base_lag or cand_lag:
        details["loop_lag"] = {"baseline": base_lag, "candidate": cand_lag}
    return details
