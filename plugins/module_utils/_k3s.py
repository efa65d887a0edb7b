# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decisions for the k3s role and playbooks: versions, topology, tokens, config keys, label syntax.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

Everything here is pure (no I/O): the roles read state on the node, pass it in, and act
on the answer. Refusals are `K3sError` subclasses (ValueError) whose messages name the
inventory variable and the fix. No message ever contains a token.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s_flags import (
    AGENT_KEYS,
    REPEATABLE_KEYS,
    SERVER_KEYS,
)

__all__ = [
    "ConfigKeyError",
    "K3sError",
    "K3sVersion",
    "TokenChangeError",
    "TokenPlan",
    "TopologyError",
    "UpgradePlan",
    "VersionError",
    "config_key_errors",
    "label_errors",
    "parse_token",
    "parse_version",
    "taint_errors",
    "token_plan",
    "topology_errors",
    "upgrade_plan",
    "version_from_output",
]


class K3sError(ValueError):
    """Base class of every refusal in this module."""


class VersionError(K3sError):
    """A k3s version string is malformed, or an upgrade path is not allowed."""


class TopologyError(K3sError):
    """The inventory's server/agent layout cannot form a sound cluster."""


class TokenChangeError(K3sError):
    """The configured token differs from the one the cluster was bootstrapped with."""


class ConfigKeyError(K3sError):
    """A k3s configuration key or value is not valid."""


# --- versions ------------------------------------------------------------------------------

_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)")


@dataclass(frozen=True, order=True)
class K3sVersion:
    """A k3s release, ordered as releases are: Kubernetes version first, then the k3s revision."""

    major: int
    minor: int
    patch: int
    revision: int

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}+k3s{self.revision}"

    @property
    def minor_line(self) -> str:
        return f"v{self.major}.{self.minor}"


def parse_version(text: str, field_name: str = "edgeslm_k3s_version") -> K3sVersion:
    """Parse `vX.Y.Z+k3sN` (e.g. `v1.34.2+k3s1`); channels such as `stable` or `latest` are refused (not pinned)."""
    value = str(text).strip()
    match = _VERSION.fullmatch(value)
    if match is None:
        raise VersionError(
            f"{field_name} must be a pinned k3s release such as 'v1.34.2+k3s1' "
            f"(v<major>.<minor>.<patch>+k3s<revision>), got {value[:60]!r}"
        )
    major, minor, patch, revision = (int(group) for group in match.groups())
    return K3sVersion(major, minor, patch, revision)


def version_from_output(output: str) -> K3sVersion | None:
    """The version in `k3s --version` output (`k3s version v1.34.2+k3s1 (a1b2c3d4)`); None if absent."""
    for line in str(output).splitlines():
        if line.startswith("k3s version "):
            match = _VERSION.search(line)
            if match is not None:
                return parse_version(match.group(0), "k3s --version")
    return None


@dataclass(frozen=True)
class UpgradePlan:
    """What a node needs to reach the target version: install, upgrade or nothing."""

    action: str
    current: str
    target: str

    def as_dict(self) -> dict[str, str]:
        return {"action": self.action, "current": self.current, "target": self.target}


def upgrade_plan(current: str | None, target: str) -> UpgradePlan:
    """Decide install / upgrade / none; refuse downgrades and skipped minor versions.

    k3s supports upgrading one minor at a time and refuses downgrades (its own
    upgrade controller does too), so both are errors here rather than half-done upgrades.
    """
    wanted = parse_version(target)
    if current is None or str(current).strip() == "":
        return UpgradePlan("install", "", str(wanted))
    have = parse_version(str(current), "installed k3s version")
    if have == wanted:
        return UpgradePlan("none", str(have), str(wanted))
    if wanted < have:
        raise VersionError(
            f"edgeslm_k3s_version {wanted} is older than the installed {have}: k3s does not support "
            "downgrades. Keep edgeslm_k3s_version at the installed release or newer; to go back, restore "
            "the etcd snapshot taken before the upgrade (docs/k3s.md, 'Rollback')."
        )
    if wanted.major != have.major or wanted.minor > have.minor + 1:
        raise VersionError(
            f"edgeslm_k3s_version {wanted} skips minor versions after the installed {have}: upgrade one "
            f"minor at a time (next: the latest {have.major}.{have.minor + 1}.x release), running "
            "playbooks/upgrade.yml once per minor."
        )
    return UpgradePlan("upgrade", str(have), str(wanted))


