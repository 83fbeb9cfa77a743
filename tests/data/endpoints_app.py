"""A two-endpoint aiohttp subject: --search-ms and --home-ms set how long each endpoint takes."""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


def build_app(search_s: float, home_s: float) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def search(request: web.Request) -> web.Response:
        await asyncio.sleep(search_s)
        return web.Response(text="result " * 40)

    async def home(request: web.Request) -> web.Response:
        await asyncio.sleep(home_s)
        return web.Response(text="home " * 10)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/search", search)
    app.router.add_get("/", home)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--search-ms", type=float, default=20.0)
    parser.add_argument("--home-ms", type=float, default=20.0)
    args = parser.parse_args()
    web.run_app(build_app(args.search_ms / 1000.0, args.home_ms / 1000.0), host="127.0.0.1",
                port=args.port, print=lambda *_: None)


if __name__ == "__main__":
    main()
