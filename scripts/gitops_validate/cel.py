# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small evaluator for the subset of CEL that CRD validation rules use.

It covers what the CRDs in ../shared/schemas/crds carry: field selection on `self`,
`has()`, `size()`, comparisons, `in`, `!`, `&&`, `||`, the ternary operator, string,
integer, boolean and list literals. Anything else raises CelUnsupported, and the caller
reports the rule as not checkable offline rather than guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CelError", "CelUnsupported", "compile_rule", "evaluate"]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>\d+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>\|\||&&|==|!=|<=|>=|[<>!?:().,\[\]+\-])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
)""",
    re.VERBOSE,
)


class CelError(ValueError):
    """The rule failed to evaluate (e.g. a field it selects is absent)."""


class CelUnsupported(ValueError):
    """The rule uses CEL this evaluator does not implement."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        match = _TOKEN.match(source, pos)
        if match is None:
            raise CelUnsupported(f"cannot read CEL at {source[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind)))
        pos = match.end()
    return tokens


Node = Callable[[Mapping[str, Any]], Any]


class _Missing:
    """Marks a selection whose field is absent, so has() can tell it from null."""


_MISSING = _Missing()


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos].text if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> _Token:
        if self.pos >= len(self.tokens):
            raise CelUnsupported("unexpected end of CEL expression")
        token = self.tokens[self.pos]
        if expected is not None and token.text != expected:
            raise CelUnsupported(f"expected {expected!r}, found {token.text!r}")
        self.pos += 1
        return token

    def parse(self) -> Node:
        node = self.ternary()
        if self.peek() is not None:
            raise CelUnsupported(f"unexpected {self.peek()!r}")
        return node

    def ternary(self) -> Node:
        cond = self.binary(0)
        if self.peek() != "?":
            return cond
        self.take("?")
        yes = self.ternary()
        self.take(":")
        no = self.ternary()
        return lambda env: yes(env) if _truth(cond(env)) else no(env)

    _LEVELS: tuple[tuple[str, ...], ...] = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"))

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in self._LEVELS[level]:
            op = self.take().text
            right = self.binary(level + 1)
            left = _binary(op, left, right)
        return left

    def unary(self) -> Node:
        if self.peek() == "!":
            self.take("!")
            inner = self.unary()
            return lambda env: not _truth(inner(env))
        if self.peek() == "-":
            self.take("-")
            inner = self.unary()
            return lambda env: -_value(inner(env))
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while self.peek() in (".", "["):
            if self.take().text == ".":
                name = self.take().text
                if self.peek() == "(":
                    raise CelUnsupported(f"method call .{name}() is not supported")
                node = _select(node, name)
            else:
                index = self.ternary()
                self.take("]")
                node = _index(node, index)
        return node

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "num":
            number = int(token.text)
            return lambda env: number
        if token.kind == "str":
            text = token.text[1:-1].encode().decode("unicode_escape")
            return lambda env: text
        if token.text == "(":
            node = self.ternary()
            self.take(")")
            return node
        if token.text == "[":
            items: list[Node] = []
            while self.peek() != "]":
                items.append(self.ternary())
                if self.peek() == ",":
                    self.take(",")
            self.take("]")
            return lambda env: [_value(item(env)) for item in items]
        if token.kind == "ident":
            return self.identifier(token.text)
        raise CelUnsupported(f"unexpected {token.text!r}")

    def identifier(self, name: str) -> Node:
        literals: dict[str, Any] = {"true": True, "false": False, "null": None}
        if name in literals:
            value = literals[name]
            return lambda env: value
        if name in ("has", "size") and self.peek() == "(":
            self.take("(")
            arg = self.ternary()
            self.take(")")
            return _has(arg) if name == "has" else _size(arg)
        if self.peek() == "(":
            raise CelUnsupported(f"function {name}() is not supported")
        return lambda env: _lookup(env, name)


def _lookup(env: Mapping[str, Any], name: str) -> Any:
    if name not in env:
        raise CelUnsupported(f"variable {name!r} is not available offline")
    return env[name]


def _value(result: Any) -> Any:
    if isinstance(result, _Missing):
        raise CelError("no such key")
    return result


def _truth(result: Any) -> bool:
    value = _value(result)
    if not isinstance(value, bool):
        raise CelError(f"expected a boolean, got {value!r}")
    return value


def _select(node: Node, name: str) -> Node:
    def run(env: Mapping[str, Any]) -> Any:
        base = _value(node(env))
        if not isinstance(base, Mapping):
            raise CelError(f"cannot select {name!r} from {type(base).__name__}")
        return base.get(name, _MISSING)

    return run


def _index(node: Node, index: Node) -> Node:
    def run(env: Mapping[str, Any]) -> Any:
        base = _value(node(env))
        key = _value(index(env))
        try:
            return base[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise CelError(f"no such key or index {key!r}") from exc

    return run


def _has(arg: Node) -> Node:
    return lambda env: not isinstance(arg(env), _Missing)


def _size(arg: Node) -> Node:
    def run(env: Mapping[str, Any]) -> int:
        value = _value(arg(env))
        if isinstance(value, str | list | dict):
            return len(value)
        raise CelError(f"size() of {type(value).__name__}")

    return run


def _binary(op: str, left: Node, right: Node) -> Node:
    if op == "||":
        return lambda env: _truth(left(env)) or _truth(right(env))
    if op == "&&":
        return lambda env: _truth(left(env)) and _truth(right(env))
    compare: dict[str, Callable[[Any, Any], Any]] = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "in": lambda a, b: a in b,
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
    }
    function = compare[op]

    def run(env: Mapping[str, Any]) -> Any:
        try:
            return function(_value(left(env)), _value(right(env)))
        except TypeError as exc:
            raise CelError(f"operator {op} on incompatible values") from exc

    return run


def compile_rule(rule: str) -> Node:
    """Parse a rule once; raises CelUnsupported for CEL outside the subset."""
    return _Parser(rule).parse()


def evaluate(rule: Node, self_value: Any) -> bool:
    """Evaluate a compiled rule with `self` bound; raises CelError when it cannot."""
    return _truth(rule({"self": self_value}))
