# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Table tests for the validator's building blocks: substitution, quantities (CEL: test_gitops_cel.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.scripts.gitops_validate.flux import load_source_ignore
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.quantity import QuantityError, parse_quantity
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.substitute import substitute


@pytest.mark.parametrize(
    ("text", "variables", "expected", "problems"),
    [
        ("host: ${SITE}", {"SITE": "lab"}, "host: lab", 0),
        ("host: ${SITE:=edge}", {}, "host: edge", 0),
        ("host: ${SITE:-edge}", {"SITE": "lab"}, "host: lab", 0),
        ("keep: $${SITE}", {"SITE": "lab"}, "keep: ${SITE}", 0),
        ("plain: $SITE", {}, "plain: $SITE", 0),
        ("host: ${SITE}", {}, "host: ${SITE}", 1),
        ("host: ${1SITE}", {}, "host: ${1SITE}", 1),
    ],
)
def test_substitute(text: str, variables: dict[str, str], expected: str, problems: int) -> None:
    out, found = substitute(text, variables)
    assert out == expected
    assert len(found) == problems


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1k", Decimal(1000)),
        (3, Decimal(3)),
    ],
)
def test_quantities(value: object, expected: Decimal) -> None:
    assert parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["", "2 Gi", "MODEL_MEMORY_LIMIT", "1.2.3", True, "-1"])
def test_bad_quantities(value: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(value)


def test_source_ignore(tmp_path: Path) -> None:
    (tmp_path / ".sourceignore").write_text("# comment\n/docs/\n*.md\n", encoding="utf-8")
    ignored = load_source_ignore(tmp_path)
    assert ignored(tmp_path / "docs" / "a.yaml")
    assert ignored(tmp_path / "apps" / "README.md")
    assert not ignored(tmp_path / "apps" / "docs.yaml")
    assert not ignored(tmp_path / "apps" / "sub" / "docs" / "x.yaml")
