"""A small aiohttp app on SQLite through a real ORM (SQLAlchemy or peewee), with no probe code.

    python tests/data/orm_app/server.py --orm sqlalchemy|peewee --port P --db PATH [--log PATH]

The handlers run their ORM queries on the event loop (blocking, as many small apps do). The
queries live in sa_store.py / pw_store.py, so a query's caller is a function of this "project"
and the ORM's frame is the library frame beside it. ORM_APP_SLOW=1 makes the search a deliberately
slower statement from the same function; --log appends one line per request to a log file.
"""

import argparse
import asyncio
import logging
import os
import sys

from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SLOW = os.environ.get("ORM_APP_SLOW") == "1"
EXTRA = int(os.environ.get("ORM_APP_EXTRA_WORK", "0"))  # more calls of one function per search


def tidy(word):
    """Normalises a search word (called EXTRA more times per search in a candidate)."""
    return " ".join(word.split())


def make_store(orm, path):
    if orm == "sqlalchemy":
        import sa_store

        return sa_store.Store(path, SLOW)
    import pw_store

    return pw_store.Store(path, SLOW)


async def health(request):
    return web.json_response({"ok": True})


async def search(request):
    word = tidy(request.query.get("q", "item 1"))
    for _ in range(EXTRA):
        word = tidy(word)
    found = request.app["store"].search_items(word)
    request.app["log"].info("search %s -> %d", request.query.get("q"), len(found))
    return web.json_response({"found": len(found)})


async def add(request):
    request.app["store"].add_item(request.query.get("name", "new"))
    request.app["log"].info("add")
    return web.json_response({"ok": True}, status=201)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--orm", choices=("sqlalchemy", "peewee"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--log", default="")
    args = parser.parse_args()
    app = web.Application()
    app["store"] = make_store(args.orm, args.db)
    app["store"].seed(100)
    log = logging.getLogger("orm_app")
    log.setLevel(logging.INFO)
    log.propagate = False
    if args.log:
        log.addHandler(logging.FileHandler(args.log))
    app["log"] = log
    app.router.add_get("/health", health)
    app.router.add_get("/search", search)
    app.router.add_post("/add", add)
    print(f"orm app ready on http://127.0.0.1:{args.port}", flush=True)
    asyncio.run(serve(app, args.port))


async def serve(app, port):
    runner = web.AppRunner(app, handle_signals=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    main()
