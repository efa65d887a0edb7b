# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Strict validation of custom resources against the offline CRD schemas, CEL rules included.

The schemas live in `../shared/schemas/crds` (kubeconform layout, `index.json` maps
apiVersion/kind to a file and lists each CRD's `x-kubernetes-validations` rules). Objects
are closed: unknown fields are rejected. CEL rules are evaluated with the subset evaluator
in cel.py; transition rules (those reading `oldSelf`) apply to updates only and are skipped,
as the API server skips them on create.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from .cel import CelError, CelUnsupported, compile_rule, evaluate
from .k8s_schema import _path

__all__ = ["CrdValidator", "SchemaDirError"]


class SchemaDirError(ValueError):
    """The schema directory is missing or has no index.json."""


@dataclass
class _Rule:
    pointer: list[str]
    source: str
    message: str
    compiled: Any


@dataclass
class _Entry:
    file: Path
    rules: list[_Rule]
    validator: jsonschema.protocols.Validator | None = None


class CrdValidator:
    """Looks up a schema by apiVersion/kind and reports schema and CEL violations."""

    def __init__(self, directory: Path) -> None:
        index_file = directory / "index.json"
        if not index_file.is_file():
            raise SchemaDirError(
                f"CRD schemas not found: {index_file} is missing "
                "(pass --schemas DIR; CI keeps them in ../shared/schemas/crds)"
            )
        index = json.loads(index_file.read_text(encoding="utf-8"))
        self.unsupported_rules: list[str] = []
        self.entries: dict[tuple[str, str], _Entry] = {}
        for item in index.get("schemas", []):
            rules = []
            for rule in item.get("celRules", []):
                if "oldSelf" in rule["rule"]:
                    continue
                try:
                    compiled = compile_rule(rule["rule"])
                except CelUnsupported as exc:
                    self.unsupported_rules.append(f"{item['kind']}: {rule['rule']} ({exc})")
                    continue
                pointer = [p for p in rule["path"].split("/") if p]
                rules.append(_Rule(pointer, rule["rule"], rule.get("message") or rule["rule"], compiled))
            self.entries[(item["apiVersion"], item["kind"])] = _Entry(directory / item["file"], rules)

    def has_schema(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self.entries

    def errors(self, doc: dict[str, Any]) -> list[tuple[str, str]]:
        entry = self.entries[(str(doc.get("apiVersion")), str(doc.get("kind")))]
        if entry.validator is None:
            schema = json.loads(entry.file.read_text(encoding="utf-8"))
            entry.validator = jsonschema.validators.validator_for(schema)(schema)
        found = [(_path(e.absolute_path), e.message) for e in entry.validator.iter_errors(doc)]
        if found:
            return found
        for rule in entry.rules:
            for value, where in _select(doc, rule.pointer, ""):
                try:
                    ok = evaluate(rule.compiled, value)
                except CelError as exc:
                    found.append((where, f"CEL rule {rule.source!r} could not be evaluated: {exc}"))
                    continue
                except CelUnsupported as exc:
                    found.append((where, f"CEL rule {rule.source!r} is not checkable offline: {exc}"))
                    continue
                if not ok:
                    found.append((where, f"CEL: {rule.message}"))
        return found


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
