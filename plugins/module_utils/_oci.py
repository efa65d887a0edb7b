# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""OCI Distribution client: references, k3s registries.yaml endpoints, auth, manifests, blobs.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

A node pulls a model artifact the way k3s's containerd pulls an image, through the mirrors
and credentials `/etc/rancher/k3s/registries.yaml` declares, so k3s's embedded registry
mirror (Spegel) can serve it from a peer node. The rules are kept as data below
(`REGISTRIES_FACTS`) with where they were read. Every blob is checked against the size and
digest its descriptor gives; a pull continues a partial blob with an HTTP Range request, from
whichever endpoint is reachable. When every endpoint is unreachable the pull raises
`RegistryUnreachableError`, which a caller reports as degraded (and keeps serving its cache).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

from ansible_collections.edgeslm.pi5.plugins.module_utils._http import (
    DownloadStats,
    HttpClient,
    HttpStatusError,
    Response,
    TlsOptions,
    TransferError,
    TransferIntegrityError,
    UnreachableError,
    ranged_download,
)

__all__ = [
    "ACCEPT_MANIFESTS",
    "REGISTRIES_FACTS",
    "Attempt",
    "Descriptor",
    "EmbeddedMirror",
    "Endpoint",
    "HostConfig",
    "Manifest",
    "MirrorConfig",
    "OciError",
    "OciPuller",
    "PullError",
    "Reference",
    "RegistriesConfig",
    "RegistryAuth",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryUnreachableError",
    "blob_digest",
    "parse_manifest",
    "parse_reference",
    "registry_endpoints",
]

MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
ANNOTATION_TITLE = "org.opencontainers.image.title"
_ACCEPTED = (MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_LIST)
ACCEPT_MANIFESTS = ", ".join(_ACCEPTED)
INDEX_TYPES = (MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST)
MANIFEST_TYPES = (MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST)
MAX_MANIFEST_BYTES = 4 << 20  # the limit oras and containerd apply to manifests
K3S_REGISTRIES_FILE = "/etc/rancher/k3s/registries.yaml"

# How k3s turns registries.yaml into containerd's registry hosts, as this client reproduces it.
# Docs: k3s-io/docs (unversioned; each feature's version gate predates v1.33). Source: k3s-io/k3s
# read at its current branch, not the v1.33.7+k3s1 tag: re-check when the k3s pin moves.
REGISTRIES_FACTS: tuple[dict[str, str], ...] = (
    {
        "fact": "endpoints of mirrors.<registry> are tried in order, then the default endpoint "
        "https://<registry>/v2 (docker.io: registry-1.docker.io) as a last resort",
        "source": "k3s-io/docs docs/installation/private-registry.md 'Default Endpoint Fallback'",
    },
    {
        "fact": "with --disable-default-registry-endpoint a registry that has a mirrors entry is pulled from its "
        "mirror endpoints only; registries without an entry still use the default endpoint",
        "source": "k3s-io/docs docs/installation/private-registry.md (gate: v1.26.13+k3s1 .. v1.29.1+k3s1)",
    },
    {
        "fact": "a mirror endpoint equal to the default endpoint is not a mirror: the default is tried last, "
        "without rewrites",
        "source": "k3s-io/docs docs/installation/private-registry.md 'Rewrites'",
    },
    {
        "fact": "rewrite: regular expressions over the repository name (not the tag), applied on mirror "
        "endpoints only, never on the default endpoint or the embedded mirror",
        "source": "k3s-io/docs private-registry.md 'Rewrites'; k3s pkg/agent/containerd/config.go getHostConfigs",
    },
    {
        "fact": "an endpoint without a scheme is https, except localhost/loopback on a port other than 443 "
        "(http); a path of '', '/' or '/v2' means /v2, any other path replaces /v2 as the API base",
        "source": "k3s pkg/agent/containerd/config.go normalizeEndpointAddress (follows containerd hosts.go)",
    },
    {
        "fact": "configs.<host> (auth: username/password, auth, identity_token; tls: ca_file, cert_file, "
        "key_file, insecure_skip_verify) are looked up by the endpoint's host[:port]; the '*' entry is the "
        "default for hosts without their own entry",
        "source": "k3s-io/docs private-registry.md 'Configs', 'Wildcard Support'; rancher/wharfie "
        "pkg/registries (AuthConfig fields)",
    },
    {
        "fact": "the original registry name is passed to mirror endpoints in the 'ns' query parameter",
        "source": "k3s-io/docs docs/installation/private-registry.md 'Redirects'",
    },
    {
        "fact": "embedded registry mirror (Spegel, --embedded-registry): every node serves https://<node>:6443/v2, "
        "authenticated by a client certificate of the cluster's client CA; k3s prepends it to every "
        "non-localhost mirrors entry (a 'mirrors' key without endpoints is enough; '*' enables all registries)",
        "source": "k3s-io/docs docs/installation/registry-mirror.md; k3s pkg/spegel InjectMirror",
    },
    {
        "fact": "the embedded mirror serves only content in some node's containerd image store (namespace k8s.io) "
        "and never resolves the 'latest' tag from peers: pin model references by digest",
        "source": "k3s-io/docs docs/installation/registry-mirror.md 'Latest Tag', 'Pushing Images'",
    },
)

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class OciError(ValueError):
    """A malformed reference, manifest or registries.yaml entry; the message names the field and fix."""


