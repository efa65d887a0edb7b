#!/usr/bin/python
# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Raspberry Pi 5 hardware facts (a thin adapter over module_utils/_hardware.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pi5_facts
short_description: Gather Raspberry Pi 5 hardware facts (board, RAM, page size, boot disk, NVMe, PCIe, Hailo NPU)
version_added: 0.1.0
description:
  - Reads the board model and revision, RAM, kernel page size, boot device and root PARTUUID, NVMe disks,
    PCIe devices, Hailo NPU (PCI id, C(/dev/hailo*), HailoRT and driver versions), the bootloader
    configuration (C(rpi-eeprom-config), C(rpi-eeprom-update)) and the throttling state (C(vcgencmd get_throttled)).
  - Returns them as C(ansible_facts.edgeslm_pi5). Every fact group carries C(source) - C(hardware) (read from the
    live system), C(fixture) (read below a I(root) other than C(/)) or C(absent) (with a C(reason)). Installed
    Hailo packages come from the node's dpkg database and say C(system).
  - Run at C(/) inside a container, the board, boot disk, PCIe bus and bootloader are reported C(absent),
    because they belong to the host.
  - Optionally answers planning questions without changing anything - which Hailo packages a model needs
    (I(npu_model)), how the bootloader configuration must change (I(bootloader_desired)) and whether the running
    system may be migrated onto a disk (I(migration_target)). The module never writes.
author:
  - edgeslm maintainers (@edgeslm)
options:
  root:
    description:
      - Directory the hardware files (C(proc/), C(sys/), C(dev/)) are read below.
      - Tests point it at a fixture tree; facts read below it say C(source=fixture).
    type: path
    default: /
  probe_npu:
    description:
      - Run C(hailortcli fw-control identify) when a Hailo device node and the tool exist, to tell Hailo-8 from
        Hailo-8L and read the NPU firmware version.
    type: bool
    default: false
  npu_model:
    description:
      - When set, return C(edgeslm_pi5.npu.plan) - the model the node gets software for and the packages to
        install, remove and hold. C(auto) follows the PCI id. Fails when the declared model contradicts the bus,
        and when its stack is not published for the node's OS release (the Hailo-10H stack C(hailo-h10-all) is
        published for Raspberry Pi OS Trixie only).
    type: str
    choices: [auto, none, hailo8, hailo8l, hailo10h]
  npu_version_pins:
    description:
      - Exact Debian versions by package name for the plan (for example C(hailort) and C(hailo-dkms)).
      - The HailoRT library and driver pins must have the same upstream version.
    type: dict
    default: {}
  bootloader_desired:
    description:
      - Bootloader settings (C(BOOT_ORDER), C(PCIE_PROBE), ...) to compare with the current configuration.
      - Returns C(edgeslm_pi5.bootloader.plan) with C(in_sync), C(changes) and the full C(config_text) to apply.
    type: dict
  pcie_lane:
    description:
      - What the inventory declares on the Pi 5's single PCIe lane. When set, return C(edgeslm_pi5.pcie.plan)
        (C(action) C(ok) or C(refuse), C(nvme), C(npu), C(switch), C(evidence), C(reasons)), combining the
        declaration with the NVMe controllers, Hailo NPUs and switch ports found on the bus.
    type: dict
    suboptions:
      nvme:
        description: An NVMe drive is declared.
        type: bool
        required: true
      npu:
        description: An AI HAT+ (Hailo NPU) is declared.
        type: bool
        required: true
      switch:
        description: A PCIe switch board is declared.
        type: bool
        required: true
      gen:
        description: The PCIe link generation to configure.
        type: int
        default: 2
  migration_target:
    description:
      - A whole disk (for example C(/dev/nvme0n1)) to judge as the target of an SD to NVMe migration.
      - Returns C(edgeslm_pi5.migration) with C(action) (C(migrate), C(done) or C(refuse)) and C(reasons).
    type: str
  migration_overwrite:
    description:
      - Allow the migration plan to erase a target that already holds partitions. A target with mounted
        partitions is refused regardless.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
  platform:
    support: full
    platforms: posix
    description: >-
      Raspberry Pi OS Bookworm (Debian 12, Python 3.11) and Trixie (Debian 13, Python 3.13) on the Raspberry Pi 5;
      any Linux with a fixture I(root).
  facts:
    support: full
    description: Returns C(ansible_facts.edgeslm_pi5).
