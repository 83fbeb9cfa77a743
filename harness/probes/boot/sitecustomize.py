"""Startup hook of the harness probes: installs them, then runs the sitecustomize it shadows.

The harness puts this folder first on PYTHONPATH of a probed subject (harness.probes.inject).
Python imports `sitecustomize` at startup; this one loads the probe modules from the folder above
under a private package name (so the subject never imports the harness package or its
dependencies), starts them, and then imports the next `sitecustomize` on sys.path, if any. Nothing
here may break the subject: every failure becomes a warning file in the probe directory.
"""

import importlib
import importlib.machinery
import json
import os
import sys
import types

_PACKAGE = "_perf_harness_probes"
_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_agent():
    package = sys.modules.get(_PACKAGE)
    if package is None:
        probes_dir = os.path.dirname(_HERE)
        package = types.ModuleType(_PACKAGE)
        package.__path__ = [probes_dir]
        package.__spec__ = importlib.machinery.ModuleSpec(_PACKAGE, None, is_package=True)
        package.__spec__.submodule_search_locations = [probes_dir]
        sys.modules[_PACKAGE] = package
    return importlib.import_module(_PACKAGE + ".agent")


def _emergency_warning(message):
    directory = os.environ.get("PERF_PROBE_DIR")
    if not directory:
        return
    try:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"warnings-{os.getpid()}.json")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump([message], handle)
        os.replace(tmp, path)
    except Exception:
        pass


def _is_here(entry):
    try:
        path = os.path.abspath(entry or os.getcwd())
        return os.path.normcase(path) == os.path.normcase(_HERE)
    except Exception:
        return False


def _chain(writer):
    """Import the sitecustomize this one shadows, as Python would have without us."""
    sys.path[:] = [entry for entry in sys.path if not _is_here(entry)]
    ours = sys.modules.pop("sitecustomize", None)
    try:
        importlib.import_module("sitecustomize")
    except ImportError as exc:
        if exc.name != "sitecustomize":
            _report_chain_error(writer, exc)
    except Exception as exc:
        _report_chain_error(writer, exc)
    finally:
        # The import system expects the module it is still loading (this one) to be there.
        if ours is not None and "sitecustomize" not in sys.modules:
            sys.modules["sitecustomize"] = ours


def _report_chain_error(writer, exc):
    # site.py prints this line for a failing sitecustomize; keep the subject's behaviour.
    print("Error in sitecustomize; set PYTHONVERBOSE for traceback:", file=sys.stderr)
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    if writer is not None:
        writer.warn(f"the subject's own sitecustomize failed: {type(exc).__name__}: {exc}")
        writer.flush()


def _boot():
    writer = None
    try:
        writer = _load_agent().start()
    except Exception as exc:
        _emergency_warning(f"probes not installed: {type(exc).__name__}: {exc}")
    try:
        _chain(writer)
    except Exception as exc:
        _emergency_warning(f"cannot run the subject's own sitecustomize: {exc}")


_boot()
