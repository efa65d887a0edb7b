# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Strict validation of custom resources against the project's CRD schemas, CEL rules included.

The schemas live next to this module in `schemas/crds` (generated from the upstream CRDs by
scripts/gen-crd-schemas; `index.json` maps apiVersion/kind to a file and lists each CRD's
`x-kubernetes-validations` rules, `sources.json` where each came from). A custom resource is
checked the way the API server checks a create with strict field validation:

1. defaults of the schema are applied (structural defaulting happens before validation);
2. the object is validated against the closed schema: an unknown field at any level, the
   document root included, is refused, and metadata is checked as ObjectMeta;
3. lists typed x-kubernetes-list-type set/map must not repeat an item or a key;
4. when 2 and 3 found nothing, every CEL rule is evaluated (cel.py) on each value its schema
   path selects. Rules that cannot be checked offline (transition rules, functions no CEL
   library here provides) are listed in `unsupported_rules` with the reason.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from .cel import (
    CelError,
    CelTransitionRule,
    CelUnsupported,
    CompiledRule,
    compile_rule,
    evaluate,
    evaluate_message,
    to_cel,
)
from .k8s_schema import _path

__all__ = ["DEFAULT_SCHEMAS", "CrdValidator", "SchemaDirError", "apply_defaults"]

DEFAULT_SCHEMAS = Path(__file__).resolve().parent / "schemas" / "crds"


class SchemaDirError(ValueError):
    """The schema directory is missing or has no index.json."""


@dataclass
class _Rule:
    pointer: list[str]
    source: str
    message: str
    field_path: str
    compiled: CompiledRule
    message_expression: CompiledRule | None


@dataclass
class _Entry:
    file: Path
    rules: list[_Rule]
    schema: dict[str, Any] | None = None
    validator: jsonschema.protocols.Validator | None = None