notes:
  - Read-only tools are run only when found on the node's C(PATH). C(rpi-eeprom-update) without arguments only
    reports the bootloader status.
seealso:
  - name: Host roles
    description: How pi5_common, ssd_boot and npu use these facts.
    link: https://example.invalid/edgeslm/pi5/blob/main/docs/host-roles.md
"""

EXAMPLES = r"""
- name: Gather Raspberry Pi 5 facts
  edgeslm.pi5.pi5_facts:

- name: Warn about a 16K page kernel
  ansible.builtin.debug:
    msg: "{{ ansible_facts['edgeslm_pi5']['problems'] }}"
  when: ansible_facts['edgeslm_pi5']['page_size']['label'] | default('') == '16k'

- name: Read a fixture tree and plan the Hailo packages
  edgeslm.pi5.pi5_facts:
    root: /opt/edgeslm-test-fixture/hw
    npu_model: auto
    npu_version_pins:
      hailort: 4.20.0-1
      hailo-dkms: 4.20.0-1

- name: Compare the bootloader with NVMe-first boot
  edgeslm.pi5.pi5_facts:
    bootloader_desired:
      BOOT_ORDER: "0xf416"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to C(ansible_facts).
  returned: always
  type: dict
  contains:
    edgeslm_pi5:
      description: Raspberry Pi 5 hardware facts; every group has C(source).
      returned: always
      type: dict
      contains:
        root:
          description: The hardware root read.
          type: str
          sample: /
        source:
          description: C(hardware) at root C(/), C(fixture) otherwise.
          type: str
          sample: hardware
        container:
          description: True when run at root C(/) inside a container (host hardware is then C(absent)).
          type: bool
        board:
          description: >-
            C(model), C(revision), C(is_pi5), and from the revision code C(revision_code), C(memory_mb),
            C(processor).
          type: dict
          sample: {"source": "hardware", "model": "Raspberry Pi 5 Model B", "revision": "1.0", "is_pi5": true}
        memory:
          description: C(total_bytes), C(total_mb) and C(nominal_gb) (RAM as sold).
          type: dict
          sample: {"source": "hardware", "total_bytes": 8454742016, "total_mb": 8063, "nominal_gb": 8}
        page_size:
          description: Kernel page size, C(bytes) and C(label) (C(4k) or C(16k)).
          type: dict
          sample: {"source": "hardware", "bytes": 16384, "label": "16k"}
        boot:
          description: >-
            C(root_arg), C(root_partuuid), C(root_device) and C(device_kind) (C(nvme), C(sd), C(usb),
            C(unknown)).
          type: dict
          sample: {"source": "hardware", "root_partuuid": "4e639091-02", "device_kind": "sd"}
        nvme:
          description: C(present) and C(disks) (C(name), C(path), C(size_bytes), C(model), C(partitions)).
          type: dict
        os:
          description: >-
            The node's operating system from C(/etc/os-release) (C(id), C(version_id), C(codename), C(pretty_name));
            software, so C(source) is C(system) whatever I(root) is.
          type: dict
          sample: {"source": "system", "id": "debian", "version_id": "13", "codename": "trixie"}
        pcie:
          description: >-
            C(devices) on the bus (C(slot), C(id) as vendor:device, C(class), C(driver)); C(lane) lists the slots of
            NVMe controllers (C(nvme)), Hailo NPUs (C(npu)) and PCIe switch ports (C(switch)); with I(pcie_lane),
            C(plan).
          type: dict
        npu:
          description: >-
            C(family) (C(hailo8), C(hailo10h), C(none)), C(model) (C(hailo8l) once identified), C(pci_id),
            C(device_paths), C(packages) (installed Hailo packages), C(kernel_module), C(driver_version),
            C(library_version), C(identify)
            and, when I(npu_model) is set, C(plan) (C(model), C(family), C(install), C(remove), C(hold)).
          type: dict
        bootloader:
          description: >-
            C(config) (global settings), C(text), C(boot_order) (modes in boot order), C(firmware) (C(current_epoch),
            C(latest_epoch), C(update_available), C(nvme_capable)) and, with I(bootloader_desired), C(plan).
          type: dict
        throttled:
          description: C(raw), C(flags) and C(now) from C(vcgencmd get_throttled).
          type: dict
        migration:
          description: >-
            With I(migration_target) - C(action) (C(migrate), C(done), C(refuse)), C(target), C(reasons), and for
            C(migrate) C(boot_partition), C(root_partition), C(source_disk) and C(source_disk_id).
          type: dict
          returned: when migration_target is set
        problems:
          description: Findings that need attention, each with C(id) and C(message).
          type: list
          elements: dict
          sample: [{"id": "page_size_16k", "message": "the kernel uses 16K pages; ..."}]
