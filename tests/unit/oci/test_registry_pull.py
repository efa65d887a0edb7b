# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pulls and pushes against the real registry (Debian's docker-registry) with the real oras client.

Each test starts its own registry on 127.0.0.1 (free port, storage in tmp_path) and stops it by
PID. What is proved: oras push -> our pull; our ModelPack push -> oras pull; a tampered blob
refused; a pull cut in the middle resumed, not restarted (bytes counted); registry down ->
degraded; mirror first, then fallback; htpasswd auth; the signature required and checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils import _fetch, _modelpack, _oci, _signature
from ansible_collections.edgeslm.pi5.plugins.module_utils._http import HttpClient
from ansible_collections.edgeslm.pi5.plugins.module_utils._signature import load_trusted_key
from ansible_collections.edgeslm.pi5.tests.unit.oci.conftest import ModelFile, SigningKey, make_key, sign
from ansible_collections.edgeslm.pi5.tests.unit.oci_registry import CutProxy, Registry, oras, running_registry

WEIGHT = _modelpack.MEDIA_TYPE_WEIGHT_RAW


def oras_push(registry: Registry, model: ModelFile, ref: str, *extra: str) -> None:
    oras("push", "--plain-http", f"{registry.host}/{ref}", f"{model.path.name}:{WEIGHT}", *extra, cwd=model.path.parent)


def request(dest: Path, source: str, **kwargs: object) -> _fetch.FetchRequest:
    return _fetch.FetchRequest(dest=str(dest), source=source, **kwargs)  # type: ignore[arg-type]


def push_modelpack(registry: Registry, model: ModelFile, ref: str, signature: bytes | None = None) -> str:
    """Push a model artifact with our own client (what scripts/model-release will do)."""
    config = _modelpack.build_model_config(
        name="edgeslm-tiny",
        file_sha256=model.sha256,
        architecture="llama",
        quantization="Q8_0",
        parameter_count=1_500_000,
    )
    manifest = _modelpack.build_model_manifest(
        config=config,
        file_name=model.path.name,
        file_sha256=model.sha256,
        file_size=model.size,
        signature=signature,
        annotations=_modelpack.model_annotations("edgeslm-tiny", "Q8_0", 2048),
    )
    reference = _oci.parse_reference(f"{registry.host}/{ref}")
    endpoint = _oci.registry_endpoints(_oci.RegistriesConfig(), reference.registry)[-1]
    client = _oci.RegistryClient(HttpClient(), endpoint)
    client.push_blob(reference.repository, config, _oci.blob_digest(config), len(config))
    client.push_blob(reference.repository, model.path, f"sha256:{model.sha256}", model.size)
    if signature is not None:
        client.push_blob(reference.repository, signature, _oci.blob_digest(signature), len(signature))
    assert reference.tag is not None
    return client.put_manifest(reference.repository, reference.tag, manifest, _oci.MEDIA_TYPE_OCI_MANIFEST)


def test_pulls_what_oras_pushed(registry: Registry, model_file: ModelFile, tmp_path: Path) -> None:
    oras_push(registry, model_file, "models/tiny:v1")
    dest = tmp_path / "out" / model_file.path.name
    dest.parent.mkdir()
    result = _fetch.fetch(request(dest, f"oci://{registry.host}/models/tiny:v1", sha256=model_file.sha256))
    assert result.changed and result.origin == "oci"
    assert dest.read_bytes() == model_file.path.read_bytes()
    assert (result.sha256, result.size, result.downloaded) == (model_file.sha256, model_file.size, model_file.size)
    assert not list(dest.parent.glob(".*.partial"))
    again = _fetch.fetch(request(dest, f"oci://{registry.host}/models/tiny:v1", sha256=model_file.sha256))
    assert not again.changed and again.cached and again.origin == "present"


def test_oras_pulls_our_modelpack_artifact(
    registry: Registry, model_file: ModelFile, tmp_path: Path, signing_key: SigningKey
) -> None:
    sig_path = tmp_path / "model.sig"
    sign(model_file.path, signing_key, sig_path)
    digest = push_modelpack(registry, model_file, "models/tiny:v2", sig_path.read_bytes())
    pulled = tmp_path / "oras-pulled"
    pulled.mkdir()
    oras("pull", "--plain-http", f"{registry.host}/models/tiny:v2", "-o", str(pulled))
    assert (pulled / model_file.path.name).read_bytes() == model_file.path.read_bytes()
    assert (pulled / f"{model_file.path.name}.sig").read_bytes() == sig_path.read_bytes()
    fetched = json.loads(oras("manifest", "fetch", "--plain-http", f"{registry.host}/models/tiny:v2").stdout)
    assert fetched["artifactType"] == _modelpack.ARTIFACT_TYPE_MODEL
    assert fetched["config"]["mediaType"] == _modelpack.MEDIA_TYPE_MODEL_CONFIG
    assert [layer["mediaType"] for layer in fetched["layers"]] == [WEIGHT, _modelpack.MEDIA_TYPE_SIGSTORE_BUNDLE]
    assert fetched["annotations"][_modelpack.ANNOTATION_QUANTIZATION] == "Q8_0"
    # and our client pulls it by digest, signature required and checked
    dest = tmp_path / "node" / model_file.path.name
    dest.parent.mkdir()
    result = _fetch.fetch(
        request(
            dest,
            f"oci://{registry.host}/models/tiny@{digest}",
            sha256=model_file.sha256,
            trusted_keys=(load_trusted_key(signing_key.public.read_text(), "release.pub"),),
        )
    )
    assert result.manifest_digest == digest
    assert result.signature["key"] == "release.pub"
    assert Path(result.signature_path).read_bytes() == sig_path.read_bytes()


