"""harness.secrets: fail fast by name, and never let a token through."""

from __future__ import annotations

import pytest

from harness.errors import SecretMissingError
from harness.secrets import redact, require


def test_a_missing_secret_is_named():
    with pytest.raises(SecretMissingError, match="GITHUB_TOKEN"):
        require("GITHUB_TOKEN", environ={})


def test_an_empty_secret_counts_as_missing():
    with pytest.raises(SecretMissingError, match="JENKINS_TOKEN"):
        require("JENKINS_TOKEN", environ={"JENKINS_TOKEN": ""})


def test_redact_replaces_every_secret_value():
    env = {"GITHUB_TOKEN": "ghp_abcdef", "JENKINS_TOKEN": "11aa22bb", "HOME": "/root"}
    text = redact("auth ghp_abcdef and 11aa22bb at /root", environ=env)
    assert text == "auth *** and *** at /root"


def test_registered_values_are_redacted_too():
    from harness import secrets

    secrets.register_secret("hdr-s3cret-value")
    try:
        assert redact("X-Api-Key: hdr-s3cret-value", environ={}) == "X-Api-Key: ***"
    finally:
        secrets._REGISTERED.discard("hdr-s3cret-value")  # pylint: disable=protected-access
