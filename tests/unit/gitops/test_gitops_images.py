# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Image references and where the validator finds containers."""

from __future__ import annotations

import pytest

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import images


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("docker.io/library/busybox:1.37.0@sha256:ab", ("docker.io/library/busybox", "1.37.0", "sha256:ab")),
        ("registry:5000/x/y@sha256:cd", ("registry:5000/x/y", None, "sha256:cd")),
        ("registry:5000/x/y:t", ("registry:5000/x/y", "t", None)),
        ("busybox", ("busybox", None, None)),
    ],
)
def test_split_image(image: str, parts: tuple[str, str | None, str | None]) -> None:
    assert images.split_image(image) == parts


def test_containers_are_found_wherever_a_pod_template_sits() -> None:
    spec = {
        "metrics": [
            {"provider": {"job": {"spec": {"template": {"spec": {"containers": [{"name": "smoke", "image": "a"}]}}}}}}
        ],
        "template": {"spec": {"initContainers": [{"name": "init", "image": "b"}], "containers": [{"image": "c"}]}},
    }
    found = {container["image"]: where for container, where in images.containers(spec)}
    assert found == {
        "a": "metrics[0].provider.job.spec.template.spec.containers[smoke]",
        "b": "template.spec.initContainers[init]",
        "c": "template.spec.containers[0]",
    }
