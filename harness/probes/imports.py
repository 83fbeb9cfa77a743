"""Post-import hooks: run a function on a module right after it is first imported.

Lets the probes patch asyncio or Twisted only in subjects that use them, without importing either
into every Python process that starts with the probes' environment.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: subjects may run Pythons older than the harness
    from collections.abc import Callable

    Hook = Callable[[Any], None]


class _HookedLoader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the hook on the fresh module."""

    def __init__(self, loader: Any, hooks: list[Hook]) -> None:
        self._loader = loader
        self._hooks = hooks

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        for hook in self._hooks:
            _run(hook, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    """Finds hooked modules with the other finders and wraps their loader."""

    def __init__(self) -> None:
        self.hooks: dict[str, list[Hook]] = {}  # several probes may wait for one module
        self._busy = threading.local()

    def find_spec(self, fullname, path, target=None):
        hooks = self.hooks.get(fullname)
        if hooks is None or getattr(self._busy, "name", None) == fullname:
            return None
        self._busy.name = fullname  # the other finders may call back into sys.meta_path
        try:
            spec = _find_elsewhere(self, fullname, path, target)
        finally:
            self._busy.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        del self.hooks[fullname]
        spec.loader = _HookedLoader(spec.loader, hooks)
        return spec


def _find_elsewhere(skip: Any, fullname: str, path: Any, target: Any) -> Any:
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if finder is skip or find is None:
            continue
        spec = find(fullname, path, target)
        if spec is not None:
            return spec
    return None


_finder = _AfterImportFinder()
# Where a failing hook is reported (the agent sets it to its warning list): a probe that cannot
# attach must never make the subject's own import fail.
def _ignore(message: str) -> None:
    del message


on_error: Callable[[str], None] = _ignore


def _run(hook: Hook, module: Any) -> None:
    try:
        hook(module)
    except Exception as exc:
        name = getattr(module, "__name__", module)
        on_error(f"hook on {name} failed: {type(exc).__name__}: {exc}")


def after_import(name: str, hook: Hook) -> None:
    """Call `hook(module)` once `name` is imported (at once when it already is)."""
    module = sys.modules.get(name)
    if module is not None:
        _run(hook, module)
        return
    _finder.hooks.setdefault(name, []).append(hook)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