class PullError(TransferError):
    """The pull failed at a reachable registry (not found, refused, corrupt): not a degraded state."""

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)


class RegistryUnreachableError(UnreachableError):
    """No endpoint could be reached: the caller keeps what it has and reports itself degraded."""

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)


class RegistryAuthError(HttpStatusError):
    """The registry refused the credentials, or asks for credentials none were configured for."""


# --- references ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """registry/repository[:tag][@sha256:digest]."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def identifier(self) -> str:
        """What a manifest request asks for: the digest when pinned, else the tag."""
        return self.digest or self.tag or ""


def parse_reference(text: str, field_name: str = "reference") -> Reference:
    """Parse `registry/repo:tag`, `registry/repo@sha256:...` or both; a leading `oci://` is accepted.

    As in containerd, the first component is the registry only if it contains '.' or ':' or is
    `localhost`; otherwise the registry is docker.io. A reference with neither tag nor digest is
    refused: an implicit `latest` is not a pin (and the embedded mirror never serves it).
    """
    value = str(text).strip().removeprefix("oci://")
    digest = None
    if "@" in value:
        value, digest = value.rsplit("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise OciError(
                f"{field_name} {text!r}: the digest must be 'sha256:' and 64 lower-case hex digits, got {digest!r}"
            )
    tag = None
    last = value.rsplit("/", 1)[-1]
    if ":" in last:
        value, tag = value.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise OciError(f"{field_name} {text!r}: tag {tag!r} is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]*)")
    first, _sep, rest = value.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = "docker.io", value
        if "/" not in repository:
            repository = f"library/{repository}"
    if not _HOST.fullmatch(registry):
        raise OciError(f"{field_name} {text!r}: registry {registry!r} is not a host[:port]")
    if not _REPOSITORY.fullmatch(repository):
        raise OciError(
            f"{field_name} {text!r}: repository {repository!r} must be lower-case path components "
            "of letters and digits separated by '.', '_', '__' or '-'"
        )
    if tag is None and digest is None:
        raise OciError(f"{field_name} {text!r} names neither a tag nor a digest; add ':<tag>' or '@sha256:<digest>'")
    return Reference(registry, repository, tag, digest)


# --- manifests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    platform: Mapping[str, Any] | None = None

    @property
    def title(self) -> str | None:
        return self.annotations.get(ANNOTATION_TITLE)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data

    @classmethod
    def from_json(cls, data: object, where: str) -> Descriptor:
        if not isinstance(data, Mapping):
            raise OciError(f"{where} must be an object (an OCI descriptor)")
        media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise OciError(f"{where}.mediaType must be a non-empty string")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise OciError(
                f"{where}.digest must be 'sha256:<64 hex digits>' (the only algorithm accepted), "
                f"got {str(digest)[:80]!r}"
            )
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise OciError(f"{where}.size must be a non-negative integer")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise OciError(f"{where}.annotations must map strings to strings")
        artifact_type = data.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise OciError(f"{where}.artifactType must be a string")
        platform = data.get("platform")
        return cls(
            media_type,
            digest,
            size,
            dict(annotations),
            artifact_type,
            platform if isinstance(platform, Mapping) else None,
        )