# --- topology ------------------------------------------------------------------------------


def topology_errors(servers: Sequence[str], api_endpoint: str, allow_even: bool = False) -> list[str]:
    """Errors in the server layout (the site catalog's spec.cluster); empty when the cluster can be formed."""
    errors: list[str] = []
    count = len(servers)
    if count == 0:
        errors.append(
            "k3s_servers is empty: a cluster needs at least one server (the site catalog's spec.cluster.servers)"
        )
        return errors
    if count % 2 == 0 and not allow_even:
        errors.append(
            f"k3s_servers has {count} servers: embedded etcd needs a majority, so {count} servers tolerate "
            f"no more failures than {count - 1}. Use an odd number of servers in the site catalog's "
            "spec.cluster.servers, or set spec.cluster.allowEvenServers: true to accept this knowingly."
        )
    if count > 1 and not str(api_endpoint or "").strip():
        errors.append(
            f"k3s_api_endpoint is not set but there are {count} servers: joining servers and agents need one "
            "stable address for the API (a DNS name or a VIP): set spec.cluster.apiEndpoint in the site catalog."
        )
    return errors


# --- tokens --------------------------------------------------------------------------------

# A full ("secure") k3s token: K10<sha256 of the cluster CA>::<user>:<secret>.
_FULL_TOKEN = re.compile(r"K10([0-9a-f]{64})::([^:\s]+):(\S+)")
_MIN_TOKEN_LENGTH = 16


def parse_token(token: str) -> tuple[str | None, str]:
    """Split a token into (CA hash or None, secret). A plain token is all secret."""
    value = str(token).strip()
    match = _FULL_TOKEN.fullmatch(value)
    if match is None:
        return None, value
    return match.group(1), match.group(3)


@dataclass(frozen=True)
class TokenPlan:
    """Where the node's join token comes from: inventory, the running cluster, or k3s itself."""

    source: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source}


def token_plan(desired: str | None, cluster: str | None) -> TokenPlan:
    """Decide which token to use; refuse a token that differs from the bootstrapped cluster's.

    `desired` is edgeslm_k3s_token (empty: not set); `cluster` is the token the first
    server holds in /var/lib/rancher/k3s/server/token (empty: not bootstrapped yet).
    """
    want = str(desired or "").strip()
    have = str(cluster or "").strip()
    want_hash, want_secret = parse_token(want)
    if want:
        if any(ch.isspace() for ch in want):
            raise TokenChangeError("edgeslm_k3s_token must not contain whitespace")
        if len(want_secret) < _MIN_TOKEN_LENGTH:
            raise TokenChangeError(
                f"edgeslm_k3s_token is shorter than {_MIN_TOKEN_LENGTH} characters: use a long random value "
                "(e.g. `openssl rand -hex 32`), kept in ansible-vault"
            )
    if not want and not have:
        return TokenPlan("generate")
    if want and not have:
        return TokenPlan("inventory")
    if have and not want:
        return TokenPlan("cluster")
    have_hash, have_secret = parse_token(have)
    if want_secret != have_secret or (want_hash is not None and have_hash is not None and want_hash != have_hash):
        raise TokenChangeError(
            "edgeslm_k3s_token differs from the token this cluster was bootstrapped with. The embedded etcd "
            "datastore is encrypted with the original token, so changing it in the configuration breaks the "
            "servers ('bootstrap data already found and encrypted with different token'); nothing was changed. "
            "Either unset edgeslm_k3s_token (the roles read the cluster's token from the first server), or "
            "rotate it properly: `k3s token rotate --new-token <new>` on one server, then set "
            "edgeslm_k3s_token to the new value (docs/k3s.md, 'Token')."
        )
    return TokenPlan("inventory")


# --- config keys ---------------------------------------------------------------------------

