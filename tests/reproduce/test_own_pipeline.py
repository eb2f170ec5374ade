"""The whole pipeline on one's own images: ``python -m reproduce images --search --baseline random:N`` searches,
selects, trains the chosen cell and random cells with the same recipe and seeds, and writes the report, which
says the data has no paper target."""
from __future__ import annotations

import json

from image_helpers import write_image_folder
from search_helpers import one_thread

from reproduce.__main__ import main

TINY = ["--C", "4", "--layers", "3", "--epochs", "1", "--batch-size", "8", "--num-threads", "1",
        "--search-C", "4", "--search-layers", "3", "--search-epochs", "1", "--search-batch-size", "8",
        "--search-num-threads", "1", "--search-seeds", "0", "--selection-epochs", "1", "--order", "1",
        "--device", "cpu", "--no-progress"]


def test_images_search_with_a_random_baseline_writes_a_report(tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", {"a": 8, "b": 6, "c": 4}, size=8)
    out = tmp_path / "results" / "images"
    argv = ["images", "--search", "--data", str(data), "--out", str(out), "--runs", "2", "--baseline", "random:1",
            *TINY]
    assert main([*argv, "--dry-run", "--launcher", "slurm"]) == 0  # the plan without the measured probes
    plan = capsys.readouterr().out
    assert "own data: no paper target" in plan and "18 train images, 3 classes, 1 channel, 8x8" in plan
    assert "uint8 tensors kept on the device" in plan and not out.exists()
    with one_thread():
        assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "random cells" in printed and "report:" in printed
    experiment = json.loads((out / "experiment.json").read_text())
    assert experiment["comparable"] is False and experiment.get("target") is None
    assert "own data: no paper target" in experiment["note"]
    selection = json.loads((out / "selection.json").read_text())
    assert selection["metric"] == "valid_error" and len(selection["candidates"]) == 1
    report = (out / "REPORT.md").read_text()  # with --out, the report goes into that directory
    assert "## Experiment `images`" in report and "own data: no paper target" in report
    assert "random cells" in report
