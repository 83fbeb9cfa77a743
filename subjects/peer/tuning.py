"""Knobs a test commit may turn to make the peer slower on purpose (regression demonstrations).

The first four are 0 in a healthy peer. The harness' own tests and benches change them to check
that a regression is caught (CPU per /channels request, bytes written per request to the access
log, bytes of every /channels response) or that a log line more per request is shown and not gated.
"""

from __future__ import annotations

import hashlib

CHANNELS_EXTRA_WORK = 0  # iterations of a hash loop per /channels request
ACCESS_LOG_PADDING = 0  # extra bytes appended to each line of state_dir/access.log
ACCESS_LOG_EXTRA_LINES = 0  # more lines (a debug line each) per request in state_dir/access.log
CHANNELS_PADDING = 0  # extra bytes in every /channels response (a "padding" field)

SYNC_BATCH = 3000  # records per request to a peer, committed (fsync) as one transaction
SYNC_PER_ROUND = 3000  # records pulled from one peer per sync round, at most
SYNC_CHUNK = 100  # records written per database call (the unit a worker interleaves)


def extra_work(iterations: int) -> str:
    """Deterministic pure-Python CPU work; returns a digest so it cannot be optimised away."""
    digest = b"channels"
    for _ in range(iterations):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()
