"""pi5_common on a node: boot flags, swap, modules, sysctls, kernel choice, journald, time sync, local fact.

Shared with molecule/hw: assertions about the live kernel run only on real boards and skip,
with the reason, on container nodes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from edgeslm_verify import container_only, is_container, os_codename, real_node_only
from edgeslm_verify import local_fact as role_fact

CGROUP_TOKENS = ["cgroup_enable=cpuset", "cgroup_memory=1", "cgroup_enable=memory"]
CIS_SYSCTLS = {"vm.panic_on_oom": "0", "vm.overcommit_memory": "1", "kernel.panic": "10", "kernel.panic_on_oops": "1"}


def local_fact(host: Any) -> dict[str, Any]:
    return role_fact(host, "pi5_common")


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


def test_os_and_python_are_recorded(host: Any) -> None:
    fact = local_fact(host)
    assert fact["os"]["codename"] == os_codename(host)
    assert fact["os"]["codename"] in ("bookworm", "trixie")
    python = host.check_output("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'")
    assert fact["os"]["python"].startswith(python)


def metrics_text(host: Any) -> str:
    """The producer's textfile; the timer fires a second after it starts, so wait a little."""
    path = local_fact(host)["metrics"]["textfile"]
    for _attempt in range(30):
        if host.file(path).exists:
            text: str = host.file(path).content_string
            return text
        time.sleep(2)
    raise AssertionError(f"{path} was not written within 60 s")


def samples(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _sep, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_metrics_timer_runs_the_producer(host: Any) -> None:
    feature(host, "metrics")
    assert host.service("edgeslm-pi-metrics.timer").is_enabled
    assert host.service("edgeslm-pi-metrics.timer").is_running
    assert host.file("/usr/local/lib/edgeslm/edgeslm_pi_metrics.py").exists
    metrics_text(host)  # the timer has fired at least once
    # A timer can be active while every run of its service fails (systemd 257 under qemu-user starts
    # no unit at all): the service's own result says whether the producer ran.
    shown = host.check_output("systemctl show -p Result -p ExecMainStatus edgeslm-pi-metrics.service")
    assert dict(line.split("=", 1) for line in shown.splitlines()) == {"Result": "success", "ExecMainStatus": "0"}


def test_metrics_textfile_holds_every_declared_series(host: Any) -> None:
    feature(host, "metrics")
    fact = local_fact(host)
    text = metrics_text(host)
    assert host.file(fact["metrics"]["textfile"]).mode == 0o644
    declared = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert declared == set(fact["metrics"]["names"])
    values = samples(text)
    assert values['edgeslm_pi_metrics_read_ok{source="throttled"}'] == 1
    assert values['edgeslm_pi_metrics_read_ok{source="soc_temperature"}'] == 1
    for flag in ("under_voltage", "arm_frequency_capped", "throttled", "soft_temperature_limit"):
        assert f'edgeslm_pi_throttled{{flag="{flag}"}}' in values
        assert f'edgeslm_pi_throttled_since_boot{{flag="{flag}"}}' in values
    assert 0 < values["edgeslm_pi_soc_temperature_celsius"] < 110


def test_metrics_match_the_board(host: Any) -> None:
    """On the virtual nodes the fixture is the board: the textfile must say exactly what it holds."""
    container_only(host, "a real board's temperature and flags move between two reads")
    feature(host, "metrics")
    fact = local_fact(host)
    values = samples(metrics_text(host))
    zone = f"{fact['hardware']['root']}/sys/class/thermal/thermal_zone0/temp"
    assert values["edgeslm_pi_soc_temperature_celsius"] == int(host.file(zone).content_string) / 1000
    raw = int(host.check_output("vcgencmd get_throttled").partition("=")[2], 16)
    assert values["edgeslm_pi_throttled_raw"] == raw
    bits = {"under_voltage": 0, "arm_frequency_capped": 1, "throttled": 2, "soft_temperature_limit": 3}
    for flag, bit in bits.items():
        assert values[f'edgeslm_pi_throttled{{flag="{flag}"}}'] == (raw >> bit) & 1, flag
        assert values[f'edgeslm_pi_throttled_since_boot{{flag="{flag}"}}'] == (raw >> (bit + 16)) & 1, flag


def test_longhorn_prerequisites(host: Any) -> None:
    fact = local_fact(host)
    if not fact["longhorn"]["prerequisites"]:
        pytest.skip("pi5_common_longhorn_prerequisites is false on this node")
    for package in ("open-iscsi", "nfs-common"):
        assert host.package(package).is_installed, package
    assert host.service("iscsid").is_enabled
    assert "iscsi_tcp" in host.file("/etc/modules-load.d/50-edgeslm-longhorn.conf").content_string.splitlines()
    if not is_container(host):
        assert host.service("iscsid").is_running
        assert host.file("/sys/module/iscsi_tcp").exists