_SECRET_KEYS = frozenset({"token", "agent-token", "etcd-s3-secret-key", "vpn-auth"})


def _keys_for(role: str) -> frozenset[str]:
    if role == "server":
        return SERVER_KEYS
    if role == "agent":
        return AGENT_KEYS
    raise ConfigKeyError(f"role must be 'server' or 'agent', got {role!r}")


def _scalar(value: object) -> bool:
    return isinstance(value, (str, int, float, bool))


def config_key_errors(
    config: Mapping[str, object],
    role: str,
    variable: str,
    reserved: Sequence[str] = (),
) -> list[str]:
    """Errors for keys k3s would reject (unknown flags, wrong shapes), secrets, and reserved keys.

    `variable` names the inventory variable the mapping came from, for the message.
    `reserved` lists keys the role manages itself (a user value would fight the role).
    """
    if not isinstance(config, Mapping):
        return [f"{variable} must be a mapping of k3s option names to values, got {type(config).__name__}"]
    valid = _keys_for(role)
    errors: list[str] = []
    for raw_key, value in config.items():
        if not isinstance(raw_key, str) or not raw_key:
            errors.append(f"{variable}: option names must be non-empty strings, got {raw_key!r}")
            continue
        key = raw_key[:-1] if raw_key.endswith("+") else raw_key
        if key.startswith("-"):
            errors.append(f"{variable}: write {key.lstrip('-')!r} without leading dashes (config-file form)")
            continue
        if key not in valid:
            hint = difflib.get_close_matches(key, sorted(valid), n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            errors.append(f"{variable}: {key!r} is not a k3s {role} option (docs.k3s.io/cli/{role}){suggestion}")
            continue
        if key in reserved:
            errors.append(f"{variable}: {key!r} is set by the role itself; use the role variable documented for it")
            continue
        if key in _SECRET_KEYS:
            errors.append(
                f"{variable}: {key!r} is a secret and would be written in clear; set the cluster token with "
                "edgeslm_k3s_token (no_log) instead"
            )
            continue
        if key in REPEATABLE_KEYS:
            items = value if isinstance(value, list) else [value]
            if not all(_scalar(item) for item in items):
                errors.append(f"{variable}: {key!r} takes a string or a list of strings")
        elif not _scalar(value):
            errors.append(f"{variable}: {key!r} takes a single value (string, number or boolean)")
    return errors


# --- labels and taints ---------------------------------------------------------------------

_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _key_error(key: str) -> str | None:
    prefix, _slash, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or _LABEL_PREFIX.fullmatch(prefix) is None):
        return f"prefix {prefix!r} is not a DNS subdomain"
    if _LABEL_NAME.fullmatch(name) is None:
        return f"name {name!r} must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
    return None


def label_errors(labels: Sequence[str], variable: str) -> list[str]:
    """Errors for `key=value` node labels as kubelet's --node-labels accepts them."""
    errors: list[str] = []
    for label in labels:
        key, sep, value = str(label).partition("=")
        if not sep:
            errors.append(f"{variable}: {label!r} must be key=value")
            continue
        problem = _key_error(key)
        if problem is None and _LABEL_VALUE.fullmatch(value) is None:
            problem = f"value {value!r} must be at most 63 alphanumerics, '-', '_' or '.'"
        if problem:
            errors.append(f"{variable}: {label!r}: {problem}")
    return errors


def taint_errors(taints: Sequence[str], variable: str) -> list[str]:
    """Errors for `key[=value]:Effect` node taints."""
    errors: list[str] = []
    for taint in taints:
        body, sep, effect = str(taint).rpartition(":")
        if not sep or effect not in _TAINT_EFFECTS:
            errors.append(f"{variable}: {taint!r} must be key[=value]:Effect with Effect one of {_TAINT_EFFECTS}")
            continue
        key, _equals, value = body.partition("=")
        problem = _key_error(key)
        if problem is None and _LABEL_VALUE.fullmatch(value) is None:
            problem = f"value {value!r} must be at most 63 alphanumerics, '-', '_' or '.'"
        if problem:
            errors.append(f"{variable}: {taint!r}: {problem}")
    return errors
