# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/llama-server-image: the recipe, its one pin, and the hash that keys the image cache."""

from __future__ import annotations

import copy
import hashlib
import importlib.machinery
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.tests.unit.checkout import project_files

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "llama-server-image"
RECIPE_DIR = REPO / "images" / "llama-server"
BUILDER = "localhost/edgeslm-pi5-node:bookworm-amd64"


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("llama_server_image", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up while the class is made
    loader.exec_module(module)
    return module


img = load_script()


def recipe_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((RECIPE_DIR / "recipe.json").read_text())
    return doc


def tag_of(doc: dict[str, Any], arch: str = "amd64", containerfile: bytes | None = None, builder: str = BUILDER) -> str:
    recipe = img.parse_recipe(doc)
    if containerfile is None:
        containerfile = (RECIPE_DIR / "Containerfile").read_bytes()
    tag: str = img.image_tag(recipe, arch, builder, containerfile)
    return tag


# --- the pin is written once ------------------------------------------------------------------


def tracked_files() -> list[Path]:
    return [REPO / name for name in project_files() if (REPO / name).is_file()]


def test_the_sdist_sha256_is_written_only_in_the_recipe() -> None:
    sha = recipe_doc()["source"]["sha256"]
    holders = []
    for path in tracked_files():
        try:
            if sha in path.read_text(errors="ignore"):
                holders.append(path.relative_to(REPO).as_posix())
        except OSError:
            continue
    assert holders == ["images/llama-server/recipe.json"]


def test_the_benchmarks_use_the_llama_cpp_version_the_image_is_built_from() -> None:
    # The accuracy benchmark calibrates the memory estimate against llama.cpp tools built from
    # the same sdist as the image; a drift would calibrate against a llama.cpp the image does not run.
    version = recipe_doc()["source"]["version"]
    named = set()
    for rel in ("benchmarks/requirements.txt", "benchmarks/accuracy_llamacpp.py"):
        text = (REPO / rel).read_text()
        found = re.findall(r"(?:llama\.cpp|llama-cpp-python)[ =-]+(\d+\.\d+\.\d+)", text)
        assert found, f"{rel} names no llama.cpp version"
        named.update(found)
    assert named == {version}


def test_print_pin_prints_the_recipe_source() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--print-pin"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == recipe_doc()["source"]


def test_the_recipe_in_the_repository_is_valid() -> None:
    recipe = img.load_recipe()
    assert recipe.source.url.endswith("/" + recipe.source.filename)
    for arch in img.ARCHES:
        args = recipe.cmake_args(arch)
        assert "-DBUILD_SHARED_LIBS=OFF" in args
        assert "-DCMAKE_EXE_LINKER_FLAGS=-static" in args
    assert recipe.user != "0:0"


# --- the Containerfile and the script agree --------------------------------------------------


def test_every_containerfile_arg_is_supplied_and_every_supplied_arg_is_used() -> None:
    text = (RECIPE_DIR / "Containerfile").read_text()
    declared = set(re.findall(r"^ARG ([A-Z0-9_]+)", text, re.M))
    supplied = set(img.build_args(img.load_recipe(), "amd64", BUILDER)) | {"JOBS"}
    assert declared == supplied


def test_the_final_image_holds_only_the_server_and_runs_as_the_recipe_user() -> None:
    text = (RECIPE_DIR / "Containerfile").read_text()
    final = text[text.rindex("\nFROM ") :]
    assert final.splitlines()[1] == "FROM scratch"
    assert re.findall(r"^COPY .*", final, re.M) == ["COPY --from=build /out/llama-server /llama-server"]
    assert re.findall(r"^USER (.*)", final, re.M) == ["${USER}"]


# --- the cache key -----------------------------------------------------------------------------


def set_option(doc: dict[str, Any], name: str, value: str) -> None:
    for option in doc["build"]["cmake_options"]:
        if option["name"] == name:
            option["value"] = value
            return
    raise AssertionError(name)


CHANGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "pinned sha256": lambda d: d["source"].update(sha256="0" * 64),
    "pinned version": lambda d: d["source"].update(
        version="0.3.37",
        filename="llama_cpp_python-0.3.37.tar.gz",
        url=d["source"]["url"].replace("0.3.36", "0.3.37"),
        llama_cpp_dir="llama_cpp_python-0.3.37/vendor/llama.cpp",
    ),
    "cmake option value": lambda d: set_option(d, "GGML_NATIVE", "ON"),
    "cmake option added": lambda d: d["build"]["cmake_options"].append(
        {"name": "GGML_OPENMP", "value": "OFF", "source": "ggml/CMakeLists.txt"}
    ),
    "apt package": lambda d: d["build"]["apt_packages"].append("ccache"),
    "build target": lambda d: d["build"]["targets"].append("llama-quantize"),
    "runtime user": lambda d: d["runtime"].update(user="10002:10002"),
    "amd64 cpu flags": lambda d: d["build"]["arch"]["amd64"]["cmake_options"].append(
        {"name": "GGML_AVX512", "value": "ON", "source": "ggml/CMakeLists.txt"}
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_changed_recipe_input_changes_the_tag(change: str) -> None:
    doc = recipe_doc()
    changed = copy.deepcopy(doc)
    CHANGES[change](changed)
    assert tag_of(changed) != tag_of(doc)


def test_a_changed_containerfile_changes_the_tag() -> None:
    containerfile = (RECIPE_DIR / "Containerfile").read_bytes()
    assert tag_of(recipe_doc(), containerfile=containerfile + b"\n# x\n") != tag_of(recipe_doc())


def test_the_architecture_and_the_builder_are_part_of_the_key() -> None:
    doc = recipe_doc()
    assert tag_of(doc, arch="arm64", builder=BUILDER.replace("amd64", "arm64")).endswith("-arm64")
    assert tag_of(doc, arch="arm64", builder=BUILDER) != tag_of(doc, arch="amd64", builder=BUILDER).replace(
        "amd64", "arm64"
    )
    assert tag_of(doc, builder="localhost/edgeslm-pi5-node:trixie-amd64") != tag_of(doc)


def test_prose_is_not_an_input() -> None:
    doc = recipe_doc()
    changed = copy.deepcopy(doc)
    changed["source"]["origin"] = "reworded"
    changed["build"]["cmake_options"][0]["source"] = "reworded"
    changed["build"]["arch"]["arm64"]["cpu"] = "reworded"
    assert tag_of(changed) == tag_of(doc)


def test_the_tag_is_deterministic_and_names_version_hash_and_arch() -> None:
    tag = tag_of(recipe_doc())
    assert tag == tag_of(recipe_doc())
    assert re.fullmatch(r"localhost/edgeslm-llama-server:0\.3\.36-[0-9a-f]{12}-amd64", tag)


# --- a recipe that cannot be built is refused, naming the field --------------------------------


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            doc = doc[key]
        del doc[last]

    return change


REFUSALS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("no sha256", drop("source.sha256"), "source.sha256: missing"),
    ("short sha256", lambda d: d["source"].update(sha256="abc"), "source.sha256: must be 64"),
    ("upper-case sha256", lambda d: d["source"].update(sha256="A" * 64), "source.sha256: must be 64"),
    ("plain http", lambda d: d["source"].update(url=d["source"]["url"].replace("https", "http")), "source.url"),
    ("url of another file", lambda d: d["source"].update(url="https://example.invalid/x.tar.gz"), "source.url"),
    ("not a release", lambda d: d["source"].update(version="main"), "source.version"),
    ("dir of another version", lambda d: d["source"].update(llama_cpp_dir="x/vendor/llama.cpp"), "llama_cpp_dir"),
    ("file of another version", lambda d: d["source"].update(filename="llama_cpp_python-0.3.3.tar.gz"), "filename"),
    ("not an sdist", lambda d: d["source"].update(filename="llama_cpp_python-0.3.36.whl"), "source.filename"),
    ("image with a tag", lambda d: d.update(image="localhost/edgeslm-llama-server:1"), "image: "),
    (
        "option without a value",
        lambda d: d["build"]["cmake_options"].append({"name": "X", "source": "s"}),
        "].value: missing",
    ),
    ("root user", lambda d: d["runtime"].update(user="0:0"), "runtime.user"),
    ("named user", lambda d: d["runtime"].update(user="llama"), "runtime.user"),
    ("privileged port", lambda d: d["runtime"].update(port=80), "runtime.port"),
    ("port as text", lambda d: d["runtime"].update(port="8080"), "runtime.port: must be of type int"),
    ("port as bool", lambda d: d["runtime"].update(port=True), "runtime.port: must be of type int"),
    ("unknown arch", lambda d: d["build"]["arch"].update(riscv64={"cmake_options": []}), "build.arch: unknown"),
    (
        "option with a space",
        lambda d: set_option(d, "GGML_NATIVE", "OFF -DX=1"),
        "].value: must be one word",
    ),
    (
        "option without source",
        lambda d: d["build"]["cmake_options"].append({"name": "X", "value": "ON", "source": ""}),
        "].source: say where",
    ),
    (
        "option name",
        lambda d: d["build"]["cmake_options"].append({"name": "-DX", "value": "ON", "source": "s"}),
        "].name: must be a CMake variable",
    ),
    ("no packages", lambda d: d["build"].update(apt_packages=[]), "build.apt_packages"),
    ("builder release", lambda d: d["build"].update(builder_release="bookworm; rm"), "build.builder_release"),
    ("shell in a target", lambda d: d["build"].update(targets=["a;b"]), "build.targets"),
]


@pytest.mark.parametrize(("case", "change", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_bad_recipe_is_refused_naming_the_field(
    case: str, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    doc = recipe_doc()
    change(doc)
    with pytest.raises(img.RecipeError, match=re.escape(message)):
        img.parse_recipe(doc)


def test_an_architecture_missing_from_the_recipe_is_refused_when_built() -> None:
    doc = recipe_doc()
    del doc["build"]["arch"]["arm64"]
    recipe = img.parse_recipe(doc)
    with pytest.raises(img.RecipeError, match=r"build\.arch\.arm64: not in the recipe"):
        recipe.cmake_args("arm64")


# --- the sdist download --------------------------------------------------------------------------


def source_for(tmp_path: Path, payload: bytes, sha256: str | None = None) -> Any:
    upstream = tmp_path / "upstream" / "llama_cpp_python-0.3.36.tar.gz"
    upstream.parent.mkdir()
    upstream.write_bytes(payload)
    fields = {**recipe_doc()["source"], "url": upstream.as_uri()}
    fields["sha256"] = sha256 or hashlib.sha256(payload).hexdigest()
    return img.Source(**fields)


def test_the_sdist_is_downloaded_checked_and_kept(tmp_path: Path) -> None:
    source = source_for(tmp_path, b"sdist bytes")
    got = img.fetch_sdist(source, tmp_path / "downloads")
    assert got.read_bytes() == b"sdist bytes"
    assert sorted(p.name for p in got.parent.iterdir()) == [source.filename]
    # A second call uses the kept file: the upstream copy is gone and nothing is fetched.
    Path(source.url.removeprefix("file://")).unlink()
    assert img.fetch_sdist(source, tmp_path / "downloads") == got


def test_a_download_with_another_sha256_is_refused_and_removed(tmp_path: Path) -> None:
    source = source_for(tmp_path, b"tampered", sha256="0" * 64)
    with pytest.raises(img.RecipeError, match=r"source\.sha256: .* has sha256 "):
        img.fetch_sdist(source, tmp_path / "downloads")
    assert list((tmp_path / "downloads").iterdir()) == []


def test_a_kept_file_that_no_longer_matches_is_fetched_again(tmp_path: Path) -> None:
    source = source_for(tmp_path, b"good")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / source.filename).write_bytes(b"truncated")
    assert img.fetch_sdist(source, downloads).read_bytes() == b"good"
