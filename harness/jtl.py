"""JMeter result files (JTL): read CSV or XML samples and turn them into our per-request records.

JMeter writes one sample per request: a start time stamp (ms since the epoch; JMeter's default
`sampleresult.timestamp.start=true`), the elapsed time (ms), a label, the response code, a success
flag and the response size in bytes (headers included, unlike our driver's body bytes). CSV files
may have a header line (`jmeter.save.saveservice.print_field_names`) or not; without one the
columns are JMeter's default set for the column count (KNOWN_LAYOUTS) or what `columns` says.
XML files hold `<httpSample>`/`<sample>` elements with the same data as attributes (t, ts, lb, rc,
rm, s, by); only top-level samples count, sub-samples (redirects, embedded resources) are parts of
their parent.

JMeter's timers are closed-loop: a thread waits for its response before its timer schedules the
next request, so a JTL has no intended send time. Imported records use the actual start as the
intended time, and the round carries CLOSED_LOOP_WARNING so a comparison says so.
"""

from __future__ import annotations

import csv
import hashlib
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import harness
from harness.errors import HarnessError
from harness.metrics import request_metrics
from harness.results import ExperimentInfo, RequestLog, Results, Round, save_results

CLOSED_LOOP_WARNING = (
    "load driver: JMeter's timers are closed-loop (a thread waits for each response before the "
    "next send), so latencies are measured from the actual send, not an intended send time; a "
    "slow subject also slows the load (coordinated omission)"
)

# Headerless CSV: JMeter's default column sets by column count (2.13; 3.x-4.x; 5.x).
KNOWN_LAYOUTS: dict[int, tuple[str, ...]] = {
    12: ("timeStamp", "elapsed", "label", "responseCode", "responseMessage", "threadName",
         "dataType", "success", "bytes", "grpThreads", "allThreads", "Latency"),
    13: ("timeStamp", "elapsed", "label", "responseCode", "responseMessage", "threadName",
         "dataType", "success", "bytes", "grpThreads", "allThreads", "Latency", "Connect"),
    16: ("timeStamp", "elapsed", "label", "responseCode", "responseMessage", "threadName",
         "dataType", "success", "failureMessage", "bytes", "sentBytes", "grpThreads",
         "allThreads", "Latency", "IdleTime", "Connect"),
    17: ("timeStamp", "elapsed", "label", "responseCode", "responseMessage", "threadName",
         "dataType", "success", "failureMessage", "bytes", "sentBytes", "grpThreads",
         "allThreads", "URL", "Latency", "IdleTime", "Connect"),
}
REQUIRED = ("timeStamp", "elapsed")
ALIASES = {"time": "elapsed"}  # older JMeter CSV headers name the elapsed time "time"
TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%m/%d/%y %H:%M:%S")


class JtlError(HarnessError):
    """A JTL file cannot be read: the message names the file and line."""


@dataclass(frozen=True)
class Sample:
    """One top-level JMeter sample."""

    start: float  # seconds since the epoch
    elapsed: float  # seconds
    label: str
    code: int  # 0 when the response code is not a number (e.g. a connection error)
    success: bool
    nbytes: int
    message: str
    group: str  # the value of the round column, or the file name


# -- reading ---------------------------------------------------------------------------------------


