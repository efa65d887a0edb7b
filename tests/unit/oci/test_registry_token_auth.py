# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Bearer (token) flow against the real registry: docker-registry with `auth: token`.

The token service is a loopback test server made here (it is what a registry's auth server
does: check Basic credentials, answer a JWT signed ES256 whose x5c certificate the registry's
`rootcertbundle` trusts). The registry, its challenge and its token checks are the real ones;
oras pushes through the same flow.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from ansible_collections.edgeslm.pi5.plugins.module_utils import _fetch, _oci
from ansible_collections.edgeslm.pi5.tests.unit.oci.conftest import ModelFile
from ansible_collections.edgeslm.pi5.tests.unit.oci_registry import Registry, oras

SERVICE, ISSUER = "edgeslm-test-registry", "edgeslm-test-token-service"
USER, PASSWORD = "edge", "t0ken-pw"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """Issues registry tokens to USER/PASSWORD for the scopes asked (loopback, stopped by close())."""

    def __init__(self, directory: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = directory / "token-ca.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self._reply(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                    return
                query = parse_qs(urlsplit(self.path).query)
                token = owner.token(query.get("scope", []))
                self._reply(200, {"token": token, "access_token": token, "expires_in": 300})

            def _reply(self, status: int, doc: dict[str, object]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            for item in scope.split(" "):
                kind, _sep, rest = item.partition(":")
                name, _sep, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        claims = {
            "iss": ISSUER,
            "sub": USER,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{signing_input.decode()}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenService]]:
    service = TokenService(tmp_path)
    auth = (
        f"auth:\n  token:\n    realm: {service.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
        f"    rootcertbundle: {service.bundle}\n"
    )
    registry = Registry(tmp_path / "registry", extra_config=auth)
    try:
        registry.start()
        yield registry, service
    finally:
        registry.stop()
        service.close()


def test_bearer_flow_with_the_real_registry(
    token_registry: tuple[Registry, TokenService], model_file: ModelFile, tmp_path: Path
) -> None:
    registry, service = token_registry
    home = tmp_path / "oras-home"
    home.mkdir()
    env = {"HOME": str(home)}
    oras("login", "--plain-http", registry.host, "-u", USER, "-p", PASSWORD, env=env)
    oras(
        "push",
        "--plain-http",
        f"{registry.host}/models/tiny:v1",
        f"{model_file.path.name}:application/vnd.cncf.model.weight.v1.raw",
        cwd=model_file.path.parent,
        env=env,
    )
    source = f"oci://{registry.host}/models/tiny:v1"
    dest = tmp_path / "out" / model_file.path.name
    dest.parent.mkdir()
    with pytest.raises(_fetch.FetchError, match=r"token service .* refused the credentials"):
        _fetch.fetch(_fetch.FetchRequest(dest=str(dest), source=source, sha256=model_file.sha256))
    config = _oci.RegistriesConfig.from_mapping(
        {"configs": {registry.host: {"auth": {"username": USER, "password": PASSWORD}}}}
    )
    before = len(service.requests)
    result = _fetch.fetch(
        _fetch.FetchRequest(dest=str(dest), source=source, sha256=model_file.sha256, registries=config)
    )
    assert result.changed and dest.read_bytes() == model_file.path.read_bytes()
    asked = service.requests[before:]
    assert asked and all("scope=repository%3Amodels%2Ftiny%3Apull" in path for path in asked)
    assert len(asked) == 1  # one token for the manifest and the blob (same scope)
