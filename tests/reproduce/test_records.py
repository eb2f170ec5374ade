"""The one record validator (reproduce.records), the safe JSON reader (reproduce.jsonfile) and
statistics that cannot overflow: no damaged or absurd record reaches a number in the report."""
import json
import math

import pytest
from test_report import cifar, experiment, record

from reproduce import stats
from reproduce.__main__ import main
from reproduce.aggregate import load_experiment
from reproduce.jsonfile import BadFileError, read_json, read_json_lines
from reproduce.records import BadRecordError, metric_problem, read_record
from reproduce.report import write_report

# --- reading JSON ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content,match", [
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b"[1, 2]", "holds a JSON list, expected a JSON object"),
    (b"\x00\xffgarbage", "not UTF-8"),
    (b"{\"a\": ", "not valid JSON"),
    (b"", "not valid JSON"),
])
def test_a_damaged_json_file_is_one_error_naming_the_file(tmp_path, content, match):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(BadFileError, match=match) as e:
        read_json(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_json_lines_deeply_nested_or_not_objects_are_one_error_naming_the_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 0}\n' + "[" * 200_000 + "]" * 200_000 + "\n")
    with pytest.raises(BadFileError, match=f"{path}: is nested too deeply"):
        read_json_lines(path)
    path.write_text('{"epoch": 0}\n[1, 2]\n')
    with pytest.raises(BadFileError, match="line 2 holds a JSON list"):
        read_json_lines(path)
    path.write_text('{"epoch": 0}\n{"epoch": 1, "tor')  # a torn last line from a crash is dropped, as before
    assert read_json_lines(path) == [{"epoch": 0}]


# --- the record validator -------------------------------------------------------------------------------------

@pytest.mark.parametrize("content,match", [
    ("[1, 2]", "holds list, not a record"),
    ('{"final": {}}', "has no status"),
    ('{"status": "finished", "final": [1]}', "its final is"),
    ('{"status": "finished", "curve": {"epoch": 0}}', "its curve is"),
    ('{"status": "finished", "curve": [1, 2]}', "one object per epoch"),
    ('{"status": "finished", "seed": [0]}', "seed"),
])
def test_a_record_that_is_not_a_record_is_refused_naming_the_file(tmp_path, content, match):
    path = tmp_path / "record.json"
    path.write_text(content)
    with pytest.raises(BadRecordError, match=match) as e:
        read_record(path)
    assert str(path) in str(e.value) and "delete its run directory" in str(e.value)


@pytest.mark.parametrize("name,value,match", [
    ("test_error", 1.7e308, r"outside its domain \[0, 100\]"),
    ("test_error", -0.5, "outside"),
    ("test_error", 10 ** 400, "an integer of 401 digits, not a finite number"),
    ("valid_ppl", 0.5, "outside its domain >= 1"),
    ("valid_ppl", None, "None, not a finite number"),
    ("train_loss", "1.0", "not a finite number"),
    ("train_acc", 101.0, "outside"),
    ("test_error", True, "not a finite number"),
    ("other", math.inf, "not a finite number"),
])
def test_metrics_are_checked_against_their_domain(name, value, match):
    assert re_search(match, metric_problem(name, value))


def re_search(pattern, text):
    import re

    assert text is not None
    return re.search(pattern, text)


def test_metrics_inside_their_domain_pass():
    for name, value in (("test_error", 0), ("test_error", 100.0), ("valid_ppl", 1.0), ("test_ppl", 1e300),
                        ("valid_loss", 0.0), ("lr", -3.0)):
        assert metric_problem(name, value) is None


def _non_finite(text):
    import re

    return re.findall(r"\b(?:inf|nan)\b", text, flags=re.IGNORECASE)


def _write_raw_record(exp_dir, seed, final_json: str):
    """A record whose "final" is given as raw JSON text (10**400 cannot be written by json.dumps as a float)."""
    r = record(seed, {"test_error": 0.0})
    text = json.dumps(r).replace('"final": {"test_error": 0.0}', f'"final": {final_json}')
    (exp_dir / "runs" / f"seed-{seed}" / "record.json").write_text(text)


