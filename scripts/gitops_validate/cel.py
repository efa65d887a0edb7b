# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""CRD validation rules (x-kubernetes-validations) evaluated with cel-python, as the API server would.

The CEL itself is cel-python's (`celpy`): parser, macros (has, all, exists, exists_one, map,
filter), operators and the standard functions. This module adds what Kubernetes defines around
it (apiextensions-apiserver, Kubernetes 1.33):

- `self` is the value at the rule's schema node, typed by that schema: integer -> int,
  number -> double, string with format date-time/date -> timestamp, duration -> duration,
  x-kubernetes-int-or-string -> int or string as written; object properties are exposed under
  their escaped names (`__dash__`, `__dot__`, `__slash__`, `__underscores__`, `__<keyword>__`)
  while map keys (additionalProperties) stay as written.
- Rules that read `oldSelf` are transition rules: the API server evaluates them on updates only,
  so on create (what a GitOps validator models) they are skipped. With optionalOldSelf they would
  run on create with `oldSelf` as an optional none value; cel-python has no optional types.
- A rule calling a function neither cel-python nor this module provides (the Kubernetes
  extension libraries: strings, lists, regex, URLs, IP/CIDR, quantity, format, semver) is
  refused at compile time with CelUnsupported naming the function, so it is reported as not
  checkable offline instead of failing (or passing) at evaluation time. No rule of the CRDs the
  project ships calls one: they use has(), size(), startsWith(), comparisons and the ternary
  operator, all in cel-python's standard set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELFunction, CELUnsupportedError, base_functions

__all__ = [
    "CelError",
    "CelTransitionRule",
    "CelUnsupported",
    "CompiledRule",
    "compile_rule",
    "evaluate",
    "evaluate_message",
    "to_cel",
]


class CelError(ValueError):
    """The rule could not be evaluated on this object (e.g. it selects an absent field)."""


class CelUnsupported(ValueError):
    """The rule cannot be checked offline; the message says why."""


class CelTransitionRule(CelUnsupported):
    """The rule reads oldSelf: it applies to updates only and is skipped on create, as the API server does."""


# Macros cel-python expands itself (celpy.evaluation.Evaluator: ident_arg and member_dot_arg).
_MACROS = frozenset({"has", "dyn", "all", "exists", "exists_one", "map", "filter"})
# Functions callable from a rule: cel-python's standard set. Kubernetes extension functions
# would be registered in _EXTENSIONS (name -> implementation) when a shipped CRD needs one.
_EXTENSIONS: dict[str, CELFunction] = {}
_FUNCTIONS = frozenset(name for name in base_functions if name[0].isalpha()) | frozenset(_EXTENSIONS)

# CEL reserved words; a property with such a name is reachable as __<word>__ (Kubernetes escaping).
_RESERVED = frozenset(
    {
        *("true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function"),
        *("if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"),
    }
)
_ACCESSIBLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")

_ENV = celpy.Environment()


@dataclass(frozen=True)
class CompiledRule:
    source: str
    program: celpy.Runner


def _names(tree: lark.Tree[lark.Token]) -> tuple[set[str], set[str]]:
    """(functions called, free identifiers) of a parsed expression."""
    calls: set[str] = set()
    idents: set[str] = set()
    for node in tree.iter_subtrees():
        if node.data == "ident_arg":
            calls.add(str(node.children[0]))
        elif node.data == "member_dot_arg":
            calls.add(str(node.children[1]))
        elif node.data == "ident":
            idents.add(str(node.children[0]))
    return calls, idents