def test_unsigned_artifact_refused_when_a_signature_is_required(
    registry: Registry, model_file: ModelFile, tmp_path: Path, signing_key: SigningKey
) -> None:
    push_modelpack(registry, model_file, "models/tiny:unsigned")
    dest = tmp_path / "node" / model_file.path.name
    dest.parent.mkdir()
    key = load_trusted_key(signing_key.public.read_text(), "release.pub")
    with pytest.raises(_signature.SignatureError, match="has no signature"):
        _fetch.fetch(request(dest, f"oci://{registry.host}/models/tiny:unsigned", trusted_keys=(key,)))
    assert list(dest.parent.iterdir()) == []  # nothing half-written, no partial left


def test_untrusted_signer_refused(
    registry: Registry, model_file: ModelFile, tmp_path: Path, signing_key: SigningKey
) -> None:
    other = make_key(tmp_path / "keys", "intruder")
    sig_path = tmp_path / "model.sig"
    sign(model_file.path, other, sig_path)
    push_modelpack(registry, model_file, "models/tiny:intruder", sig_path.read_bytes())
    dest = tmp_path / "node" / model_file.path.name
    dest.parent.mkdir()
    key = load_trusted_key(signing_key.public.read_text(), "release.pub")
    with pytest.raises(_signature.SignatureError, match="not trusted"):
        _fetch.fetch(request(dest, f"oci://{registry.host}/models/tiny:intruder", trusted_keys=(key,)))
    assert list(dest.parent.iterdir()) == []


def test_tampered_blob_refused(registry: Registry, model_file: ModelFile, tmp_path: Path) -> None:
    oras_push(registry, model_file, "models/tiny:v1")
    blob = registry.blob_path(f"sha256:{model_file.sha256}")
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))  # same size, one byte flipped, in the registry's own storage
    dest = tmp_path / "out" / model_file.path.name
    dest.parent.mkdir()
    with pytest.raises(_fetch.FetchError, match="tampered or corrupted"):
        _fetch.fetch(request(dest, f"oci://{registry.host}/models/tiny:v1"))
    assert list(dest.parent.iterdir()) == []


def test_cut_pull_resumes_instead_of_restarting(registry: Registry, model_file: ModelFile, tmp_path: Path) -> None:
    oras_push(registry, model_file, "models/tiny:v1")
    cut_at = model_file.size // 2
    proxy = CutProxy(registry.port, cut_after=cut_at)
    dest = tmp_path / "out" / model_file.path.name
    dest.parent.mkdir()
    source = f"oci://{registry.host}/models/tiny:v1"
    registries = _oci.RegistriesConfig.from_mapping(
        {"mirrors": {registry.host: {"endpoint": [f"http://{proxy.host}"]}}}
    )
    try:
        with pytest.raises(_fetch.FetchUnreachableError, match=r"connection (lost|closed)|ended the body"):
            _fetch.fetch(
                request(dest, source, sha256=model_file.sha256, registries=registries, disable_default_endpoint=True)
            )
        assert proxy.cuts == 1
        partials = list(dest.parent.glob(".*.partial"))
        assert len(partials) == 1 and not dest.exists()
        kept = partials[0].stat().st_size
        assert 0 < kept <= cut_at
        before = proxy.downstream_bytes
        result = _fetch.fetch(
            request(dest, source, sha256=model_file.sha256, registries=registries, disable_default_endpoint=True)
        )
        relayed = proxy.downstream_bytes - before
    finally:
        proxy.close()
    assert result.resumed and not result.restarted
    assert (result.reused, result.downloaded) == (kept, model_file.size - kept)
    # what crossed the wire the second time: the missing part plus headers and the manifest, not the whole file
    assert model_file.size - kept <= relayed < model_file.size - kept + 16384
    assert dest.read_bytes() == model_file.path.read_bytes()


