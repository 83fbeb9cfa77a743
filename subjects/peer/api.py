"""The REST API: routes for users (channels, search, downloads, statistics) and for other peers
(sync records and content blobs), plus the access log."""

from __future__ import annotations

import datetime
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from subjects.peer import downloads as downloads_mod
from subjects.peer import store, tuning
from subjects.peer.database import Database
from subjects.peer.downloads import DownloadError, Downloads
from subjects.peer.sync import Syncer

DB = web.AppKey("db", Database)
SYNCER = web.AppKey("syncer", Syncer)
DOWNLOADS = web.AppKey("downloads", Downloads)
STARTED = web.AppKey("started", float)
ACCESS_LOG = web.AppKey("access_log", object)

MAX_PAGE_SIZE = 500
MAX_SYNC_LIMIT = 5000


def make_app(db: Database, syncer: Syncer, downloads: Downloads,
             access_log: TextIO) -> web.Application:
    """The aiohttp application with every route and the access-log middleware."""
    app = web.Application(middlewares=[_access_log])
    app[DB] = db
    app[SYNCER] = syncer
    app[DOWNLOADS] = downloads
    app[STARTED] = time.monotonic()
    app[ACCESS_LOG] = access_log
    app.add_routes([
        web.get("/health", health),
        web.get("/channels", channels),
        web.get("/channels/{channel_id}/torrents", channel_torrents),
        web.get("/search", search),
        web.get("/statistics", statistics),
        web.post("/downloads", start_download),
        web.get("/downloads", list_downloads),
        web.get("/sync", sync_records),
        web.get("/blobs/{infohash}", blob),
    ])
    return app


@web.middleware
async def _access_log(request: web.Request, handler: Any) -> web.StreamResponse:
    started = time.perf_counter()
    status, length = 500, 0
    try:
        response = await handler(request)
        status, length = response.status, response.content_length or 0
        return response
    except web.HTTPException as exc:
        status, length = exc.status, exc.content_length or 0
        raise
    finally:
        _write_log_line(request, status, length, time.perf_counter() - started)


def _write_log_line(request: web.Request, status: int, length: int, seconds: float) -> None:
    log: TextIO = request.app[ACCESS_LOG]  # type: ignore[assignment]
    padding = "-" * tuning.ACCESS_LOG_PADDING  # exactly that many more bytes per line
    # The duration is fixed-width so a line's length does not depend on how long the request took:
    # bytes written per request stay an exact counter that only a change in behaviour can move.
    log.write(f'{time.time():.3f} {request.remote} "{request.method} {request.path_qs}" {status}'
              f" {length} {seconds * 1000:10.2f}ms{padding}\n")
    for _ in range(tuning.ACCESS_LOG_EXTRA_LINES):  # fixed length too: no timing in it
        log.write(f'{time.time():.3f} debug "{request.method} {request.path_qs}" handled\n')
    log.flush()  # per request, so the bytes written are attributable to the request


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name}={value} is outside {low}..{high}")
    return value


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok", "db": request.app[DB].mode})


async def channels(request: web.Request) -> web.Response:
    rows = await request.app[DB].run(store.channel_rows_json)
    # Shaping the rows into the API's documents is Python work on the event loop in both modes;
    # in worker mode it overlaps with the next request's query on the worker thread.
    body = channels_document(rows, padding=tuning.CHANNELS_PADDING)
    if tuning.CHANNELS_EXTRA_WORK:
        tuning.extra_work(tuning.CHANNELS_EXTRA_WORK)
    return web.Response(body=body, content_type="application/json")


def channels_document(rows_json: str, *, padding: int = 0) -> bytes:
    """The /channels body: each channel row as a document with the fields a GUI shows (and, for
    regression demonstrations, a `padding` field of that many bytes more)."""
    rows = json.loads(rows_json)
    top_votes = max((row[7] for row in rows), default=0) or 1
    channels = []
    for row in rows:
        channel = dict(zip(store.CHANNEL_ROW_FIELDS, row, strict=True))
        del channel["dispersy_cid"]  # internal to the sync protocol
        channel["tags"] = [w for w, _ in Counter(channel["description"].split()).most_common(3)]
        channel["size_text"] = _size_text(channel["total_size"])
        channel["created_at"] = _iso(channel["created"])
        channel["updated_at"] = _iso(max(channel["modified"], channel["last_added"]))
        channel["popularity"] = round(channel["votes"] / top_votes, 4)
        channel["state"] = "spam" if channel["spam"] else (
            "subscribed" if channel["subscribed"] else "discovered")
        channels.append(channel)
    document: dict[str, Any] = {"channels": channels}
    if padding > 0:  # `,"padding":""` are 13 bytes of their own
        document["padding"] = "-" * max(0, padding - 13)
    return json.dumps(document, separators=(",", ":")).encode()


def _size_text(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # unreachable: the loop returns at TB


def _iso(timestamp: int) -> str:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc).isoformat()


async def channel_torrents(request: web.Request) -> web.Response:
    try:
        channel_id = int(request.match_info["channel_id"])
    except ValueError:
        raise web.HTTPNotFound(text="channel ids are integers") from None
    page = _int_param(request, "page", 0, 0, 1_000_000)
    size = _int_param(request, "size", 50, 1, MAX_PAGE_SIZE)
    result = await request.app[DB].run(store.channel_torrents, channel_id, page, size)
    if result is None:
        raise web.HTTPNotFound(text=f"no channel {channel_id}")
    return _json(result)


async def search(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    results = await request.app[DB].run(store.search_torrents, query)
    return _json({"query": query, "results": results})


async def statistics(request: web.Request) -> web.Response:
    db = request.app[DB]
    counters = request.app[SYNCER].counters
    return _json({
        "uptime_s": round(time.monotonic() - request.app[STARTED], 3),
        "counts": await db.run(store.counts),
        "database": db.statistics(),
        "sync": {**vars(counters), "peers": await db.run(store.sync_state)},
    })


async def start_download(request: web.Request) -> web.Response:
    try:
        payload = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='expected a JSON body {"infohash": "<40 hex>"}') from None
    infohash = payload.get("infohash") if isinstance(payload, dict) else None
    try:
        started = await request.app[DOWNLOADS].start(infohash)
    except DownloadError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return _json({"infohash": infohash, "started": started}, status=201 if started else 200)


async def list_downloads(request: web.Request) -> web.Response:
    return _json({"downloads": await request.app[DB].run(store.list_downloads)})


async def sync_records(request: web.Request) -> web.Response:
    since = _int_param(request, "since", 0, 0, 2**62)
    limit = _int_param(request, "limit", 1000, 1, MAX_SYNC_LIMIT)
    return _json(await request.app[DB].run(store.records_since, since, limit))


async def blob(request: web.Request) -> web.Response:
    infohash = request.match_info["infohash"]
    try:
        downloads_mod.check_infohash(infohash)
    except DownloadError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    offset = _int_param(request, "offset", 0, 0, 2**40)
    size = _int_param(request, "size", downloads_mod.CHUNK, 0, 4 * downloads_mod.CHUNK)
    if not await request.app[DB].run(store.torrent_exists, infohash):
        raise web.HTTPNotFound(text=f"this peer does not know torrent {infohash}")
    data = downloads_mod.blob_bytes(infohash, offset, size)
    return web.Response(body=data, content_type="application/octet-stream",
                        headers={"X-Blob-Size": str(downloads_mod.blob_size(infohash))})


def open_access_log(state_dir: Path) -> TextIO:
    """The access log, appended to across restarts."""
    return open(Path(state_dir) / "access.log", "a", encoding="utf-8")
