# Copyright (c) edgeslm maintainers
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/new-site NAME --like EXISTING gives one complete folder that validates as it is.

The new site gets EXISTING's hand-written parts (patches, image records) and Secrets of the
same names and keys with a fresh key of its own, encrypted by the real sops under the
repository's .sops.yaml: never EXISTING's ciphertext.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ansible_collections.edgeslm.pi5.scripts.gitops_validate import newsite
from ansible_collections.edgeslm.pi5.scripts.gitops_validate.model import SiteResult

RunSite = Callable[[Path, str], SiteResult]


@pytest.mark.parametrize("like", ["lab", "store-berlin", "factory-line1"])
def test_new_site_like_each_template_site_is_valid(repo: Path, run_site: RunSite, like: str) -> None:
    assert newsite.main(["--root", str(repo), "fresh", "--like", like]) == 0
    folder = repo / "sites" / "fresh"
    result = run_site(repo, "fresh")
    assert result.problems == [], [str(p) for p in result.problems]
    assert (folder / "site.yaml").is_file()
    if (repo / "sites" / like / "images.yaml").is_file():
        assert yaml.safe_load((folder / "images.yaml").read_text())["metadata"]["name"] == "fresh"
    # Nothing of the new site lives outside its folder.
    assert sorted(p.name for p in (repo / "sites").iterdir()) == sorted(
        ["fresh", "lab", "store-berlin", "factory-line1"]
    )


def test_new_site_secrets_are_its_own(repo: Path) -> None:
    assert newsite.main(["--root", str(repo), "fresh", "--like", "lab"]) == 0
    like_files = sorted((repo / "sites" / "lab").glob("*/*.enc.yaml"))
    assert like_files, "the lab site has SOPS Secrets"
    for like_file in like_files:
        rel = like_file.relative_to(repo / "sites" / "lab")
        new_file = repo / "sites" / "fresh" / rel
        like_doc, new_doc = yaml.safe_load(like_file.read_text()), yaml.safe_load(new_file.read_text())
        assert new_doc["metadata"] == {k: like_doc["metadata"][k] for k in ("name", "namespace")}
        assert set(new_doc["stringData"]) == set(like_doc.get("stringData") or like_doc.get("data"))
        # Encrypted for the recipients .sops.yaml names for the new path, not lab's TEST-ONLY one.
        recipients = {entry["recipient"] for entry in new_doc["sops"]["age"]}
        like_recipients = {entry["recipient"] for entry in like_doc["sops"]["age"]}
        assert recipients and recipients != like_recipients
        assert all(str(v).startswith("ENC[") for v in new_doc["stringData"].values())


def test_without_sops_the_secrets_are_named_not_copied(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(newsite, "_sops", lambda: None)
    assert newsite.main(["--root", str(repo), "fresh", "--like", "lab"]) == 0
    out = capsys.readouterr().out
    assert "not created: apps/slm-api-key.enc.yaml (sops is not on PATH" in out
    assert not list((repo / "sites" / "fresh").glob("*/*.enc.yaml"))
