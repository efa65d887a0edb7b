# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/node-image: the mirror comes from the machine's apt sources, the cache key from the recipe."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "node-image"


@pytest.fixture(scope="module")
def node_image() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("node_image", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_from_deb822(node_image: ModuleType, tmp_path: Path) -> None:
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(DEB822)
    assert node_image.machine_mirror(parts, tmp_path / "sources.list") == "http://mirror.example/debian"


def test_security_only_and_disabled_stanzas_are_skipped(node_image: ModuleType) -> None:
    text = (
        "Types: deb\nURIs: http://a.example/debian-security\nSuites: trixie-security\n\n"
        "Enabled: no\nTypes: deb\nURIs: http://b.example/debian\nSuites: trixie\n\n"
        "Types: deb-src\nURIs: http://c.example/debian\nSuites: trixie\n\n"
        "Types: deb\nURIs: http://d.example/debian/\nSuites: trixie\n"
    )
    assert node_image.mirrors_in_deb822(text) == ["http://d.example/debian/"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("deb http://m.example/debian bookworm main", ["http://m.example/debian"]),
        ("deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main", ["http://m.example/debian"]),
        ("deb http://security.example/debian-security bookworm-security main", []),
        ("deb http://m.example/debian bookworm-updates main", []),
        ("# deb http://m.example/debian bookworm main", []),
        ("deb-src http://m.example/debian bookworm main", []),
    ],
)
def test_mirror_from_one_line_sources(node_image: ModuleType, line: str, expected: list[str]) -> None:
    assert node_image.mirrors_in_one_line(line + "\n") == expected


def test_one_line_sources_list_is_the_fallback(node_image: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb http://old.example/debian bookworm main\n")
    assert node_image.machine_mirror(tmp_path / "none", tmp_path / "sources.list") == "http://old.example/debian"


def test_no_mirror_names_the_option(node_image: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--mirror"):
        node_image.machine_mirror(tmp_path, tmp_path / "sources.list")


def test_no_host_is_named_in_the_code() -> None:
    assert "deb.debian.org" not in SCRIPT.read_text()


def test_each_release_and_arch_has_its_own_cache_key(node_image: ModuleType) -> None:
    keys = {node_image.recipe_hash(r, a) for r in ("bookworm", "trixie") for a in ("amd64", "arm64")}
    assert len(keys) == 4
    assert node_image.recipe_hash("trixie", "arm64") == node_image.recipe_hash("trixie", "arm64")


def test_cache_key_follows_the_fixture(node_image: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    before = node_image.recipe_hash("bookworm", "amd64")
    digests = node_image.fixture_digests()
    monkeypatch.setattr(node_image, "fixture_digests", lambda: {**digests, "hw/new": "0" * 64})
    assert node_image.recipe_hash("bookworm", "amd64") != before


def test_release_shapes(node_image: ModuleType) -> None:
    assert node_image.RELEASES["trixie"].python == "3.13"
    assert node_image.RELEASES["trixie"].apt_layout == "deb822"
    assert node_image.RELEASES["bookworm"].python == "3.11"
    assert node_image.image_tag("arm64", "trixie") == "localhost/edgeslm-pi5-node:trixie-arm64"
    assert node_image.image_tag("amd64") == "localhost/edgeslm-pi5-node:bookworm-amd64"


def test_write_apt_sources_deb822(node_image: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "etc/apt").mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list").write_text("deb http://m.example/debian trixie main\n")
    node_image.write_apt_sources(tmp_path, node_image.RELEASES["trixie"], "http://m.example/debian")
    assert not (tmp_path / "etc/apt/sources.list").exists()
    text = (tmp_path / "etc/apt/sources.list.d/debian.sources").read_text()
    assert node_image.mirrors_in_deb822(text) == ["http://m.example/debian"]
    assert "Suites: trixie trixie-updates" in text
