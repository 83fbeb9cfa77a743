"""Command line of the reference peer: `seed` a state directory, `serve` it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from subjects.peer import seed as seed_mod
from subjects.peer import server
from subjects.peer.database import MODES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m subjects.peer",
                                     description="A Tribler-like peer: REST API, SQLite, sync.")
    sub = parser.add_subparsers(dest="command", required=True)
    seed = sub.add_parser("seed", help="write a deterministic database into a state directory")
    seed.add_argument("--state-dir", required=True, type=Path)
    seed.add_argument("--channels", type=int, default=1200)
    seed.add_argument("--torrents", type=int, default=100_000)
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument("--force", action="store_true", help="replace an existing database")
    serve = sub.add_parser("serve", help="serve the REST API and sync with peers")
    serve.add_argument("--state-dir", required=True, type=Path)
    serve.add_argument("--port", required=True, type=int, help="0 picks a free port")
    serve.add_argument("--db", required=True, choices=MODES)
    serve.add_argument("--peers", default="", help="HOST:PORT,... to sync and download from")
    serve.add_argument("--sync-interval", type=float, default=1.0, help="seconds; 0 disables")
    serve.add_argument("--host", default="127.0.0.1")
    return parser


def _peers(text: str) -> tuple[str, ...]:
    peers = tuple(p.strip() for p in text.split(",") if p.strip())
    for peer in peers:
        host, sep, port = peer.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise SystemExit(f"--peers: {peer!r} is not HOST:PORT (e.g. 127.0.0.1:8081)")
    return peers


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "seed":
        try:
            summary = seed_mod.seed(args.state_dir, channels=args.channels,
                                    torrents=args.torrents, seed=args.seed, force=args.force)
        except seed_mod.SeedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"seeded {summary.path}: {summary.channels} channels, {summary.torrents} torrents,"
              f" {summary.peers} peers")
        return 0
    config = server.ServeConfig(state_dir=args.state_dir, port=args.port, mode=args.db,
                                peers=_peers(args.peers), sync_interval=args.sync_interval,
                                host=args.host)
    asyncio.run(server.serve(config, lambda url: print(f"peer ready on {url}", flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
