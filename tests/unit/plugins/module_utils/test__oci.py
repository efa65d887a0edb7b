# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""_oci: references, registries.yaml -> endpoints (k3s's rules), manifests, auth challenges.

The endpoint cases are the examples of k3s's docs (private-registry.md, registry-mirror.md).
The Bearer flow runs against a loopback test server that plays registry and token service.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _oci as O
from ansible_collections.edgeslm.pi5.plugins.module_utils._http import HttpClient, TlsOptions

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("registry.example.com:5000/models/tiny:v1", ("registry.example.com:5000", "models/tiny", "v1", None)),
        (f"oci://localhost/m@{DIGEST}", ("localhost", "m", None, DIGEST)),
        (f"127.0.0.1:5000/a/b/c:1.0@{DIGEST}", ("127.0.0.1:5000", "a/b/c", "1.0", DIGEST)),
        ("rancher/mirrored-pause:3.6", ("docker.io", "rancher/mirrored-pause", "3.6", None)),
        ("busybox:1", ("docker.io", "library/busybox", "1", None)),
    ],
)
def test_parse_reference(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    ref = O.parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("registry.example/models/tiny", "neither a tag nor a digest"),
        ("registry.example/models/tiny@sha256:abc", "64 lower-case hex"),
        ("registry.example/models/tiny@md5:" + "a" * 32, "must be 'sha256:'"),
        ("registry.example/Models:v1", "lower-case"),
        ("registry.example/models:-bad", "not a valid tag"),
    ],
)
def test_parse_reference_refusals(text: str, message: str) -> None:
    with pytest.raises(O.OciError, match=message):
        O.parse_reference(text)


def endpoints(doc: dict[str, Any] | None, registry: str, **kwargs: Any) -> list[tuple[str, str]]:
    config = O.RegistriesConfig.from_mapping(doc)
    return [(e.base_url, e.kind) for e in O.registry_endpoints(config, registry, **kwargs)]


def test_no_entry_means_the_default_endpoint() -> None:
    assert endpoints(None, "registry.example.com:5000") == [("https://registry.example.com:5000/v2", "default")]
    assert endpoints(None, "docker.io") == [("https://registry-1.docker.io/v2", "default")]
    assert endpoints(None, "127.0.0.1:5000") == [("http://127.0.0.1:5000/v2", "default")]  # localhost, odd port
    assert endpoints(None, "localhost") == [("https://localhost/v2", "default")]


def test_mirror_endpoints_first_default_last() -> None:
    doc = {"mirrors": {"docker.io": {"endpoint": ["https://registry.example.com:5000", "mirror2.example/v2"]}}}
    assert endpoints(doc, "docker.io") == [
        ("https://registry.example.com:5000/v2", "mirror"),
        ("https://mirror2.example/v2", "mirror"),
        ("https://registry-1.docker.io/v2", "default"),
    ]


def test_endpoint_equal_to_default_is_the_default() -> None:
    doc = {"mirrors": {"registry.example.com": {"endpoint": ["https://registry.example.com", "https://m.example"]}}}
    assert endpoints(doc, "registry.example.com") == [
        ("https://m.example/v2", "mirror"),
        ("https://registry.example.com/v2", "default"),
    ]
    # with the port spelled out it is a different URL: a mirror (rewrites apply), as k3s's docs explain
    doc = {"mirrors": {"registry.example.com": {"endpoint": ["https://registry.example.com:443"]}}}
    assert endpoints(doc, "registry.example.com")[0] == ("https://registry.example.com:443/v2", "mirror")


def test_disable_default_endpoint_applies_to_mirrored_registries_only() -> None:
    doc = {"mirrors": {"docker.io": {"endpoint": ["https://m.example"]}, "registry.k8s.io": None}}
    assert endpoints(doc, "docker.io", disable_default_endpoint=True) == [("https://m.example/v2", "mirror")]
    assert endpoints(doc, "registry.k8s.io", disable_default_endpoint=True) == []
    assert endpoints(doc, "quay.io", disable_default_endpoint=True) == [("https://quay.io/v2", "default")]


