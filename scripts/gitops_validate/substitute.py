# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Flux post-build variable substitution (`spec.postBuild`), done offline.

Flux replaces `${NAME}` and `${NAME:=default}` / `${NAME:-default}` in the rendered YAML;
`$${...}` escapes a literal `${...}`. Plain `$NAME` is left alone. Unlike Flux's default,
an undefined variable without a default is reported (Flux would silently insert "").
"""

from __future__ import annotations

import re

__all__ = ["VAR_PATTERN", "substitute"]

VAR_PATTERN = re.compile(r"\$(\$?)\{([^}]*)\}")
_NAME = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")


def substitute(text: str, variables: dict[str, str]) -> tuple[str, list[str]]:
    """The substituted text and the problems found (undefined or malformed variables)."""
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return "${" + match.group(2) + "}"
        body = match.group(2)
        name, default = body, None
        for separator in (":=", ":-"):
            if separator in body:
                name, default = body.split(separator, 1)
                break
        if not _NAME.match(name):
            problems.append(f"malformed variable ${{{body}}}")
            return match.group(0)
        if name in variables:
            return variables[name]
        if default is not None:
            return default
        problems.append(f"variable ${{{name}}} is not defined in postBuild.substitute/substituteFrom")
        return match.group(0)

    return VAR_PATTERN.sub(replace, text), problems