def read_jtl(path: Path, *, columns: Sequence[str] | None = None,
             round_column: str | None = None) -> list[Sample]:
    """Every top-level sample of one CSV or XML JTL file, in file order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise JtlError(f"{path}: cannot be read ({exc.strerror or exc}); check the path.") from exc
    if not text.strip():
        raise JtlError(f"{path}: the file is empty; JMeter wrote no samples (check its log).")
    if text.lstrip().startswith("<"):
        return _read_xml(path, text, round_column)
    return _read_csv(path, text, columns, round_column)


def _delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", "\t", ";", "|")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _read_csv(path: Path, text: str, columns: Sequence[str] | None,
              round_column: str | None) -> list[Sample]:
    first = text.splitlines()[0]
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(first))
    rows = iter(reader)
    head = next(rows)
    header: tuple[str, ...]
    if columns:
        header = tuple(columns)
        data: Iterable[list[str]] = _chain(head, rows)
    elif "timeStamp" in head or "elapsed" in head:
        header = tuple(h.strip() for h in head)
        if "elapsed" not in header:
            header = tuple(ALIASES.get(h, h) for h in header)
        data = rows
    elif len(head) in KNOWN_LAYOUTS:
        header = KNOWN_LAYOUTS[len(head)]
        data = _chain(head, rows)
    else:
        raise JtlError(
            f"{path}:1: no header line and {len(head)} columns, which is not one of JMeter's "
            f"default column sets ({', '.join(map(str, KNOWN_LAYOUTS))} columns); save the JTL "
            f"with jmeter.save.saveservice.print_field_names=true, or name the columns with "
            f"--columns timeStamp,elapsed,label,..."
        )
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise JtlError(f"{path}:1: no {' or '.join(missing)} column (columns: {', '.join(header)})"
                       f"; JMeter's CSV needs jmeter.save.saveservice.time and timestamp saved.")
    if round_column and round_column not in header:
        raise JtlError(f"{path}:1: no column {round_column!r} to group rounds by "
                       f"(columns: {', '.join(header)}).")
    index = {name: i for i, name in enumerate(header)}
    samples = []
    for row in data:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        line = reader.line_num
        if len(row) != len(header):
            raise JtlError(f"{path}:{line}: {len(row)} fields where the header has "
                           f"{len(header)}; the file is truncated or not a JMeter CSV.")
        get = lambda name, row=row: row[index[name]] if name in index else ""  # noqa: E731
        samples.append(_sample(
            path, line, ts=get("timeStamp"), elapsed=get("elapsed"), label=get("label"),
            code=get("responseCode"), success=get("success"), nbytes=get("bytes"),
            message=get("failureMessage") or get("responseMessage"),
            group=get(round_column) if round_column else path.name))
    return samples


def _chain(first: list[str], rest: Iterable[list[str]]) -> Iterable[list[str]]:
    yield first
    yield from rest


def _read_xml(path: Path, text: str, round_column: str | None) -> list[Sample]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line, col = exc.position
        raise JtlError(f"{path}:{line}: not well-formed XML at column {col + 1} ({exc.msg}); "
                       f"the file is truncated or damaged.") from None
    if root.tag != "testResults":
        raise JtlError(f"{path}:1: the root element is <{root.tag}>, not <testResults>; "
                       f"not an XML JTL.")
    samples = []
    for number, element in enumerate(root, start=1):
        if element.tag not in ("httpSample", "sample"):
            continue
        a = element.attrib
        where = f"sample {number} (<{element.tag} lb={a.get('lb', '')!r}>)"
        for attribute in ("ts", "t"):
            if attribute not in a:
                raise JtlError(f"{path}: {where} has no {attribute} attribute; JMeter's XML "
                               f"JTL needs the time stamp (ts) and elapsed time (t).")
        group = a.get(round_column, "") if round_column else path.name
        samples.append(_sample(path, where, ts=a["ts"], elapsed=a["t"], label=a.get("lb", ""),
                               code=a.get("rc", ""), success=a.get("s", "true"),
                               nbytes=a.get("by", "0"), message=a.get("rm", ""), group=group))
    return samples


def _sample(path: Path, where: int | str, *, ts: str, elapsed: str, label: str, code: str,
            success: str, nbytes: str, message: str, group: str) -> Sample:
    loc = f"{path}:{where}" if isinstance(where, int) else f"{path}: {where}"
    try:
        t_ms = float(elapsed)
    except ValueError:
        raise JtlError(f"{loc}: elapsed {elapsed!r} is not a number of milliseconds.") from None
    ok = success.strip().lower() == "true" if success else True
    code = code.strip()
    try:
        size = int(float(nbytes)) if nbytes.strip() else 0
    except ValueError:
        raise JtlError(f"{loc}: bytes {nbytes!r} is not a number.") from None
    return Sample(start=_timestamp(loc, ts), elapsed=t_ms / 1000.0, label=label,
                  code=int(code) if code.isdigit() else 0, success=ok, nbytes=size,
                  message=message, group=group)


def _timestamp(loc: str, text: str) -> float:
    text = text.strip()
    try:
        return float(text) / 1000.0
    except ValueError:
        pass
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    raise JtlError(f"{loc}: time stamp {text!r} is neither milliseconds since the epoch nor "
                   f"yyyy/MM/dd HH:mm:ss.SSS; save it with jmeter.save.saveservice."
                   f"timestamp_format=ms.")


# -- converting ------------------------------------------------------------------------------------


def request_log(samples: Sequence[Sample], origin: float, *, skip: str = "") -> RequestLog:
    """Samples as our per-request columns, times in seconds from `origin` (epoch seconds).

    Labels starting with `skip` (when given) are left out: warm-up samples of a generated plan.
    """
    kept = [s for s in samples if not (skip and s.label.startswith(skip))]
    errors = [None if s.success else f"HTTP {s.code} {s.message}".strip() if s.code >= 400
              else s.message or "failed" for s in kept]
    starts = tuple(s.start - origin for s in kept)
    return RequestLog(
        endpoint=tuple(s.label for s in kept), intended=starts, sent=starts,
        latency=tuple(s.elapsed for s in kept), service=tuple(s.elapsed for s in kept),
        status=tuple(s.code for s in kept), nbytes=tuple(s.nbytes for s in kept),
        error=tuple(errors))


def span(samples: Sequence[Sample]) -> float:
    """Seconds from the first sample's start to the last sample's end."""
    if not samples:
        return 0.0
    return max(s.start + s.elapsed for s in samples) - min(s.start for s in samples)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def import_jtl(
    files: Sequence[Path],
    *,
    out_dir: Path,
    label: str = "imported",
    name: str = "jmeter-import",
    round_column: str | None = None,
    columns: Sequence[str] | None = None,
) -> Results:
    """Read JTL files and write out_dir/results.json with one round per file (or per value of
    `round_column`, in order of first appearance), so `harness compare` can judge two runs."""
    if not files:
        raise JtlError("no JTL files given; pass one or more .jtl or .csv files.")
    groups: dict[str, list[Sample]] = {}
    for path in files:
        for sample in read_jtl(Path(path), columns=columns, round_column=round_column):
            groups.setdefault(sample.group, []).append(sample)
    rounds = []
    for index, (group, samples) in enumerate(groups.items()):
        samples.sort(key=lambda s: s.start)
        origin = samples[0].start
        log = request_log(samples, origin)
        duration = span(samples)
        summary = request_metrics(log, duration)
        rounds.append(Round(
            index=index, side=label, instance=1, step=None, started_at=_iso(origin),
            duration=duration, requests=log, summary=summary,
            probes={"jtl": {"group": group}}, warnings=(CLOSED_LOOP_WARNING,)))
    if not rounds:
        raise JtlError(f"{files[0]}: no samples found in {len(files)} file(s).")
    digest = hashlib.sha256(f"jtl-import:{name}".encode()).hexdigest()
    environment = {"harness_version": harness.__version__, "experiment_hash": digest}
    results = Results(
        label=label,
        experiment=ExperimentInfo(name=name, path=", ".join(str(f) for f in files),
                                  sha256=digest),
        environment=environment, rounds=tuple(rounds), created_at=_iso(_now()),
        warnings=(CLOSED_LOOP_WARNING,), session={"imported_from": [str(f) for f in files]})
    save_results(results, Path(out_dir) / "results.json")
    return results


def _now() -> float:
    return datetime.now(timezone.utc).timestamp()