@dataclass(frozen=True)
class Manifest:
    """An image manifest or an index, with the exact bytes and their digest."""

    media_type: str
    digest: str
    raw: bytes
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    artifact_type: str | None
    annotations: Mapping[str, str]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def layer_titled(self, title: str) -> Descriptor | None:
        found = [layer for layer in self.layers if layer.title == title]
        if len(found) > 1:
            raise OciError(f"manifest {self.digest} has {len(found)} layers titled {title!r}; expected one")
        return found[0] if found else None


def blob_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_manifest(raw: bytes, media_type: str | None = None) -> Manifest:
    """Parse and check an image manifest or index (descriptor shapes, sha256 digests)."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OciError(f"manifest is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise OciError("manifest must be a JSON object")
    if doc.get("schemaVersion") != 2:
        raise OciError(f"manifest schemaVersion must be 2, got {doc.get('schemaVersion')!r}")
    body_type = doc.get("mediaType")
    kind = body_type if isinstance(body_type, str) and body_type else media_type
    if kind is None:
        kind = MEDIA_TYPE_OCI_INDEX if "manifests" in doc else MEDIA_TYPE_OCI_MANIFEST
    if kind not in INDEX_TYPES + MANIFEST_TYPES:
        raise OciError(f"manifest media type {kind!r} is not an OCI/Docker image manifest or index")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise OciError("manifest annotations must be an object")
    artifact_type = doc.get("artifactType")
    if kind in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise OciError("index.manifests must be a list")
        manifests = tuple(Descriptor.from_json(m, f"manifests[{i}]") for i, m in enumerate(entries))
        return Manifest(
            kind,
            blob_digest(raw),
            raw,
            None,
            (),
            manifests,
            artifact_type if isinstance(artifact_type, str) else None,
            annotations,
        )
    config = Descriptor.from_json(doc.get("config"), "config")
    layers_doc = doc.get("layers")
    if not isinstance(layers_doc, list):
        raise OciError("manifest.layers must be a list")
    layers = tuple(Descriptor.from_json(layer, f"layers[{i}]") for i, layer in enumerate(layers_doc))
    return Manifest(
        kind,
        blob_digest(raw),
        raw,
        config,
        layers,
        (),
        artifact_type if isinstance(artifact_type, str) else None,
        annotations,
    )


# --- registries.yaml -------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryAuth:
    """configs.<host>.auth: username/password, `auth` (base64 of user:password) or identity_token."""

    username: str | None = None
    password: str | None = None
    auth: str | None = None
    identity_token: str | None = None

    def basic(self) -> tuple[str, str] | None:
        if self.username is not None:
            return self.username, self.password or ""
        if self.auth:
            try:
                user, _sep, password = base64.b64decode(self.auth, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise OciError("configs.<host>.auth.auth must be base64 of 'user:password'") from exc
            return user, password
        return None


@dataclass(frozen=True)
class HostConfig:
    auth: RegistryAuth | None = None
    tls: TlsOptions | None = None


@dataclass(frozen=True)
class MirrorConfig:
    endpoints: tuple[str, ...] = ()
    rewrites: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EmbeddedMirror:
    """k3s's embedded registry on this node (Spegel) and the certificates that open it."""

    address: str  # host:port, the node's address and k3s's supervisor port (6443)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OciError(f"{where}.{key} must be a string")
    return value


