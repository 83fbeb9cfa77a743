"""Startup hook of the Python function profile (harness.pyfunctions puts this folder first on
PYTHONPATH): loads harness/probes/pyprofile.py by its path, so the subject never imports the
harness package, installs it, then imports the sitecustomize it shadows, if any."""

import importlib
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _install():
    path = os.path.join(os.path.dirname(_HERE), "pyprofile.py")
    spec = importlib.util.spec_from_file_location("_perf_harness_functions", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.install()


def _chain():
    def here(entry):
        try:
            path = os.path.abspath(entry or os.getcwd())
            return os.path.normcase(path) == os.path.normcase(_HERE)
        except Exception:
            return False

    sys.path[:] = [entry for entry in sys.path if not here(entry)]
    ours = sys.modules.pop("sitecustomize", None)
    try:
        importlib.import_module("sitecustomize")
    except ImportError as exc:
        if exc.name != "sitecustomize":
            print(f"Error in sitecustomize: {exc}", file=sys.stderr)
    except Exception as exc:
        print(f"Error in sitecustomize: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        if ours is not None and "sitecustomize" not in sys.modules:
            sys.modules["sitecustomize"] = ours


try:
    _install()
except Exception as exc:
    print(f"perf-harness: Python function profile not installed: {exc}", file=sys.stderr)
_chain()
