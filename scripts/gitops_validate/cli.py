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
from .catalog import CATALOG_KIND, DEFAULT_CATALOG_SCHEMA, check_catalog
from .checkov_scan import CheckovMissing, find_checkov, run_checkov
from .core import REPO_ROOT
from .crd_schema import CrdValidator, SchemaDirError
from .flux import SourceIndex, build_directory, build_site, load_source_ignore
from .invariants import check_invariants
from .k8s_schema import BuiltinValidator
from .model import Obj, SiteResult
from .render import BuildError, Renderer, is_kustomization_dir, iter_manifest_files, load_yaml_documents

__all__ = ["main"]

DEFAULT_ROOT = REPO_ROOT / "gitops"
DEFAULT_SCHEMAS = REPO_ROOT.parent / "shared" / "schemas" / "crds"
# Kinds no offline schema exists for yet; their references are checked by invariants.py.
INVARIANT_ONLY = frozenset({("traefik.io/v1alpha1", "IngressRoute"), ("traefik.io/v1alpha1", "TraefikService")})


@dataclass
class Validators:
    builtin: BuiltinValidator
    crds: CrdValidator
    catalog_schema: Path
    external_secrets: frozenset[str]


@dataclass
class Target:
    """One unit of output: a Flux site, or a set of manifests given on the command line."""

    name: str
    root: Path | None = None
    paths: tuple[Path, ...] = ()
    # For an Argo CD directory: the Flux sites whose overlays its ApplicationSets render.
    argocd_sites: tuple[str, ...] = ()


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
        help="Flux repository roots (with clusters/), kustomization directories or manifest files; "
        "default: every site of the bundled template",
    )
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="Flux repository root (default: %(default)s)")
    parser.add_argument("--site", action="append", default=[], help="validate only this site (repeatable)")
    parser.add_argument(
        "--schemas",
        type=Path,
        default=DEFAULT_SCHEMAS,
        help="directory of CRD JSON schemas with index.json (default: %(default)s)",
    )
    parser.add_argument("--catalog-schema", type=Path, default=DEFAULT_CATALOG_SCHEMA)
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
    targets: list[Target] = []
    if not args.paths:
        targets = _site_targets(args.root, args.site)
        return targets + _argocd_targets(args.root, [t.name for t in targets], fleet=not args.site)
    loose: list[Path] = []
    for path in args.paths:
        if path.is_dir() and (path / "clusters").is_dir():
            sites = _site_targets(path, args.site)
            targets.extend(sites + _argocd_targets(path, [t.name for t in sites], fleet=not args.site))
        else:
            loose.append(path)
    if loose:
        # Manifests given together are one unit: references may cross between them.
        targets.append(Target(" ".join(str(p) for p in loose), paths=tuple(loose)))
    return targets


def _argocd_targets(root: Path, sites: list[str], fleet: bool) -> list[Target]:
    """gitops/argocd (all sites, fleet style) and gitops/argocd/<site> (one site each)."""
    argocd = root / "argocd"
    if not argocd.is_dir():
        return []
    targets = [Target("argocd", paths=(argocd,), argocd_sites=tuple(sites))] if fleet else []
    for site in sites:
        if (argocd / site).is_dir():
            targets.append(Target(f"argocd/{site}", paths=(argocd / site,), argocd_sites=(site,)))
    return targets


def _site_targets(root: Path, only: Iterable[str]) -> list[Target]:
    clusters = root / "clusters"
    sites = sorted(p.name for p in clusters.iterdir() if p.is_dir()) if clusters.is_dir() else []
    wanted = list(only) or sites
    return [Target(site, root=root) for site in wanted]


def _catalogs(root: Path) -> list[tuple[dict[str, Any], Path]]:
    found: list[tuple[dict[str, Any], Path]] = []
    for path in iter_manifest_files(root):
        text = path.read_text(encoding="utf-8")
        if CATALOG_KIND not in text:
            continue
        try:
            docs = load_yaml_documents(text, str(path))
        except BuildError:
            continue
        found.extend((doc, path) for doc in docs if doc.get("kind") == CATALOG_KIND)
    return found