@dataclass(frozen=True)
class RegistriesConfig:
    """The content of k3s's registries.yaml (`mirrors` and `configs`)."""

    mirrors: Mapping[str, MirrorConfig] = field(default_factory=dict)
    configs: Mapping[str, HostConfig] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, doc: object, where: str = "registries") -> RegistriesConfig:
        if doc is None:
            return cls()
        if not isinstance(doc, Mapping):
            raise OciError(f"{where} must be a mapping with 'mirrors' and/or 'configs' (registries.yaml)")
        unknown = sorted(set(doc) - {"mirrors", "configs"})
        if unknown:
            raise OciError(f"{where} has unknown keys {unknown}; registries.yaml knows 'mirrors' and 'configs'")
        mirrors: dict[str, MirrorConfig] = {}
        for host, entry in (doc.get("mirrors") or {}).items():
            at = f"{where}.mirrors[{host!r}]"
            entry = entry or {}
            if not isinstance(entry, Mapping):
                raise OciError(f"{at} must be a mapping (endpoint, rewrite) or empty")
            endpoints = entry.get("endpoint") or []
            if not isinstance(endpoints, list) or not all(isinstance(e, str) and e for e in endpoints):
                raise OciError(f"{at}.endpoint must be a list of URLs")
            rewrite = entry.get("rewrite") or {}
            if not isinstance(rewrite, Mapping):
                raise OciError(f"{at}.rewrite must map regular expressions to replacements")
            rules = []
            for pattern, replacement in rewrite.items():
                try:
                    re.compile(str(pattern))
                except re.error as exc:
                    raise OciError(f"{at}.rewrite {pattern!r} is not a valid regular expression: {exc}") from exc
                rules.append((str(pattern), str(replacement)))
            mirrors[str(host)] = MirrorConfig(tuple(endpoints), tuple(rules))
        configs: dict[str, HostConfig] = {}
        for host, entry in (doc.get("configs") or {}).items():
            at = f"{where}.configs[{host!r}]"
            entry = entry or {}
            if not isinstance(entry, Mapping):
                raise OciError(f"{at} must be a mapping (auth, tls) or empty")
            auth_doc, tls_doc = entry.get("auth"), entry.get("tls")
            auth = None
            if auth_doc is not None:
                if not isinstance(auth_doc, Mapping):
                    raise OciError(f"{at}.auth must be a mapping")
                auth = RegistryAuth(
                    *(_opt_str(auth_doc, k, f"{at}.auth") for k in ("username", "password", "auth", "identity_token"))
                )
            tls = None
            if tls_doc is not None:
                if not isinstance(tls_doc, Mapping):
                    raise OciError(f"{at}.tls must be a mapping")
                skip = tls_doc.get("insecure_skip_verify", False)
                if not isinstance(skip, bool):
                    raise OciError(f"{at}.tls.insecure_skip_verify must be true or false")
                tls = TlsOptions(
                    ca_file=_opt_str(tls_doc, "ca_file", f"{at}.tls"),
                    cert_file=_opt_str(tls_doc, "cert_file", f"{at}.tls"),
                    key_file=_opt_str(tls_doc, "key_file", f"{at}.tls"),
                    insecure_skip_verify=skip,
                )
            configs[str(host)] = HostConfig(auth, tls)
        return cls(mirrors, configs)

    def with_embedded_mirror(self, mirror: EmbeddedMirror) -> RegistriesConfig:
        """What k3s's InjectMirror does: the embedded endpoint first in every non-localhost mirrors entry."""
        url = f"https://{mirror.address}/v2"
        mirrors = {
            host: entry if _is_localhost(host) else MirrorConfig((url, *entry.endpoints), entry.rewrites)
            for host, entry in self.mirrors.items()
        }
        configs = dict(self.configs)
        configs[mirror.address] = HostConfig(None, TlsOptions(mirror.ca_file, mirror.cert_file, mirror.key_file))
        return RegistriesConfig(mirrors, configs)


