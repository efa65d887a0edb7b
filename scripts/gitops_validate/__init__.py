# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline validation of the edgeslm.pi5 GitOps repository, the way Flux would build it.

`scripts/validate-gitops` is the entry point; `cli.main` wires the stages together:
Flux graph and kustomize builds (flux.py), strict schemas for built-in kinds (k8s_schema.py)
and custom resources with their CRD rules (crd_schema.py, cel.py), the project's own
invariants (invariants.py, catalog.py) and checkov (checkov_scan.py).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["K3S_KUBERNETES_MINOR", "K3S_PIN_FILE", "PinError", "pinned_k3s_release"]

# The collection's one k3s pin: the default of k3s_release in the k3s role (shipped in the
# collection next to this package). Nothing else writes the release or its Kubernetes minor.
K3S_PIN_FILE = Path(__file__).resolve().parents[2] / "roles" / "k3s" / "defaults" / "main.yml"
_RELEASE = re.compile(r"\bv(\d+)\.(\d+)\.(\d+)\+k3s(\d+)\b")


class PinError(ValueError):
    """The k3s role's defaults do not hold exactly one pinned release."""


def pinned_k3s_release(path: Path = K3S_PIN_FILE) -> str:
    """The k3s release the k3s role pins (`vX.Y.Z+k3sN`), read from its defaults file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PinError(f"{path}: cannot read the k3s pin ({exc.strerror})") from exc
    found = sorted({match.group(0) for match in _RELEASE.finditer(text)})
    if len(found) != 1:
        raise PinError(f"{path} must name exactly one k3s release (the pin of k3s_release), found {found or 'none'}")
    return found[0]


def _minor(release: str) -> str:
    match = _RELEASE.fullmatch(release)
    if match is None:
        raise PinError(f"{release!r} is not a k3s release")
    return f"{match.group(1)}.{match.group(2)}"


# The Kubernetes minor of the pinned k3s release: built-in kinds are validated against exactly
# this API version.
K3S_KUBERNETES_MINOR = _minor(pinned_k3s_release())