def test_wildcard_mirror_and_config() -> None:
    doc = {
        "mirrors": {"*": {"endpoint": ["https://registry.example.com:5000"]}},
        "configs": {"docker.io": None, "*": {"tls": {"insecure_skip_verify": True}}},
    }
    config = O.RegistriesConfig.from_mapping(doc)
    found = O.registry_endpoints(config, "quay.io")
    assert [(e.base_url, e.kind) for e in found] == [
        ("https://registry.example.com:5000/v2", "mirror"),
        ("https://quay.io/v2", "default"),
    ]
    assert all(e.config.tls is not None and e.config.tls.insecure_skip_verify for e in found)
    docker = O.registry_endpoints(config, "docker.io")[-1]
    assert docker.config.tls is None  # its own (empty) entry wins over '*'


def test_embedded_mirror_first_and_without_rewrites() -> None:
    doc = {
        "mirrors": {
            "registry.example.com": {"endpoint": ["https://m.example"], "rewrite": {"^models/(.*)$": "edge/$1"}},
            "127.0.0.1:5000": None,
        }
    }
    embedded = O.EmbeddedMirror("10.0.0.5:6443", "/var/lib/rancher/k3s/agent/server-ca.crt", "c.crt", "c.key")
    config = O.RegistriesConfig.from_mapping(doc)
    found = O.registry_endpoints(config, "registry.example.com", embedded_mirror=embedded)
    assert [(e.base_url, e.kind) for e in found] == [
        ("https://10.0.0.5:6443/v2", "embedded"),
        ("https://m.example/v2", "mirror"),
        ("https://registry.example.com/v2", "default"),
    ]
    assert found[0].config.tls == TlsOptions("/var/lib/rancher/k3s/agent/server-ca.crt", "c.crt", "c.key")
    urls = [e.url("models/tiny", "manifests", "v1") for e in found]
    assert urls == [
        "https://10.0.0.5:6443/v2/models/tiny/manifests/v1?ns=registry.example.com",
        "https://m.example/v2/edge/tiny/manifests/v1?ns=registry.example.com",
        "https://registry.example.com/v2/models/tiny/manifests/v1",
    ]
    # localhost registries are not shared through the embedded mirror
    local = O.registry_endpoints(config, "127.0.0.1:5000", embedded_mirror=embedded)
    assert [(e.base_url, e.kind) for e in local] == [("http://127.0.0.1:5000/v2", "default")]


def test_endpoint_path_overrides_v2_and_configs_by_endpoint_host() -> None:
    doc = {
        "mirrors": {"registry.example.com": {"endpoint": ["https://cache.example/proxy/v2/registry"]}},
        "configs": {"cache.example": {"auth": {"username": "u", "password": "p"}}},
    }
    found = O.registry_endpoints(O.RegistriesConfig.from_mapping(doc), "registry.example.com")
    assert found[0].url("a/b", "blobs", DIGEST).startswith("https://cache.example/proxy/v2/registry/a/b/blobs/")
    assert found[0].config.auth == O.RegistryAuth("u", "p")
    assert found[1].config.auth is None


def test_auth_forms() -> None:
    assert O.RegistryAuth(auth=base64.b64encode(b"edge:pw").decode()).basic() == ("edge", "pw")
    assert O.RegistryAuth(username="edge").basic() == ("edge", "")
    assert O.RegistryAuth(identity_token="t").basic() is None
    with pytest.raises(O.OciError, match="base64"):
        O.RegistryAuth(auth="***").basic()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "must be a mapping"),
        ({"mirror": {}}, "unknown keys"),
        ({"mirrors": {"x": {"endpoint": "https://a"}}}, r"endpoint must be a list"),
        ({"mirrors": {"x": {"rewrite": {"(": "a"}}}}, "not a valid regular expression"),
        ({"configs": {"x": {"tls": {"insecure_skip_verify": "yes"}}}}, "true or false"),
        ({"configs": {"x": {"auth": {"username": 5}}}}, "must be a string"),
    ],
)
def test_registries_refusals(doc: object, message: str) -> None:
    with pytest.raises(O.OciError, match=message):
        O.RegistriesConfig.from_mapping(doc)


