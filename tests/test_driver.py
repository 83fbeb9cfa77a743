"""The open-loop driver: schedules, request encoding, and real runs against the tiny app."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter

import pytest

from harness import driver
from harness.experiment import Endpoint
from harness.process import start_process, stop_process_tree
from harness.subject import free_ports, http_ok
from tests.data.tiny import APP, PYTHON


def test_constant_arrivals_are_evenly_spaced():
    times = driver.arrival_times(50, requests=5)
    assert times == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])
    assert driver.planned_span(times, 50, None) == pytest.approx(0.1)


def test_poisson_arrivals_repeat_with_the_seed_and_keep_the_rate():
    first = driver.arrival_times(100, "poisson", requests=5000, seed=7)
    assert first == driver.arrival_times(100, "poisson", requests=5000, seed=7)
    assert first != driver.arrival_times(100, "poisson", requests=5000, seed=8)
    assert 5000 / first[-1] == pytest.approx(100, rel=0.05)
    gaps = [b - a for a, b in zip(first, first[1:], strict=False)]
    assert len(set(round(g, 6) for g in gaps)) > 4000  # not evenly spaced


def test_a_duration_bounds_the_schedule():
    times = driver.arrival_times(10, duration=2.0)
    assert len(times) == 20 and max(times) < 2.0
    with pytest.raises(ValueError):
        driver.arrival_times(10, requests=5, duration=1.0)


def test_endpoints_are_drawn_by_weight():
    endpoints = (Endpoint("/a", "a", weight=3), Endpoint("/b", "b", weight=1))
    counts = Counter(driver.choose_endpoints(endpoints, 4000, seed=1))
    assert counts[0] / 4000 == pytest.approx(0.75, abs=0.03)
    assert driver.choose_endpoints(endpoints, 50, 1) == driver.choose_endpoints(endpoints, 50, 1)


def test_the_pool_grows_with_rate_and_latency():
    assert driver.pool_size(10, 0.01) < driver.pool_size(1000, 0.01) < driver.pool_size(1000, 0.1)
    assert driver.pool_size(1e9, 10) == 256


def test_a_post_carries_its_body_and_length():
    data = driver.encode_request(Endpoint("/downloads", "dl", method="POST", body='{"a": 1}'),
                                 "127.0.0.1", 8080)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /downloads HTTP/1.1\r\n")
    assert b"Content-Length: 8" in head and body == b'{"a": 1}'


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    yield from _serve_tiny(tmp_path_factory, "tiny")


def _serve_tiny(tmp_path_factory, name: str, *options: str):
    """Start the tiny app with `options`, yield its port once it answers, stop it after."""
    port = free_ports(1)[0]
    state = tmp_path_factory.mktemp(name)
    proc = start_process([PYTHON, str(APP), "--port", str(port), "--state-dir", str(state),
                          *options],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not http_ok(f"http://127.0.0.1:{port}/health"):
            assert time.monotonic() < deadline and proc.poll() is None, "tiny app did not start"
            time.sleep(0.05)
        yield port
    finally:
        stop_process_tree(proc, timeout=5)


def _drive(endpoints, port, **kwargs):
    return asyncio.run(driver.drive(endpoints, port=port, **kwargs))


@pytest.mark.integration
def test_every_request_is_recorded_with_status_and_bytes(tiny):
    endpoints = (Endpoint("/hello", "hello", weight=2), Endpoint("/chunked", "chunked"),
                 Endpoint("/echo", "echo", method="POST", body='"x"'), Endpoint("/fail", "fail"))
    result = _drive(endpoints, tiny, rate=200, requests=200, max_lag=1.0)
    log = result.log
    assert len(log) == 200 and result.valid
    sizes = {(name, status, n) for name, status, n in zip(log.endpoint, log.status, log.nbytes,
                                                          strict=True)}
    assert sizes == {("hello", 200, 120), ("chunked", 200, 300), ("echo", 200, 16),
                     ("fail", 500, 2)}
    assert {e for e, name in zip(log.error, log.endpoint, strict=True) if name == "fail"} == {
        "HTTP 500"}
    assert all(s >= i for s, i in zip(log.sent, log.intended, strict=True))
    assert all(lat >= svc for lat, svc in zip(log.latency, log.service, strict=True))
    assert result.connections <= driver.pool_size(200) * 4 + 8


@pytest.mark.integration
def test_latency_counts_from_the_intended_time_when_the_subject_is_slow(tiny):
    # One connection, a 0.2 s response and a request every 0.05 s: requests queue behind each
    # other, so latency from the intended time grows while the service time stays the same.
    slow = (Endpoint("/slow?s=0.2", "slow"),)
    log = _drive(slow, tiny, rate=20, requests=6, connections=1, max_lag=1.0).log
    assert log.latency[-1] > log.latency[0] + 0.5
    assert log.service[-1] == pytest.approx(log.service[0], abs=0.1)
    assert log.latency[-1] > log.service[-1] + 0.5


@pytest.mark.integration
def test_a_request_that_takes_too_long_is_an_error(tiny):
    log = _drive((Endpoint("/slow?s=3", "slow"),), tiny, rate=10, requests=2, timeout=0.3).log
    assert log.error == ("timeout after 0.3 s",) * 2 and log.status == (0, 0)


@pytest.mark.integration
def test_a_closed_port_gives_errors_not_an_exception():
    port = free_ports(1)[0]
    log = _drive((Endpoint("/", "root"),), port, rate=50, requests=3).log
    assert len(log) == 3 and log.status == (0, 0, 0)
    assert all(e is not None and "Error" in e for e in log.error)


@pytest.mark.integration
def test_a_driver_that_falls_behind_marks_the_run_invalid(tiny):
    # A progress callback that blocks the event loop starves the dispatcher, like a busy machine.
    result = _drive((Endpoint("/hello", "hello"),), tiny, rate=100, requests=30, max_lag=0.05,
                    on_progress=lambda sent, planned: time.sleep(0.2))
    assert not result.valid
    assert "fell behind its schedule" in result.invalid_reason
    assert result.lag["lag_p99"] > 0.05


@pytest.mark.integration
def test_a_driver_on_time_is_valid_and_says_how_late_it_was(tiny):
    result = _drive((Endpoint("/hello", "hello"),), tiny, rate=100, requests=50, max_lag=0.5)
    assert result.valid and result.invalid_reason is None
    assert set(result.lag) == {"lag_p50", "lag_p99", "lag_max", "send_lag_p50", "send_lag_p99",
                               "send_lag_max"}
    assert result.duration >= 0.5



@pytest.fixture(scope="module")
def closes_idle(tmp_path_factory):
    """The tiny app closing idle keep-alive connections after 0.3 s (uvicorn does after 5 s)."""
    yield from _serve_tiny(tmp_path_factory, "closing", "--keepalive", "0.3")


@pytest.mark.integration
def test_a_connection_the_server_closed_is_retried_once_not_counted_as_an_error(
        closes_idle, monkeypatch):
    monkeypatch.setattr(driver, "IDLE_LIMIT", 60.0)  # reuse even stale ones: the retry path
    result = _drive([Endpoint("/hello", "hello")], closes_idle, rate=2.5, requests=4,
                    connections=1, max_lag=1.0)
    assert result.log.error == (None,) * 4
    assert result.retries >= 2  # every request after the first found its connection closed


@pytest.mark.integration
def test_idle_connections_past_the_limit_are_not_reused(closes_idle, monkeypatch):
    monkeypatch.setattr(driver, "IDLE_LIMIT", 0.1)
    result = _drive([Endpoint("/hello", "hello")], closes_idle, rate=2.5, requests=4,
                    connections=1, max_lag=1.0)
    assert result.log.error == (None,) * 4 and result.retries == 0


def test_errors_are_classified():
    assert driver.error_kind("HTTP 500") == "http_status"
    assert driver.error_kind("timeout after 1 s") == "timeout"
    assert driver.error_kind("connect: ConnectionRefusedError: x") == "connect"
    assert driver.error_kind("reset: closed before any answer (x)") == "reset"
    assert driver.error_kind("ValueError: bad") == "other"


@pytest.mark.integration
def test_a_refused_connection_is_a_connect_error():
    port = free_ports(1)[0]
    result = _drive([Endpoint("/hello", "hello")], port, rate=50, requests=2, connections=1,
                    max_lag=1.0)
    assert all(driver.error_kind(e) == "connect" for e in result.log.error)
