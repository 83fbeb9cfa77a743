"""The open-loop load driver: requests leave on a fixed schedule whatever the subject does.

A closed-loop driver waits for a response before sending the next request, so a slow subject
slows the driver and the slow period is under-sampled (coordinated omission). Here every
request's send time is fixed in advance (constant or seeded Poisson arrivals), latency is measured
from that intended time, and the driver's own lateness is recorded; when the driver falls behind
beyond Workload.max_lag the result is marked invalid with the reason instead of being reported.

Transport: raw asyncio streams speaking HTTP/1.1 with keep-alive, not the aiohttp client. On our
2-core machines one core sustains about 23k req/s with raw streams against 9.6k with aiohttp
(DESIGN.md section 8; bench/driver.py measures both again, see docs/performance.md "Load driver"),
and fewer layers between the schedule and the socket keep the send times accurate.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.experiment import Endpoint, Workload
from harness.results import RequestLog
from harness.stats import percentile

START_LEAD = 0.05  # seconds between preparing the schedule and its first send
# Idle keep-alive connections older than this are closed instead of reused: servers close idle
# connections on their own schedule (uvicorn after 5 s), and a request written into a connection
# the server is closing fails without an answer.
IDLE_LIMIT = 2.0

# The classes a failed request is counted in (results.json rounds[].errors).
ERROR_KINDS = ("connect", "reset", "timeout", "http_status", "other")


def error_kind(error: str) -> str:
    """The class of one recorded request error: connect, reset (closed before an answer),
    timeout, http_status or other."""
    if error.startswith("HTTP "):
        return "http_status"
    if error.startswith("timeout"):
        return "timeout"
    if error.startswith("connect:"):
        return "connect"
    if error.startswith(("reset:", "IncompleteReadError", "ConnectionResetError",
                         "BrokenPipeError", "ConnectionAbortedError")):
        return "reset"
    return "other"


class _ConnectFailed(Exception):
    """The connection could not be opened."""


class _NoAnswer(ConnectionError):
    """The connection ended before any byte of the answer arrived."""
ProgressCallback = Callable[[int, int], None]  # (requests sent, requests planned)


# -- the schedule ----------------------------------------------------------------------------------


def arrival_times(
    rate: float,
    arrival: str = "constant",
    *,
    requests: int | None = None,
    duration: float | None = None,
    seed: int = 0,
) -> list[float]:
    """Intended send times (seconds from the start) for `requests` requests or `duration` s."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if (requests is None) == (duration is None):
        raise ValueError("give exactly one of requests and duration")
    rng = random.Random(seed)
    times: list[float] = []
    t = 0.0
    while True:
        if requests is not None and len(times) >= requests:
            break
        if duration is not None and t >= duration:
            break
        times.append(t)
        t = t + rng.expovariate(rate) if arrival == "poisson" else len(times) / rate
    return times


def planned_span(times: Sequence[float], rate: float, duration: float | None) -> float:
    """Length of the measured window the schedule covers (n / rate for a constant count)."""
    if duration is not None:
        return duration
    return (times[-1] + 1.0 / rate) if times else 0.0


def choose_endpoints(endpoints: Sequence[Endpoint], count: int, seed: int = 0) -> list[int]:
    """Index of the endpoint for each request, drawn by weight (seeded, so runs repeat)."""
    if len(endpoints) == 1:
        return [0] * count
    rng = random.Random(seed + 1)
    weights = [e.weight for e in endpoints]
    return rng.choices(range(len(endpoints)), weights=weights, k=count)


def pool_size(rate: float, expected_latency: float = 0.05) -> int:
    """Connections to open before sending: twice the expected number in flight (Little's law)."""
    return max(1, min(256, math.ceil(rate * expected_latency * 2) + 1))


def encode_request(endpoint: Endpoint, host: str, port: int) -> bytes:
    """The HTTP/1.1 request bytes for one endpoint (keep-alive is HTTP/1.1's default)."""
    body = (endpoint.body or "").encode("utf-8")
    headers = {"Host": f"{host}:{port}", "User-Agent": "perf-harness", "Accept": "*/*"}
    if body or endpoint.method.upper() in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(body))
        if body:
            headers["Content-Type"] = "application/json"
    headers.update(endpoint.headers)
    head = f"{endpoint.method.upper()} {endpoint.path} HTTP/1.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


# -- HTTP/1.1 over asyncio streams -----------------------------------------------------------------


