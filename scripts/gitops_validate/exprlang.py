# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The part of expr (github.com/antonmedv/expr v1.15.5) Argo Rollouts' analysis conditions use.

Argo Rollouts v1.8.3 evaluates a metric's successCondition and failureCondition with expr, with
`result` bound to the measurement (a Prometheus vector becomes a list of floats, an empty
vector an empty list) and the helpers isNaN, isInf, asInt, asFloat (utils/evaluate/evaluate.go
EvalCondition). This module implements that language's subset the validator needs to evaluate
such conditions offline: number, string, bool and nil literals; `result` and the helpers;
`len`; indexing; unary `!`/`not`/`-`; `* / %`, `+ -`; comparisons; `&&`/`and`, `||`/`or`
(short-circuit); parentheses. An index out of range is a run-time error, as in expr. Anything
else is refused at parse time (ExprUnsupported), so a condition the validator cannot read is
reported, never guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ExprError", "ExprUnsupported", "evaluate", "parse"]


class ExprError(ValueError):
    """The condition fails at run time (expr returns an error: the measurement is an Error)."""


class ExprUnsupported(ValueError):
    """The condition uses syntax outside the subset this module implements."""


_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<string>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!()\[\],]))"
)
_KEYWORDS = {"and": "&&", "or": "||", "not": "!"}
_BINARY = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokens(source: str) -> list[_Token]:
    out: list[_Token] = []
    position = 0
    while position < len(source):
        if source[position:].strip() == "":
            break
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:
            raise ExprUnsupported(f"unexpected {source[position:].strip()[:12]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        text = match.group(kind)
        if kind == "name" and text in _KEYWORDS:
            kind, text = "op", _KEYWORDS[text]
        out.append(_Token(kind, text))
    out.append(_Token("end", ""))
    return out


Node = tuple[Any, ...]


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self, text: str | None = None) -> _Token:
        token = self.tokens[self.index]
        if text is not None and token.text != text:
            raise ExprUnsupported(f"expected {text!r}, found {token.text or 'the end'!r}")
        self.index += 1
        return token

    def expression(self, floor: int = 0) -> Node:
        left = self.unary()
        while True:
            token = self.peek()
            level = _BINARY.get(token.text) if token.kind == "op" else None
            if level is None or level <= floor:
                return left
            self.take()
            left = ("binary", token.text, left, self.expression(level))

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.text in ("!", "-"):
            self.take()
            return ("unary", token.text, self.unary())
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while self.peek().text == "[":
            self.take("[")
            index = self.expression()
            self.take("]")
            node = ("index", node, index)
        return node

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "number":
            return ("literal", float(token.text) if any(c in token.text for c in ".eE") else int(token.text))
        if token.kind == "string":
            return ("literal", bytes(token.text[1:-1], "utf-8").decode("unicode_escape"))
        if token.kind == "name":
            if token.text in ("true", "false"):
                return ("literal", token.text == "true")
            if token.text == "nil":
                return ("literal", None)
            if self.peek().text == "(":
                self.take("(")
                args = []
                while self.peek().text != ")":
                    args.append(self.expression())
                    if self.peek().text == ",":
                        self.take(",")
                self.take(")")
                return ("call", token.text, tuple(args))
            return ("name", token.text)
        if token.text == "(":
            node = self.expression()
            self.take(")")
            return node
        raise ExprUnsupported(f"unexpected {token.text or 'end of the condition'!r}")


def parse(source: str) -> Node:
    """The condition's syntax tree; ExprUnsupported for anything outside the subset."""
    parser = _Parser(source)
    node = parser.expression()
    if parser.peek().kind != "end":
        raise ExprUnsupported(f"unexpected {parser.peek().text!r} after a complete condition")
    return node


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExprError(f"{what} needs a number, got {value!r}")
    return float(value)


def _len(value: Any) -> int:
    if not isinstance(value, (list, str, dict)):
        raise ExprError(f"invalid argument for len (type {type(value).__name__})")
    return len(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "isNaN": lambda v: math.isnan(_number(v, "isNaN")),
    "isInf": lambda v: math.isinf(_number(v, "isInf")),
    "asFloat": lambda v: _number(v, "asFloat"),
    "asInt": lambda v: int(_number(v, "asInt")),
}


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("==", "!="):
        equal = left == right
        return equal if op == "==" else not equal
    a, b = _number(left, op), _number(right, op)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _eval(node: Node, env: Mapping[str, Any]) -> Any:
    kind = node[0]
    if kind == "literal":
        return node[1]
    if kind == "name":
        if node[1] not in env:
            raise ExprError(f"unknown name {node[1]}")
        return env[node[1]]
    if kind == "call":
        function = FUNCTIONS.get(node[1])
        if function is None:
            raise ExprUnsupported(f"function {node[1]} is not in the subset the validator evaluates")
        return function(*(_eval(arg, env) for arg in node[2]))
    if kind == "index":
        target, index = _eval(node[1], env), _eval(node[2], env)
        if not isinstance(target, list) or isinstance(index, bool) or not isinstance(index, int):
            raise ExprError(f"cannot index {type(target).__name__} with {index!r}")
        if not -len(target) <= index < len(target):
            raise ExprError(f"index out of range: {index} (array length is {len(target)})")
        return target[index]
    if kind == "unary":
        value = _eval(node[2], env)
        if node[1] == "!":
            if not isinstance(value, bool):
                raise ExprError(f"invalid operation: ! {value!r}")
            return not value
        return -_number(value, "-")
    op = node[1]
    if op in ("&&", "||"):
        left = _eval(node[2], env)
        if not isinstance(left, bool):
            raise ExprError(f"invalid operation: {op} on {left!r}")
        if (op == "&&" and not left) or (op == "||" and left):
            return left
        right = _eval(node[3], env)
        if not isinstance(right, bool):
            raise ExprError(f"invalid operation: {op} on {right!r}")
        return right
    left, right = _eval(node[2], env), _eval(node[3], env)
    if op in ("==", "!=", "<", "<=", ">", ">="):
        return _compare(op, left, right)
    a, b = _number(left, op), _number(right, op)
    if op in ("/", "%") and b == 0:
        if op == "%":
            raise ExprError("integer divide by zero")
        return math.copysign(math.inf, a) if a else math.nan
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b, "%": math.fmod(a, b)}[op]


def evaluate(source: str, env: Mapping[str, Any]) -> Any:
    """Evaluate a condition with `env` (e.g. {"result": []}); ExprError for a run-time error."""
    return _eval(parse(source), env)