def test_registry_down_is_degraded(tmp_path: Path, model_file: ModelFile) -> None:
    with running_registry(tmp_path / "registry") as registry:
        oras_push(registry, model_file, "models/tiny:v1")
        host = registry.host
    dest = tmp_path / "out" / model_file.path.name
    dest.parent.mkdir()
    source = f"oci://{host}/models/tiny:v1"
    with pytest.raises(_fetch.FetchUnreachableError, match="no registry endpoint reachable") as info:
        _fetch.fetch(request(dest, source, sha256=model_file.sha256, timeout=5))
    assert info.value.attempts[0]["outcome"] == "unreachable"
    result = _fetch.fetch(request(dest, source, sha256=model_file.sha256, degraded_ok=True, timeout=5))
    assert result.degraded and not result.changed
    assert "cannot connect" in result.reason and not dest.exists()


def test_mirror_first_then_fallback(tmp_path: Path, model_file: ModelFile) -> None:
    with running_registry(tmp_path / "origin") as origin, running_registry(tmp_path / "mirror") as mirror:
        oras_push(origin, model_file, "models/tiny:v1")
        counting = CutProxy(origin.port)  # counts what the origin sends
        try:
            source = f"oci://{counting.host}/models/tiny:v1"
            config = _oci.RegistriesConfig.from_mapping({"mirrors": {counting.host: {"endpoint": [mirror.url]}}})
            # 1. the mirror lacks it (404): fall back to the default endpoint, the origin
            dest = tmp_path / "a" / model_file.path.name
            dest.parent.mkdir()
            result = _fetch.fetch(request(dest, source, sha256=model_file.sha256, registries=config))
            assert result.location.endswith("(default)")
            assert [(a["kind"], a["outcome"]) for a in result.attempts] == [("mirror", "not_found")]
            assert counting.downstream_bytes > model_file.size
            # 2. the mirror has it: the origin is not asked at all
            oras_push(mirror, model_file, "models/tiny:v1")
            sent = counting.downstream_bytes
            dest = tmp_path / "b" / model_file.path.name
            dest.parent.mkdir()
            result = _fetch.fetch(request(dest, source, sha256=model_file.sha256, registries=config))
            assert result.location == f"{mirror.url}/v2 (mirror)" and result.attempts == []
            assert counting.downstream_bytes == sent
            # 3. the mirror is down: fall back again
            mirror.stop()
            dest = tmp_path / "c" / model_file.path.name
            dest.parent.mkdir()
            result = _fetch.fetch(request(dest, source, sha256=model_file.sha256, registries=config))
            assert result.location.endswith("(default)")
            assert [(a["kind"], a["outcome"]) for a in result.attempts] == [("mirror", "unreachable")]
        finally:
            counting.close()


def test_htpasswd_auth(tmp_path: Path, model_file: ModelFile) -> None:
    with running_registry(tmp_path / "registry", users={"edge": "s3cret-pw"}) as registry:
        home = tmp_path / "oras-home"
        home.mkdir()
        env = {"HOME": str(home)}
        oras("login", "--plain-http", registry.host, "-u", "edge", "-p", "s3cret-pw", env=env)
        oras(
            "push",
            "--plain-http",
            f"{registry.host}/models/tiny:v1",
            f"{model_file.path.name}:{WEIGHT}",
            cwd=model_file.path.parent,
            env=env,
        )
        source = f"oci://{registry.host}/models/tiny:v1"
        dest = tmp_path / "out" / model_file.path.name
        dest.parent.mkdir()
        with pytest.raises(_fetch.FetchError, match=r"asks for credentials \(Basic\); set configs"):
            _fetch.fetch(request(dest, source, sha256=model_file.sha256))
        wrong = _oci.RegistriesConfig.from_mapping(
            {"configs": {registry.host: {"auth": {"username": "edge", "password": "nope"}}}}
        )
        with pytest.raises(_fetch.FetchError, match="refused the credentials"):
            _fetch.fetch(request(dest, source, sha256=model_file.sha256, registries=wrong))
        good = _oci.RegistriesConfig.from_mapping(
            {"configs": {registry.host: {"auth": {"username": "edge", "password": "s3cret-pw"}}}}
        )
        result = _fetch.fetch(request(dest, source, sha256=model_file.sha256, registries=good))
        assert result.changed and dest.read_bytes() == model_file.path.read_bytes()
        assert "s3cret" not in json.dumps(result.as_dict())


def test_pinned_digest_must_match_the_artifact(registry: Registry, model_file: ModelFile, tmp_path: Path) -> None:
    oras_push(registry, model_file, "models/tiny:v1")
    dest = tmp_path / "out" / model_file.path.name
    dest.parent.mkdir()
    with pytest.raises(_fetch.FetchError, match="is pinned; release the pinned file"):
        _fetch.fetch(request(dest, f"oci://{registry.host}/models/tiny:v1", sha256="0" * 64))
    with pytest.raises(_fetch.FetchError, match=r"no layer titled 'other\.gguf'"):
        _fetch.fetch(request(tmp_path / "out" / "other.gguf", f"oci://{registry.host}/models/tiny:v1"))
    assert list(dest.parent.iterdir()) == []