def compile_rule(source: str, *, optional_old_self: bool = False) -> CompiledRule:
    """Parse and check a rule once; raises CelUnsupported when it cannot be checked offline."""
    try:
        tree = _ENV.compile(source)
    except CELParseError as exc:
        raise CelUnsupported(f"cel-python cannot parse it: {str(exc).splitlines()[0]}") from exc
    calls, idents = _names(tree)
    if "oldSelf" in idents:
        if optional_old_self:
            raise CelUnsupported("reads oldSelf with optionalOldSelf (optional types are not in cel-python 0.5)")
        raise CelTransitionRule("transition rule (reads oldSelf): the API server evaluates it on updates only")
    unknown = sorted(calls - _MACROS - _FUNCTIONS)
    if unknown:
        raise CelUnsupported(
            f"calls {', '.join(unknown)}, not in cel-python's standard functions "
            "(a Kubernetes CEL extension library this validator does not implement)"
        )
    return CompiledRule(source, _ENV.program(tree, functions=_EXTENSIONS or None))


def escape_property(name: str) -> str | None:
    """The name CEL sees for an object property, or None when Kubernetes does not expose it."""
    if not _ACCESSIBLE.match(name):
        return None
    if name in _RESERVED:
        return f"__{name}__"
    escaped = name.replace("__", "__underscores__")
    return escaped.replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")


def to_cel(value: Any, schema: Mapping[str, Any] | None, defs: Mapping[str, Any] | None = None) -> Any:
    """A JSON value as the CEL value Kubernetes binds for this schema node."""
    schema = _resolve(schema or {}, defs or {})
    if value is None:
        return None
    if schema.get("x-kubernetes-int-or-string") or not schema:
        return json_to_cel(value)
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if kind == "number" and isinstance(value, int | float):
        return celtypes.DoubleType(float(value))
    if isinstance(value, str):
        return _string(value, schema.get("format"))
    if isinstance(value, list):
        items = schema.get("items")
        return celtypes.ListType([to_cel(item, items if isinstance(items, Mapping) else None, defs) for item in value])
    if isinstance(value, dict):
        return _object(value, schema, defs)
    return json_to_cel(value)


def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found = defs.get(ref.removeprefix("#/$defs/"))
        return found if isinstance(found, Mapping) else {}
    return schema


def _string(value: str, fmt: Any) -> Any:
    try:
        if fmt in ("date-time", "date"):
            return celtypes.TimestampType(value)
        if fmt == "duration":
            return celtypes.DurationType(value)
    except Exception:  # pendulum's parser errors: a value of the wrong format stays a string
        pass
    return celtypes.StringType(value)


def _object(value: dict[str, Any], schema: Mapping[str, Any], defs: Mapping[str, Any] | None) -> Any:
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    out = celtypes.MapType()
    for key, item in value.items():
        if isinstance(props, Mapping) and key in props:
            name = escape_property(key)
            if name is not None:
                out[celtypes.StringType(name)] = to_cel(item, props[key], defs)
        elif isinstance(extra, Mapping):
            out[celtypes.StringType(key)] = to_cel(item, extra, defs)
        else:
            out[celtypes.StringType(key)] = json_to_cel(item)
    return out


def _run(rule: CompiledRule, self_value: Any) -> Any:
    try:
        return rule.program.evaluate({"self": self_value})
    except CELEvalError as exc:
        raise CelError(str(exc.args[0]) if exc.args else str(exc)) from exc
    except CELUnsupportedError as exc:
        raise CelError(f"cel-python does not support this: {exc}") from exc
    except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
        raise CelError(f"{type(exc).__name__}: {exc}") from exc


def evaluate(rule: CompiledRule, self_value: Any) -> bool:
    """Evaluate a compiled rule with `self` bound to a CEL value (see to_cel)."""
    result = _run(rule, self_value)
    if not isinstance(result, celtypes.BoolType):
        raise CelError(f"the rule gave {type(result).__name__} {result!r}, not a boolean")
    return bool(result)


def evaluate_message(expression: CompiledRule, self_value: Any) -> str:
    """A messageExpression's text, for a failed rule."""
    result = _run(expression, self_value)
    if not isinstance(result, str):
        raise CelError(f"messageExpression gave {type(result).__name__}, not a string")
    return str(result)
