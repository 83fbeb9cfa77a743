"""docs/messages.md and the raise sites it must cover (used by tests/test_messages.py).

Every `raise SomethingError("...")` in harness/ (and every experiment problem reported through
`problems.add`) is one message. Its *key* is the longest fixed piece of its text (the parts
between the variable ones); docs/messages.md must contain each key. To add entries for new
messages, run `python tests/messages_doc.py --update`: it appends a drafted entry (message, cause,
fix, taken apart from the message itself) for each missing one, to be checked by hand.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "messages.md"
GAP = "…"
MIN_KEY = 10  # shorter fixed pieces say too little to find (wrappers that quote another message)


@dataclass(frozen=True)
class Message:
    path: str  # harness/x.py
    line: int
    kind: str  # the exception class, or "problem" for an experiment problem
    text: str  # the message with … for the variable parts

    @property
    def key(self) -> str:
        pieces = [p.strip() for p in self.text.replace("\n", " ").split(GAP)]
        return max(pieces, key=len) if pieces else ""


def _text(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else GAP for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return GAP


def raise_sites(package: Path = ROOT / "harness") -> list[Message]:
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name.endswith("Error") and node.exc.args:
                    found.append(Message(relative, node.lineno, name, _text(node.exc.args[0])))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "add" and isinstance(node.func.value, ast.Name)
                  and node.func.value.id == "problems" and len(node.args) == 2):
                found.append(Message(relative, node.lineno, "problem", _text(node.args[1])))
    return sorted(found, key=lambda m: (m.path, m.line))


def documented(message: Message, doc: str) -> bool:
    """Whether the doc covers the message (wrappers with no usable fixed text always are)."""
    return len(message.key) < MIN_KEY or message.key in doc


def _split(text: str) -> tuple[str, str]:
    """(what happened, how to fix it) from a message that ends with its fix."""
    flat = " ".join(text.split())
    match = re.search(r"\(([^()]*)\)\.?$", flat)
    if match and len(match.group(1)) > 2:
        return flat[:match.start()].strip(" .;:"), match.group(1)
    parts = re.split(r"; |(?<!e\.g)(?<!i\.e)\. ", flat)
    if len(parts) > 1:
        return flat[:len(flat) - len(parts[-1])].strip(" .;:"), parts[-1].strip(" .")
    return flat.strip(" ."), "see the message: it names the file, value or service involved"


def entry(message: Message) -> str:
    cause, fix = _split(message.text)
    flat = " ".join(message.text.split())
    return (f"- {flat}\n  - where: {message.path} ({message.kind})\n"
            f"  - cause: {cause}\n  - fix: {fix}\n")


def render(messages: list[Message]) -> str:
    out = []
    current = None
    for message in messages:
        if message.path != current:
            current = message.path
            out.append(f"\n## {current}\n")
        out.append(entry(message))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    missing = [m for m in raise_sites() if not documented(m, doc)]
    for m in missing:
        print(f"{m.path}:{m.line}: not in docs/messages.md: {m.key!r}")
    if "--update" in argv and missing:
        DOC.write_text(doc.rstrip("\n") + "\n\n## Not yet sorted\n\n"
                       + "\n".join(entry(m) for m in missing), encoding="utf-8")
    return 1 if missing and "--update" not in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