def _descriptor(**extra: Any) -> dict[str, Any]:
    return {"mediaType": "application/octet-stream", "digest": DIGEST, "size": 3, **extra}


def test_parse_manifest_and_layers() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": O.MEDIA_TYPE_OCI_MANIFEST,
        "artifactType": "application/x-test",
        "config": _descriptor(),
        "layers": [_descriptor(annotations={O.ANNOTATION_TITLE: "a.gguf"})],
    }
    manifest = O.parse_manifest(json.dumps(doc).encode())
    assert manifest.layer_titled("a.gguf") is not None and manifest.layer_titled("b") is None
    assert manifest.artifact_type == "application/x-test" and not manifest.is_index


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"schemaVersion": 1}, "schemaVersion must be 2"),
        ({"schemaVersion": 2, "mediaType": "text/plain"}, "not an OCI/Docker"),
        ({"schemaVersion": 2, "config": _descriptor(size=-1), "layers": []}, "non-negative"),
        ({"schemaVersion": 2, "config": _descriptor(digest="sha512:00"), "layers": []}, "only algorithm"),
        ({"schemaVersion": 2, "config": _descriptor(), "layers": {}}, "must be a list"),
    ],
)
def test_parse_manifest_refusals(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(O.OciError, match=message):
        O.parse_manifest(json.dumps(doc).encode())


# --- Bearer token flow against a loopback test server --------------------------------------------


class _TokenRegistry:
    """Answers /v2/... with a Bearer challenge until the right token comes; /token checks Basic creds."""

    def __init__(self) -> None:
        self.token_requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/token"):
                    owner.token_requests.append(self.path)
                    expected = "Basic " + base64.b64encode(b"edge:pw").decode()
                    if self.headers.get("Authorization") != expected:
                        self._reply(401, b"{}")
                        return
                    self._reply(200, json.dumps({"token": "T0KEN"}).encode())
                    return
                if self.headers.get("Authorization") != "Bearer T0KEN":
                    realm = f"http://127.0.0.1:{owner.port}/token"
                    self._reply(401, b"{}", {"WWW-Authenticate": f'Bearer realm="{realm}",service="test"'})
                    return
                manifest = {
                    "schemaVersion": 2,
                    "mediaType": O.MEDIA_TYPE_OCI_MANIFEST,
                    "config": _descriptor(),
                    "layers": [],
                }
                self._reply(200, json.dumps(manifest).encode(), {"Content-Type": O.MEDIA_TYPE_OCI_MANIFEST})

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def token_registry() -> Iterator[_TokenRegistry]:
    server = _TokenRegistry()
    try:
        yield server
    finally:
        server.close()


def _client(server: _TokenRegistry, auth: dict[str, str] | None) -> O.RegistryClient:
    host = f"127.0.0.1:{server.port}"
    doc = {"configs": {host: {"auth": auth}}} if auth else None
    endpoint = O.registry_endpoints(O.RegistriesConfig.from_mapping(doc), host)[0]
    return O.RegistryClient(HttpClient(timeout=5), endpoint)


def test_bearer_challenge_flow(token_registry: _TokenRegistry) -> None:
    client = _client(token_registry, {"username": "edge", "password": "pw"})
    manifest = client.get_manifest("models/tiny", "v1")
    assert manifest.config is not None and manifest.config.digest == DIGEST
    assert token_registry.token_requests == ["/token?service=test&scope=repository%3Amodels%2Ftiny%3Apull"]
    client.get_manifest("models/tiny", "v1")
    assert len(token_registry.token_requests) == 1  # the token is reused for the same scope


def test_bearer_refused_credentials(token_registry: _TokenRegistry) -> None:
    client = _client(token_registry, {"username": "edge", "password": "wrong"})
    with pytest.raises(O.RegistryAuthError, match=r"token service .* refused the credentials"):
        client.get_manifest("models/tiny", "v1")
