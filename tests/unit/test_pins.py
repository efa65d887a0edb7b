# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every pinned version is written once, in its role's defaults; everything else derives it.

The rules, and why:

* The k3s release (`vX.Y.Z+k3sN`, the default of `k3s_release` in roles/k3s/defaults/main.yml)
  appears in no other file's code, configuration or documentation, in any form (`+` or
  URL-encoded `%2B`): Molecule and the lab read it, the GitOps validator derives its Kubernetes
  minor from it, documentation says "the pinned release". changelogs/ may name it (they record
  what was pinned when), and so may records of upstream facts that name the release they were
  read at (comments, scripts/gitops_validate/data/): each such record is checked against the pin
  (data/k3s.yaml's `release` here and by the validator; _k3s_flags.SOURCE_MINOR below).
* That Kubernetes minor is never written as a value: no Python string literal ("1.33",
  "v1.33") and no YAML scalar in the Ansible content (roles, playbooks, inventories, Molecule).
  Prose may name the minor where it says at which upstream version a fact was read (for example
  "Kubernetes 1.33 apiserver validation"); those facts move with the pin (see
  test_k3s_option_lists_match_the_pinned_minor). The Pod Security `enforce-version` labels of the
  GitOps template pin a policy version, not the cluster's, and are not checked here.
* Every other version a role pins (a `*_version` default with a literal `X.Y.Z`: WasmEdge, the
  runwasi shim, Flux, Argo CD) appears in no other file's code or configuration (comments and
  Markdown may name it where they say at which version an upstream fact was read). Upstream
  source records (the CRD schema sources: repository, tag, commit; an image recipe's runtime) are
  facts about upstream, not copies; where one must equal a pin (Argo CD's CRDs and the Argo CD the
  role installs, the WasmEdge the LlamaEdge image runs on), a test checks the two agree.
  requirements/ pins Python packages (one of them is Traefik's, whose version happens to equal
  Argo CD's today), not the roles' releases.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s import parse_version
from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s_flags import SOURCE_MINOR
from ansible_collections.edgeslm.pi5.scripts.gitops_validate import (
    K3S_KUBERNETES_MINOR,
    K3S_PIN_FILE,
    pinned_k3s_release,
)
from ansible_collections.edgeslm.pi5.tests.unit.checkout import project_files

REPO = Path(__file__).resolve().parents[2]
HISTORY = ("changelogs/",)
# Records of upstream sources (repository, tag, commit) the project generated data from.
UPSTREAM_RECORDS = (
    "scripts/gen-crd-schemas",
    "scripts/gitops_validate/schemas/crds/sources.json",
    "scripts/gitops_validate/data/",
)
ANSIBLE_DIRS = ("roles/", "playbooks/", "inventories/", "molecule/")


def regular_files() -> list[str]:
    """What a clean clone holds, regular files only (the collections/ link is not content)."""
    return [name for name in project_files() if (REPO / name).is_file() and not (REPO / name).is_symlink()]


def text_of(name: str) -> str | None:
    data = (REPO / name).read_bytes()
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


def is_python(name: str, text: str) -> bool:
    return name.endswith(".py") or (not Path(name).suffix and text.startswith("#!") and "python" in text[:64])


def python_strings(text: str) -> str:
    """A Python file's string literals (docstrings included), except provenance records.

    A constant named *_SOURCE (or SOURCE) records where an upstream fact was read, with the
    release it was read at; comments are not strings. Everything else a pin could hide in is.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    records: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id.endswith("SOURCE") for t in targets) and node.value:
                records.update(id(inner) for inner in ast.walk(node.value))
    return "\n".join(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in records
    )


def code_only(name: str, text: str) -> str:
    """The file without its comments (Python: its string literals; YAML and shell: no '#' comments)."""
    if is_python(name, text):
        return python_strings(text)
    if name.endswith((".yml", ".yaml", ".j2", ".sh", ".cfg", ".toml")) or name == "Makefile":
        return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())
    return text


def role_version_pins() -> list[tuple[str, str, str]]:
    """(defaults file, variable, version) for every literal *_version default of a role."""
    pins = []
    for defaults in sorted((REPO / "roles").glob("*/defaults/main.yml")):
        data = yaml.safe_load(defaults.read_text(encoding="utf-8")) or {}
        for key, value in data.items():
            if key.endswith("_version") and isinstance(value, str) and re.fullmatch(r"\d+\.\d+\.\d+", value):
                pins.append((str(defaults.relative_to(REPO)), key, value))
    return pins


def test_the_k3s_pin_is_read_from_the_role() -> None:
    release = pinned_k3s_release()
    assert K3S_PIN_FILE == REPO / "roles" / "k3s" / "defaults" / "main.yml"
    version = parse_version(release)
    assert f"{version.major}.{version.minor}" == K3S_KUBERNETES_MINOR
    defaults = yaml.safe_load(K3S_PIN_FILE.read_text(encoding="utf-8"))
    assert release in defaults["k3s_release"], "the pin is the default of k3s_release"


def copies_of(
    pattern: re.Pattern[str], pin_file: str, needle: str, *, markdown: bool, skip: tuple[str, ...] = ()
) -> list[str]:
    """Files other than `pin_file` whose code or configuration (and, if asked, Markdown) holds the pin."""
    copies = []
    for name in regular_files():
        if name == pin_file or name.startswith(HISTORY + UPSTREAM_RECORDS + skip):
            continue
        if name.endswith(".md") and not markdown:
            continue
        text = text_of(name)
        if text is None or needle not in text:
            continue
        if pattern.search(text if name.endswith(".md") else code_only(name, text)):
            copies.append(name)
    return copies


def test_the_k3s_release_is_written_once() -> None:
    release = pinned_k3s_release()
    pattern = re.compile(r"v?" + re.escape(release.removeprefix("v")).replace(r"\+", r"(\+|%2B|%2b)"))
    pin_file = str(K3S_PIN_FILE.relative_to(REPO))
    needle = release.removeprefix("v").split("+")[0]
    copies = copies_of(pattern, pin_file, needle, markdown=True)
    assert copies == [], f"{release} is written outside {pin_file}: derive it there instead ({copies})"


def test_k3s_facts_describe_the_pinned_release() -> None:
    """The validator's facts about what k3s runs by itself were read for the pinned release."""
    facts = yaml.safe_load((REPO / "scripts/gitops_validate/data/k3s.yaml").read_text(encoding="utf-8"))
    assert facts["release"] == pinned_k3s_release()


def test_the_kubernetes_minor_is_never_a_value() -> None:
    minor = K3S_KUBERNETES_MINOR
    values = {minor, f"v{minor}"}
    copies = []
    for name in regular_files():
        if name.startswith(HISTORY):
            continue
        text = text_of(name)
        if text is None or minor not in text:
            continue
        if is_python(name, text):
            try:
                tree = ast.parse(text)
            except SyntaxError:
                continue
            copies += [
                f"{name}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and node.value in values
            ]
        elif name.startswith(ANSIBLE_DIRS) and name.endswith((".yml", ".yaml")):
            for doc in yaml.safe_load_all(text):
                copies += [f"{name}: {value}" for value in _scalars(doc) if str(value) in values]
    assert copies == [], f"the Kubernetes minor {minor} is typed by hand; use K3S_KUBERNETES_MINOR: {copies}"


def _scalars(doc: object) -> list[object]:
    if isinstance(doc, dict):
        return [s for key, value in doc.items() for s in (*_scalars(key), *_scalars(value))]
    if isinstance(doc, list):
        return [s for item in doc for s in _scalars(item)]
    return [doc]


@pytest.mark.parametrize(("pin_file", "variable", "version"), role_version_pins())
def test_every_role_pin_is_written_once(pin_file: str, variable: str, version: str) -> None:
    pattern = re.compile(r"(?<![\w.])v?" + re.escape(version) + r"(?![\w]|\.\d)")
    copies = copies_of(pattern, pin_file, version, markdown=False, skip=("requirements/", "images/"))
    assert copies == [], f"{variable} {version} is written outside {pin_file}: derive it from there ({copies})"


def test_role_pins_were_found() -> None:
    """The pins the rule covers; a role pin that stops being a literal must not silently leave the test."""
    found = {variable for _file, variable, _version in role_version_pins()}
    assert {
        "wasm_runtime_wasmedge_version",
        "wasm_runtime_shim_version",
        "gitops_bootstrap_flux_version",
        "gitops_bootstrap_argocd_version",
    } <= found


def test_argocd_crd_schemas_come_from_the_pinned_argocd() -> None:
    """The validator checks Applications against the CRDs of the Argo CD gitops_bootstrap installs."""
    pins = {variable: version for _file, variable, version in role_version_pins()}
    sources = json.loads((REPO / "scripts/gitops_validate/schemas/crds/sources.json").read_text(encoding="utf-8"))
    entries = sources if isinstance(sources, list) else sources.get("sources", sources.get("crds", []))
    tags = {entry["tag"] for entry in _entries(entries) if entry.get("repository") == "argoproj/argo-cd"}
    assert tags == {"v" + pins["gitops_bootstrap_argocd_version"]}


def _entries(value: object) -> list[dict[str, str]]:
    if isinstance(value, dict):
        found = [value] if "repository" in value and "tag" in value else []
        return found + [e for item in value.values() for e in _entries(item)]
    if isinstance(value, list):
        return [e for item in value for e in _entries(item)]
    return []


def test_the_llamaedge_image_runs_on_the_pinned_wasmedge() -> None:
    """The LlamaEdge image recipe records the WasmEdge its pods run on: the one wasm_runtime installs."""
    pins = {variable: version for _file, variable, version in role_version_pins()}
    recipe = json.loads((REPO / "images" / "llamaedge" / "recipe.json").read_text(encoding="utf-8"))
    assert str(recipe["runtime"]["wasmedge"]).split()[0] == pins["wasm_runtime_wasmedge_version"]


def test_k3s_option_lists_match_the_pinned_minor() -> None:
    """_k3s_flags was read from the k3s CLI reference of one minor: moving the pin means re-reading it."""
    version = parse_version(pinned_k3s_release())
    assert (version.major, version.minor) == SOURCE_MINOR
