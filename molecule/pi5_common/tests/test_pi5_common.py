"""pi5_common on a node: boot flags, swap, modules, sysctls, kernel choice, journald, time sync, local fact.

Shared with molecule/hw: assertions about the live kernel run only on real boards and skip,
with the reason, on container nodes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

FACT = "/etc/ansible/facts.d/edgeslm_pi5_common.fact"
CGROUP_TOKENS = ["cgroup_enable=cpuset", "cgroup_memory=1", "cgroup_enable=memory"]
CIS_SYSCTLS = {"vm.panic_on_oom": "0", "vm.overcommit_memory": "1", "kernel.panic": "10", "kernel.panic_on_oops": "1"}


def is_container(host: Any) -> bool:
    return bool(host.file("/run/.containerenv").exists or host.file("/.dockerenv").exists)


def local_fact(host: Any) -> dict[str, Any]:
    fact_file = host.file(FACT)
    assert fact_file.exists, f"{FACT} missing: pi5_common did not run"
    assert fact_file.mode == 0o644
    data: dict[str, Any] = json.loads(fact_file.content_string)
    return data


def real_node_only(host: Any) -> None:
    if is_container(host):
        pytest.skip("container node: the kernel, swap and clock belong to the host")


def test_local_fact_describes_the_node(host: Any) -> None:
    fact = local_fact(host)
    assert fact["role"] == "pi5_common"
    assert fact["container"] is is_container(host)
    assert fact["reboot_handler"] == "edgeslm reboot"
    assert fact["hardware"]["source"] in ("hardware", "fixture")
    skipped = {entry["step"]: entry["reason"] for entry in fact["skipped"]}
    if is_container(host):
        assert "container" in skipped["sysctl_live"]
        assert "container" in skipped["reboot"]
    else:
        assert "sysctl_live" not in skipped


def test_cmdline_has_each_cgroup_token_once(host: Any) -> None:
    fact = local_fact(host)
    path = fact["cmdline"]["file"]
    assert path in ("/boot/firmware/cmdline.txt", "/boot/cmdline.txt")
    if path == "/boot/cmdline.txt":
        # The old layout is used only where the Bookworm path does not exist.
        assert not host.file("/boot/firmware/cmdline.txt").exists
    content = host.file(path).content_string
    assert content.endswith("\n")
    assert len(content.splitlines()) == 1, "the firmware reads one line only"
    tokens = content.split()
    for token in CGROUP_TOKENS:
        assert tokens.count(token) == 1, f"{token} appears {tokens.count(token)} times"
    assert "cgroup_disable=memory" not in tokens
    assert any(t.startswith("root=") for t in tokens), "the root= token must survive the edit"


def test_cmdline_flags_active_after_reboot(host: Any) -> None:
    real_node_only(host)
    running = host.file("/proc/cmdline").content_string.split()
    for token in CGROUP_TOKENS:
        assert token in running
    assert "memory" in host.check_output("cat /proc/cgroups")


def feature(host: Any, name: str) -> None:
    if not local_fact(host)[name]["managed" if name != "swap" else "disabled"]:
        pytest.skip(f"{name} is not managed on this node")


def test_swap_is_configured_off(host: Any) -> None:
    feature(host, "swap")
    for line in host.file("/etc/fstab").content_string.splitlines():
        fields = line.split()
        assert not (fields and not fields[0].startswith("#") and len(fields) > 2 and fields[2] == "swap"), line
    if host.package("dphys-swapfile").is_installed:
        assert not host.service("dphys-swapfile").is_enabled
        assert "CONF_SWAPSIZE=0" in host.file("/etc/dphys-swapfile").content_string
        assert not host.file("/var/swap").exists
    if host.file("/usr/lib/systemd/zram-generator.conf").exists:
        zram = host.file("/etc/systemd/zram-generator.conf").content_string
        sections = [line for line in zram.splitlines() if line.strip().startswith("[")]
        assert sections == [], "a zram-generator section creates a swap device"


def test_swap_is_off_now(host: Any) -> None:
    real_node_only(host)
    feature(host, "swap")
    assert len(host.file("/proc/swaps").content_string.strip().splitlines()) == 1


def test_kernel_modules_persist(host: Any) -> None:
    feature(host, "kernel_modules")
    content = host.file("/etc/modules-load.d/50-edgeslm-k8s.conf").content_string
    for module in ("overlay", "br_netfilter"):
        assert module in content.splitlines()


def test_kernel_modules_loaded(host: Any) -> None:
    real_node_only(host)
    assert host.file("/sys/module/br_netfilter").exists
    assert host.file("/sys/module/overlay").exists


def parse_sysctl_file(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _sep, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_cis_sysctls_written(host: Any) -> None:
    feature(host, "sysctl")
    kubelet = host.file("/etc/sysctl.d/90-kubelet.conf")
    assert kubelet.mode == 0o644
    values = parse_sysctl_file(kubelet.content_string)
    for key, value in CIS_SYSCTLS.items():
        assert values[key] == value
    network = parse_sysctl_file(host.file("/etc/sysctl.d/60-edgeslm-k8s.conf").content_string)
    assert network["net.ipv4.ip_forward"] == "1"
    assert network["net.bridge.bridge-nf-call-iptables"] == "1"


def test_cis_sysctls_live(host: Any) -> None:
    real_node_only(host)
    for key, value in CIS_SYSCTLS.items():
        assert host.check_output(f"sysctl -n {key}") == value


def test_kernel_choice_matches_the_fact(host: Any) -> None:
    fact = local_fact(host)
    config = host.file(fact["kernel"]["config_txt"]).content_string
    block = "# BEGIN edgeslm.pi5.pi5_common kernel\n[all]\nkernel=kernel8.img\n# END edgeslm.pi5.pi5_common kernel"
    assert (block in config) is fact["kernel"]["kernel_4k_pages"]
    assert config.count("edgeslm.pi5.pi5_common kernel") in (0, 2)
    assert "arm_64bit=1" in config, "stock settings must survive"


def test_page_size_after_reboot(host: Any) -> None:
    real_node_only(host)
    fact = local_fact(host)
    expected = "4096" if fact["kernel"]["kernel_4k_pages"] else "16384"
    assert host.check_output("getconf PAGESIZE") == expected


def test_journald_sized_for_flash(host: Any) -> None:
    feature(host, "journald")
    dropin = host.file("/etc/systemd/journald.conf.d/50-edgeslm.conf").content_string
    assert "[Journal]" in dropin
    assert "SystemMaxUse=" in dropin
    assert "Storage=" in dropin
    assert host.service("systemd-journald").is_running


def test_timesyncd_enabled(host: Any) -> None:
    feature(host, "timesync")
    fact = local_fact(host)
    assert host.service("systemd-timesyncd").is_enabled
    dropin = host.file("/etc/systemd/timesyncd.conf.d/50-edgeslm.conf").content_string
    servers = fact["timesync"]["ntp_servers"]
    if servers:
        assert f"NTP={' '.join(servers)}" in dropin
    else:
        assert "\nNTP=" not in dropin


def test_timesyncd_running(host: Any) -> None:
    real_node_only(host)
    feature(host, "timesync")
    assert host.service("systemd-timesyncd").is_running