class _Connection:
    """One keep-alive connection; `exchange` sends a request and reads the whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = 0  # answers read on it so far
        self.idle_since = asyncio.get_running_loop().time()  # opened or last released
        self.waited = False  # it sat idle before this request (the server may have closed it)

    async def exchange(self, data: bytes, head_only: bool) -> tuple[int, int, bool]:
        """Send `data`; return (status, body bytes, whether the connection can be reused).

        _NoAnswer when the connection ended before the first byte of the answer."""
        reader = self.reader
        try:
            self.writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            raise _NoAnswer(f"{type(exc).__name__}: {exc}") from exc
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
            raise _NoAnswer(f"{type(exc).__name__}: {exc}") from exc
        self.used += 1
        first_end = head.index(b"\r\n")
        status = int(head[:first_end].split(b" ", 2)[1])
        lower = head[first_end:].lower()
        keep = b"\r\nconnection: close" not in lower and not head.startswith(b"HTTP/1.0")
        if head_only or status in (204, 304) or 100 <= status < 200:
            return status, 0, keep
        if b"\r\ntransfer-encoding: chunked" in lower:
            return status, await self._chunked(), keep
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            length = int(lower[at + 17:end])
            await reader.readexactly(length)
            return status, length, keep
        return status, len(await reader.read()), False  # body ends when the server closes

    async def _chunked(self) -> int:
        total = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return total
            await self.reader.readexactly(size + 2)
            total += size

    def close(self) -> None:
        self.writer.close()


class _Pool:
    """Keep-alive connections, opened on demand up to `limit`; callers queue beyond it."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[_Connection] = []
        self.waiters: deque[asyncio.Future] = deque()
        self.total = 0
        self.peak = 0

    async def _open(self) -> _Connection:
        self.total += 1
        self.peak = max(self.peak, self.total)
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=2**20)
        except BaseException:
            self.total -= 1
            raise
        return _Connection(reader, writer)

    async def fill(self, count: int) -> None:
        """Open `count` connections ahead of the schedule, so connecting is not measured."""
        opened = await asyncio.gather(*(self._open() for _ in range(count)),
                                      return_exceptions=True)
        self.idle += [c for c in opened if isinstance(c, _Connection)]

    async def acquire(self) -> _Connection:
        now = asyncio.get_running_loop().time()
        while self.idle:
            conn = self.idle.pop()
            if now - conn.idle_since > IDLE_LIMIT:
                self.discard(conn)  # the server may be closing it; a fresh one is safe
                continue
            conn.waited = True
            return conn
        if self.total < self.limit:
            return await self._open()
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        conn = await waiter
        if conn is None:
            return await self._open()
        conn.waited = True
        return conn

    def discard(self, conn: _Connection) -> None:
        conn.close()
        self.total -= 1

    async def fresh(self) -> _Connection:
        """A newly opened connection, outside the idle list (for a retry)."""
        return await self._open()

    def release(self, conn: _Connection, reusable: bool) -> None:
        conn.idle_since = asyncio.get_running_loop().time()
        if not reusable:
            conn.close()
            self.total -= 1
            conn = None  # type: ignore[assignment]  # a waiter opens its own
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self.idle.append(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


# -- the run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriverResult:
    """What one open-loop run measured, plus the driver's own lateness."""

    log: RequestLog
    duration: float  # the measured window: planned span, or longer if responses came later
    lag: dict[str, float] = field(default_factory=dict)  # lag_p50/p99/max, send_lag_p50/p99/max
    connections: int = 0  # most connections open at once
    retries: int = 0  # requests resent once on a fresh connection (a reused one gave no answer)
    valid: bool = True
    invalid_reason: str | None = None


class _Run:
    """State of one run: the schedule, the pool and the per-request columns being filled."""

    def __init__(self, n: int, *, requests: list[bytes], methods: list[bool], pool: _Pool,
                 timeout: float) -> None:
        self.requests, self.head_only, self.pool, self.timeout = requests, methods, pool, timeout
        self.sent = [math.nan] * n
        self.done = [math.nan] * n
        self.status = [0] * n
        self.nbytes = [0] * n
        self.error: list[str | None] = [None] * n
        self.retries = 0

    async def one(self, i: int, key: int, start: float) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        timed_out = []

        def expire() -> None:
            timed_out.append(True)
            assert task is not None
            task.cancel()

        timer = loop.call_later(self.timeout, expire)
        conn = None
        try:
            try:
                conn = await self.pool.acquire()
            except OSError as exc:
                raise _ConnectFailed(f"connect: {type(exc).__name__}: {exc}") from exc
            self.sent[i] = loop.time() - start
            try:
                status, nbytes, keep = await conn.exchange(self.requests[key],
                                                           self.head_only[key])
            except _NoAnswer:
                if not conn.waited:
                    raise  # a new connection that gave no answer: the subject's failure
                # A reused connection the server had closed: once more on a fresh one.
                self.pool.release(conn, False)
                conn = None
                self.retries += 1
                try:
                    conn = await self.pool.fresh()
                except OSError as exc:
                    raise _ConnectFailed(f"connect: {type(exc).__name__}: {exc}") from exc
                status, nbytes, keep = await conn.exchange(self.requests[key],
                                                           self.head_only[key])
            self.done[i] = loop.time() - start
            self.status[i], self.nbytes[i] = status, nbytes
            self.pool.release(conn, keep)
            conn = None
            if status >= 400:
                self.error[i] = f"HTTP {status}"
        except asyncio.CancelledError:
            if not timed_out:
                raise
            self.error[i] = f"timeout after {self.timeout:g} s"
        except _ConnectFailed as exc:
            self.error[i] = str(exc)
        except _NoAnswer as exc:
            self.error[i] = f"reset: closed before any answer ({exc})"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, IndexError) as exc:
            self.error[i] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            timer.cancel()
            if conn is not None:
                self.pool.release(conn, False)
        if math.isnan(self.done[i]):
            self.done[i] = loop.time() - start


