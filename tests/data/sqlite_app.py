"""A small aiohttp app on SQLite with no probe code in it: the unmodified subject of probe tests.

    python tests/data/sqlite_app.py --port P --db PATH [--items N]

Prints `sqlite app ready on http://127.0.0.1:P` when it serves. SQLITE_APP_SLOW=1 makes the item
lookup a deliberately slower query (same call site), for the "what changed" test.
"""

import argparse
import asyncio
import os
import time
from contextlib import closing
from sqlite3 import connect

from aiohttp import web

FAST_ITEM = "SELECT id, name FROM items WHERE id = ?"
SLOW_ITEM = (
    "SELECT id, name FROM items WHERE id = ? AND (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL "
    "SELECT x + 1 FROM n WHERE x < 10000) SELECT count(*) FROM n) > 0"
)
ITEM_QUERY = SLOW_ITEM if os.environ.get("SQLITE_APP_SLOW") == "1" else FAST_ITEM


def open_db(path, items):
    db = connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    rows = [(i, f"item {i}") for i in range(1, items + 1)]
    db.executemany("INSERT OR REPLACE INTO items (id, name) VALUES (?, ?)", rows)
    db.commit()
    return db


async def health(request):
    return web.json_response({"ok": True})


async def item(request):
    db = request.app["db"]
    row = db.execute(ITEM_QUERY, (int(request.match_info["id"]),)).fetchone()  # item lookup
    if row is None:
        raise web.HTTPNotFound()
    return web.json_response({"id": row[0], "name": row[1]})


async def items(request):
    limit = int(request.query.get("limit", "10"))
    db = request.app["db"]
    cursor = db.execute("SELECT id, name FROM items ORDER BY id LIMIT ?", (limit,))  # item list
    return web.json_response([{"id": i, "name": n} for i, n in cursor.fetchall()])


async def add(request):
    data = await request.json()
    db = request.app["db"]
    db.execute("INSERT INTO items (name) VALUES (?)", (data["name"],))  # item insert
    db.commit()
    return web.json_response({"ok": True}, status=201)


def count_items(path):
    with closing(connect(path)) as db:  # its own connection: this runs in a worker thread
        return db.execute("SELECT count(*) FROM items").fetchone()[0]  # thread count


async def count(request):
    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(None, count_items, request.app["path"])  # count handoff
    return web.json_response(found)


async def block(request):
    time.sleep(float(request.query.get("seconds", "0.2")))  # blocks the event loop on purpose
    return web.json_response({"ok": True})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()
    app = web.Application()
    app["db"] = open_db(args.db, args.items)
    app["path"] = args.db
    app.router.add_get("/health", health)
    app.router.add_get("/items", items)
    app.router.add_get("/items/{id}", item)
    app.router.add_post("/items", add)
    app.router.add_get("/count", count)
    app.router.add_get("/block", block)
    ready = f"sqlite app ready on http://127.0.0.1:{args.port}"
    web.run_app(app, host="127.0.0.1", port=args.port, print=lambda _: print(ready, flush=True),
                access_log=None)


if __name__ == "__main__":
    main()