class CrdValidator:
    """Looks up a schema by apiVersion/kind and reports schema, list and CEL violations."""

    def __init__(self, directory: Path = DEFAULT_SCHEMAS) -> None:
        index_file = directory / "index.json"
        if not index_file.is_file():
            raise SchemaDirError(
                f"CRD schemas not found: {index_file} is missing "
                f"(pass --schemas DIR, a directory written by scripts/gen-crd-schemas; default {DEFAULT_SCHEMAS})"
            )
        index = json.loads(index_file.read_text(encoding="utf-8"))
        self.directory = directory
        # Rules not evaluated: transition rules (update-only, skipped on create as the API server
        # does) and rules this validator cannot evaluate offline (reported as notes by the CLI).
        self.update_only_rules: list[str] = []
        self.unsupported_rules: list[str] = []
        self.entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()
        for item in index.get("schemas", []):
            rules = []
            for rule in item.get("celRules", []):
                where = f"{item['apiVersion']} {item['kind']} {_pointer_text(rule['path'])}"
                try:
                    compiled = compile_rule(rule["rule"], optional_old_self=bool(rule.get("optionalOldSelf")))
                except CelTransitionRule as exc:
                    self.update_only_rules.append(f"{where}: {rule['rule']!r}: {exc}")
                    continue
                except CelUnsupported as exc:
                    self.unsupported_rules.append(f"{where}: {rule['rule']!r}: {exc}")
                    continue
                expression = None
                if rule.get("messageExpression"):
                    try:
                        expression = compile_rule(rule["messageExpression"])
                    except CelUnsupported:
                        expression = None  # the API server falls back to message as well
                rules.append(
                    _Rule(
                        _pointer(rule["path"]),
                        rule["rule"],
                        rule.get("message") or f"failed rule: {rule['rule']}",
                        str(rule.get("fieldPath") or ""),
                        compiled,
                        expression,
                    )
                )
            self.entries[(item["apiVersion"], item["kind"])] = _Entry(directory / item["file"], rules)

    def has_schema(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self.entries

    def _load(self, entry: _Entry) -> tuple[dict[str, Any], jsonschema.protocols.Validator]:
        with self._lock:
            if entry.schema is None or entry.validator is None:
                schema = json.loads(entry.file.read_text(encoding="utf-8"))
                entry.validator = jsonschema.Draft202012Validator(schema)
                entry.schema = schema
            return entry.schema, entry.validator

    def errors(self, doc: dict[str, Any]) -> list[tuple[str, str]]:
        """(field path, message) for every violation; CEL rules run only on an otherwise valid object."""
        entry = self.entries[(str(doc.get("apiVersion")), str(doc.get("kind")))]
        schema, validator = self._load(entry)
        defs = schema.get("$defs") or {}
        obj = apply_defaults(doc, schema, defs)
        found: list[tuple[str, str]] = []
        for error in validator.iter_errors(obj):
            found.extend(_schema_problem(error))
        if found:
            return found
        found.extend(_list_problems(obj, schema, defs, ""))
        if found:
            return found
        for rule in entry.rules:
            node = _schema_at(schema, rule.pointer, defs)
            for value, where in _select(obj, rule.pointer, ""):
                self_value = to_cel(value, node, defs)
                try:
                    ok = evaluate(rule.compiled, self_value)
                except CelError as exc:
                    found.append((where, f"CEL rule {rule.source!r} could not be evaluated: {exc}"))
                    continue
                if not ok:
                    found.append((where + rule.field_path, f"CEL: {_message(rule, self_value)}"))
        return found


def _message(rule: _Rule, self_value: Any) -> str:
    if rule.message_expression is not None:
        try:
            text = evaluate_message(rule.message_expression, self_value)
        except CelError:
            return rule.message
        if text.strip():
            return text
    return rule.message


def _pointer(text: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in text.split("/") if p]


def _pointer_text(text: str) -> str:
    parts = _pointer(text)
    out = ""
    for index, part in enumerate(parts):
        if part == "items":
            out += "[*]"
        elif part == "additionalProperties":
            out += ".*"
        elif index > 0 and parts[index - 1] == "properties":
            out += f".{part}" if out else part
    return out or "(root)"


def _schema_problem(error: Any) -> Iterator[tuple[str, str]]:
    where = _path(error.absolute_path)
    if (
        error.validator == "additionalProperties"
        and error.validator_value is False
        and isinstance(error.instance, dict)
    ):
        known = error.schema.get("properties") or {}
        for key in error.instance:
            if key not in known:
                field = f"{where}.{key}" if where else str(key)
                yield field, f"{key!r} was unexpected: an unknown field, refused by strict field validation"
        return
    if error.validator == "pattern" and where.startswith("metadata"):
        yield where, _metadata_syntax(where, error)
        return
    message = error.message
    yield where, message if len(message) <= 300 else message[:297] + "..."


_SUBDOMAIN = "lower case alphanumerics, '-' or '.', starting and ending with an alphanumeric, at most 253"
_LABEL = "lower case alphanumerics or '-', starting and ending with an alphanumeric, at most 63"
_QUALIFIED = (
    "an optional DNS subdomain prefix and '/', then at most 63 of [-A-Za-z0-9_.] starting and ending alphanumeric"
)


def _metadata_syntax(where: str, error: Any) -> str:
    """ObjectMeta syntax errors worded like the API server's, not as a regular expression."""
    value = error.instance
    if "propertyNames" in error.absolute_schema_path:
        what = "label" if where.endswith("labels") else "annotation"
        return f"{what} key {value!r} is not a qualified name ({_QUALIFIED})"
    if where == "metadata.name":
        return f"{value!r} is not a lowercase RFC 1123 subdomain ({_SUBDOMAIN})"
    if where == "metadata.namespace":
        return f"{value!r} is not a lowercase RFC 1123 label ({_LABEL})"
    if where.startswith("metadata.labels."):
        return f"label value {value!r} is not empty nor at most 63 of [-A-Za-z0-9_.] starting and ending alphanumeric"
    return f"{value!r} is not a qualified name ({_QUALIFIED})"


def _resolve(schema: Any, defs: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(schema, Mapping):
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"))
        return target if isinstance(target, Mapping) else {}
    return schema


def _child(schema: Mapping[str, Any], key: str, defs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    props = schema.get("properties")
    if isinstance(props, Mapping) and key in props:
        return _resolve(props[key], defs)
    extra = schema.get("additionalProperties")
    return _resolve(extra, defs) if isinstance(extra, Mapping) else None


def apply_defaults(value: Any, schema: Any, defs: Mapping[str, Any]) -> Any:
    """A copy of value with the schema's defaults filled in where a field is absent."""
    schema = _resolve(schema, defs)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = _child(schema, key, defs)
            out[key] = apply_defaults(item, sub, defs) if sub else item
        props = schema.get("properties")
        if isinstance(props, Mapping):
            for key, sub in props.items():
                if key not in out and isinstance(sub, Mapping) and "default" in sub:
                    out[key] = apply_defaults(copy.deepcopy(sub["default"]), sub, defs)
        return out
    if isinstance(value, list):
        items = schema.get("items")
        return [apply_defaults(item, items, defs) for item in value] if isinstance(items, Mapping) else list(value)
    return value


def _list_problems(value: Any, schema: Any, defs: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    """Repeated items of x-kubernetes-list-type set lists and repeated keys of map lists."""
    schema = _resolve(schema, defs)
    if isinstance(value, dict):
        for key, item in value.items():
            sub = _child(schema, str(key), defs)
            if sub:
                yield from _list_problems(item, sub, defs, f"{where}.{key}" if where else str(key))
        return
    if not isinstance(value, list):
        return
    items = _resolve(schema.get("items"), defs)
    list_type = schema.get("x-kubernetes-list-type")
    seen: set[str] = set()
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if list_type == "set":
            key = json.dumps(item, sort_keys=True)
            if key in seen:
                yield at, f"Duplicate value: {key}"
            seen.add(key)
        elif list_type == "map" and isinstance(item, dict):
            names = schema.get("x-kubernetes-list-map-keys") or []
            props = items.get("properties") or {}
            keys = {n: item.get(n, (props.get(n) or {}).get("default")) for n in names}
            text = json.dumps(keys, sort_keys=True)
            if text in seen:
                yield at, f"Duplicate value: {text}"
            seen.add(text)
        if items:
            yield from _list_problems(item, items, defs, at)


def _schema_at(schema: Mapping[str, Any], pointer: list[str], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    node: Any = schema
    for part in pointer:
        node = _resolve(node, defs).get(part) if isinstance(node, Mapping) else None
    return _resolve(node, defs)


def _select(value: Any, pointer: list[str], where: str) -> Iterator[tuple[Any, str]]:
    """Object values addressed by a schema pointer (properties/<k>, items, additionalProperties)."""
    if not pointer:
        yield value, where
        return
    head = pointer[0]
    if head == "properties" and len(pointer) > 1:
        key = pointer[1]
        if isinstance(value, dict) and key in value:
            yield from _select(value[key], pointer[2:], f"{where}.{key}" if where else key)
    elif head == "items" and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _select(item, pointer[1:], f"{where}[{index}]")
    elif head == "additionalProperties" and isinstance(value, dict):
        for key, item in value.items():
            yield from _select(item, pointer[1:], f"{where}.{key}")