def _attach_catalog(
    result: SiteResult,
    catalogs: list[tuple[dict[str, Any], Path]],
    site: str | None,
    index: SourceIndex | None,
    validators: Validators,
) -> None:
    matching = [
        (d, p)
        for d, p in catalogs
        if site is None or (d.get("spec") or {}).get("site") == site or (d.get("metadata") or {}).get("name") == site
    ]
    if site is not None and not matching:
        result.add("catalog", None, "", f"no SiteCatalog with spec.site: {site}", file="sites/")
        return
    if len(matching) > 1:
        files = ", ".join(str(entry[1]) for entry in matching)
        result.add("catalog", None, "", f"{len(matching)} SiteCatalogs for one site: {files}", file=files)
    if not matching:
        return
    doc, path = matching[0]
    obj = Obj(doc, index.rel(path) if index else str(path))
    result.catalog = doc
    result.catalog_file = obj.file
    check_catalog(obj, site or "", validators.catalog_schema, result)


def _render_site(
    target: Target,
    renderer: Renderer,
    validators: Validators,
    cache: dict[Path, tuple[SourceIndex, list[tuple[dict[str, Any], Path]]]],
) -> SiteResult:
    result = SiteResult(target.name)
    assert target.root is not None
    index, catalogs = cache[target.root.resolve()]
    build_site(target.root, target.name, renderer, index, result)
    _attach_catalog(result, catalogs, target.name, index, validators)
    return result


def _render_paths(target: Target, renderer: Renderer, validators: Validators) -> SiteResult:
    result = SiteResult(target.name)
    catalogs: list[tuple[dict[str, Any], Path]] = []
    for path in target.paths:
        try:
            if path.is_dir():
                catalogs.extend(_catalogs(path))
                if is_kustomization_dir(path):
                    docs = renderer.kustomize(path)
                else:
                    docs = build_directory(path, renderer, load_source_ignore(path))
                result.objects.extend(Obj(d, str(path)) for d in docs if d.get("kind") != CATALOG_KIND)
            elif path.is_file():
                docs = load_yaml_documents(path.read_text(encoding="utf-8"), str(path))
                catalogs.extend((d, path) for d in docs if d.get("kind") == CATALOG_KIND)
                result.objects.extend(Obj(d, str(path)) for d in docs if d.get("kind") != CATALOG_KIND)
            else:
                result.add("input", None, "", "no such file or directory", file=str(path))
        except BuildError as exc:
            result.add("kustomize", None, "", str(exc), file=str(path))
    _attach_catalog(result, catalogs, None, None, validators)
    return result


def _check_schemas(result: SiteResult, validators: Validators) -> None:
    for obj in result.objects:
        doc = {k: v for k, v in obj.doc.items() if k != "sops"} if obj.kind == "Secret" else obj.doc
        key = (obj.api_version, obj.kind)
        if validators.crds.has_schema(*key):
            errors = validators.crds.errors(doc)
        elif validators.builtin.has_schema(*key):
            errors = validators.builtin.errors(doc)
        elif key in INVARIANT_ONLY:
            continue
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
    cache = {}
    for root in {t.root.resolve() for t in targets if t.root is not None}:
        cache[root] = (SourceIndex(root), _catalogs(root))

    def one(target: Target) -> SiteResult:
        if target.root is not None:
            result = _render_site(target, renderer, validators, cache)
        else:
            result = _render_paths(target, renderer, validators)
        _check_schemas(result, validators)
        check_invariants(result, validators.external_secrets)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, targets))
    sites = {t.name: r for r, t in zip(results, targets, strict=True) if t.root is not None}
    roots = {t.name: t.root for t in targets if t.root is not None}
    for result, target in zip(results, targets, strict=True):
        rendered = [sites[name] for name in target.argocd_sites if name in sites]
        if rendered:
            root = roots[target.argocd_sites[0]]
            assert root is not None
            check_argocd(result, rendered, root)
    return results


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
            args.catalog_schema,
            frozenset(args.external_secret),
        )
        renderer = Renderer()
        checkov = None if args.no_checkov else find_checkov(args.checkov)
    except (SchemaDirError, CheckovMissing, BuildError, ValueError) as exc:
        print(f"validate-gitops: {exc}", file=sys.stderr)
        return 2
    targets = _targets(args)
    if not targets:
        print(f"validate-gitops: nothing to validate (no sites under {args.root / 'clusters'})", file=sys.stderr)
        return 2
    results = validate(targets, validators, renderer, args.jobs)
    if checkov is not None:
        run_checkov(results, checkov, args.jobs)
    if validators.crds.unsupported_rules and not args.quiet:
        for rule in validators.crds.unsupported_rules:
            print(f"note: CEL rule not checkable offline: {rule}")
    return report(results, args.quiet, time.perf_counter() - started)
