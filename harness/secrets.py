"""Secrets and service settings: the environment variables named in one place, and redaction."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from harness.errors import SecretMissingError

JENKINS_URL = "JENKINS_URL"  # not a secret, but read from the same place as the two below
JENKINS_USER = "JENKINS_USER"
JENKINS_TOKEN = "JENKINS_TOKEN"  # a Jenkins API token of JENKINS_USER (read access is enough)
GITHUB_TOKEN = "GITHUB_TOKEN"  # a token allowed to write commit statuses and PR comments

SECRET_VARIABLES = (JENKINS_TOKEN, GITHUB_TOKEN)
REDACTED = "***"
# Values shorter than this are not replaced: redacting "1" would mangle every message.
_MIN_SECRET_LENGTH = 4

# Values that are secret for this process only: an experiment's `{env:NAME}` header values, for
# example. Registered once when they are read; redact() replaces them like the named variables.
_REGISTERED: set[str] = set()

# user:password@ in a URL: the password is hidden whatever it is
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/@\s:]*):[^/@\s]*@")

_PURPOSE = {
    JENKINS_TOKEN: "a Jenkins API token (user menu > Security > API Token), with JENKINS_USER",
    GITHUB_TOKEN: "a GitHub token that may write commit statuses and issue comments",
}


def optional(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value, or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(name, "")
    return value or None


def require(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value; a missing one fails fast, by name, before any request is made."""
    value = optional(name, environ)
    if value is None:
        purpose = _PURPOSE.get(name, "a value")
        raise SecretMissingError(
            f"environment variable {name} is not set: set it to {purpose} (in Jenkins, bind it "
            f"from a credential with withCredentials; see docs/jenkins.md)."
        )
    return value


# What a subject inherits from the harness' environment: what programs need to run, locate
# themselves and format text, and nothing that could hold a credential. The experiment's
# [subject] env adds the rest explicitly.
_ALLOWED = ("PATH", "HOME", "USER", "USERNAME", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE",
            "TZ", "TMPDIR", "TEMP", "TMP", "VIRTUAL_ENV", "XDG_RUNTIME_DIR", "SSL_CERT_FILE",
            "SSL_CERT_DIR", "SYSTEMROOT", "SYSTEMDRIVE", "COMSPEC", "PATHEXT", "WINDIR",
            "APPDATA", "LOCALAPPDATA", "PROGRAMDATA", "PROGRAMFILES", "USERPROFILE",
            "NUMBER_OF_PROCESSORS", "PROCESSOR_ARCHITECTURE")
_ALLOWED_PREFIXES = ("LC_", "PYTHON", "COVERAGE_")  # locale, the interpreter's own, coverage.py


def subject_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The part of the harness' environment a subject (or setup command) inherits: an allow list,
    never a variable the harness reads a secret from, nor a value registered as secret."""
    env = os.environ if environ is None else environ
    secret_values = {v for v in _REGISTERED} | {env.get(n, "") for n in SECRET_VARIABLES}
    secret_values.discard("")
    out = {}
    for name, value in env.items():
        upper = name.upper()
        if upper in SECRET_VARIABLES or upper == JENKINS_USER or value in secret_values:
            continue
        if upper in _ALLOWED or upper.startswith(_ALLOWED_PREFIXES):
            out[name] = value
    return out


def register_secret(value: str) -> None:
    """Treat `value` as a secret from now on: redact() replaces it wherever it appears."""
    if len(value) >= _MIN_SECRET_LENGTH:
        _REGISTERED.add(value)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every secret value replaced by ***: the secret variables that are set, and
    the values given to register_secret(); longer values first, so no part of one survives."""
    env = os.environ if environ is None else environ
    values = {env.get(name, "") for name in SECRET_VARIABLES} | _REGISTERED
    for value in sorted((v for v in values if len(v) >= _MIN_SECRET_LENGTH), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    if "@" in text:
        text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
    return text
