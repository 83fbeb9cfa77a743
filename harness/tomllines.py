"""Where keys are in a TOML text: line numbers for messages, which tomllib does not report."""

from __future__ import annotations

import bisect
import re

KeyPath = tuple[str | int, ...]  # ("workload", "endpoints", 0, "path"): array items by index

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}#\n]+")


class KeyLines:
    """Line numbers of the keys, tables and array items of a TOML text (tomllib reports none).

    A small scanner over text that tomllib already accepted: it follows table headers, arrays of
    tables, dotted keys, inline tables and arrays, and skips strings and comments.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]
        self._tables_of_arrays: dict[KeyPath, int] = {}
        try:
            self._scan()
        except (IndexError, ValueError):
            pass  # a line number is a courtesy: keep what was found, never fail validation

    def line(self, path: KeyPath) -> int:
        """The line of the deepest known prefix of `path` (1 when none is known)."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def _mark(self, path: KeyPath, pos: int) -> None:
        """Record where `path` and every table above it first appear (setdefault: first wins)."""
        line = bisect.bisect_left(self._newlines, pos) + 1
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], line)

    def _skip(self, newlines: bool) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def _key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._skip(newlines=False)
            char = self.text[self.pos]
            if char in "\"'":
                end = self.text.index(char, self.pos + 1)
                parts.append(self.text[self.pos + 1:end])
                self.pos = end + 1
            else:
                match = _BARE_KEY.match(self.text, self.pos)
                if not match:
                    raise ValueError("not a key")
                parts.append(match.group(0))
                self.pos = match.end()
            self._skip(newlines=False)
            if self.text[self.pos] != ".":
                return parts
            self.pos += 1

    def _resolve(self, parts: list[str]) -> KeyPath:
        """A header's path, with the current index after each array of tables it goes through."""
        path: KeyPath = ()
        for part in parts:
            path = (*path, part)
            if path in self._tables_of_arrays:
                path = (*path, self._tables_of_arrays[path] - 1)
        return path

    def _scan(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip(newlines=True)
            if self.pos >= len(self.text):
                return
            start = self.pos
            if self.text.startswith("[[", start):
                self.pos += 2
                parts = self._key()
                array = (*self._resolve(parts[:-1]), parts[-1])
                index = self._tables_of_arrays.get(array, 0)
                self._tables_of_arrays[array] = index + 1
                table = (*array, index)
                self._mark(array, start)
                self._mark(table, start)
                self.pos = self.text.index("]]", self.pos) + 2
            elif self.text[start] == "[":
                self.pos += 1
                table = self._resolve(self._key())
                self._mark(table, start)
                self.pos = self.text.index("]", self.pos) + 1
            else:
                self._pair(table, start)

    def _pair(self, table: KeyPath, start: int) -> None:
        parts = self._key()
        self._mark((*table, *parts), start)
        self._skip(newlines=False)
        self.pos += 1  # "="
        self._skip(newlines=False)
        self._value((*table, *parts))

    def _value(self, path: KeyPath) -> None:
        text, pos = self.text, self.pos
        if text.startswith(('"""', "'''"), pos):
            quote = text[pos:pos + 3]
            end = pos + 3
            while not text.startswith(quote, end):
                end += 2 if quote == '"""' and text[end] == "\\" else 1
            self.pos = end + 3
            while self.pos < len(text) and text[self.pos] == quote[0]:
                self.pos += 1  # up to two quotes may end the string's content
        elif text[pos] == '"':
            end = pos + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            self.pos = end + 1
        elif text[pos] == "'":
            self.pos = text.index("'", pos + 1) + 1
        elif text[pos] == "[":
            self._array(path)
        elif text[pos] == "{":
            self._inline_table(path)
        else:
            match = _SCALAR.match(text, pos)
            self.pos = match.end() if match else pos + 1

    def _array(self, path: KeyPath) -> None:
        self.pos += 1
        index = 0
        while True:
            self._skip(newlines=True)
            if self.text[self.pos] == "]":
                self.pos += 1
                return
            self._mark((*path, index), self.pos)
            self._value((*path, index))
            index += 1
            self._skip(newlines=True)
            if self.text[self.pos] == ",":
                self.pos += 1

    def _inline_table(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            self._skip(newlines=True)
            if self.text[self.pos] == "}":
                self.pos += 1
                return
            self._pair(path, self.pos)
            self._skip(newlines=True)
            if self.text[self.pos] == ",":
                self.pos += 1
