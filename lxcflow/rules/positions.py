"""Where things are in a rules file: tomllib gives values without positions,
so a light scan of the text finds the line of each rule's keys and of each
element of its arrays, for the error messages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADER_RE = re.compile(r"\s*\[\[\s*rule\s*\]\]")
_SUBTABLE_RE = re.compile(r"\s*\[\s*rule\s*\.\s*([A-Za-z0-9_-]+)\s*\]")
_TABLE_RE = re.compile(r"\s*\[")
_KEY_RE = re.compile(r"\s*([A-Za-z0-9_-]+(?:\s*\.\s*[A-Za-z0-9_-]+)*)\s*=")


@dataclass
class Positions:
    """Where each ``[[rule]]`` starts and where its keys are, by a line scan."""

    text: list[str]
    headers: list[int] = field(default_factory=list)  # 1-based line of each [[rule]]
    keys: list[dict[str, int]] = field(default_factory=list)
    top: dict[str, int] = field(default_factory=dict)  # keys and tables outside any rule

    @classmethod
    def scan(cls, text: str) -> Positions:
        out = cls(text.splitlines())
        prefix: str | None = None  # None: outside any [[rule]]
        in_string: str | None = None  # inside a multi-line string: its delimiter
        for number, line in enumerate(out.text, 1):
            if in_string is not None:
                if line.count(in_string) % 2:
                    in_string = None
                continue
            if _HEADER_RE.match(line):
                out.headers.append(number)
                out.keys.append({})
                prefix = ""
            elif m := _SUBTABLE_RE.match(line):
                if out.keys:
                    out.keys[-1].setdefault(m[1], number)
                    prefix = f"{m[1]}."
                else:
                    out.top.setdefault("rule", number)
            elif _TABLE_RE.match(line):
                name = re.sub(r"\s", "", line.strip().strip("[]"))
                out.top.setdefault(name.split(".")[0], number)
                prefix = None
            elif m := _KEY_RE.match(line):
                key = re.sub(r"\s", "", m[1])
                if prefix is None:
                    out.top.setdefault(key.split(".")[0], number)
                else:
                    out.keys[-1].setdefault(prefix + key, number)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2:
                    in_string = quote
        return out

    def line_of(self, index: int, key: str | None) -> int:
        """The line of ``key`` in rule ``index`` (its header if unknown)."""
        if index >= len(self.headers):
            return 1
        keys = self.keys[index]
        line = self.headers[index]
        if key is not None:
            line = keys.get(key, keys.get(key.split(".")[0], line))
        return line

    def element_lines(self, index: int, key: str) -> list[int]:
        """The line of each element of the array ``key`` of rule ``index``."""
        start = self.keys[index].get(key) if index < len(self.keys) else None
        return _element_lines(self.text, start) if start is not None else []


def _element_lines(text: list[str], start: int) -> list[int]:
    """Where each element of the array assigned on line ``start`` begins: a
    small TOML tokenizer (strings, comments, nesting), enough for positions."""
    out: list[int] = []
    depth, quote, expecting = 0, "", False
    for number in range(start, len(text) + 1):
        line = text[number - 1]
        i = line.index("=") + 1 if number == start else 0
        while i < len(line):
            ch = line[i]
            if quote:
                if line.startswith(quote, i):
                    i, quote = i + len(quote), ""
                else:
                    i += 2 if ch == "\\" and quote[0] == '"' else 1
                continue
            if ch == "#":
                break
            opens = ch in "\"'[{"
            if depth == 1 and expecting and (opens or not (ch.isspace() or ch in ",]")):
                out.append(number)
                expecting = False
            if ch in "\"'":
                quote = line[i:i + 3] if line[i:i + 3] in ('"""', "'''") else ch
                i += len(quote)
                continue
            if ch in "[{":
                depth += 1
                expecting = depth == 1
            elif ch in "]}":
                depth -= 1
                if depth == 0:
                    return out
            elif ch == "," and depth == 1:
                expecting = True
            i += 1
    return out