def test_absurd_records_are_excluded_named_in_the_report_and_never_reach_a_statistic(tmp_path):
    exp_dir = cifar(tmp_path / "cifar10-darts_v2")  # seeds 0, 1, 2 with test errors 2.7, 2.8, 2.9
    _write_raw_record(exp_dir, 1, '{"test_error": 1.7e308}')
    _write_raw_record(exp_dir, 2, '{"test_error": 1' + "0" * 400 + "}")
    exp = load_experiment(exp_dir)
    assert exp.seeds == [0, 1, 2]  # all three finished ...
    assert [v for _, v in exp.values("test_error")] == [2.7]  # ... one is measured
    assert [(seed, reasons) for seed, _, reasons in exp.excluded()] == [
        (1, ["test_error 1.7e+308 is outside its domain [0, 100]"]),
        (2, ["test_error is an integer of 401 digits, not a finite number"])]
    text = write_report(tmp_path, with_figures=False).read_text()
    assert "(n=1)" in text and not _non_finite(text)
    assert "excluded from the statistics** (finished, but not counted in n): `cifar10-darts_v2/runs/seed-1`" in text
    assert "test_error 1.7e+308 is outside its domain [0, 100]" in text
    assert "integer of 401 digits" in text


def test_three_records_of_1_7e308_give_no_inf_nan_or_verdict(tmp_path):
    exp_dir = cifar(tmp_path / "cifar10-darts_v2")
    for seed in (0, 1, 2):
        _write_raw_record(exp_dir, seed, '{"test_error": 1.7e308}')
    text = write_report(tmp_path, with_figures=False).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| cifar10 ") and "test_error" in line)
    assert "not run" in row and not _non_finite(text) and "worse" not in row


def test_a_record_without_a_metric_its_experiment_reports_is_listed_as_excluded(tmp_path):
    # a diverged language-model run: its perplexity overflowed and was written as null
    finals = [{"valid_ppl": 60.0, "test_ppl": 58.0}, {"valid_ppl": 61.0, "test_ppl": 57.5},
              {"valid_ppl": None, "test_ppl": None}]
    records = [record(s, {"valid_ppl": 60.0}, experiment="ptb", dataset="ptb", curve_metric="valid_ppl")
               for s in range(3)]
    for r, final in zip(records, finals):
        r["final"] = final
    experiment(tmp_path / "ptb-darts_v2", records, experiment="ptb", dataset="ptb", target="ptb")
    text = write_report(tmp_path, with_figures=False).read_text()
    assert "finished seeds: 0, 1, 2" in text
    assert "(n=2)" in text and "`ptb-darts_v2/runs/seed-2` (seed 2): valid_ppl is None, not a finite number" in text
    missing = record(3, {"valid_ppl": 60.0}, experiment="ptb", dataset="ptb")  # no test_ppl at all
    (tmp_path / "ptb-darts_v2" / "runs" / "seed-3").mkdir()
    (tmp_path / "ptb-darts_v2" / "runs" / "seed-3" / "record.json").write_text(json.dumps(missing))
    exp = load_experiment(tmp_path / "ptb-darts_v2")
    assert (3, ["it has no test_ppl"]) in [(s, r) for s, _, r in exp.excluded()]


