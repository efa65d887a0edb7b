"""Verify edgeslm.pi5.wasm_runtime on a node: virtual Pi 5 containers here, real boards in molecule/hw.

Tests that need a real k3s (the runtime registered by containerd) skip themselves in a container;
tests of the k3s-agent TEST STAND-IN skip themselves on real hardware.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest
from edgeslm_verify import is_container, local_fact

FACT = "/etc/ansible/facts.d/edgeslm_wasm_runtime.fact"
BASE_LINE = '{{ template "base" . }}'
STANDIN_STATE = "/var/lib/edgeslm-test-standin/k3s-agent.json"
# Tables k3s's base template declares (k3s pkg/agent/templates): a user template must not redeclare them.
BASE_RUNTIMES = {
    "runc",
    "crun",
    "nvidia",
    "nvidia-experimental",
    "lunatic",
    "slight",
    "spin",
    "wws",
    "wasmedge",
    "wasmer",
    "wasmtime",
}
CRI_PLUGIN = {"v2": "io.containerd.grpc.v1.cri", "v3": "io.containerd.cri.v1.runtime"}


def _fact(host: Any) -> dict[str, Any]:
    data: dict[str, Any] = local_fact(host, "wasm_runtime", mode=None)
    return data


def _in_container(host: Any) -> bool:
    return is_container(host)


def test_local_fact_is_valid_json_with_mode_0644(host: Any) -> None:
    fact_file = host.file(FACT)
    assert fact_file.mode == 0o644
    fact = _fact(host)
    assert fact["provider"] == "wasmedge"
    assert fact["arch"] == {"x86_64": "x86_64", "aarch64": "aarch64"}[host.system_info.arch]


def test_every_artifact_was_verified(host: Any) -> None:
    artifacts = _fact(host)["artifacts"]
    assert artifacts, "no artifact recorded"
    for name, artifact in artifacts.items():
        assert artifact["present"], name
        assert re.fullmatch(r"[0-9a-f]{64}", artifact["sha256"]), name
        assert artifact["verified_by"] in (
            "pinned sha256",
            "release checksum list SHA256SUM",
            "release checksum list SHA256SUMS-shim",
        ), name
        assert host.file(artifact["path"]).sha256sum == artifact["sha256"], name


def test_wasmedge_runs_on_this_architecture(host: Any) -> None:
    fact = _fact(host)
    out = host.run("/usr/local/bin/wasmedge --version")
    assert out.rc == 0, out.stderr
    assert f"wasmedge version {fact['wasmedge']['version']}" in out.stdout
    link = host.file("/opt/edgeslm/wasmedge/current")
    assert link.is_symlink and link.linked_to == fact["wasmedge"]["install_dir"]


def test_wasi_nn_plugin_is_installed(host: Any) -> None:
    plugin = host.file(_fact(host)["wasmedge"]["plugin"])
    assert plugin.is_file
    assert plugin.mode == 0o644 or plugin.mode == 0o755


def test_linker_knows_the_wasmedge_libraries(host: Any) -> None:
    conf = host.file("/etc/ld.so.conf.d/edgeslm-wasmedge.conf").content_string.splitlines()
    assert conf[0].startswith("# Managed by edgeslm.pi5.wasm_runtime")
    assert "/opt/edgeslm/wasmedge/current/lib" in conf[1:]


def test_shim_is_where_k3s_and_kwasm_look(host: Any) -> None:
    fact = _fact(host)
    shim = host.file("/opt/kwasm/bin/containerd-shim-wasmedge-v1")
    assert fact["shim"]["path"] == "/opt/kwasm/bin/containerd-shim-wasmedge-v1"
    assert shim.is_file and shim.mode == 0o755 and shim.user == "root"
    out = host.run("/opt/kwasm/bin/containerd-shim-wasmedge-v1 -v")
    assert out.rc == 0 and f"Version: {fact['shim']['version']}" in out.stdout


def _template(host: Any) -> tuple[str, str, dict[str, Any]]:
    fact = _fact(host)["wasinn"]
    if not fact["enabled"]:
        pytest.skip("plugin-capable runtime disabled on this node")
    text = host.file(fact["containerd_template"]).content_string
    return fact["containerd_schema"], text, fact


def test_containerd_template_extends_the_base_template(host: Any) -> None:
    schema, text, fact = _template(host)
    assert text.splitlines()[0] == BASE_LINE
    expected_file = {"v2": "config.toml.tmpl", "v3": "config-v3.toml.tmpl"}[schema]
    assert fact["containerd_template"].endswith("/" + expected_file)
    other = {"v2": "config-v3.toml.tmpl", "v3": "config.toml.tmpl"}[schema]
    assert not host.file(f"/var/lib/rancher/k3s/agent/etc/containerd/{other}").exists


def test_containerd_template_adds_one_runtime_and_redeclares_nothing(host: Any) -> None:
    schema, text, fact = _template(host)
    body = text.split("\n", 1)[1].replace("{{ .SystemdCgroup }}", "true")
    assert "{{" not in body, "unknown template fields in the user part"
    config = tomllib.loads(body)
    runtimes = config["plugins"][CRI_PLUGIN[schema]]["containerd"]["runtimes"]
    assert set(runtimes) == {fact["runtime_handler"]}
    assert not set(runtimes) & BASE_RUNTIMES
    handler = runtimes[fact["runtime_handler"]]
    assert handler["runtime_type"] == "io.containerd.runc.v2"
    assert "module.wasm.image/variant" in handler["pod_annotations"]
    assert handler["options"]["BinaryName"] == fact["crun"]
    assert host.file(fact["crun"]).mode == 0o755
    assert host.file(fact["plugin_dir"] + "/libwasmedgePluginWasiNN.so").is_file


def test_schema_matches_the_k3s_version(host: Any) -> None:
    fact = _fact(host)["wasinn"]
    if not fact["enabled"]:
        pytest.skip("plugin-capable runtime disabled on this node")
    version = tuple(int(p) for p in re.findall(r"\d+", fact["k3s_version_basis"])[:3])
    containerd2 = version >= (1, 32, 2) or (1, 31, 6) <= version < (1, 32, 0)
    assert fact["containerd_schema"] == ("v3" if containerd2 else "v2")


def test_node_labels_are_the_catalogs_and_no_drop_in(host: Any) -> None:
    # The k3s role writes the catalog's labels at registration; this role writes no drop-in of its
    # own and sets only the catalog's Wasm labels on a registered Node.
    node = _fact(host)["node"]
    assert not host.file("/etc/rancher/k3s/config.yaml.d/60-edgeslm-wasm.yaml").exists
    assert sorted(node["labels"]) == ["edgeslm.io/wasm-wasinn=true", "edgeslm.io/wasm=wasmedge"]


def test_api_step_is_explained_when_skipped(host: Any) -> None:
    node = _fact(host)["node"]
    if not host.file("/usr/local/bin/k3s").exists:
        assert node["api"].startswith("skipped: no k3s binary")
        assert "kwasm" in node["api"]
    else:
        assert node["api"].startswith(("labels and annotations present", "skipped: node", "skipped: k3s kubectl"))


def test_k3s_restart_decision(host: Any) -> None:
    fact = _fact(host)
    units = [u for u in ("k3s.service", "k3s-agent.service") if host.run(f"systemctl cat {u}").rc == 0]
    if units:
        assert fact["k3s_restart"] == f"handler restarts {units[0]} when the runtime changes"
    else:
        assert fact["k3s_restart"].startswith("skipped: no k3s or k3s-agent unit")


def test_standin_k3s_was_restarted_once_and_saw_the_runtimes(host: Any) -> None:
    if not _in_container(host) or not host.file(STANDIN_STATE).exists:
        pytest.skip("no k3s-agent TEST STAND-IN on this node")
    state = json.loads(host.file(STANDIN_STATE).content_string)
    # Boot start + one restart by the handler in the first converge; the idempotent run restarts nothing.
    assert state["starts"] == 2, state
    assert state["wasm_runtimes"] == {"wasmedge": "/opt/kwasm/bin/containerd-shim-wasmedge-v1"}
    assert state["containerd"]["runtimes"] == sorted(["runc", "wasmedge", _fact(host)["wasinn"]["runtime_handler"]])
    assert host.service("k3s-agent").is_running


def test_real_k3s_registered_the_wasm_runtimes(host: Any) -> None:
    if _in_container(host):
        pytest.skip("needs a real k3s: the containerd config is rendered by k3s on real nodes only")
    config = host.file("/var/lib/rancher/k3s/agent/etc/containerd/config.toml").content_string
    assert "containerd-shim-wasmedge-v1" in config or 'runtimes."wasmedge"' in config or "runtimes.wasmedge" in config
