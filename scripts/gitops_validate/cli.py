# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Command line: validate every site of the template, or the manifests you name."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import K3S_KUBERNETES_MINOR
from .argocd import check_argocd
from .catalog import CATALOG_KIND, check_catalog
from .changes import ChangeError, changed_sites
from .checkov_scan import CheckovMissing, default_cache_dir, find_checkov, run_checkov
from .core import REPO_ROOT
from .crd_schema import DEFAULT_SCHEMAS as CRD_SCHEMAS
from .crd_schema import CrdValidator, SchemaDirError
from .flux import SourceIndex, build_directory, build_site, load_source_ignore
from .invariants import check_invariants
from .k8s_schema import BuiltinValidator
from .model import Obj, SiteResult
from .output import write_rendered
from .render import BuildError, Renderer, is_kustomization_dir, iter_manifest_files, load_yaml_documents
from .sops import as_applied

__all__ = ["main"]

DEFAULT_ROOT = REPO_ROOT / "gitops"
DEFAULT_SCHEMAS = CRD_SCHEMAS  # the project's own, scripts/gitops_validate/schemas/crds


@dataclass
class Validators:
    builtin: BuiltinValidator
    crds: CrdValidator
    external_secrets: frozenset[str]


@dataclass
class Target:
    """One unit of output: a site (gitops/sites/<name>), or a set of manifests given on the command line."""

    name: str
    root: Path | None = None
    paths: tuple[Path, ...] = ()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="validate-gitops",
        description="Build every site as Flux would and check every object offline: strict schemas for "
        "built-in kinds and custom resources (CEL rules included), checkov, and the project's invariants.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="GitOps roots (with sites/ and platform/), kustomization directories or manifest files; "
        "default: every site of the bundled template",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="GitOps root holding sites/ and platform/ (default: %(default)s)",
    )
    parser.add_argument("--site", action="append", default=[], help="validate only this site (repeatable)")
    parser.add_argument(
        "--changed-since",
        metavar="GIT_REF",
        help="validate only the sites whose folders changed since GIT_REF (all of them when a shared file changed)",
    )
    parser.add_argument(
        "--output", type=Path, metavar="DIR", help="write each site's rendered objects to DIR/<site>.yaml"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=default_cache_dir(),
        help="where checkov results are kept by rendered content (default: %(default)s)",
    )
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the checkov cache")
    parser.add_argument(
        "--schemas",
        type=Path,
        default=DEFAULT_SCHEMAS,
        help="directory of CRD JSON schemas with index.json (default: %(default)s)",
    )
    parser.add_argument(
        "--kubernetes-version",
        default=K3S_KUBERNETES_MINOR,
        help="Kubernetes minor for built-in kinds (default: the pinned k3s, %(default)s)",
    )
    parser.add_argument(
        "--external-secret",
        action="append",
        default=[],
        metavar="NAMESPACE/NAME",
        help="a Secret created outside Git (besides the Flux bootstrap ones)",
    )
    parser.add_argument("--no-checkov", action="store_true", help="skip the checkov stage")
    parser.add_argument("--checkov", help="checkov executable (default: .venv-checkov/bin/checkov)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="sites rendered in parallel (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems and the summary only")
    return parser.parse_args(argv)


def _targets(args: argparse.Namespace) -> list[Target]:
    if not args.paths:
        return _site_targets(args.root, args.site)
    targets: list[Target] = []
    loose: list[Path] = []
    for path in args.paths:
        if path.is_dir() and (path / "sites").is_dir() and (path / "platform").is_dir():
            targets.extend(_site_targets(path, args.site))
        else:
            loose.append(path)
    if loose:
        # Manifests given together are one unit: references may cross between them.
        targets.append(Target(" ".join(str(p) for p in loose), paths=tuple(loose)))
    return targets


def _site_targets(root: Path, only: Iterable[str]) -> list[Target]:
    sites_dir = root / "sites"
    sites = sorted(p.parent.name for p in sites_dir.glob("*/site.yaml")) if sites_dir.is_dir() else []
    wanted = list(only) or sites
    return [Target(site, root=root) for site in wanted]


def _site_catalog(result: SiteResult, target: Target, index: SourceIndex) -> None:
    assert target.root is not None
    path = target.root / "sites" / target.name / "site.yaml"
    if not path.is_file():
        result.add("catalog", None, "", f"no site catalog sites/{target.name}/site.yaml", file=index.rel(path.parent))
        return
    try:
        docs = [
            d for d in load_yaml_documents(path.read_text(encoding="utf-8"), str(path)) if d.get("kind") == CATALOG_KIND
        ]
    except BuildError as exc:
        result.add("catalog", None, "", str(exc), file=index.rel(path))
        return
    if len(docs) != 1:
        result.add(
            "catalog", None, "", f"holds {len(docs)} SiteCatalog documents; one is expected", file=index.rel(path)
        )
        return
    obj = Obj(docs[0], index.rel(path))
    result.catalog = docs[0]
    result.catalog_file = obj.file
    result.site_catalog = check_catalog(obj, path.parent, result)


def _loose_catalogs(result: SiteResult, docs: list[tuple[dict[str, Any], str]]) -> None:
    found = [(d, f) for d, f in docs if d.get("kind") == CATALOG_KIND]
    if len(found) > 1:
        files = ", ".join(f for _site, f in found)
        result.add("catalog", None, "", f"{len(found)} SiteCatalogs among the given paths: {files}", file=files)
    if found:
        doc, file = found[0]
        result.catalog = doc
        result.catalog_file = file
        result.site_catalog = check_catalog(Obj(doc, file), None, result)


def _render_site(target: Target, renderer: Renderer, indexes: dict[Path, SourceIndex]) -> SiteResult:
    result = SiteResult(target.name)
    assert target.root is not None
    index = indexes[target.root.resolve()]
    build_site(target.root, target.name, renderer, index, result)
    _site_catalog(result, target, index)
    return result


def _render_paths(target: Target, renderer: Renderer) -> SiteResult:
    result = SiteResult(target.name)
    catalogs: list[tuple[dict[str, Any], str]] = []
    for path in target.paths:
        try:
            if path.is_dir():
                if is_kustomization_dir(path):
                    docs = renderer.kustomize(path)
                else:
                    docs = build_directory(path, renderer, load_source_ignore(path))
                catalogs.extend((d, str(p)) for p in _catalog_files(path) for d in _catalog_docs(p))
                result.objects.extend(Obj(d, str(path)) for d in docs if d.get("kind") != CATALOG_KIND)
            elif path.is_file():
                docs = load_yaml_documents(path.read_text(encoding="utf-8"), str(path))
                catalogs.extend((d, str(path)) for d in docs if d.get("kind") == CATALOG_KIND)
                result.objects.extend(Obj(d, str(path)) for d in docs if d.get("kind") != CATALOG_KIND)
            else:
                result.add("input", None, "", "no such file or directory", file=str(path))
        except BuildError as exc:
            result.add("kustomize", None, "", str(exc), file=str(path))
    _loose_catalogs(result, catalogs)
    return result


def _catalog_files(directory: Path) -> list[Path]:
    """Catalogs under a given directory, or the site.yaml of the site folder it belongs to."""
    found = list(iter_manifest_files(directory))
    for parent in (directory, *directory.resolve().parents[:2]):
        if (parent / "site.yaml").is_file() and parent.parent.name == "sites":
            found.append(parent / "site.yaml")
            break
    return sorted(set(found))


def _catalog_docs(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if CATALOG_KIND not in text:
        return []
    try:
        return [d for d in load_yaml_documents(text, str(path)) if d.get("kind") == CATALOG_KIND]
    except BuildError:
        return []


# Schema results by object content: most objects of a fleet's sites are the same platform
# objects, and an object's schema problems depend on nothing else.
_SCHEMA_RESULTS: dict[str, list[tuple[str, str]] | None] = {}


def _object_errors(doc: dict[str, Any], validators: Validators) -> list[tuple[str, str]] | None:
    """Schema problems of one object; None when no schema knows its kind."""
    key = json.dumps(doc, sort_keys=True, default=str)
    if key in _SCHEMA_RESULTS:
        return _SCHEMA_RESULTS[key]
    # What the API server receives: an encrypted Secret as Flux decrypts it (sops.py).
    applied, errors = as_applied(doc)
    kind = (str(doc.get("apiVersion", "")), str(doc.get("kind", "")))
    found: list[tuple[str, str]] | None
    if validators.crds.has_schema(*kind):
        found = errors + validators.crds.errors(applied)
    elif validators.builtin.has_schema(*kind):
        found = errors + validators.builtin.errors(applied)
    else:
        found = None
    _SCHEMA_RESULTS[key] = found
    return found


def _check_schemas(result: SiteResult, validators: Validators) -> None:
    for obj in result.objects:
        errors = _object_errors(obj.doc, validators)
        if errors is None:
            result.add(
                "schema",
                obj,
                "apiVersion",
                f"no schema for {obj.api_version} {obj.kind} "
                f"(Kubernetes {validators.builtin.minor} or --schemas); cannot validate it",
            )
            continue
        for where, message in errors:
            result.add("schema", obj, where, message)


@dataclass
class _Worker:
    """What one process needs to validate sites: built once per process, reused for every site."""

    validators: Validators
    renderer: Renderer
    indexes: dict[Path, SourceIndex]

    def index(self, root: Path) -> SourceIndex:
        key = root.resolve()
        if key not in self.indexes:
            self.indexes[key] = SourceIndex(key)
        return self.indexes[key]

    def one(self, target: Target) -> SiteResult:
        if target.root is not None:
            result = _render_site(target, self.renderer, {target.root.resolve(): self.index(target.root)})
        else:
            result = _render_paths(target, self.renderer)
        _check_schemas(result, self.validators)
        check_invariants(result, self.validators.external_secrets, self.validators.crds.directory)
        if target.root is not None:
            check_argocd(result, target.root)
        return result


_WORKER: _Worker | None = None


def _start_worker(kubernetes_version: str, schemas: Path, external: frozenset[str]) -> None:
    global _WORKER
    validators = Validators(BuiltinValidator(kubernetes_version), CrdValidator(schemas), external)
    _WORKER = _Worker(validators, Renderer(), {})


def _validate_in_worker(targets: list[Target]) -> list[SiteResult]:
    assert _WORKER is not None
    return [_WORKER.one(target) for target in targets]


def validate(targets: list[Target], validators: Validators, renderer: Renderer, jobs: int) -> list[SiteResult]:
    """Validate every target; sites run in `jobs` processes (Python checks hold the GIL)."""
    worker = _Worker(validators, renderer, {})
    if jobs <= 1 or len(targets) < 2 * jobs:
        return [worker.one(target) for target in targets]
    # Small chunks in order: results come back in the targets' order, and a slow site does
    # not hold up a whole share of the fleet.
    chunk = max(1, min(16, len(targets) // (jobs * 4)))
    chunks = [targets[i : i + chunk] for i in range(0, len(targets), chunk)]
    settings = (validators.builtin.minor, validators.crds.directory, validators.external_secrets)
    with ProcessPoolExecutor(max_workers=jobs, initializer=_start_worker, initargs=settings) as pool:
        return [result for part in pool.map(_validate_in_worker, chunks) for result in part]


def report(results: list[SiteResult], quiet: bool, elapsed: float) -> int:
    failed = 0
    for result in results:
        status = "ok" if not result.problems else f"{len(result.problems)} problem(s)"
        print(f"site {result.name}: {len(result.objects)} objects, {status}")
        print("\n".join(result.summary)) if result.summary and not quiet else None
        for problem in result.problems:
            print(problem.render())
        if not quiet:
            for note in result.notes:
                print(f"  note: {note}")
        failed += bool(result.problems)
    print(f"validate-gitops: {len(results) - failed} passed, {failed} failed ({elapsed:.2f} s)")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        validators = Validators(
            BuiltinValidator(args.kubernetes_version),
            CrdValidator(args.schemas),
            frozenset(args.external_secret),
        )
        renderer = Renderer()
        checkov = None if args.no_checkov else find_checkov(args.checkov)
    except (SchemaDirError, CheckovMissing, BuildError, ValueError) as exc:
        print(f"validate-gitops: {exc}", file=sys.stderr)
        return 2
    if args.changed_since:
        try:
            changed = changed_sites(args.root, args.changed_since)
        except ChangeError as exc:
            print(f"validate-gitops: --changed-since: {exc}", file=sys.stderr)
            return 2
        if changed is not None:
            if not changed:
                print(f"validate-gitops: no site changed since {args.changed_since}")
                return 0
            args.site = sorted(set(args.site) | set(changed)) if args.site else changed
    targets = _targets(args)
    if not targets:
        print(f"validate-gitops: nothing to validate (no sites/<site>/site.yaml under {args.root})", file=sys.stderr)
        return 2
    results = validate(targets, validators, renderer, args.jobs)
    if checkov is not None:
        run_checkov(results, checkov, args.jobs, None if args.no_cache else args.cache_dir)
    if args.output is not None:
        write_rendered(results, args.output)
    if validators.crds.unsupported_rules and not args.quiet:
        for rule in validators.crds.unsupported_rules:
            print(f"note: CEL rule not checkable offline: {rule}")
    return report(results, args.quiet, time.perf_counter() - started)
