"""docs/zoo-library.md: every python block runs, in order, in one namespace (offline: the hub repos and the
named models' weights are small saved models in a local folder; a line marked "not run by the test" is skipped)."""
from __future__ import annotations

import dataclasses
import re

import torch

import zoo
from zoo import hub_mixin
from zoo import loader as Loader
from zoo import registry as R


def _blocks(text: str):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_every_example_of_the_library_page_runs(repo_root, tmp_path, monkeypatch):
    torch.manual_seed(0)
    published = {
        "darts-imagenet": zoo.save_pretrained(zoo.NetworkImageNet(8, 1000, 5, True, "DARTS_V2"), tmp_path / "in",
                                              name="darts-imagenet"),
        "darts-cifar10": zoo.save_pretrained(zoo.NetworkCIFAR(8, 10, 5, False, "DARTS_V2"), tmp_path / "c10",
                                             name="darts-cifar10"),
    }
    for name in published:
        entry = R._REGISTRY[name]
        monkeypatch.setitem(R._REGISTRY, name, dataclasses.replace(
            entry, sources=(R.Source(kind="hub", location=f"your-org/{name}", layout="saved"),)))

    def fake_download(repo, revision=None, cache_dir=None):
        return published[repo.split("/")[1]]

    monkeypatch.setattr(Loader, "hub_download", fake_download)
    monkeypatch.setattr(hub_mixin, "hub_download", fake_download)
    monkeypatch.chdir(tmp_path)
    blocks = _blocks((repo_root / "docs" / "zoo-library.md").read_text())
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        code = "\n".join(line for line in block.splitlines() if "not run by the test" not in line)
        exec(compile(code, "docs/zoo-library.md", "exec"), namespace)
    assert namespace["again"].config == namespace["model"].config
    assert (tmp_path / "my-darts" / "README.md").is_file()
