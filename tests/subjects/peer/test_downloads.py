"""Content blobs: deterministic, sliceable, and infohash validation."""

from __future__ import annotations

import pytest

from subjects.peer.downloads import CHUNK, DownloadError, blob_bytes, blob_size, check_infohash

INFOHASH = "0123456789abcdef0123456789abcdef01234567"


def test_blob_slices_concatenate_to_the_whole_blob():
    size = blob_size(INFOHASH)
    whole = blob_bytes(INFOHASH, 0, size)
    assert len(whole) == size
    odd = b"".join(blob_bytes(INFOHASH, offset, 10_000) for offset in range(0, size, 10_000))
    assert odd == whole
    assert blob_bytes(INFOHASH, CHUNK - 3, 6) == whole[CHUNK - 3:CHUNK + 3]
    assert blob_bytes(INFOHASH, size, 10) == b""


def test_blobs_differ_between_torrents():
    other = "f" * 40
    assert blob_bytes(INFOHASH, 0, 64) != blob_bytes(other, 0, 64)
    assert 256 * 1024 <= blob_size(other) < 256 * 1024 + 2 * 1024 * 1024


@pytest.mark.parametrize("bad", ["", "xyz", "A" * 40, "0" * 39, None, 12])
def test_invalid_infohashes_are_refused(bad):
    with pytest.raises(DownloadError, match="40 lowercase hex"):
        check_infohash(bad)
