"""docs/messages.md lists every error message the harness can raise."""

from __future__ import annotations

from tests.messages_doc import DOC, MIN_KEY, raise_sites


def test_every_raise_site_is_in_docs_messages():
    doc = DOC.read_text(encoding="utf-8")
    sites = raise_sites()
    assert len(sites) > 100  # the scan finds the raise sites (a broken scan would pass vacuously)
    missing = [f"{m.path}:{m.line}: {m.key!r}" for m in sites
               if len(m.key) >= MIN_KEY and m.key not in doc]
    assert not missing, ("docs/messages.md lacks these messages (python tests/messages_doc.py "
                         "--update drafts entries):\n" + "\n".join(missing))


def test_each_entry_says_cause_and_fix():
    doc = DOC.read_text(encoding="utf-8")
    entries = [block for block in doc.split("\n- ")[1:] if "  - where:" in block]
    assert entries
    for block in entries:
        assert "  - cause: " in block and "  - fix: " in block, block
