# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Model staging: fetch into an incoming folder, verify, publish by rename, rotate, refuse cleanly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _digest
from ansible_collections.edgeslm.pi5.plugins.module_utils._gguf import read_gguf
from ansible_collections.edgeslm.pi5.plugins.module_utils._model_stage import (
    StageError,
    StageRequest,
    model_from_mapping,
    stage,
    version_path,
)
from ansible_collections.edgeslm.pi5.tests.unit.gguf_factory import PRESETS, write_model


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three real GGUF files: the versions of one model a catalog moves through."""
    root = tmp_path_factory.mktemp("store")
    return {
        preset: write_model(root / f"edgeslm-tiny-{preset}.gguf", PRESETS[preset])
        for preset in ("llama-tiny", "qwen2-tiny", "gemma2-tiny")
    }


def entry(path: Path, **overrides: Any) -> dict[str, Any]:
    """What the site_models filter gives for a model whose source is `path`."""
    data = path.read_bytes()
    item: dict[str, Any] = {
        "name": "edgeslm-tiny",
        "file": "edgeslm-tiny.gguf",
        "format": "gguf",
        "url": f"file://{path}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "runtime": "llamacpp",
        "memory_runtime": "llama.cpp",
        "fit_target": "pi5-8gb",
        "context_length": 512,
        "parallel": 1,
        "kv_cache_type": "f16",
        "batch_size": 512,
        "flash_attention": False,
        "mmap": True,
        "description": read_gguf(path).description(),
    }
    item.update(overrides)
    return item


def run(models: Path, item: dict[str, Any], **options: Any) -> Any:
    return stage(StageRequest(directory=str(models), model=model_from_mapping(item), min_free_bytes=0, **options))


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def test_stage_publish_and_rerun_without_hashing(tmp_path: Path, store: dict[str, Path]) -> None:
    item = entry(store["llama-tiny"])
    first = run(tmp_path, item)
    sha = item["sha256"]
    home = tmp_path / "edgeslm-tiny"
    assert first.changed
    assert (home / "current").readlink() == Path(sha)
    assert (home / sha / "edgeslm-tiny.gguf").read_bytes() == store["llama-tiny"].read_bytes()
    assert not list(home.glob(".*.incoming")), "the incoming folder was renamed into the version"
    assert first.hashed and first.entry["fits"] and first.entry["previous"] == ""
    assert first.entry["quantization"]
    # The cache record (xattr, or the sidecar _digest names) came along with the rename.
    final = home / sha / "edgeslm-tiny.gguf"
    record = _digest.read_cache(str(final), final.stat())
    assert record is not None and record.sha256 == sha
    second = run(tmp_path, item)
    assert not second.changed and second.actions == []
    assert not second.hashed
    assert second.entry == first.entry


def test_an_airgap_copy_wins_over_the_url_and_lands_where_version_path_says(
    tmp_path: Path, store: dict[str, Path]
) -> None:
    """The node-side airgap directory (where the action puts the controller's copy) beats the URL."""
    airgap = tmp_path / "airgap"
    airgap.mkdir()
    (airgap / "edgeslm-tiny.gguf").write_bytes(store["qwen2-tiny"].read_bytes())
    item = entry(store["qwen2-tiny"], url="https://unreachable.invalid/edgeslm-tiny.gguf")
    result = run(tmp_path / "models", item, airgap_dir=str(airgap))
    assert result.changed and result.fetch["origin"] == "airgap"
    published = Path(version_path(str(tmp_path / "models"), "edgeslm-tiny", item["sha256"], "edgeslm-tiny.gguf"))
    assert published.read_bytes() == store["qwen2-tiny"].read_bytes()
    assert (published.parent.parent / "current" / "edgeslm-tiny.gguf").resolve() == published.resolve()


def test_rotation_keeps_previous_and_prunes_older(tmp_path: Path, store: dict[str, Path]) -> None:
    shas = []
    for preset in ("llama-tiny", "qwen2-tiny", "gemma2-tiny"):
        item = entry(store[preset])
        shas.append(item["sha256"])
        result = run(tmp_path, item)
        os.utime(tmp_path / "edgeslm-tiny" / item["sha256"], (1e9 + len(shas), 1e9 + len(shas)))
    home = tmp_path / "edgeslm-tiny"
    assert (home / "current").readlink() == Path(shas[2])
    assert (home / "previous").readlink() == Path(shas[1])
    assert sorted(p.name for p in home.iterdir() if p.is_dir() and not p.is_symlink()) == sorted(shas[1:])
    assert result.entry["kept_versions"] == [shas[2], shas[1]]
    assert f"pruned {shas[0]}" in result.actions
    # Rollback: the catalog goes back one version; only the links move.
    back = run(tmp_path, entry(store["qwen2-tiny"]))
    assert (home / "current").readlink() == Path(shas[1])
    assert (home / "previous").readlink() == Path(shas[2])
    assert back.fetch == {} and not back.hashed


def test_misfit_is_refused_before_the_download(tmp_path: Path, store: dict[str, Path]) -> None:
    item = entry(store["llama-tiny"], fit_target="pi5-2gb", context_length=4_194_304)
    with pytest.raises(StageError, match=r"cannot be served on pi5-2gb \(from the catalog's description\)") as info:
        run(tmp_path, item)
    assert "Nothing was published" in str(info.value)
    assert not (tmp_path / "edgeslm-tiny").exists()


def test_a_file_that_contradicts_the_catalog_is_removed(tmp_path: Path, store: dict[str, Path]) -> None:
    """Without a catalog description to pre-check, the file's own metadata refuses it after the fetch."""
    item = entry(store["llama-tiny"], fit_target="pi5-2gb", context_length=65536, parallel=64, description={})
    with pytest.raises(StageError, match="from the file's metadata"):
        run(tmp_path, item)
    assert not (tmp_path / "edgeslm-tiny").exists()


def test_checksum_mismatch_leaves_nothing_and_keeps_current(tmp_path: Path, store: dict[str, Path]) -> None:
    good = entry(store["llama-tiny"])
    run(tmp_path, good)
    bad = entry(store["qwen2-tiny"], sha256="ab" * 32)
    with pytest.raises(StageError, match="Nothing was published and the current version stays"):
        run(tmp_path, bad)
    home = tmp_path / "edgeslm-tiny"
    assert (home / "current").readlink() == Path(good["sha256"])
    assert files(home) == sorted(["current", f"{good['sha256']}/edgeslm-tiny.gguf", *_sidecars(home, good)])


def _sidecars(home: Path, item: dict[str, Any]) -> list[str]:
    final = home / item["sha256"] / item["file"]
    sidecar = _digest.sidecar_path(str(final))
    return [str(sidecar.relative_to(home))] if sidecar.exists() else []


def test_not_enough_space_is_refused_with_the_numbers(tmp_path: Path, store: dict[str, Path]) -> None:
    item = entry(store["llama-tiny"], size_bytes=1 << 50)
    with pytest.raises(StageError, match=r"it needs 1125899906842624 bytes plus model_cache_min_free_bytes"):
        run(tmp_path, item)
    assert not (tmp_path / "edgeslm-tiny").exists()


def test_check_mode_changes_nothing(tmp_path: Path, store: dict[str, Path]) -> None:
    item = entry(store["llama-tiny"])
    result = run(tmp_path, item, check_mode=True)
    assert result.changed and result.actions == [f"fetch {item['url']}"]
    assert list(tmp_path.iterdir()) == []
    run(tmp_path, item)
    assert not run(tmp_path, item, check_mode=True).changed


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sha256": "not-a-digest"}, r"model\[edgeslm-tiny\].sha256 must be 64 hexadecimal digits"),
        ({"name": "Bad_Name"}, "must be a DNS label"),
        ({"file": "../escape.gguf"}, "must be a plain file name"),
        ({"size_bytes": 0}, r"size_bytes must be an integer >= 1"),
        ({"format": "hef"}, "must be gguf or hef and match the file name"),
        ({"kv_cache_type": "q3"}, "kv_cache_type 'q3' is not one of"),
    ],
)
def test_bad_entries_name_the_field(store: dict[str, Path], overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(StageError, match=message):
        model_from_mapping(entry(store["llama-tiny"], **overrides))


def test_an_entry_not_from_the_catalog_is_refused() -> None:
    with pytest.raises(StageError, match=r"lacks .*: take the models from the site catalog"):
        model_from_mapping({"name": "x", "file": "x.gguf"})
