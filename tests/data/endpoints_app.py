"""A two-endpoint aiohttp subject: --search-ms and --home-ms set how long each endpoint takes,
--rank-work how much extra Python work search's rank_results does (for the function profile)."""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


def rank_results(count: int, extra: int) -> list[int]:
    """Search's ranking step: the function a candidate makes do more work."""
    ranked = list(range(count))
    for _ in range(extra):
        ranked.reverse()
    return ranked


def build_app(search_s: float, home_s: float, rank_work: int = 0) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def search(request: web.Request) -> web.Response:
        await asyncio.sleep(search_s)
        ranked = rank_results(40, rank_work)
        return web.Response(text="result " * len(ranked))

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
    parser.add_argument("--rank-work", type=int, default=0)
    args = parser.parse_args()
    web.run_app(build_app(args.search_ms / 1000.0, args.home_ms / 1000.0, args.rank_work),
                host="127.0.0.1",
                port=args.port, print=lambda *_: None)


if __name__ == "__main__":
    main()
