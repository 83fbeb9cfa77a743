"""Where a call comes from: the first frame of the user's project, with the library frame beside it.

Runs inside the subject, standard library only. A stack is walked from the probe outwards; every
source file is classified once (cached by file name):

* PROBE: the probes themselves and the modules they wrap (sqlite3): never shown;
* LIBRARY: the standard library, site-packages / dist-packages, and modules named in
  `[probes] skip_modules` (by module-name prefix, e.g. the project's own database layer);
* PROJECT: files under one of `[probes] project_roots` (default: the subject's working directory),
  and modules named in `[probes] project_modules` wherever they are installed (the application
  under test installed from PyPI into site-packages); the longer of two matching prefixes wins;
* OTHER: anything else (a script outside the roots).

A call site is the pair (project frame, library frame): the first PROJECT frame, and the first
LIBRARY frame below it (the one nearest the database driver, e.g. an ORM's `execute`). Without a
PROJECT frame the first OTHER frame stands in, and without either the library frame alone.
Sites are cheap keys (code object, line); `describe` turns them into text only when a snapshot is
written. Shown paths are relative to the project root they are under, after `site-packages/` for
installed packages and after the standard library's folder for its modules, so the two sides of a
comparison name the same code the same way wherever they were checked out.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

PROBE, LIBRARY, PROJECT, OTHER = 0, 1, 2, 3
MAX_DEPTH = 300  # frames walked before giving up (a runaway recursion must not cost more)
UNKNOWN = "<unknown>"

_here = os.path.dirname(os.path.abspath(__file__)) + os.sep
_stdlib = os.path.dirname(os.path.abspath(os.__file__)) + os.sep
_MARKERS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


class Config:
    """What counts as the project (set once by the agent from the environment)."""

    roots: tuple[str, ...] = ()
    skip_modules: tuple[str, ...] = ()
    project_modules: tuple[str, ...] = ()
    probe_dirs: tuple[str, ...] = (_here,)


# The call site that handed the current thread its work (harness/probes/handoff.py), if any.
ORIGIN = threading.local()
_kinds: dict[str, int] = {}
_shown: dict[str, str] = {}


def hide(module_file: str) -> None:
    """Never show frames of the folder holding `module_file` (a wrapped module, e.g. sqlite3)."""
    folder = os.path.dirname(os.path.abspath(module_file)) + os.sep
    if folder not in Config.probe_dirs:
        Config.probe_dirs = Config.probe_dirs + (folder,)
        _kinds.clear()


def configure(roots: list[str] | None = None, skip_modules: list[str] | None = None,
              project_modules: list[str] | None = None) -> None:
    """Project roots (relative ones against the working directory), module prefixes to skip, and
    module prefixes that are the project wherever installed (the application from PyPI)."""
    cwd = os.getcwd()
    found = [os.path.abspath(os.path.join(cwd, r)) for r in (roots or []) if r] or [cwd]
    # deepest first, so a nested root wins over the one that contains it
    Config.roots = tuple(sorted({r.rstrip(os.sep) + os.sep for r in found}, key=len, reverse=True))
    Config.skip_modules = tuple(m.strip() for m in (skip_modules or []) if m.strip())
    Config.project_modules = tuple(m.strip() for m in (project_modules or []) if m.strip())
    _kinds.clear()
    _shown.clear()


def _prefix(name: str, prefixes: tuple[str, ...]) -> int:
    """Length of the longest of `prefixes` that is `name` or a package holding it (0: none)."""
    return max((len(m) for m in prefixes if name == m or name.startswith(m + ".")), default=0)


def _classify(filename: str, module: str) -> int:
    if filename.startswith("<"):  # <string>, <frozen ...>: generated or the interpreter's
        return LIBRARY if filename.startswith("<frozen") else OTHER
    path = os.path.abspath(filename)
    if path.startswith(Config.probe_dirs):
        return PROBE
    if module:  # named modules first; the longer prefix wins (the app, but not its DB layer)
        skipped, own = _prefix(module, Config.skip_modules), _prefix(module, Config.project_modules)
        if skipped or own:
            return LIBRARY if skipped >= own else PROJECT
    for root in Config.roots:
        # under a root, unless in a virtualenv inside it (a root may itself be an installed
        # package: the application under test installed from PyPI)
        if path.startswith(root):
            rest = os.sep + path[len(root):]
            return LIBRARY if any(marker in rest for marker in _MARKERS) else PROJECT
    if any(marker in path for marker in _MARKERS):
        return LIBRARY
    if path.startswith(_stdlib):
        return LIBRARY
    return OTHER


def _display(filename: str) -> str:
    if filename.startswith("<"):
        return filename
    path = os.path.abspath(filename)
    for marker in _MARKERS:
        if marker in path:
            return path.split(marker, 1)[1].replace(os.sep, "/")
    for root in Config.roots:
        if path.startswith(root):
            return path[len(root):].replace(os.sep, "/")
    if path.startswith(_stdlib):
        return path[len(_stdlib):].replace(os.sep, "/")
    return path.replace(os.sep, "/")


def kind_of(frame: Any) -> int:
    """The cached classification of a frame's source file."""
    filename = frame.f_code.co_filename
    kind = _kinds.get(filename)
    if kind is None:
        module = frame.f_globals.get("__name__", "") if frame.f_globals else ""
        kind = _kinds[filename] = _classify(filename, module if isinstance(module, str) else "")
    return kind


def site(frame: Any) -> Any:
    """The call site of `frame`'s stack: (place, via), each (code, line) or None.

    In a thread running handed-off work, the place is the origin's (the code that queued the
    work) and `via` is this thread's own place."""
    own = _site(frame)
    origin = getattr(ORIGIN, "site", None)
    if origin is not None and origin[0] is not None:
        return (origin[0], own[0])
    return own


def _site(frame: Any) -> Any:
    library = other = None
    depth = 0
    while frame is not None and depth < MAX_DEPTH:
        kind = kind_of(frame)
        if kind == PROJECT:
            return ((frame.f_code, frame.f_lineno), library)
        if kind == LIBRARY and library is None:
            library = (frame.f_code, frame.f_lineno)
        elif kind == OTHER and other is None:
            other = (frame.f_code, frame.f_lineno)
        frame = frame.f_back
        depth += 1
    if other is not None:
        return (other, library)
    return (library, None)


def _text(place: Any) -> str:
    if place is None:
        return ""
    code, line = place
    name = getattr(code, "co_qualname", code.co_name)
    shown = _shown.get(code.co_filename)
    if shown is None:
        shown = _shown[code.co_filename] = _display(code.co_filename)
    return f"{shown}:{line} {name}"


def describe(key: Any) -> tuple[str, str]:
    """(where, via) of a site key: `file:line function` of the project frame and of the library
    frame beside it ("" when there is none). Strings pass through as (key, "")."""
    if isinstance(key, str):
        return key, ""
    place, via = key
    return (_text(place) or UNKNOWN), _text(via)


def here(depth: int = 1) -> Any:
    """The call site of the caller's caller (depth frames above this function's caller)."""
    return site(sys._getframe(depth + 1))


configure()
