"""The environment fingerprint every run records, through one declared list of metadata keys."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import harness


@dataclass(frozen=True)
class MetadataKey:
    """One recorded key: its type, whether a mismatch refuses a comparison, and what it means."""

    name: str
    type: type
    fingerprint: bool  # a mismatch between baseline and candidate refuses the comparison
    description: str


METADATA: tuple[MetadataKey, ...] = (
    MetadataKey("platform", str, True, "operating system family: linux, windows, macos"),
    MetadataKey("platform_release", str, False, "kernel or OS release"),
    MetadataKey("machine", str, True, "CPU architecture, e.g. x86_64"),
    MetadataKey("cpu_model", str, True, "CPU model name"),
    MetadataKey("cpu_count", int, True, "logical CPUs"),
    MetadataKey("python_version", str, True, "major.minor of the Python running the subject"),
    MetadataKey("python_implementation", str, True, "CPython, PyPy, ..."),
    MetadataKey("harness_version", str, False, "version of this harness"),
    MetadataKey("hostname", str, False, "host name of the agent"),
    MetadataKey("subject_commit", str, False, "git commit of the code measured, when known"),
    MetadataKey("experiment_hash", str, True, "sha256 of the experiment definition"),
    MetadataKey("jenkins_build_url", str, False, "BUILD_URL of the Jenkins build, when present"),
)
FINGERPRINT_KEYS = tuple(k.name for k in METADATA if k.fingerprint)


def platform_name() -> str:
    """linux, windows or macos (or sys.platform for anything else)."""
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return sys.platform


def cpu_model() -> str:
    """The CPU model name, from /proc/cpuinfo, sysctl or platform.processor()."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True, text=True, timeout=5, check=False,
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except OSError:
            pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit(directory: Path) -> str | None:
    """The HEAD commit of the git checkout containing `directory`, or None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
            timeout=10, check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def collect_environment(
    *, experiment_hash: str, subject_dir: Path | None = None, python_version: str | None = None
) -> dict[str, Any]:
    """Record the declared metadata for this machine and run."""
    return {
        "platform": platform_name(),
        "platform_release": platform.release(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": psutil.cpu_count(logical=True) or 0,
        "python_version": python_version or f"{sys.version_info[0]}.{sys.version_info[1]}",
        "python_implementation": platform.python_implementation(),
        "harness_version": harness.__version__,
        "hostname": socket.gethostname(),
        "subject_commit": git_commit(subject_dir) if subject_dir else None,
        "experiment_hash": experiment_hash,
        "jenkins_build_url": os.environ.get("BUILD_URL"),
    }


def fingerprint_mismatches(baseline: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """Human-readable differences in fingerprint keys, e.g. "cpu_model: 'A' vs 'B'"."""
    return [
        f"{key}: {baseline.get(key)!r} (baseline) vs {candidate.get(key)!r} (candidate)"
        for key in FINGERPRINT_KEYS
        if baseline.get(key) != candidate.get(key)
    ]