async def drive(
    endpoints: Sequence[Endpoint],
    *,
    port: int,
    rate: float,
    host: str = "127.0.0.1",
    arrival: str = "constant",
    requests: int | None = None,
    duration: float | None = None,
    timeout: float = 10.0,
    max_lag: float = 0.05,
    seed: int = 0,
    connections: int | None = None,
    expected_latency: float = 0.05,
    on_progress: ProgressCallback | None = None,
    start_at: float | None = None,
) -> DriverResult:
    """Send the schedule open-loop against host:port and record every request.

    `start_at` is the time.monotonic() value of the first intended send (default: just after the
    connections are open); the recorded times are seconds from it.
    """
    loop = asyncio.get_running_loop()
    times = arrival_times(rate, arrival, requests=requests, duration=duration, seed=seed)
    keys = choose_endpoints(endpoints, len(times), seed)
    size = connections or pool_size(rate, expected_latency)
    pool = _Pool(host, port, limit=connections or max(size, min(4 * size + 8, 1024)))
    await pool.fill(size)
    run = _Run(len(times), requests=[encode_request(e, host, port) for e in endpoints],
               methods=[e.method.upper() == "HEAD" for e in endpoints], pool=pool, timeout=timeout)
    lag = [0.0] * len(times)
    tasks = []
    start = loop.time() + START_LEAD if start_at is None else start_at
    next_report = 0.0
    try:
        for i, t in enumerate(times):
            due = start + t
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
                now = loop.time()
            lag[i] = now - due
            tasks.append(loop.create_task(run.one(i, keys[i], start)))
            if on_progress is not None and now >= next_report:
                on_progress(i + 1, len(times))
                next_report = now + 0.5
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        pool.close()
    if on_progress is not None:
        on_progress(len(times), len(times))
    return _result(run, times, keys, endpoints, lag, rate, duration, max_lag, pool.peak)


def _result(run: _Run, times: list[float], keys: list[int], endpoints: Sequence[Endpoint],
            lag: list[float], rate: float, duration: float | None, max_lag: float,
            peak: int) -> DriverResult:
    send_lag = [s - t for s, t in zip(run.sent, times, strict=True) if not math.isnan(s)]
    stats = {**lag_stats(lag, "lag"), **lag_stats(send_lag, "send_lag")}
    log = RequestLog(
        endpoint=tuple(endpoints[k].name for k in keys),
        intended=tuple(times),
        sent=tuple(t if math.isnan(s) else s for s, t in zip(run.sent, times, strict=True)),
        latency=tuple(d - t for d, t in zip(run.done, times, strict=True)),
        service=tuple(0.0 if math.isnan(s) else d - s
                      for d, s in zip(run.done, run.sent, strict=True)),
        status=tuple(run.status),
        nbytes=tuple(run.nbytes),
        error=tuple(run.error),
    )
    span = max(planned_span(times, rate, duration), max(run.done, default=0.0))
    reason = None
    if times and stats["lag_p99"] > max_lag:
        reason = (
            f"the load driver fell behind its schedule: p99 schedule lag "
            f"{stats['lag_p99'] * 1000:.1f} ms > max_lag {max_lag * 1000:.1f} ms at "
            f"{rate:g} req/s; lower the rate, free the machine, or raise [workload] max_lag"
        )
    return DriverResult(log=log, duration=span, lag=stats, connections=peak,
                        retries=run.retries, valid=reason is None, invalid_reason=reason)


def lag_stats(values: Sequence[float], prefix: str) -> dict[str, float]:
    """p50, p99 and max of schedule lateness in seconds (0 for an empty run)."""
    if not values:
        return {f"{prefix}_p50": 0.0, f"{prefix}_p99": 0.0, f"{prefix}_max": 0.0}
    return {
        f"{prefix}_p50": percentile(values, 50),
        f"{prefix}_p99": percentile(values, 99),
        f"{prefix}_max": max(values),
    }


def run_workload(
    workload: Workload,
    *,
    port: int,
    rate: float,
    requests: int | None = None,
    duration: float | None = None,
    expected_latency: float = 0.05,
    on_progress: ProgressCallback | None = None,
    start_at: float | None = None,
) -> DriverResult:
    """Run one workload against 127.0.0.1:port in a fresh event loop (blocking)."""
    return asyncio.run(drive(
        workload.endpoints, port=port, rate=rate, arrival=workload.arrival,
        requests=requests, duration=duration, timeout=workload.timeout,
        max_lag=workload.max_lag, seed=workload.seed, connections=workload.connections,
        expected_latency=expected_latency, on_progress=on_progress, start_at=start_at,
    ))
