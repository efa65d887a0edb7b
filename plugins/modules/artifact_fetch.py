#!/usr/bin/python
# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: artifact_fetch
short_description: Fetch one artifact from a URL, an airgap directory or an OCI registry, verified and atomically
version_added: 0.1.0
description:
  - Makes O(dest) hold one artifact (a k3s binary, a Wasm shim, a Flux or Argo CD manifest, a model) whose
    SHA-256 is pinned, either directly (O(sha256)) or by a C(sha256sum)-format checksum list (O(checksum_list)
    or O(checksum_url) with O(checksum_name)).
  - The file is downloaded to a hidden C(.NAME.DIGEST.partial) file in the destination directory, hashed while
    it is written, and renamed to O(dest) only when it is complete and verified, so a half-written file never
    appears at O(dest). An interrupted download is resumed on the next run with an HTTP C(Range) request; it
    restarts cleanly when the server ignores ranges or the partial file is longer than expected.
  - When O(dest) already has the pinned digest nothing is downloaded; the digest comes from the verification
    cache that M(edgeslm.pi5.model_verify) also uses (an extended attribute or a C(.NAME.sha256.json) sidecar).
  - An C(oci://registry/repository:tag) or C(@sha256:) reference is pulled through the mirrors and credentials of
    k3s's C(registries.yaml) (O(registries)), mirror endpoints first and the registry itself last, so k3s's
    embedded registry mirror can serve it from a peer node. Every blob is checked against the size and digest in
    the manifest. The layer whose C(org.opencontainers.image.title) is the file name is taken, so artifacts pushed
    with C(oras push) and the collection's model artifacts (CNCF ModelPack media types) both work.
  - With O(trusted_keys), the artifact must carry an OpenSSF model-signing signature (a C(FILE.sig) layer of the
    OCI artifact, O(signature), or C(FILE.sig) beside a URL or airgap file) made by one of those keys, covering
    exactly this content; it is checked with the C(openssl) command before the rename and kept as C(DEST.sig).
  - When no source can be reached the task fails, or with O(degraded_ok=true) reports C(degraded) and changes
    nothing, so the caller keeps serving what it has.
author:
  - edgeslm maintainers (@edgeslm)
options:
  dest:
    description: Absolute path of the file to create or keep. Its directory must exist.
    type: path
    required: true
  source:
    description:
      - Where to fetch from when O(airgap_dir) does not have the file. An C(https://), C(http://) or
        C(file://) URL, an absolute path on the managed node, or an OCI reference C(oci://registry/repo:tag),
        C(oci://registry/repo@sha256:DIGEST).
    type: str
  sha256:
    description:
      - The artifact's pinned SHA-256 (64 hex digits, optionally prefixed C(sha256:)). Mutually exclusive with
        O(checksum_list) and O(checksum_url).
      - Required for URL, path and airgap sources unless a checksum list is given. For an OCI source it is
        optional (the manifest's digest is checked either way) and, when given, must equal the layer's digest.
    type: str
  checksum_list:
    description: The text of a C(sha256sum)-format checksum list that names the artifact.
    type: str
  checksum_url:
    description:
      - URL or absolute path of the checksum list. A file of the same name in O(airgap_dir) is used instead.
    type: str
  checksum_name:
    description:
      - The artifact's name in the checksum list, and the file looked for in O(airgap_dir).
      - Defaults to the file name of O(dest).
    type: str
  airgap_dir:
    description:
      - A directory holding pre-staged artifacts, on the controller unless O(airgap_remote=true). When it contains
        the file (named by O(checksum_name), O(oci_file) or the file name of O(dest)), that file is used and no
        network is needed. A checksum list named by O(checksum_url) is read from it too.
      - On the controller, the file is checked against its pinned digest before it leaves the controller, and
        copied to the node only when O(dest) does not already hold that digest; C(origin) is then V(airgap) and
        C(location) the controller path.
    type: path
  airgap_remote:
    description: O(airgap_dir) is a directory on the managed node (for example a mounted USB drive).
    type: bool
    default: false
  pinned_by:
    description:
      - The variable (or file) the expected digest comes from, named in every failure so the message says what to
        fix, for example C(gitops_bootstrap_flux_install_sha256).
    type: str
  oci_file:
    description:
      - For an OCI source, the title of the layer to take. Defaults to the file name of O(dest).
    type: str
  registries:
    description:
      - The content of k3s's C(/etc/rancher/k3s/registries.yaml) (C(mirrors) and C(configs)), for example read
        with M(ansible.builtin.slurp) and the C(from_yaml) filter. It may hold credentials.
    type: dict
  registries_file:
    description:
      - Read O(registries) from this file on the managed node instead (needs PyYAML on the node). A missing file
        means no mirrors and no credentials, as for k3s.
    type: path
  disable_default_endpoint:
    description:
      - As k3s's C(--disable-default-registry-endpoint), pull a mirrored registry from its mirror endpoints only.
    type: bool
    default: false
  embedded_mirror:
    description:
      - k3s's embedded registry mirror on this node (C(--embedded-registry)), tried first for every registry with
        a C(mirrors) entry, as k3s configures containerd.
    type: dict
    suboptions:
      address:
        description: C(host:port) of the node's embedded registry (k3s's supervisor port, 6443).
        type: str
        required: true
      ca_file:
        description: CA certificate that signed the server certificate.
        type: path
      cert_file:
        description: Client certificate signed by the cluster's client CA.
        type: path
      key_file:
        description: Key of O(embedded_mirror.cert_file).
        type: path
  registry_username:
    description: Username for the reference's registry, overriding C(configs) in O(registries).
    type: str
  registry_password:
    description: Password for O(registry_username).
    type: str
  url_username:
    description: Basic-auth username for an HTTP(S) source.
    type: str
  url_password:
    description: Basic-auth password for O(url_username).
    type: str
  ca_file:
    description: CA bundle to verify an HTTPS source with.
    type: path
  validate_certs:
    description: Verify the TLS certificate of an HTTPS source.
    type: bool
    default: true
  trusted_keys:
    description:
      - PEM public keys (EC P-256, P-384 or P-521), as file paths on the managed node or PEM text. When given,
        the artifact must carry a model-signing signature by one of them.
    type: list
    elements: str
  signature:
    description:
      - URL or absolute path of the signature bundle when it is not a layer of the OCI artifact or C(FILE.sig)
        beside the source.
    type: str
  timeout:
    description: Seconds to wait for a connection or for data.
    type: int
    default: 30
  force:
    description: Re-hash O(dest) instead of trusting the verification cache.
    type: bool
    default: false
  degraded_ok:
    description:
      - When no source can be reached, return C(degraded=true) and change nothing instead of failing.
      - A reachable source that answers wrongly (not found, refused credentials, wrong digest) always fails.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: In check mode nothing is downloaded; C(changed) says whether O(dest) lacks the pinned content.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode) when in diff mode.
    support: full
    details: The diff shows the path and SHA-256 before and after.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Only the standard library and the C(openssl) command are needed on the managed node.
  - Registry facts (endpoint order, rewrites, wildcard entries, the embedded mirror) follow k3s v1.33's
    documented behaviour; see C(docs/artifacts.md) for the rules and their sources.
seealso:
  - module: edgeslm.pi5.model_verify
  - name: Artifacts, registries and model signatures
    description: How fetches, OCI pulls and signature checks work.
    link: https://example.invalid/edgeslm/pi5/blob/main/docs/artifacts.md
"""

EXAMPLES = r"""
- name: The k3s binary, from the release or the airgap directory, checked against the release's list
  edgeslm.pi5.artifact_fetch:
    dest: /usr/local/bin/k3s
    source: "https://github.com/k3s-io/k3s/releases/download/{{ k3s_release | urlencode }}/k3s-arm64"
    checksum_url: "https://github.com/k3s-io/k3s/releases/download/{{ k3s_release | urlencode }}/sha256sum-arm64.txt"
    checksum_name: k3s-arm64
    airgap_dir: /srv/edgeslm-airgap/k3s
    mode: "0755"

- name: A model released as an OCI artifact, through k3s's mirrors, signature required
  edgeslm.pi5.artifact_fetch:
    dest: /var/lib/edgeslm/models/qwen/6a1a2eb6/qwen2.5-1.5b-instruct-q4_k_m.gguf
    source: "oci://registry.lab.edgeslm.internal:5000/models/qwen2.5-1.5b-instruct:v3"
    sha256: 6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e
    registries: "{{ k3s_registries }}"
    trusted_keys:
      - /etc/edgeslm/model-signing/release.pub
    degraded_ok: true
  register: model

- name: Say so when the node keeps serving its cached model
  ansible.builtin.debug:
    msg: "registry unreachable, keeping the current model: {{ model.reason }}"
  when: model.degraded
"""

RETURN = r"""
dest:
  description: The destination path.
  returned: always
  type: str
  sample: /usr/local/bin/k3s
sha256:
  description: SHA-256 of the file at O(dest) (empty when degraded and nothing was there).
  returned: always
  type: str
  sample: 6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e
size:
  description: Size of the file in bytes.
  returned: always
  type: int
  sample: 1117320736
origin:
  description: Where the content came from, V(present) (already there), V(airgap), V(path), V(url) or V(oci).
  returned: always
  type: str
  sample: oci
location:
  description: The path, URL or registry endpoint the bytes came from.
  returned: always
  type: str
  sample: https://127.0.0.1:6443/v2 (embedded)
cached:
  description: Whether the digest of an existing O(dest) came from the verification cache.
  returned: always
  type: bool
downloaded:
  description: Bytes transferred in this run.
  returned: always
  type: int
reused:
  description: Bytes of an earlier interrupted download that were kept (resumed, not downloaded again).
  returned: always
  type: int
resumed:
  description: Whether an interrupted download was continued with a Range request.
  returned: always
  type: bool
restarted:
  description: Whether an earlier partial download had to be discarded.
  returned: always
  type: bool
degraded:
  description: True when no source could be reached and O(degraded_ok) let the task succeed without a change.
  returned: always
  type: bool
reason:
  description: Why the result is degraded.
  returned: always
  type: str
manifest_digest:
  description: Digest of the OCI manifest that was pulled.
  returned: always
  type: str
attempts:
  description: Registry endpoints that failed before the pull succeeded or gave up, with the outcome of each.
  returned: always
  type: list
  elements: dict
signature:
  description: The verified signature (trusted key label, key hint, signed subject, signed digest).
  returned: always
  type: dict
signature_path:
  description: Where the signature bundle was stored (C(DEST.sig)).
  returned: always
  type: str
elapsed:
  description: Seconds the task took.
  returned: always
  type: float
"""

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.edgeslm.pi5.plugins.module_utils._fetch import (  # noqa: E402
    FetchRequest,
    FetchUnreachableError,
    fetch,
    naming_the_pin,
)
from ansible_collections.edgeslm.pi5.plugins.module_utils._http import TlsOptions  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils._oci import EmbeddedMirror, RegistriesConfig  # noqa: E402
from ansible_collections.edgeslm.pi5.plugins.module_utils._signature import load_trusted_keys  # noqa: E402

ARGUMENT_SPEC: dict[str, Any] = {
    "dest": {"type": "path", "required": True},
    "source": {"type": "str"},
    "sha256": {"type": "str"},
    "checksum_list": {"type": "str"},
    "checksum_url": {"type": "str"},
    "checksum_name": {"type": "str"},
    "airgap_dir": {"type": "path"},
    "airgap_remote": {"type": "bool", "default": False},
    "pinned_by": {"type": "str"},
    "oci_file": {"type": "str"},
    "registries": {"type": "dict", "no_log": True},
    "registries_file": {"type": "path"},
    "disable_default_endpoint": {"type": "bool", "default": False},
    "embedded_mirror": {
        "type": "dict",
        "options": {
            "address": {"type": "str", "required": True},
            "ca_file": {"type": "path"},
            "cert_file": {"type": "path"},
            "key_file": {"type": "path", "no_log": False},
        },
    },
    "registry_username": {"type": "str"},
    "registry_password": {"type": "str", "no_log": True},
    "url_username": {"type": "str"},
    "url_password": {"type": "str", "no_log": True},
    "ca_file": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "trusted_keys": {"type": "list", "elements": "str", "no_log": False},
    "signature": {"type": "str"},
    "timeout": {"type": "int", "default": 30},
    "force": {"type": "bool", "default": False},
    "degraded_ok": {"type": "bool", "default": False},
}


def _registries(module: AnsibleModule) -> RegistriesConfig:
    params = module.params
    if params["registries"] is not None:
        return RegistriesConfig.from_mapping(params["registries"], "registries")
    path = params["registries_file"]
    if not path or not Path(path).exists():
        return RegistriesConfig()
    try:
        import yaml
    except ImportError:
        module.fail_json(
            msg=f"registries_file {path!r} needs PyYAML on the node; pass its content as registries instead "
            "(slurp + from_yaml on the controller)"
        )
    with Path(path).open(encoding="utf-8") as stream:
        return RegistriesConfig.from_mapping(yaml.safe_load(stream), f"registries_file {path}")


def build_request(module: AnsibleModule) -> FetchRequest:
    p = module.params
    mirror = p["embedded_mirror"]
    credentials = None
    if p["registry_username"] is not None:
        credentials = (p["registry_username"], p["registry_password"] or "")
    url_credentials = None
    if p["url_username"] is not None:
        url_credentials = (p["url_username"], p["url_password"] or "")
    return FetchRequest(
        dest=p["dest"],
        source=p["source"],
        sha256=p["sha256"],
        checksum_list=p["checksum_list"],
        checksum_url=p["checksum_url"],
        checksum_name=p["checksum_name"],
        airgap_dir=p["airgap_dir"],
        oci_file=p["oci_file"],
        registries=_registries(module),
        disable_default_endpoint=p["disable_default_endpoint"],
        embedded_mirror=EmbeddedMirror(mirror["address"], mirror["ca_file"], mirror["cert_file"], mirror["key_file"])
        if mirror
        else None,
        registry_credentials=credentials,
        url_credentials=url_credentials,
        tls=TlsOptions(ca_file=p["ca_file"], insecure_skip_verify=not p["validate_certs"]),
        trusted_keys=load_trusted_keys(p["trusted_keys"]),
        signature=p["signature"],
        timeout=float(p["timeout"]),
        force=p["force"],
        degraded_ok=p["degraded_ok"],
        check_mode=module.check_mode,
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("sha256", "checksum_list", "checksum_url"), ("registries", "registries_file")],
        required_one_of=[("source", "airgap_dir")],
        required_together=[("registry_username", "registry_password"), ("url_username", "url_password")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    dest = module.params["dest"]
    before = {"path": dest, "sha256": "(other content)" if Path(dest).exists() else "(absent)"}
    try:
        request = build_request(module)
        result = fetch(request)
    except FetchUnreachableError as exc:
        module.fail_json(msg=str(exc), attempts=exc.attempts, degraded=False)
    except ValueError as exc:
        module.fail_json(msg=naming_the_pin(str(exc), module.params["pinned_by"]))
    output = result.as_dict()
    if result.changed:
        after = {"path": dest, "sha256": result.sha256 or "(from the source)"}
        output["diff"] = {"before": before, "after": after}
    if not result.degraded and Path(dest).exists():
        file_args = module.load_file_common_arguments(module.params)
        output["changed"] = module.set_fs_attributes_if_different(file_args, output["changed"])
    module.exit_json(**output)


if __name__ == "__main__":
    main()
