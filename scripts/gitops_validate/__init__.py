# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline validation of the edgeslm.pi5 GitOps repository, the way Flux would build it.

`scripts/validate-gitops` is the entry point; `cli.main` wires the stages together:
Flux graph and kustomize builds (flux.py), strict schemas for built-in kinds (k8s_schema.py)
and custom resources with their CEL rules (crd_schema.py, cel.py), the project's own
invariants (invariants.py, catalog.py) and checkov (checkov_scan.py).
"""

from __future__ import annotations

__all__ = ["K3S_KUBERNETES_MINOR"]

# The Kubernetes minor of the k3s release the cluster roles pin (v1.33.x). Keep it equal to
# the k3s version in roles/k3s_server and roles/k3s_agent defaults: built-in kinds are
# validated against exactly this API version.
K3S_KUBERNETES_MINOR = "1.33"