"""

from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.edgeslm.pi5.plugins.module_utils import _disks, _eeprom, _hailo, _hardware, _pcie  # noqa: E402


def build_facts(module: AnsibleModule) -> dict[str, Any]:
    params = module.params

    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        rc, out, err = module.run_command(list(argv), environ_update={"LC_ALL": "C"})
        return rc, out, err

    def which(name: str) -> str | None:
        path: str | None = module.get_bin_path(name, opt_dirs=["/usr/sbin", "/sbin", "/usr/local/sbin"])
        return path

    facts = _hardware.collect(params["root"], run=run, which=which, probe_npu=params["probe_npu"])
    npu = facts["npu"]
    if params["npu_model"] is not None:
        architecture = (npu.get("identify") or {}).get("architecture")
        model = _hailo.resolve_model(params["npu_model"], npu["family"], architecture)
        npu["plan"] = _hailo.plan_stack(
            model, npu["packages"], params["npu_version_pins"] or {}, codename=facts["os"].get("codename")
        ).as_dict()
    if params["bootloader_desired"] is not None:
        loader = facts["bootloader"]
        if loader["source"] == "absent":
            loader["plan"] = None
        else:
            loader["plan"] = _eeprom.plan_eeprom_config(loader["text"], params["bootloader_desired"]).as_dict()
    if params["pcie_lane"] is not None:
        declared = params["pcie_lane"]
        pcie = facts["pcie"]
        facts["pcie"]["plan"] = _pcie.plan_lane(
            nvme_declared=declared["nvme"],
            npu_declared=declared["npu"],
            switch_declared=declared["switch"],
            gen=declared["gen"],
            detected=pcie["lane"] if pcie["source"] != "absent" else None,
            nvme_disks=[disk["name"] for disk in facts["nvme"]["disks"]],
        ).as_dict()
    if params["migration_target"] is not None:
        plan = _disks.plan_migration(
            params["migration_target"],
            facts["_disks"],
            facts["_mounts"],
            facts["boot"].get("root_device"),
            overwrite=params["migration_overwrite"],
            root_partuuid=facts["boot"].get("root_partuuid"),
        )
        facts["migration"] = plan.as_dict()
    return _hardware.public(facts)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "default": "/"},
            "probe_npu": {"type": "bool", "default": False},
            "npu_model": {"type": "str", "choices": ["auto", "none", "hailo8", "hailo8l", "hailo10h"]},
            "npu_version_pins": {"type": "dict", "default": {}},
            "bootloader_desired": {"type": "dict"},
            "pcie_lane": {
                "type": "dict",
                "options": {
                    "nvme": {"type": "bool", "required": True},
                    "npu": {"type": "bool", "required": True},
                    "switch": {"type": "bool", "required": True},
                    "gen": {"type": "int", "default": 2},
                },
            },
            "migration_target": {"type": "str"},
            "migration_overwrite": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    try:
        facts = build_facts(module)
    except (_hardware.HardwareError, _hailo.HailoError, _eeprom.EepromError, _disks.DiskError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, ansible_facts={"edgeslm_pi5": facts})


if __name__ == "__main__":
    main()