@pytest.mark.parametrize("content,reason", [
    ("[1, 2]", "holds list, not a record"),
    (json.dumps(dict(record(1, {"test_error": 2.8}), seed="x")), "has seed 'x', not an integer"),
])
def test_a_file_that_is_not_a_record_is_listed_and_the_report_goes_on(tmp_path, capsys, content, reason):
    exp_dir = cifar(tmp_path / "cifar10-darts_v2")  # seeds 0, 1, 2
    ptb = experiment(tmp_path / "ptb-darts_v2", [record(s, {"test_ppl": 58.0 + s, "valid_ppl": 60.0 + s},
                                                        experiment="ptb", dataset="ptb", curve_metric="test_ppl")
                                                 for s in (0, 1)],
                     experiment="ptb", dataset="ptb", target="ptb")
    (exp_dir / "runs" / "seed-1" / "record.json").write_text(content)
    assert main(["report", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "finished seeds: 0, 2" in text and "2.80 ± 0.14 (n=2)" in text  # the other two counted
    assert "`cifar10-darts_v2/runs/seed-1` (seed None): " in text and reason in text  # listed with why
    assert "`ptb-darts_v2`" in text and "(n=2)" in text  # the other experiment is reported as usual
    assert [r.seed for r in load_experiment(ptb).records] == [0, 1]


def test_a_wall_time_or_huge_metric_a_record_can_hold_never_stops_the_report(tmp_path):
    exp_dir = cifar(tmp_path / "cifar10-darts_v2")
    for seed, wall in ((0, "NaN"), (1, "Infinity"), (2, "-Infinity")):
        path = exp_dir / "runs" / f"seed-{seed}" / "record.json"
        path.write_text(path.read_text().replace('"wall_time_s": 3725.0', f'"wall_time_s": {wall}'))
    experiment(tmp_path / "ptb-darts_v2", [record(s, {"test_ppl": 1e308, "valid_ppl": 1e308}, experiment="ptb",
                                                  dataset="ptb", curve_metric="test_ppl") for s in (0, 1, 2)],
               experiment="ptb", dataset="ptb", target="ptb")
    text = write_report(tmp_path, with_figures=True).read_text()
    assert "2.80 ± 0.10 (n=3)" in text  # wall times shown as unknown, the numbers as usual
    assert "1.000e+308 ± 0.00 (n=3)" in text and "0" * 300 not in text  # a huge perplexity in a few characters
    assert not _non_finite(text)


def test_one_seed_whose_huge_metric_overflows_the_statistics_is_excluded_and_named(tmp_path, capsys):
    cifar(tmp_path / "cifar10-darts_v2")
    experiment(tmp_path / "ptb-darts_v2", [record(s, {"test_ppl": 1.5e308 if s == 1 else 58.0 + s, "valid_ppl": 60.0},
                                                  experiment="ptb", dataset="ptb", curve_metric="test_ppl")
                                           for s in (0, 1, 2)],
               experiment="ptb", dataset="ptb", target="ptb")
    # beside 58 and 60 its 95 % CI would pass 1.8e308; the report once stopped there, naming no record
    assert main(["report", str(tmp_path), "--no-figures"]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "`ptb-darts_v2/runs/seed-1` (seed 1): test_ppl 1.5e+308 is so far from the other seeds'" in text
    assert "59.00 ± 1.41 (n=2)" in text and "2.80 ± 0.10 (n=3)" in text  # the other seeds and experiment as usual
    assert not _non_finite(text)


def test_a_curve_value_outside_its_domain_excludes_the_record(tmp_path):
    exp_dir = cifar(tmp_path / "cifar10-darts_v2")
    path = exp_dir / "runs" / "seed-2" / "record.json"
    bad = json.loads(path.read_text())
    bad["curve"][1]["test_error"] = -5000.0
    path.write_text(json.dumps(bad))
    exp = load_experiment(exp_dir)
    assert [(seed, reasons) for seed, _, reasons in exp.excluded()] == [
        (2, ["curve epoch 1: test_error -5000 is outside its domain [0, 100]"])]
    assert [v for _, v in exp.values("test_error")] == [2.7, 2.8]
    curve_none = json.loads(path.read_text())
    curve_none["curve"][1]["test_error"] = None  # a perplexity that overflowed a float in one epoch is None
    path.write_text(json.dumps(curve_none))
    assert load_experiment(exp_dir).excluded() == []


def test_the_report_cli_refuses_deeply_nested_experiment_json_in_one_line(tmp_path, capsys):
    exp_dir = cifar(tmp_path / "cifar10-darts_v2")
    (exp_dir / "experiment.json").write_text("[" * 200_000 + "]" * 200_000)
    assert main(["report", str(tmp_path), "--no-figures"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "experiment.json: is nested too deeply" in err


# --- statistics that cannot overflow ------------------------------------------------------------------------

def test_summaries_of_huge_values_are_finite_and_exact():
    s = stats.summarize([1.7e308] * 3)
    assert math.isclose(s["mean"], 1.7e308) and s["std"] < 1e-9 * s["mean"] and math.isclose(s["ci95_high"], 1.7e308)
    small, big = stats.summarize([1.0, 2.0, 4.0]), stats.summarize([2.0 ** 1000, 2.0 ** 1001, 2.0 ** 1002])
    assert big["mean"] == small["mean"] * 2.0 ** 1000 and big["std"] == small["std"] * 2.0 ** 1000
    with pytest.raises(ValueError, match="too large for a float"):
        stats.summarize([1, 10 ** 400])


def test_tests_against_the_paper_do_not_overflow_with_huge_values():
    small = stats.summarize([60.0, 61.0, 63.0])
    huge = {k: v * 2.0 ** 1000 if isinstance(v, float) else v for k, v in small.items()}
    target = {"mean": 58.0, "std": 1.0, "n": 3}
    huge_target = {"mean": 58.0 * 2.0 ** 1000, "std": 2.0 ** 1000, "n": 3}
    a, b = stats.compare(small, target), stats.compare(huge, huge_target)
    assert b["test"] == "welch" and b["p"] == a["p"] and b["t"] == a["t"] and b["verdict"] == a["verdict"]
    a, b = stats.compare(small, {"mean": 58.0}), stats.compare(huge, {"mean": 58.0 * 2.0 ** 1000})
    assert b["test"] == "one-sample" and b["p"] == a["p"] and b["verdict"] == a["verdict"]
