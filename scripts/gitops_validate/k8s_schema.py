# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Strict validation of built-in kinds with the schemas kubernetes-validate ships.

kubernetes-validate's own `validate()` re-reads its 1.5 MB definitions file for every
object; this module loads the strict schema set of one Kubernetes minor once and keeps a
compiled validator per kind, using the package's files and layout unchanged.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

__all__ = ["BuiltinValidator", "NoBuiltinSchema"]


class NoBuiltinSchema(LookupError):
    """kubernetes-validate has no schema for this apiVersion/kind (a custom resource)."""


def _schema_root() -> Path:
    return Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


class BuiltinValidator:
    """Validates built-in objects against `v<minor>.0-local-strict` schemas."""

    def __init__(self, minor: str) -> None:
        self.minor = minor
        self.directory = _schema_root() / f"v{minor}.0-local-strict"
        if not self.directory.is_dir():
            raise ValueError(
                f"kubernetes-validate {kubernetes_validate.version.__version__} has no schemas for {minor}"
            )
        definitions = json.loads((self.directory / "_definitions.json").read_text(encoding="utf-8"))
        self.registry: Registry[Any] = Resource.from_contents(definitions) @ Registry()
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
        self._lock = threading.Lock()

    def has_schema(self, api_version: str, kind: str) -> bool:
        return self._schema_path(api_version, kind).is_file()

    def _schema_path(self, api_version: str, kind: str) -> Path:
        short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        return self.directory / f"{kind.lower()}-{short}.json"

    def _validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator:
        """One compiled validator per kind, kept for the run (bounded by the kinds in use)."""
        key = (api_version, kind)
        with self._lock:
            found = self._validators.get(key)
        if found is not None:
            return found
        path = self._schema_path(api_version, kind)
        if not path.is_file():
            raise NoBuiltinSchema(f"{api_version} {kind}")
        schema = json.loads(path.read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
        with self._lock:
            return self._validators.setdefault(key, validator)

    def errors(self, doc: dict[str, Any]) -> list[tuple[str, str]]:
        """(field path, message) for every schema violation of a built-in object."""
        validator = self._validator(str(doc.get("apiVersion")), str(doc.get("kind")))
        found = []
        for error in validator.iter_errors(doc):
            found.append((_path(error.absolute_path), _short(error.message)))
        return found


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(message: str) -> str:
    return message if len(message) <= 300 else message[:297] + "..."
