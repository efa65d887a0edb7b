# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Command line: validate every site of the template, or the manifests you name."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import K3S_KUBERNETES_MINOR
from .argocd import check_argocd
from .catalog import CATALOG_KIND, check_catalog
from .checkov_scan import CheckovMissing, find_checkov, run_checkov
from .core import REPO_ROOT
from .crd_schema import DEFAULT_SCHEMAS as CRD_SCHEMAS
from .crd_schema import CrdValidator, SchemaDirError
from .flux import SourceIndex, build_directory, build_site, load_source_ignore
from .invariants import check_invariants
from .k8s_schema import BuiltinValidator
from .model import Obj, SiteResult
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
        files = ", ".join(f for _, f in found)
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


def _check_schemas(result: SiteResult, validators: Validators) -> None:
    for obj in result.objects:
        # What the API server receives: an encrypted Secret as Flux decrypts it (sops.py).
        doc, errors = as_applied(obj.doc)
        key = (obj.api_version, obj.kind)
        if validators.crds.has_schema(*key):
            errors += validators.crds.errors(doc)
        elif validators.builtin.has_schema(*key):
            errors += validators.builtin.errors(doc)
        else:
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


def validate(targets: list[Target], validators: Validators, renderer: Renderer, jobs: int) -> list[SiteResult]:
    indexes = {root: SourceIndex(root) for root in {t.root.resolve() for t in targets if t.root is not None}}

    def one(target: Target) -> SiteResult:
        result = _render_site(target, renderer, indexes) if target.root is not None else _render_paths(target, renderer)
        _check_schemas(result, validators)
        check_invariants(result, validators.external_secrets)
        if target.root is not None:
            check_argocd(result, target.root)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, targets))


def report(results: list[SiteResult], quiet: bool, elapsed: float) -> int:
    failed = 0
    for result in results:
        status = "ok" if not result.problems else f"{len(result.problems)} problem(s)"
        print(f"site {result.name}: {len(result.objects)} objects, {status}")
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
    targets = _targets(args)
    if not targets:
        print(f"validate-gitops: nothing to validate (no sites/<site>/site.yaml under {args.root})", file=sys.stderr)
        return 2
    results = validate(targets, validators, renderer, args.jobs)
    if checkov is not None:
        run_checkov(results, checkov, args.jobs)
    if validators.crds.unsupported_rules and not args.quiet:
        for rule in validators.crds.unsupported_rules:
            print(f"note: CEL rule not checkable offline: {rule}")
    return report(results, args.quiet, time.perf_counter() - started)
