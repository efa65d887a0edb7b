# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Follow a site's Flux Kustomizations the way kustomize-controller does, offline.

A site's build starts where the cluster's does: at the hand-off objects the gitops_bootstrap
role places (GitRepository and Kustomization `flux-system`, built by the collection's core,
_gitops.flux_handoff). Every Flux Kustomization found in the output is checked (source exists,
path exists, dependsOn names exist and form no cycle) and its path is built with kustomize,
with `targetNamespace` and `postBuild` substitution applied as Flux applies them.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .core import load_module
from .model import CLUSTER_SCOPED_KINDS, Obj, SiteResult
from .render import BuildError, Renderer, is_kustomization_dir, iter_manifest_files, load_yaml_documents
from .substitute import VAR_PATTERN, substitute

__all__ = ["FLUX_KUSTOMIZATION", "HANDOFF_FILE", "SourceIndex", "build_directory", "build_site", "load_source_ignore"]

FLUX_KUSTOMIZATION = "kustomize.toolkit.fluxcd.io/"
SOURCE_KINDS = frozenset({"GitRepository", "OCIRepository", "Bucket", "ExternalArtifact"})
SUBSTITUTE_DISABLED = "kustomize.toolkit.fluxcd.io/substitute"
# Where the hand-off objects come from, as problems name it.
HANDOFF_FILE = "hand-off (edgeslm.pi5.gitops_bootstrap)"
# The validator builds the hand-off with a placeholder URL: it never fetches anything.
HANDOFF_REPO_URL = "ssh://git@git.invalid/fleet.git"
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# Only (kind, name) per document is needed to point at a file: a line scan, not a YAML parse.
_DOC_SPLIT = re.compile(r"^---[^\n]*$", re.MULTILINE)
_KIND = re.compile(r"^kind:\s*(\S+)", re.MULTILINE)
_NAME = re.compile(r"^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]+name:\s*(\S+)", re.MULTILINE)


def load_source_ignore(root: Path) -> Callable[[Path], bool]:
    """A matcher for `.sourceignore` (gitignore subset: globs, leading / anchors, trailing / dirs)."""
    patterns: list[str] = []
    ignore_file = root / ".sourceignore"
    if ignore_file.is_file():
        for line in ignore_file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line)

    def ignored(path: Path) -> bool:
        try:
            rel = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return False
        parts = rel.split("/")
        for pattern in patterns:
            anchored = pattern.startswith("/")
            body = pattern.strip("/")
            candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))] if anchored else [*list(parts), rel]
            if any(fnmatch.fnmatch(candidate, body) for candidate in candidates):
                return True
        return False

    return ignored


