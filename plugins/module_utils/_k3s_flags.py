# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The k3s configuration-file keys this collection accepts, kept as data with its source.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Every long CLI flag of `k3s server` / `k3s agent` is also a key of
/etc/rancher/k3s/config.yaml (and of the drop-ins in config.yaml.d/), spelled
without the leading dashes; a trailing `+` on a key appends to the value of
earlier files instead of replacing it.

Source: the k3s documentation's CLI reference, k3s-io/docs `docs/cli/server.md`
(stored commit 02434960d6d5881e47ae8a1c857c4b51f23deec6) and `docs/cli/agent.md`
(stored commit 1f023c058c5f999a8857644625779e7298d13936), i.e.
https://docs.k3s.io/cli/server and https://docs.k3s.io/cli/agent: the "CLI Help"
blocks plus the option tables above them (the tables add
`secrets-encryption-provider` and `disable-agent`). The configuration-file and
drop-in rules come from k3s-io/docs `docs/installation/configuration.md`.

Release line: SOURCE_MINOR is the k3s minor these lists were checked for, the v1.33
line (release notes k3s-io/docs `docs/release-notes/v1.33.X.md`). It must equal the minor
of the release the k3s role pins (roles/k3s/defaults/main.yml, the collection's one pin):
tests/unit/test_pins.py fails when the pin moves to another minor, so the lists are
re-read then. The docs pages describe the current CLI; flags that exist there but not in
an older release would pass this list, so the molecule stand-in and the role only ever
render keys that the v1.33 line has (checked by tests/unit).

Left out on purpose: `config` (it names the file itself and is not read from it)
and the deprecated `no-flannel`, `no-deploy` and `cluster-secret`.
"""

from __future__ import annotations

__all__ = [
    "AGENT_KEYS",
    "REPEATABLE_KEYS",
    "SERVER_KEYS",
    "SOURCE",
    "SOURCE_MINOR",
]

# The k3s (major, minor) the option lists were read for; equals the pinned release's minor.
SOURCE_MINOR = (1, 33)
SOURCE = (
    "k3s-io/docs docs/cli/server.md@02434960d6d5881e47ae8a1c857c4b51f23deec6, "
    "docs/cli/agent.md@1f023c058c5f999a8857644625779e7298d13936 (https://docs.k3s.io/cli/server, /cli/agent)"
)

# `k3s agent --help` (docs/cli/agent.md), every long option but `--config`.
AGENT_KEYS: frozenset[str] = frozenset(
    {
        "debug",
        "v",
        "vmodule",
        "log",
        "alsologtostderr",
        "token",
        "token-file",
        "server",
        "data-dir",
        "node-name",
        "with-node-id",
        "node-label",
        "node-taint",
        "image-credential-provider-bin-dir",
        "image-credential-provider-config",
        "selinux",
        "lb-server-port",
        "protect-kernel-defaults",
        "container-runtime-endpoint",
        "default-runtime",
        "image-service-endpoint",
        "pause-image",
        "snapshotter",
        "private-registry",
        "disable-default-registry-endpoint",
        "nonroot-devices",
        "node-ip",
        "bind-address",
        "node-external-ip",
        "node-internal-dns",
        "node-external-dns",
        "resolv-conf",
        "flannel-iface",
        "flannel-conf",
        "flannel-cni-conf",
        "kubelet-arg",
        "kube-proxy-arg",
        "enable-pprof",
        "rootless",
        "prefer-bundled-bin",
        "docker",
        "vpn-auth",
        "vpn-auth-file",
        "disable-apiserver-lb",
    }
)

# `k3s server --help` (docs/cli/server.md), every long option but `--config`,
# plus `secrets-encryption-provider` and `disable-agent` from the option tables.
SERVER_KEYS: frozenset[str] = frozenset(
    {
        "debug",
        "v",
        "vmodule",
        "log",
        "alsologtostderr",
        "bind-address",
        "https-listen-port",
        "advertise-address",
        "advertise-port",
        "tls-san",
        "tls-san-security",
        "data-dir",
        "cluster-cidr",
        "service-cidr",
        "service-node-port-range",
        "cluster-dns",
        "cluster-domain",
        "flannel-backend",
        "flannel-ipv6-masq",
        "flannel-external-ip",
        "egress-selector-mode",
        "servicelb-namespace",
        "write-kubeconfig",
        "write-kubeconfig-mode",
        "write-kubeconfig-group",
        "helm-job-image",
        "token",
        "token-file",
        "agent-token",
        "agent-token-file",
        "server",
        "cluster-init",
        "cluster-reset",
        "cluster-reset-restore-path",
        "kube-apiserver-arg",
        "etcd-arg",
        "kube-controller-manager-arg",
        "kube-scheduler-arg",
        "kube-cloud-controller-manager-arg",
        "datastore-endpoint",
        "datastore-cafile",
        "datastore-certfile",
        "datastore-keyfile",
        "etcd-expose-metrics",
        "etcd-disable-snapshots",
        "etcd-snapshot-name",
        "etcd-snapshot-schedule-cron",
        "etcd-snapshot-retention",
        "etcd-snapshot-dir",
        "etcd-snapshot-compress",
        "etcd-s3",
        "etcd-s3-endpoint",
        "etcd-s3-endpoint-ca",
        "etcd-s3-skip-ssl-verify",
        "etcd-s3-access-key",
        "etcd-s3-secret-key",
        "etcd-s3-bucket",
        "etcd-s3-region",
        "etcd-s3-folder",
        "etcd-s3-proxy",
        "etcd-s3-config-secret",
        "etcd-s3-insecure",
        "etcd-s3-timeout",
        "default-local-storage-path",
        "disable",
        "disable-scheduler",
        "disable-cloud-controller",
        "disable-kube-proxy",
        "disable-network-policy",
        "disable-helm-controller",
        "embedded-registry",
        "supervisor-metrics",
        "node-name",
        "with-node-id",
        "node-label",
        "node-taint",
        "image-credential-provider-bin-dir",
        "image-credential-provider-config",
        "docker",
        "container-runtime-endpoint",
        "default-runtime",
        "image-service-endpoint",
        "disable-default-registry-endpoint",
        "nonroot-devices",
        "pause-image",
        "snapshotter",
        "private-registry",
        "system-default-registry",
        "node-ip",
        "node-external-ip",
        "node-internal-dns",
        "node-external-dns",
        "resolv-conf",
        "flannel-iface",
        "flannel-conf",
        "flannel-cni-conf",
        "vpn-auth",
        "vpn-auth-file",
        "kubelet-arg",
        "kube-proxy-arg",
        "protect-kernel-defaults",
        "secrets-encryption",
        "secrets-encryption-provider",
        "enable-pprof",
        "rootless",
        "prefer-bundled-bin",
        "selinux",
        "lb-server-port",
        "disable-agent",
    }
)

# Flags that may be given more than once on the command line: lists in the file.
REPEATABLE_KEYS: frozenset[str] = frozenset(
    {
        "tls-san",
        "cluster-cidr",
        "service-cidr",
        "cluster-dns",
        "disable",
        "node-label",
        "node-taint",
        "node-ip",
        "node-external-ip",
        "node-internal-dns",
        "node-external-dns",
        "kube-apiserver-arg",
        "etcd-arg",
        "kube-controller-manager-arg",
        "kube-scheduler-arg",
        "kube-cloud-controller-manager-arg",
        "kubelet-arg",
        "kube-proxy-arg",
    }
)
