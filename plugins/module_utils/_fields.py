# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Declarative field tables for documents the collection reads (the site catalog).

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

A document's shape is written once as a tree of `Field`s. The same tree checks a parsed
document (every problem, each naming the field path and the fix) and emits the JSON Schema
that editors and CI use, so the schema file can never disagree with the code that reads the
document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Field", "check", "json_schema"]

KINDS = ("string", "integer", "boolean", "object", "array", "map")


@dataclass(frozen=True)
class Field:
    """One key of a document: its type, constraints and a one-line description.

    kind: string, integer, boolean, object (fixed keys: `fields`), array (items: `items`),
    map (free keys, string values). `key_of` names, for an array of objects, the key that
    identifies an item in messages (spec.models[edgeslm-tiny] rather than spec.models[0]).
    """

    key: str
    kind: str
    doc: str
    required: bool = False
    default: Any = None
    enum: tuple[Any, ...] = ()
    const: Any = None
    pattern: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    min_items: int | None = None
    unique: bool = False
    fields: tuple[Field, ...] = ()
    items: Field | None = None
    key_of: str | None = None
    fix: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.key!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


def _hint(spec: Field) -> str:
    return f" ({spec.fix})" if spec.fix else ""


def _describe(spec: Field) -> str:
    if spec.const is not None:
        return f"must be {spec.const!r}"
    if spec.enum:
        return "must be one of " + ", ".join(str(v) for v in spec.enum)
    if spec.kind == "integer":
        bounds = []
        if spec.minimum is not None:
            bounds.append(f">= {spec.minimum}")
        if spec.maximum is not None:
            bounds.append(f"<= {spec.maximum}")
        return "must be an integer" + (" " + " and ".join(bounds) if bounds else "")
    if spec.kind == "string" and spec.pattern:
        return f"must be a string matching {spec.pattern}"
    article = "an" if spec.kind[0] in "aeiou" else "a"
    return f"must be {article} {spec.kind}"


def _check_scalar(spec: Field, value: Any, path: str, problems: list[str]) -> None:
    bad = f"{path}: {_describe(spec)}, got {value!r}{_hint(spec)}"
    if spec.kind == "string":
        if not isinstance(value, str):
            problems.append(bad)
            return
        if spec.pattern and not re.fullmatch(spec.pattern, value):
            problems.append(bad)
            return
    elif spec.kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(bad)
            return
        if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
            problems.append(bad)
            return
    elif spec.kind == "boolean" and not isinstance(value, bool):
        problems.append(bad)
        return
    if (spec.const is not None and value != spec.const) or (spec.enum and value not in spec.enum):
        problems.append(bad)


def _item_label(spec: Field, item: Any, index: int) -> str:
    if spec.key_of and isinstance(item, Mapping) and isinstance(item.get(spec.key_of), str):
        return str(item[spec.key_of])
    return str(index)


def check(spec: Field, value: Any, path: str, problems: list[str]) -> None:
    """Append one message per problem of `value` against `spec` to `problems`."""
    if spec.kind == "object":
        if not isinstance(value, Mapping):
            problems.append(f"{path}: must be a mapping, got {type(value).__name__}{_hint(spec)}")
            return
        known = {child.key: child for child in spec.fields}
        for key in value:
            if key not in known:
                problems.append(
                    f"{path}.{key}: unknown key; known keys here: {', '.join(sorted(known))}"
                    if path
                    else f"{key}: unknown key; known keys: {', '.join(sorted(known))}"
                )
        for child in spec.fields:
            child_path = f"{path}.{child.key}" if path else child.key
            if child.key not in value or value[child.key] is None:
                if child.required:
                    problems.append(f"{child_path}: is required ({child.doc}){_hint(child)}")
                continue
            check(child, value[child.key], child_path, problems)
    elif spec.kind == "array":
        if not isinstance(value, Sequence) or isinstance(value, str):
            problems.append(f"{path}: must be a list, got {type(value).__name__}{_hint(spec)}")
            return
        if spec.min_items is not None and len(value) < spec.min_items:
            problems.append(f"{path}: needs at least {spec.min_items} item(s){_hint(spec)}")
        if spec.unique:
            seen: set[str] = set()
            for item in value:
                marker = repr(item)
                if marker in seen:
                    problems.append(f"{path}: {item!r} is listed twice")
                seen.add(marker)
        if spec.items is None:  # the field table's own mistake, not the catalog's
            raise AssertionError(f"{path}: a list field without an item spec")
        for index, item in enumerate(value):
            check(spec.items, item, f"{path}[{_item_label(spec, item, index)}]", problems)
    elif spec.kind == "map":
        if not isinstance(value, Mapping):
            problems.append(f"{path}: must be a mapping of strings, got {type(value).__name__}{_hint(spec)}")
            return
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str):
                problems.append(f"{path}.{key}: keys and values must be strings, got {item!r}{_hint(spec)}")
    else:
        _check_scalar(spec, value, path, problems)


def json_schema(spec: Field) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12 vocabulary) equivalent to `spec`."""
    out: dict[str, Any] = {"description": spec.doc} if spec.doc else {}
    if spec.const is not None:
        out["const"] = spec.const
    elif spec.enum:
        out["enum"] = list(spec.enum)
    elif spec.kind == "object":
        out["type"] = "object"
        out["additionalProperties"] = False
        required = [child.key for child in spec.fields if child.required]
        if required:
            out["required"] = required
        out["properties"] = {child.key: json_schema(child) for child in spec.fields}
    elif spec.kind == "array":
        out["type"] = "array"
        if spec.min_items is not None:
            out["minItems"] = spec.min_items
        if spec.unique:
            out["uniqueItems"] = True
        if spec.items is None:  # the field table's own mistake
            raise AssertionError("a list field without an item spec")
        out["items"] = json_schema(spec.items)
    elif spec.kind == "map":
        out["type"] = "object"
        out["additionalProperties"] = {"type": "string"}
    else:
        out["type"] = spec.kind
        if spec.pattern:
            out["pattern"] = f"^(?:{spec.pattern})$"
        if spec.minimum is not None:
            out["minimum"] = spec.minimum
        if spec.maximum is not None:
            out["maximum"] = spec.maximum
    if spec.default is not None:
        out["default"] = spec.default
    out.update(spec.extra)
    return out