class SourceIndex:
    """Maps (kind, name) to the repository file that declares it, for precise messages."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index: dict[tuple[str, str], list[str]] = {}
        for path in iter_manifest_files(root):
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            for document in _DOC_SPLIT.split(text):
                kind = _KIND.search(document)
                name = _NAME.search(document)
                if kind and name:
                    key = (kind.group(1), name.group(1).strip("'\""))
                    self._index.setdefault(key, []).append(self.rel(path))

    def rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve().parent).as_posix()
        except ValueError:
            return str(path)

    def file_of(self, doc: dict[str, Any], fallback: str) -> str:
        """The declaring file, preferring one under the directory being built (fallback)."""
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        files = self._index.get((str(doc.get("kind")), str((meta or {}).get("name", ""))), [])
        preferred = [f for f in files if f.startswith(fallback.rstrip("/") + "/")]
        return (preferred or files or [fallback])[0]


def build_directory(directory: Path, renderer: Renderer, ignored: Callable[[Path], bool]) -> list[dict[str, Any]]:
    """Build like kustomize-controller: kustomize where a kustomization exists, else every manifest."""
    if is_kustomization_dir(directory):
        return renderer.kustomize(directory)
    docs: list[dict[str, Any]] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or ignored(path):
            continue
        if path.is_dir():
            docs.extend(build_directory(path, renderer, ignored))
        elif path.suffix in (".yaml", ".yml"):
            found = load_yaml_documents(path.read_text(encoding="utf-8"), str(path))
            docs.extend(doc for doc in found if "apiVersion" in doc and "kind" in doc)
    return docs


@dataclass
class _FluxKs:
    obj: Obj
    done: bool = False
    depends_on: list[tuple[str, str]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.obj.namespace, self.obj.name)


def _is_flux_kustomization(doc: dict[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).startswith(FLUX_KUSTOMIZATION) and doc.get("kind") == "Kustomization"


def _variables(ks: Obj, result: SiteResult) -> dict[str, str] | None:
    post = ks.spec().get("postBuild")
    if not isinstance(post, dict):
        return None
    variables = {str(k): str(v) for k, v in (post.get("substitute") or {}).items()}
    for index, ref in enumerate(post.get("substituteFrom") or []):
        kind, name = ref.get("kind"), ref.get("name")
        source = next(
            (o for o in result.objects if o.kind == kind and o.name == name and o.namespace == ks.namespace), None
        )
        if source is None:
            if not ref.get("optional", False):
                result.add(
                    "flux", ks, f"spec.postBuild.substituteFrom[{index}]", f"{kind} {ks.namespace}/{name} not found"
                )
            continue
        for section in ("data", "stringData"):
            for key, value in (source.doc.get(section) or {}).items():
                variables.setdefault(str(key), "<from-secret>" if kind == "Secret" else str(value))
    return variables


def _has_dollar(value: Any) -> bool:
    """Whether any key or string in the object holds `${` (what Flux's substitution looks at)."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_dollar(k) or _has_dollar(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_dollar(v) for v in value)
    return False


def _apply_postbuild(docs: list[dict[str, Any]], ks: Obj, result: SiteResult) -> list[dict[str, Any]]:
    variables = _variables(ks, result)
    out: list[dict[str, Any]] = []
    for doc in docs:
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        markers = {**((meta or {}).get("annotations") or {}), **((meta or {}).get("labels") or {})}
        if markers.get(SUBSTITUTE_DISABLED) == "disabled":
            out.append(doc)
            continue
        if not _has_dollar(doc):
            # Nothing Flux would substitute: keep the object as built (dumping it is the costly part).
            out.append(doc)
            continue
        text = yaml.dump(doc, Dumper=_DUMPER, sort_keys=False)
        if variables is None:
            if VAR_PATTERN.search(text.replace("$${", "")):
                name = f"{doc.get('kind')} {(meta or {}).get('name')}"
                result.add(
                    "flux", ks, "spec.postBuild", f"{name} contains ${{...}} but the Kustomization has no postBuild"
                )
            out.append(doc)
            continue
        new_text, problems = substitute(text, variables)
        for problem in problems:
            result.add("flux", ks, "spec.postBuild", f"{doc.get('kind')} {(meta or {}).get('name')}: {problem}")
        try:
            out.extend(load_yaml_documents(new_text, f"{doc.get('kind')} {(meta or {}).get('name')}"))
        except BuildError as exc:
            result.add("flux", ks, "spec.postBuild", f"substitution breaks the YAML of {exc}")
            out.append(doc)
    return out


def _set_target_namespace(docs: list[dict[str, Any]], namespace: str) -> None:
    for doc in docs:
        if doc.get("kind") not in CLUSTER_SCOPED_KINDS:
            doc.setdefault("metadata", {})["namespace"] = namespace


class _SiteBuilder:
    def __init__(self, root: Path, site: str, renderer: Renderer, index: SourceIndex, result: SiteResult) -> None:
        self.root = root
        self.site = site
        self.renderer = renderer
        self.index = index
        self.result = result
        self.ignored = load_source_ignore(root)
        self.kustomizations: dict[tuple[str, str], _FluxKs] = {}

    def add_objects(self, docs: list[dict[str, Any]], applied_by: str, fallback_file: str) -> None:
        for doc in docs:
            obj = Obj(doc, self.index.file_of(doc, fallback_file), applied_by)
            self.result.objects.append(obj)
            if _is_flux_kustomization(doc):
                key = (obj.namespace, obj.name)
                if key in self.kustomizations:
                    self.result.add("flux", obj, "metadata.name", "duplicate Flux Kustomization")
                    continue
                deps = [
                    (str(d.get("namespace") or obj.namespace), str(d.get("name")))
                    for d in obj.spec().get("dependsOn") or []
                    if isinstance(d, dict)
                ]
                self.kustomizations[key] = _FluxKs(obj, depends_on=deps)

    def run(self) -> None:
        site_dir = self.root / "sites" / self.site
        if not (site_dir / "site.yaml").is_file():
            self.result.add(
                "flux", None, "", f"no site catalog sites/{self.site}/site.yaml", file=self.index.rel(site_dir)
            )
            return
        gitops = load_module("_gitops")
        handoff = gitops.flux_handoff(site=self.site, repo_url=HANDOFF_REPO_URL)
        self.add_objects(handoff, "", HANDOFF_FILE)
        repo_sources = {("GitRepository", gitops.FLUX_NAMESPACE, "flux-system")}
        # Each wave's kustomize builds run in parallel (they are separate processes).
        with ThreadPoolExecutor(max_workers=4) as pool:
            while True:
                pending = [ks for ks in self.kustomizations.values() if not ks.done]
                if not pending:
                    break
                builds = {ks.key: pool.submit(self._prefetch, ks) for ks in pending}
                for ks in pending:
                    ks.done = True
                    self._follow(ks, repo_sources, builds[ks.key])
        self._check_depends_on()

    def _directory(self, ks: _FluxKs) -> tuple[str, Path]:
        rel = _normalise(ks.obj.spec().get("path"))
        return rel, (self.root / rel).resolve()

    def _prefetch(self, ks: _FluxKs) -> list[dict[str, Any]] | None:
        rel, directory = self._directory(ks)
        if rel.startswith("..") or not directory.is_dir() or self.ignored(directory):
            return None
        return build_directory(directory, self.renderer, self.ignored)

    def _check_source(self, ks: Obj, ref: dict[str, Any]) -> bool:
        kind, name = ref.get("kind"), ref.get("name")
        namespace = ref.get("namespace") or ks.namespace
        if kind not in SOURCE_KINDS:
            self.result.add("flux", ks, "spec.sourceRef.kind", f"{kind} is not a Flux source kind")
            return False
        found = any(o.kind == kind and o.name == name and o.namespace == namespace for o in self.result.objects)
        if not found:
            self.result.add("flux", ks, "spec.sourceRef", f"source {kind} {namespace}/{name} not found in the site")
        return found

    def _follow(
        self, ks: _FluxKs, repo_sources: set[tuple[str, str, str]], build: Future[list[dict[str, Any]] | None]
    ) -> None:
        spec = ks.obj.spec()
        ref = spec.get("sourceRef") or {}
        if not self._check_source(ks.obj, ref):
            return
        source_key = (str(ref.get("kind")), str(ref.get("namespace") or ks.obj.namespace), str(ref.get("name")))
        if source_key not in repo_sources:
            self.result.notes.append(f"{ks.obj.ref}: source {source_key[2]} is another repository; not built")
            return
        rel, directory = self._directory(ks)
        if rel.startswith("..") or not directory.is_dir():
            self.result.add("flux", ks.obj, "spec.path", f"path ./{rel} does not exist in the repository")
            return
        if self.ignored(directory):
            self.result.add("flux", ks.obj, "spec.path", f"path ./{rel} is excluded by .sourceignore")
            return
        try:
            docs = build.result() or []
        except BuildError as exc:
            self.result.add("kustomize", ks.obj, "spec.path", str(exc))
            return
        docs = [_copy(doc) for doc in docs]
        if spec.get("targetNamespace"):
            _set_target_namespace(docs, str(spec["targetNamespace"]))
        docs = _apply_postbuild(docs, ks.obj, self.result)
        self.add_objects(docs, ks.obj.ref, f"{self.index.rel(self.root)}/{rel}")

    def _check_depends_on(self) -> None:
        for ks in self.kustomizations.values():
            for index, dep in enumerate(ks.depends_on):
                if dep not in self.kustomizations:
                    self.result.add(
                        "flux", ks.obj, f"spec.dependsOn[{index}]", f"Kustomization {dep[0]}/{dep[1]} does not exist"
                    )
        state: dict[tuple[str, str], int] = {}

        def visit(key: tuple[str, str], trail: list[tuple[str, str]]) -> None:
            state[key] = 1
            for dep in self.kustomizations[key].depends_on:
                if dep not in self.kustomizations:
                    continue
                if state.get(dep) == 1:
                    path = [*trail, key]
                    start = path.index(dep) if dep in path else 0
                    cycle = " -> ".join(key_[1] for key_ in [*path[start:], dep])
                    self.result.add(
                        "flux", self.kustomizations[key].obj, "spec.dependsOn", f"dependency cycle: {cycle}"
                    )
                elif dep not in state:
                    visit(dep, [*trail, key])
            state[key] = 2

        for key in sorted(self.kustomizations):
            if key not in state:
                visit(key, [])


def _normalise(path: Any) -> str:
    text = str(path or "./").strip()
    while text.startswith("./"):
        text = text[2:]
    return text.strip("/")


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(doc)


def build_site(root: Path, site: str, renderer: Renderer, index: SourceIndex, result: SiteResult) -> None:
    """Render every object Flux would apply for `site` into result.objects."""
    result.root = str(root)
    _SiteBuilder(root, site, renderer, index, result).run()
