"""The k3s test stand-in (molecule only) merges config files as k3s does and refuses unknown keys.

The stand-in replaces the k3s binary in the Molecule scenarios, so its checks must be right:
a stand-in that accepted anything would let the roles' mistakes through.
"""

from __future__ import annotations

import json
import socket
import threading
import types
from pathlib import Path

import pytest

from ansible_collections.edgeslm.pi5.plugins.module_utils._k3s_flags import AGENT_KEYS, SERVER_KEYS
from ansible_collections.edgeslm.pi5.scripts.gitops_validate import pinned_k3s_release

STANDIN = Path(__file__).resolve().parents[3] / "molecule" / "resources" / "standins" / "k3s.test-standin"


@pytest.fixture(scope="module")
def standin() -> types.ModuleType:
    source = (
        STANDIN.read_text()
        .replace("@K3S_VERSION@", pinned_k3s_release())
        .replace("@SERVER_KEYS_JSON@", json.dumps(sorted(SERVER_KEYS)))
        .replace("@AGENT_KEYS_JSON@", json.dumps(sorted(AGENT_KEYS)))
    )
    module = types.ModuleType("k3s_standin")
    exec(compile(source, str(STANDIN), "exec"), module.__dict__)
    return module


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_dropins_merge_with_k3s_rules(standin: types.ModuleType, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    write(
        config,
        "# managed\nwrite-kubeconfig-mode: '0600'\nnode-label:\n  - base=1\ntls-san: [a, b]\n"
        'kubelet-arg:\n- "tls-cipher-suites=X,Y"\nprotect-kernel-defaults: true\n',
    )
    write(tmp_path / "config.yaml.d" / "40-edgeslm-node.yaml", "node-label+:\n  - edgeslm.io/ram-gb=8\n")
    write(tmp_path / "config.yaml.d" / "50-edgeslm-npu.yaml", "node-label+:\n  - edgeslm.io/npu=none\n")
    write(tmp_path / "config.yaml.d" / "60-override.yaml", "write-kubeconfig-mode: '0644'\n")
    write(tmp_path / "config.yaml.d" / "ignored.txt", "not: read\n")
    merged, files = standin.load_config(str(config))
    assert merged["node-label"] == ["base=1", "edgeslm.io/ram-gb=8", "edgeslm.io/npu=none"]
    assert merged["write-kubeconfig-mode"] == "0644"
    assert merged["tls-san"] == ["a", "b"]
    assert merged["kubelet-arg"] == ["tls-cipher-suites=X,Y"]
    assert merged["protect-kernel-defaults"] is True
    assert len(files) == 4


def test_a_later_plain_key_replaces_appended_values(standin: types.ModuleType, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    write(config, "node-label:\n  - base=1\n")
    write(tmp_path / "config.yaml.d" / "40-a.yaml", "node-label+:\n  - a=1\n")
    write(tmp_path / "config.yaml.d" / "50-b.yaml", "node-label:\n  - b=1\n")
    merged, _sources = standin.load_config(str(config))
    assert merged["node-label"] == ["b=1"]


@pytest.mark.parametrize(
    ("command", "text", "message"),
    [
        ("server", "protect-kernel-default: true\n", "unknown k3s server option"),
        ("agent", "cluster-init: true\n", "unknown k3s agent option"),
        ("server", "token-file: /nonexistent/token\n", "does not exist"),
    ],
)
def test_validate_refuses(standin: types.ModuleType, tmp_path: Path, command: str, text: str, message: str) -> None:
    config = tmp_path / "config.yaml"
    write(config, text)
    merged, _sources = standin.load_config(str(config))
    with pytest.raises(standin.StandinError, match=message):
        standin.validate(merged, command)


@pytest.mark.parametrize(
    "text",
    ["nested:\n  key: value\n", "key: |\n  block\n", "- orphan\n", "no colon here\n"],
)
def test_parser_refuses_what_k3s_config_is_not(standin: types.ModuleType, tmp_path: Path, text: str) -> None:
    config = tmp_path / "config.yaml"
    write(config, text)
    with pytest.raises(standin.StandinError):
        standin.parse_config(str(config))


# --- the join: retried until a deadline while the server is unreachable, with the reason ---------


def serve_answers(answers: list[bytes]) -> tuple[int, threading.Thread]:
    """A loopback server answering one JOIN per connection from `answers` (b"" closes without answer)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)
    port = listener.getsockname()[1]

    def loop() -> None:
        with listener:
            for answer in answers:
                conn, _address = listener.accept()
                with conn:
                    reader = conn.makefile("r")
                    reader.readline()
                    reader.readline()
                    if answer:
                        conn.sendall(answer)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return port, thread


def test_join_retries_a_server_that_did_not_answer(standin: types.ModuleType) -> None:
    port, thread = serve_answers([b"", b"OK cafe\n"])
    ca = standin.join(f"https://127.0.0.1:{port}", "server", "n2", "K10cafe::server:s3cret", [], deadline_s=30)
    thread.join(timeout=10)
    assert ca == "cafe"


def test_join_refused_token_fails_at_once(standin: types.ModuleType) -> None:
    port, thread = serve_answers([b"DENIED token does not match this cluster\n"])
    with pytest.raises(standin.StandinError, match=r"join refused .* token does not match"):
        standin.join(f"https://127.0.0.1:{port}", "agent", "a1", "s3cret", [], deadline_s=30)
    thread.join(timeout=10)


def test_join_gives_up_with_the_reason(standin: types.ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(standin.StandinError, match=r"gave up joining .* after \d+ tries .* cannot resolve"):
        standin.join("https://name-that-does-not-resolve.invalid:6443", "server", "n2", "s", [], deadline_s=3)
    assert "join try 1: cannot resolve name-that-does-not-resolve.invalid" in capsys.readouterr().err
