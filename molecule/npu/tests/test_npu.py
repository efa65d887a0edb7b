"""npu on a node: one Hailo stack, matching and held versions, k3s labels, device list, local fact.

Shared with molecule/hw: checks that need the real device skip themselves on container nodes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from edgeslm_verify import is_container, os_codename
from edgeslm_verify import local_fact as role_fact

STACKS = {
    "hailo8": {"library": "hailort", "driver": "hailo-dkms", "module": "hailo_pci", "meta": "hailo-all"},
    "hailo10h": {
        "library": "h10-hailort",
        "driver": "h10-hailort-pcie-driver",
        "module": "hailo1x_pci",
        "meta": "hailo-h10-all",
    },
}
ALL_HAILO_PACKAGES = [
    "hailo-all",
    "hailort",
    "hailo-dkms",
    "hailofw",
    "python3-hailort",
    "hailo-h10-all",
    "h10-hailort",
    "h10-hailort-pcie-driver",
]


def local_fact(host: Any) -> dict[str, Any]:
    return role_fact(host, "npu")


def installed(host: Any) -> dict[str, str]:
    out = host.run(
        "dpkg-query -W -f '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n' " + " ".join(ALL_HAILO_PACKAGES)
    )
    result = {}
    for line in out.stdout.splitlines():
        name, version, status = line.split("\t")
        if status[1:2] == "i":  # "ii" installed, "hi" installed and held
            result[name] = version
    return result


def upstream(version: str) -> str:
    version = version.split(":", 1)[-1]
    return version.rsplit("-", 1)[0] if "-" in version else version


def k3s_labels(host: Any) -> list[str]:
    fact = local_fact(host)
    dropin = host.file(fact["k3s_labels_file"])
    assert dropin.mode == 0o600
    config = yaml.safe_load(dropin.content_string)
    assert set(config) == {"node-label+"}, "the drop-in must append labels, never replace config.yaml's list"
    labels: list[str] = config["node-label+"]
    return labels


def test_fact_model_is_known(host: Any) -> None:
    fact = local_fact(host)
    assert fact["provider"] == "hailo"
    assert fact["model"] in ("none", "hailo8", "hailo8l", "hailo10h")
    assert fact["container"] is is_container(host)


def test_exactly_one_stack_installed(host: Any) -> None:
    fact = local_fact(host)
    packages = installed(host)
    if fact["model"] == "none":
        assert any(s["step"] == "npu" for s in fact["skipped"])
        return
    family = fact["family"]
    other = "hailo10h" if family == "hailo8" else "hailo8"
    assert STACKS[family]["meta"] in packages
    for role in ("library", "driver", "meta"):
        assert STACKS[other][role] not in packages, f"{STACKS[other][role]} of the other stack is still installed"


def test_library_and_driver_match_and_are_held(host: Any) -> None:
    fact = local_fact(host)
    if fact["model"] == "none":
        pytest.skip("no NPU on this node")
    stack = STACKS[fact["family"]]
    packages = installed(host)
    library, driver = packages[stack["library"]], packages[stack["driver"]]
    assert upstream(library) == upstream(driver), f"{library} != {driver}: HAILO_INVALID_DRIVER_VERSION"
    held = host.check_output("apt-mark showhold").split()
    assert stack["library"] in held
    assert stack["driver"] in held
    for name, version in fact["packages"]["pins"].items():
        assert packages[name] == version, f"{name} is {packages[name]}, pinned {version}"
    assert fact["driver_version"] == upstream(driver)


def test_k3s_labels(host: Any) -> None:
    fact = local_fact(host)
    labels = k3s_labels(host)
    # The scheduling label edgeslm.io/npu is the site catalog's (the k3s role writes it); this drop-in
    # carries only what the npu role knows: the driver version.
    assert not [label for label in labels if label.startswith("edgeslm.io/npu=")], labels
    driver_labels = [label for label in labels if label.startswith("edgeslm.io/npu-driver=")]
    if fact["model"] == "none":
        assert driver_labels == []
    else:
        assert driver_labels == [f"edgeslm.io/npu-driver={fact['driver_version']}"]


def test_device_plugin_list(host: Any) -> None:
    fact = local_fact(host)
    path = "/etc/edgeslm/npu/device-plugin.json"
    if fact["model"] == "none":
        assert not host.file(path).exists
        return
    spec = json.loads(host.file(path).content_string)
    assert spec["name"] == "hailo"
    assert [p["path"] for p in spec["groups"][0]["paths"]] == fact["device_paths"]
    assert "/dev/hailo0" in fact["device_paths"]


def test_verified_by_identify(host: Any) -> None:
    fact = local_fact(host)
    if fact["model"] == "none":
        pytest.skip("no NPU on this node")
    assert fact["verified"] is True
    assert fact["firmware_version"]


def test_device_answers_on_real_hardware(host: Any) -> None:
    fact = local_fact(host)
    if is_container(host):
        pytest.skip("container node: no Hailo device, the kernel belongs to the host")
    if fact["model"] == "none":
        pytest.skip("no NPU on this node")
    assert host.file("/dev/hailo0").is_character_device
    assert host.file(f"/sys/module/{STACKS[fact['family']]['module']}").exists
    identify = host.check_output("hailortcli fw-control identify")
    assert f"Device Architecture: {fact['model'].upper()}" in identify


def test_hailo10h_stack_only_on_trixie(host: Any) -> None:
    fact = local_fact(host)
    if fact["family"] != "hailo10h":
        pytest.skip("no Hailo-10H stack on this node")
    assert os_codename(host) == "trixie", "hailo-h10-all is published for Raspberry Pi OS Trixie only"


def test_hailo_apt_source_is_deb822(host: Any) -> None:
    assert not host.file("/etc/apt/sources.list.d/edgeslm-hailo.list").exists, "one-line sources are not written"
    sources = host.file("/etc/apt/sources.list.d/edgeslm-hailo.sources")
    if not sources.exists:
        pytest.skip("npu_hailo_apt_repository is empty: the OS's Raspberry Pi repository is used")
    fields = dict(line.split(": ", 1) for line in sources.content_string.splitlines() if ": " in line)
    assert fields["Types"] == "deb"
    assert fields["URIs"]
    assert fields["Suites"]