def _is_localhost(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoint:
    """One place to pull a registry's content from."""

    base_url: str  # scheme://host[:port]/<api base path>, e.g. https://mirror.example:5000/v2
    host: str  # host[:port] as configs.<host> names it
    kind: str  # "mirror", "embedded" or "default"
    registry: str  # the registry the reference names (sent as ns= to mirrors)
    rewrites: tuple[tuple[str, str], ...] = ()
    config: HostConfig = field(default_factory=HostConfig)

    def repository_for(self, repository: str) -> str:
        for pattern, replacement in self.rewrites:
            if re.search(pattern, repository):
                return re.sub(pattern, _go_replacement(replacement), repository)
        return repository

    def url(self, repository: str, kind: str, identifier: str) -> str:
        url = f"{self.base_url}/{self.repository_for(repository)}/{kind}/{identifier}"
        if self.kind != "default":
            url += "?" + urlencode({"ns": self.registry})
        return url

    def __str__(self) -> str:
        return f"{self.base_url} ({self.kind})"


def _go_replacement(replacement: str) -> str:
    """Go regexp's `$1` / `${name}` replacement syntax as Python's `\\g<1>`."""
    return re.sub(
        r"\$\{(\w+)\}|\$(\d+)", lambda m: rf"\g<{m.group(1) or m.group(2)}>", replacement.replace("\\", "\\\\")
    )


def _normalize_endpoint(endpoint: str, embedded: str | None) -> tuple[str, str, str]:
    """(host as configs key, scheme://host, API base path) following k3s's normalizeEndpointAddress."""
    text = endpoint if "://" in endpoint else f"//{endpoint}"
    parts = urlsplit(text)
    host = parts.netloc
    if not host:
        raise OciError(f"mirror endpoint {endpoint!r} has no host")
    scheme = parts.scheme
    if not scheme:
        port = parts.port
        local_plain = _is_localhost(host) and port not in (None, 443) and host != embedded
        scheme = "http" if local_plain else "https"
    if scheme not in ("http", "https"):
        raise OciError(f"mirror endpoint {endpoint!r}: scheme must be http or https")
    server = "registry-1.docker.io" if host == "docker.io" else host
    path = parts.path.rstrip("/")
    if path in ("", "/v2"):
        path = "/v2"
    return ("docker.io" if server == "registry-1.docker.io" else host), f"{scheme}://{server}", path


def registry_endpoints(
    config: RegistriesConfig,
    registry: str,
    *,
    disable_default_endpoint: bool = False,
    embedded_mirror: EmbeddedMirror | None = None,
) -> list[Endpoint]:
    """The endpoints containerd (as k3s configures it) tries for `registry`, in order."""
    if embedded_mirror is not None:
        config = config.with_embedded_mirror(embedded_mirror)
    embedded = embedded_mirror.address if embedded_mirror else None
    wildcard = config.configs.get("*", HostConfig())

    def host_config(host: str) -> HostConfig:
        return config.configs.get(host, wildcard)

    default_host, default_server, default_path = _normalize_endpoint(registry, embedded)
    default_url = f"{default_server}{default_path}"
    mirror = config.mirrors.get(registry)
    if mirror is None:
        mirror = config.mirrors.get("*")
    endpoints: list[Endpoint] = []
    seen = {default_url}
    for text in mirror.endpoints if mirror is not None else ():
        host, server, path = _normalize_endpoint(text, embedded)
        url = f"{server}{path}"
        if url in seen:
            continue  # duplicates, and the default endpoint (tried last, without rewrites)
        seen.add(url)
        kind = "embedded" if host == embedded else "mirror"
        rewrites = mirror.rewrites if kind == "mirror" and mirror is not None else ()
        endpoints.append(Endpoint(url, host, kind, registry, rewrites, host_config(host)))
    if not (disable_default_endpoint and mirror is not None):
        endpoints.append(Endpoint(default_url, default_host, "default", registry, (), host_config(default_host)))
    return endpoints


# --- registry client -------------------------------------------------------------------------


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _sep, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


class RegistryClient:
    """Manifest and blob requests against one endpoint, answering Basic and Bearer challenges."""

    def __init__(
        self,
        http: HttpClient,
        endpoint: Endpoint,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.http = http
        self.endpoint = endpoint
        auth = endpoint.config.auth
        self._credentials = credentials if credentials is not None else (auth.basic() if auth else None)
        self._identity_token = auth.identity_token if auth else None
        self._authorization: dict[str, str] = {}  # scope -> Authorization header value

    def request(
        self,
        method: str,
        url: str,
        scope: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | BinaryIO | None = None,
    ) -> Response:
        send = dict(headers or {})
        if scope in self._authorization:
            send["Authorization"] = self._authorization[scope]
        response = self.http.request(method, url, send, body)
        if response.status != 401:
            return response
        challenge = response.header("www-authenticate") or ""
        response.read(65536)
        response.close()
        if scope in self._authorization:
            raise RegistryAuthError(
                f"{url}: the registry refused the credentials of configs[{self.endpoint.host!r}].auth (HTTP 401)",
                401,
                url,
            )
        self._authorization[scope] = self._authorize(challenge, scope, url)
        send["Authorization"] = self._authorization[scope]
        if body is not None and not isinstance(body, bytes):
            body.seek(0)
        response = self.http.request(method, url, send, body)
        if response.status == 401:
            response.read(65536)
            response.close()
            raise RegistryAuthError(
                f"{url}: the registry refused the credentials of configs[{self.endpoint.host!r}].auth (HTTP 401); "
                "check username and password in registries.yaml",
                401,
                url,
            )
        return response

    def _authorize(self, challenge: str, scope: str, url: str) -> str:
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic":
            if self._credentials is None:
                raise RegistryAuthError(
                    f"{url}: the registry asks for credentials (Basic); set configs[{self.endpoint.host!r}].auth "
                    "username and password in registries.yaml",
                    401,
                    url,
                )
            token = base64.b64encode(f"{self._credentials[0]}:{self._credentials[1]}".encode()).decode()
            return f"Basic {token}"
        if scheme == "bearer":
            return f"Bearer {self._bearer_token(params, scope, url)}"
        raise RegistryAuthError(f"{url}: unsupported authentication challenge {challenge[:80]!r}", 401, url)

    def _bearer_token(self, params: Mapping[str, str], scope: str, url: str) -> str:
        realm = params.get("realm")
        if not realm or urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryAuthError(f"{url}: Bearer challenge without a usable realm", 401, url)
        query = {"service": params.get("service", ""), "scope": params.get("scope") or scope}
        query = {k: v for k, v in query.items() if v}
        headers: dict[str, str] = {"Accept": "application/json"}
        if self._identity_token:
            body = urlencode(
                {
                    **query,
                    "grant_type": "refresh_token",
                    "refresh_token": self._identity_token,
                    "client_id": "edgeslm.pi5",
                }
            ).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = self.http.request("POST", realm, headers, body)
        else:
            if self._credentials is not None:
                user, password = self._credentials
                headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            sep = "&" if urlsplit(realm).query else "?"
            response = self.http.request("GET", f"{realm}{sep}{urlencode(query)}" if query else realm, headers)
        with response:
            if response.status in (401, 403):
                raise RegistryAuthError(
                    f"{url}: the token service {realm} refused the credentials of "
                    f"configs[{self.endpoint.host!r}].auth (HTTP {response.status})",
                    response.status,
                    url,
                )
            if response.status != 200:
                raise HttpStatusError(
                    f"{url}: token service {realm} answered HTTP {response.status}", response.status, url
                )
            try:
                doc = json.loads(response.read(1 << 20))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise TransferError(f"{url}: token service {realm} did not answer JSON") from exc
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise TransferError(f"{url}: token service {realm} answered without a token")
        return token

    # pull side

    def get_manifest(self, repository: str, identifier: str) -> Manifest:
        url = self.endpoint.url(repository, "manifests", identifier)
        scope = f"repository:{self.endpoint.repository_for(repository)}:pull"
        response = self.request("GET", url, scope, {"Accept": ACCEPT_MANIFESTS})
        with response:
            if response.status != 200:
                raise HttpStatusError(f"{url}: HTTP {response.status} for the manifest", response.status, url)
            raw = response.read(MAX_MANIFEST_BYTES)
            content_type = (response.header("content-type") or "").split(";")[0].strip() or None
            header_digest = response.header("docker-content-digest")
        digest = blob_digest(raw)
        if identifier.startswith("sha256:") and digest != identifier:
            raise TransferIntegrityError(
                f"{url}: manifest content has digest {digest}, the reference pins {identifier}"
            )
        if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
            raise TransferIntegrityError(
                f"{url}: manifest content has digest {digest}, the registry says {header_digest}"
            )
        return parse_manifest(raw, content_type)

    def get_blob_bytes(self, repository: str, descriptor: Descriptor, limit: int = MAX_MANIFEST_BYTES) -> bytes:
        if descriptor.size > limit:
            raise OciError(f"blob {descriptor.digest} is {descriptor.size} bytes, more than {limit} for a config")
        url = self.endpoint.url(repository, "blobs", descriptor.digest)
        response = self.request("GET", url, f"repository:{self.endpoint.repository_for(repository)}:pull")
        with response:
            if response.status != 200:
                raise HttpStatusError(f"{url}: HTTP {response.status} for blob", response.status, url)
            data = response.read(limit)
        if len(data) != descriptor.size or blob_digest(data) != descriptor.digest:
            raise TransferIntegrityError(f"{url}: blob content does not match its descriptor ({descriptor.digest})")
        return data

    def fetch_blob(
        self, repository: str, descriptor: Descriptor, partial: Path, progress: Callable[[int], None] | None = None
    ) -> DownloadStats:
        url = self.endpoint.url(repository, "blobs", descriptor.digest)
        scope = f"repository:{self.endpoint.repository_for(repository)}:pull"

        def open_response(headers: Mapping[str, str]) -> Response:
            return self.request("GET", url, scope, headers)

        return ranged_download(
            open_response,
            partial,
            what=f"blob {descriptor.digest} from {self.endpoint.base_url}",
            expected_size=descriptor.size,
            expected_sha256=descriptor.digest.removeprefix("sha256:"),
            progress=progress,
        )

    # push side (the release script)

    def blob_exists(self, repository: str, digest: str) -> bool:
        url = self.endpoint.url(repository, "blobs", digest)
        response = self.request("HEAD", url, f"repository:{repository}:pull,push")
        with response:
            return response.status == 200

    def push_blob(self, repository: str, content: bytes | Path, digest: str, size: int) -> bool:
        """Upload one blob (monolithic POST + PUT); False when the registry already has it."""
        if self.blob_exists(repository, digest):
            return False
        scope = f"repository:{repository}:pull,push"
        start = f"{self.endpoint.base_url}/{repository}/blobs/uploads/"
        response = self.request("POST", start, scope, {"Content-Length": "0"}, b"")
        with response:
            location = response.header("location")
            if response.status != 202 or not location:
                raise HttpStatusError(f"{start}: HTTP {response.status} starting an upload", response.status, start)
        target = urljoin(start, location)
        target += ("&" if urlsplit(target).query else "?") + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if isinstance(content, bytes):
            response = self.request("PUT", target, scope, headers, content)
        else:
            with content.open("rb") as stream:
                response = self.request("PUT", target, scope, headers, stream)
        with response:
            if response.status != 201:
                detail = response.read(4096).decode("utf-8", "replace")[:200]
                raise HttpStatusError(
                    f"{target}: HTTP {response.status} uploading {digest}: {detail}", response.status, target
                )
        return True

    def put_manifest(self, repository: str, tag: str, raw: bytes, media_type: str) -> str:
        url = f"{self.endpoint.base_url}/{repository}/manifests/{tag}"
        response = self.request(
            "PUT",
            url,
            f"repository:{repository}:pull,push",
            {"Content-Type": media_type, "Content-Length": str(len(raw))},
            raw,
        )
        with response:
            if response.status != 201:
                detail = response.read(4096).decode("utf-8", "replace")[:300]
                raise HttpStatusError(
                    f"{url}: HTTP {response.status} pushing the manifest: {detail}", response.status, url
                )
        return blob_digest(raw)


# --- pulling through endpoints ---------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One endpoint's failure, as the result reports it."""

    endpoint: str
    kind: str  # mirror / embedded / default
    stage: str  # manifest / blob <digest>
    outcome: str  # unreachable / not_found / auth / integrity / error
    message: str

    def as_dict(self) -> dict[str, str]:
        return {
            "endpoint": self.endpoint,
            "kind": self.kind,
            "stage": self.stage,
            "outcome": self.outcome,
            "message": self.message,
        }


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, UnreachableError):
        return "unreachable"
    if isinstance(exc, RegistryAuthError):
        return "auth"
    if isinstance(exc, HttpStatusError) and exc.status == 404:
        return "not_found"
    if isinstance(exc, TransferIntegrityError):
        return "integrity"
    return "error"


class OciPuller:
    """Resolve a reference and fetch blobs, falling back across endpoints in containerd's order."""

    def __init__(
        self,
        reference: Reference,
        endpoints: Sequence[Endpoint],
        http: HttpClient,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if not endpoints:
            raise OciError(
                f"no endpoint to pull {reference} from: the registry has a mirrors entry without "
                "endpoints and the default endpoint is disabled"
            )
        self.reference = reference
        self.clients = [
            RegistryClient(http, ep, credentials if ep.kind == "default" or ep.host == reference.registry else None)
            for ep in endpoints
        ]
        self.attempts: list[Attempt] = []
        self.used: int | None = None

    def _record(self, index: int, stage: str, exc: BaseException) -> None:
        ep = self.clients[index].endpoint
        self.attempts.append(Attempt(ep.base_url, ep.kind, stage, _outcome(exc), str(exc)))

    def _give_up(self, what: str) -> TransferError:
        """Degraded when no endpoint answered authoritatively (all unreachable, or mirrors without it)."""
        outcomes = {(a.kind, a.outcome) for a in self.attempts}
        default_unreachable = all(a.outcome == "unreachable" for a in self.attempts if a.kind == "default")
        only_soft = all(o == "unreachable" or (k != "default" and o == "not_found") for k, o in outcomes)
        summary = "; ".join(f"{a.endpoint}: {a.message}" for a in self.attempts)
        if only_soft and default_unreachable and any(o == "unreachable" for _kind, o in outcomes):
            return RegistryUnreachableError(f"{what}: no registry endpoint reachable ({summary})", self.attempts)
        return PullError(f"{what}: {summary}", self.attempts)

    def resolve(self, artifact_type: str | None = None, platform: str | None = None) -> Manifest:
        """The manifest the reference names (following an index to the one matching entry)."""
        what = f"pull of {self.reference}"
        for index, client in enumerate(self.clients):
            try:
                manifest = client.get_manifest(self.reference.repository, self.reference.identifier)
                if manifest.is_index:
                    child = _choose_from_index(manifest, artifact_type, platform, str(self.reference))
                    manifest = client.get_manifest(self.reference.repository, child.digest)
                    if manifest.is_index:
                        raise OciError(f"{self.reference}: nested index {manifest.digest} is not supported")
            except (TransferError, OciError) as exc:
                self._record(index, "manifest", exc)
                continue
            self.used = index
            return manifest
        raise self._give_up(what)

    def fetch_blob(
        self, descriptor: Descriptor, partial: Path, progress: Callable[[int], None] | None = None
    ) -> DownloadStats:
        """Download a blob into `partial`, resuming across endpoints from the one that resolved."""
        first = self.used or 0
        order = list(range(first, len(self.clients))) + list(range(first))
        for index in order:
            client = self.clients[index]
            try:
                stats = client.fetch_blob(self.reference.repository, descriptor, partial, progress)
            except TransferIntegrityError as exc:
                self._record(index, f"blob {descriptor.digest}", exc)
                raise PullError(f"pull of {self.reference}: {exc}", self.attempts) from exc
            except TransferError as exc:
                self._record(index, f"blob {descriptor.digest}", exc)
                continue
            self.used = index
            return stats
        raise self._give_up(f"pull of {self.reference} blob {descriptor.digest}")

    def fetch_small_blob(self, descriptor: Descriptor) -> bytes:
        first = self.used or 0
        for index in list(range(first, len(self.clients))) + list(range(first)):
            try:
                return self.clients[index].get_blob_bytes(self.reference.repository, descriptor)
            except TransferIntegrityError as exc:
                self._record(index, f"blob {descriptor.digest}", exc)
                raise PullError(f"pull of {self.reference}: {exc}", self.attempts) from exc
            except TransferError as exc:
                self._record(index, f"blob {descriptor.digest}", exc)
        raise self._give_up(f"pull of {self.reference} blob {descriptor.digest}")


def _choose_from_index(index: Manifest, artifact_type: str | None, platform: str | None, ref: str) -> Descriptor:
    entries = list(index.manifests)
    if artifact_type:
        typed = [m for m in entries if m.artifact_type == artifact_type]
        entries = typed or entries
    if platform and len(entries) > 1:
        os_name, _sep, arch = platform.partition("/")
        entries = [
            m
            for m in entries
            if m.platform and m.platform.get("os") == os_name and m.platform.get("architecture") == arch
        ] or entries
    if len(entries) != 1:
        listed = ", ".join(f"{m.digest} ({m.artifact_type or m.media_type})" for m in index.manifests)
        raise OciError(
            f"{ref} is an index of {len(index.manifests)} manifests ({listed}); pin the wanted manifest by digest"
        )
    return entries[0]
