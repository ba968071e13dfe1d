"""The report on hand-written runs (no model): tables, figures, shards, machines, HTML."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from spec_bench.errors import HarnessError
from spec_bench.report import load_root, sections, write_report
from spec_bench.report.__main__ import main as report_main
from spec_bench.report.shards import read_run
from spec_bench.report.tables import best_cells
from spec_bench.report.wandb_compare import main as compare_main

from .fake_runs import CPU, QUESTIONS, paper_like_root, record, write_questions, write_run

FIGURES = ("speedup_by_category", "mat_by_drafter", "speedup_t0_vs_t1", "speedup_vs_mat", "source_shares")


def test_full_report_writes_tables_and_figures(tmp_path):
    report = write_report(paper_like_root(tmp_path))
    names = {path.name for path in report.files}
    for name in FIGURES:
        assert {f"{name}.png", f"{name}.pdf"} <= names
    assert {"summary.csv", "time_split.csv", "tables.md", "tables.tex", "source_shares.csv"} <= names
    assert all(path.stat().st_size > 0 for path in report.files)

    markdown = (tmp_path / "report" / "tables.md").read_text()
    assert "### tiny, T=0" in markdown and "### tiny, T=1" in markdown
    # HD is best everywhere, by more than its interval; AR is never bold, PLD never best.
    assert "| HD | **1.80 [1.80, 1.80]** | **1.80 [1.80, 1.80]** | **1.80 [1.80, 1.80]** |" in markdown
    assert "| AR | 1.00 | 1.00 | 1.00 |" in markdown and "**1.50" not in markdown
    assert "T=0, published budgets (paper): overall, no method's interval overlaps HD's" in markdown
    assert "## Where the time goes" in markdown and "| tiny | 0 | PLD | 5.0% | 10.0% | 65.0% |" in markdown
    assert "| tiny | 0 | HD | 37.5% | 25.0% | 37.5% | 32 |" in markdown
    assert "Test CPU 3000" in markdown and "WARNING" not in markdown

    latex = (tmp_path / "report" / "tables.tex").read_text()
    assert latex.count(r"\toprule") == 3 and latex.count(r"\bottomrule") == 3
    assert (
        r"HD & \textbf{1.80 [1.80, 1.80]} & \textbf{1.80 [1.80, 1.80]} & \textbf{1.80 [1.80, 1.80]} \\"
        in latex
    )
    assert r"Speedup over AR ($\times$)" in latex and r"10.0\%" in latex

    split = pd.read_csv(tmp_path / "report" / "time_split.csv")
    assert split.forward.round(3).eq(0.65).all() and split.prefill.round(3).eq(0.05).all()
    assert split.other.round(3).eq(0.05).all()


def test_budget_blocks_show_ar_once_and_bold_within_each_block(tmp_path):
    root = paper_like_root(tmp_path)
    records = [record(q, 12.0 * (1 + 0.1 * i), [2, 1, 1, 2]) for i, q in enumerate(QUESTIONS)]
    write_run(root, "hd", records, budget="auto")
    report = write_report(root)
    markdown = report.markdown
    block = markdown[markdown.index("### tiny, T=0") : markdown.index("Mean accepted tokens")]
    assert block.count("| — | AR |") == 1
    # A block of one run has no winner to bold.
    assert "| paper | HD | **1.80 [1.80, 1.80]** |" in block and "| auto | HD | 1.20 [1.20, 1.20] |" in block
    rows = [
        line
        for line in block.splitlines()
        if line.startswith("| ") and "Budget" not in line and "---" not in line
    ]
    assert [row.split(" | ")[0] for row in rows] == ["| —", "| paper", "| paper", "| auto"]
    summary = report.summary
    auto = summary[(summary.drafter == "hd@auto") & (summary.category == "overall")].iloc[0]
    assert (auto.method, auto.budget) == ("hd", "auto") and auto.speedup == pytest.approx(1.2)
    latex = (root / "report" / "tables.tex").read_text()
    assert r"\quad Automatic budget (auto)" in latex and r"\quad Published budgets (paper)" in latex


def test_hd_fixes_get_their_own_table(tmp_path):
    root = paper_like_root(tmp_path)
    assert "official behaviour against each fix" not in write_report(root).markdown
    for name, speed in (("hd+dedup", 19.0), ("hd_fixed", 20.0)):
        records = [record(q, speed * (1 + 0.1 * i), [4, 2, 3, 3]) for i, q in enumerate(QUESTIONS)]
        write_run(root, name, records)
    markdown = write_report(root).markdown
    section = markdown[markdown.index("## HD: the official behaviour") : markdown.index("## Greedy checks")]
    assert "| HD | 1.80 [1.80, 1.80] |" in section and "| HD +dedup | 1.90 [1.90, 1.90] |" in section
    assert "| HD fixed | **2.00 [2.00, 2.00]** |" in section and "PLD" not in section


def test_knob_sweeps_get_a_figure_per_experiment_and_stay_out_of_the_comparison(tmp_path):
    root = paper_like_root(tmp_path)
    for n in (1, 2, 3):
        for k in (5, 10):
            records = [
                record(q, 10.0 * (1 + 0.1 * i) * (1 + n / 10), [n, k // 5]) for i, q in enumerate(QUESTIONS)
            ]
            write_run(root, f"pld-n{n}-k{k}", records, knobs={"max_ngram": n, "num_pred_tokens": k})
    report = write_report(root)
    names = {path.name for path in report.files}
    assert {"knobs_max_ngram_num_pred_tokens_t0.png", "knobs_max_ngram_num_pred_tokens_t0.pdf"} <= names
    summary = pd.read_csv(root / "report" / "summary.csv")
    assert summary[summary.drafter == "pld-n2-k10"].knobs.iloc[0] == '{"max_ngram": 2, "num_pred_tokens": 10}'
    from spec_bench.report.figures import _methods

    assert _methods(report.summary) == ["pld", "hd"]


def test_best_cells_skip_ar_and_bold_ties():
    grid = pd.DataFrame({"qa": [3.0, 1.5, 1.5], "rag": [1.0, 1.2, math.nan]}, index=["ar", "pld", "hd"])
    mask = best_cells(grid)
    assert mask.loc["ar"].tolist() == [False, False]
    assert mask.qa.tolist() == [False, True, True] and mask.rag.tolist() == [False, True, False]


def test_cli_prints_tables_and_notes_a_missing_source_figure(tmp_path, capsys):
    root = paper_like_root(tmp_path, hd_sources=False)
    assert report_main([str(root), "--wandb", "disabled"]) == 0
    out = capsys.readouterr().out
    assert "| HD | **1.80 [1.80, 1.80]** |" in out and "Mean accepted tokens (MAT)" in out
    assert "note: source_shares: skipped, no run drafted from several labelled sources" in out
    assert not (root / "report" / "source_shares.png").exists()
    assert (root / "report" / "speedup_by_category.png").exists()


def test_runs_from_different_machines_are_flagged(tmp_path, capsys):
    root = tmp_path
    write_run(root, "ar", [record(q, 10.0, [1, 1]) for q in QUESTIONS])
    other = {**CPU, "cpu": "Another CPU", "torch_threads": 16}
    write_run(root, "pld", [record(q, 15.0, [2, 1]) for q in QUESTIONS], environment=other)
    runs = load_root(root)
    assert len(runs.machines) == 2 and "2 different machines" in runs.warning
    assert report_main([str(root), "--wandb", "disabled"]) == 0
    captured = capsys.readouterr()
    assert "different machines" in captured.err
    assert "> **WARNING" in (root / "report" / "tables.md").read_text()


def sharded(tmp_path, shards):
    questions = write_questions(tmp_path / "questions.jsonl")
    return write_run(tmp_path, "pld", [], questions=questions, shards=shards)


def test_shards_merge_into_one_run(tmp_path):
    # Shard i/n holds the profile's questions at positions i, i+n, ...: 81 161 | 82 162.
    folder = sharded(
        tmp_path,
        {
            "0/2": [record(81, 10.0, [1]), record(161, 10.0, [1])],
            "1/2": [record(82, 12.0, [2]), record(162, 12.0, [2])],
        },
    )
    assert sorted(r["question_id"] for r in read_run(folder)) == sorted(QUESTIONS)
    overall = load_root(tmp_path).summary.query("category == 'overall'").iloc[0]
    assert overall.n_questions == 4


@pytest.mark.parametrize(
    "shards, message",
    [
        (
            {
                "0/2": [record(81, 10.0, [1]), record(161, 10.0, [1])],
                "1/2": [record(82, 10.0, [1]), record(81, 9.0, [1])],
            },
            "question 81 is in both answers.shard-0-of-2.jsonl and answers.shard-1-of-2.jsonl",
        ),
        ({"0/2": [record(81, 10.0, [1]), record(161, 10.0, [1])]}, "shard 1/2 missing"),
        (
            {"0/2": [record(81, 10.0, [1]), record(161, 10.0, [1])], "1/2": [record(82, 10.0, [1])]},
            "1 of 4 questions missing across shards (first: question 162 of shard 1/2)",
        ),
    ],
    ids=["duplicate", "missing-shard", "missing-question"],
)
def test_inconsistent_shards_are_refused_in_one_line(tmp_path, capsys, shards, message):
    folder = sharded(tmp_path, shards)
    with pytest.raises(HarnessError) as error:
        read_run(folder)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert report_main([str(tmp_path), "--wandb", "disabled"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "report" / "summary.csv").exists()


def test_local_comparison_is_one_self_contained_html(tmp_path, capsys):
    root = paper_like_root(tmp_path)
    assert compare_main([str(root), "--mode", "offline"]) == 0
    assert "local comparison" in capsys.readouterr().out
    page = (root / "report" / "comparison.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert "<strong>1.80 [1.80, 1.80]</strong>" in page and "<th>Trans.</th>" in page
    assert "http" not in page.replace("http-equiv", "")


def test_hd_source_shares_prefer_a_per_question_field(tmp_path):
    # The runner labels each turn; a record may also carry its own per-question counts.
    labelled = record(81, 10.0, [3, 3], sources={"W": 4, "bonus": 2})
    labelled["accepted_by_source"] = {"W": 1, "S": 1, "L": 2, "bonus": 2}
    write_run(tmp_path, "hd", [labelled, record(161, 10.0, [2], sources={"S": 1, "bonus": 1})])
    shares = sections.source_shares(load_root(tmp_path).frame).set_index("category")
    assert shares.loc["mt_bench", ["W", "S", "L"]].tolist() == [0.25, 0.25, 0.5]
    assert shares.loc["overall", ["W", "S", "L"]].tolist() == [0.2, 0.4, 0.4]
    assert shares.loc["overall", "drafted_tokens"] == 5


def test_ablation_runs_read_as_hd_with_their_databases():
    from spec_bench.report.labels import drafter_label

    assert [drafter_label(d) for d in ("hd", "hd-W", "hd-WS", "hd-x", "pld")] == [
        "HD",
        "HD (W)",
        "HD (WS)",
        "hd-x",
        "PLD",
    ]
