"""The metric names a PromQL expression reads, to check them against what PFI exports.

A dashboard panel or an alert rule that queries a metric nobody exports shows "no data"
or never fires, and nobody notices: that is how a drop-off goes unseen. There is no
maintained PromQL parser for Python, so this is a small lexer that knows enough of the
grammar to tell metric names from functions, keywords, label names, strings, durations
and Grafana variables. It errs on the side of reporting: an identifier it cannot place
is reported as a metric name, so a check built on it fails rather than passes wrongly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "atan2",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)
#: An aggregation written `sum by (a) (x)`: the word after its name.
_AGGREGATION_CLAUSE = frozenset({"by", "without"})
#: Keywords followed by a parenthesised list of label names.
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NUMBER = re.compile(r"[0-9.][0-9a-zA-Z_.]*(?:[eE][+-]?[0-9]+)?")
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*|\[\[[^\]]*\]\]")
_MATCHER = re.compile(
    r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*,?"
)


class PromQLSyntaxError(ValueError):
    """The expression is not PromQL this lexer can read (unbalanced brackets, bad matcher)."""


@dataclass
class QueriedNames:
    """Metric names read by an expression; regex `__name__` matchers kept apart."""

    names: set[str] = field(default_factory=set)
    name_patterns: set[str] = field(default_factory=set)


def metric_names(expr: str) -> QueriedNames:
    """The metric names `expr` reads (`__name__="x"` matchers included)."""
    out = QueriedNames()
    text = _GRAFANA_VAR.sub(" ", expr)
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch in "\"'`":
            i = _skip_string(text, i)
        elif ch == "{":
            i = _read_matchers(text, i, out)
        elif ch == "[":
            end = text.find("]", i)
            if end < 0:
                raise PromQLSyntaxError(f"unclosed '[' at offset {i} in {expr!r}")
            i = end + 1
        elif ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            match = _NUMBER.match(text, i)
            assert match is not None
            i = match.end()
        elif _IDENT.match(text, i):
            match = _IDENT.match(text, i)
            assert match is not None
            word, i = match.group(), match.end()
            nxt = _next_char(text, i)
            lowered = word.lower()
            if lowered in _GROUPING:
                if nxt == "(":
                    i = _skip_parens(text, text.index("(", i), expr)
            elif lowered in _KEYWORDS or nxt == "(" or _next_word(text, i) in _AGGREGATION_CLAUSE:
                continue  # keyword, function call, or `sum by (...) (...)`
            else:
                out.names.add(word)
        else:
            i += 1
    return out


def _next_word(text: str, i: int) -> str:
    while i < len(text) and text[i].isspace():
        i += 1
    match = _IDENT.match(text, i)
    return match.group().lower() if match else ""


def _next_char(text: str, i: int) -> str:
    while i < len(text) and text[i].isspace():
        i += 1
    return text[i] if i < len(text) else ""


def _skip_string(text: str, i: int) -> int:
    quote = text[i]
    j = i + 1
    while j < len(text):
        if text[j] == "\\" and quote != "`":
            j += 2
            continue
        if text[j] == quote:
            return j + 1
        j += 1
    raise PromQLSyntaxError(f"unclosed string starting at offset {i} in {text!r}")


def _skip_parens(text: str, i: int, expr: str) -> int:
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    raise PromQLSyntaxError(f"unclosed '(' at offset {i} in {expr!r}")


def _read_matchers(text: str, i: int, out: QueriedNames) -> int:
    j = i + 1
    while True:
        while j < len(text) and text[j].isspace():
            j += 1
        if j < len(text) and text[j] == "}":
            return j + 1
        match = _MATCHER.match(text, j)
        if not match:
            raise PromQLSyntaxError(f"cannot read the label matcher at offset {j} in {text!r}")
        label, op, quoted = match.groups()
        if label == "__name__":
            value = quoted[1:-1]
            (out.names if op == "=" else out.name_patterns).add(value)
        j = match.end()
