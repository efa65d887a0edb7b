# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Table tests for the validator's building blocks: substitution, quantities (CEL: test_gitops_cel.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.scripts.gitops_validate.flux import load_source_ignore
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.quantity import QuantityError, parse_quantity
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.render import Renderer
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


_CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  script: |\n{script}"
_KUSTOMIZATION = "{header}---\nresources:\n  - cm.yaml\n"


def _folder(root: Path, site: str, header: str, name: str = "same", script: str = "    echo\n") -> Path:
    folder = root / "sites" / site / "apps"
    folder.mkdir(parents=True)
    (folder / "kustomization.yaml").write_text(_KUSTOMIZATION.format(header=header), encoding="utf-8")
    (folder / "cm.yaml").write_text(_CONFIGMAP.format(name=name, script=script), encoding="utf-8")
    return folder


def test_folders_that_differ_in_a_leading_comment_share_one_build(tmp_path: Path) -> None:
    """new-site names the site in a generated header; the real kustomize builds such folders once."""
    renderer = Renderer()
    first = renderer.kustomize(_folder(tmp_path, "a", "# generated for a\n\n"))
    second = renderer.kustomize(_folder(tmp_path, "b", "# generated for b\n"))
    assert renderer.build_count == 1
    assert first == second
    assert first[0]["metadata"]["name"] == "same"


@pytest.mark.parametrize(
    ("name", "script"),
    [
        ("other", "    echo\n"),  # content after the header differs
        ("same", "    # a comment inside a value is content\n    echo\n"),
    ],
)
def test_folders_with_different_content_build_apart(tmp_path: Path, name: str, script: str) -> None:
    renderer = Renderer()
    renderer.kustomize(_folder(tmp_path, "a", "# a\n"))
    built = renderer.kustomize(_folder(tmp_path, "b", "# b\n", name=name, script=script))
    assert renderer.build_count == 2
    assert built[0]["metadata"]["name"] == name
    assert built[0]["data"]["script"] == script.replace("    ", "")
