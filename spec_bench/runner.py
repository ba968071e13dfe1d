"""One run: a model, a drafter and a temperature over a bench profile's questions.

Everything that can be wrong with the input (questions, model, drafter, prompt lengths) is
checked before the run folder is touched, so bad input leaves no files behind. Records
are appended one question (and repeat) at a time; rerunning the same command resumes.

``bench.repeats`` decodes each question that many times (seeded per repeat). With
``bench.timing=paired`` every record also carries AR's time on the same question, decoded
right before or after it (``spec_bench.ar_companion``); greedy runs check their tokens
against AR's and say whether a difference is a near-tie or a defect
(``spec_bench.greedy_check``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from spec_bench import environment
from spec_bench.ar_companion import ArCompanion, ar_run_reference
from spec_bench.data import Question, build_prompt, load_questions, select_questions
from spec_bench.drafters import build_drafter
from spec_bench.engine.budget import FixedBudget
from spec_bench.engine.decode import Engine, Generation
from spec_bench.engine.proposal import NoDrafter
from spec_bench.errors import HarnessError
from spec_bench.files import write_text_atomic
from spec_bench.models import load_target
from spec_bench.records import RecordWriter, read_records
from spec_bench.run_names import BUDGET_MODES, run_label, temperature_label
from spec_bench.tracking import Tracker

log = logging.getLogger(__name__)

# Settings that do not change a run's results; a resumed run may differ in these.
NON_RESULT_KEYS = ("out_dir", "data_dir", "questions", "cache_dir", "wandb", "hydra")


def run_dir(cfg: DictConfig) -> Path:
    return (
        Path(cfg.out_dir)
        / cfg.bench.name
        / cfg.model.name
        / run_label(cfg)
        / temperature_label(cfg.temperature)
    )


def check_run_settings(cfg: DictConfig) -> None:
    """Settings no run can use, refused in one line before anything is loaded or written."""
    try:
        temperature = float(cfg.temperature)
    except (TypeError, ValueError):
        raise HarnessError(f"temperature must be a number >= 0, got '{cfg.temperature}'") from None
    if not temperature >= 0:  # also refuses nan
        raise HarnessError(f"temperature must be >= 0, got {cfg.temperature}")
    budget = cfg.engine.budget
    if str(budget) not in BUDGET_MODES and not (str(budget).isdigit()):
        raise HarnessError(f"engine.budget must be paper, auto or an integer >= 0, got '{budget}'")
    timing = cfg.bench.get("timing", "separate")
    if timing not in ("paired", "separate"):
        raise HarnessError(f"bench.timing must be paired or separate, got '{timing}'")
    repeats = cfg.bench.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise HarnessError(f"bench.repeats must be an integer >= 1, got '{repeats}'")


def answers_name(shard: str | None) -> str:
    return _shard_name("answers", "jsonl", shard)


def environment_name(shard: str | None) -> str:
    # One per shard: shards may run on different nodes, and the report compares them.
    return _shard_name("environment", "json", shard)


def _shard_name(stem: str, extension: str, shard: str | None) -> str:
    if not shard:
        return f"{stem}.{extension}"
    index, count = str(shard).split("/")
    return f"{stem}.shard-{index}-of-{count}.{extension}"


def result_config(cfg: DictConfig) -> dict:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key in NON_RESULT_KEYS:
        resolved.pop(key, None)
    resolved.get("bench", {}).pop("shard", None)
    return resolved


@dataclass
class RunSummary:
    folder: Path
    answers: Path
    n_done: int
    n_total: int


class Runner:
    def __init__(self, cfg: DictConfig, target=None) -> None:
        check_run_settings(cfg)
        self.cfg = cfg
        questions = load_questions(cfg.questions)
        self.questions: list[Question] = select_questions(
            questions, cfg.bench.get("per_category"), cfg.bench.get("shard")
        )
        self.max_new_tokens = int(cfg.bench.max_new_tokens)
        self.target = target if target is not None else load_target(cfg.model, cfg.cache_dir)
        if cfg.engine.get("compile", False):
            self.target.compile()
        self.drafter = build_drafter(cfg, self.target)
        self.engine = Engine(self.target, cfg.temperature, make_budget(cfg, self.target, self.drafter))
        self.greedy = float(cfg.temperature) == 0.0
        self.repeats = int(cfg.bench.get("repeats", 1))
        self.paired = str(cfg.bench.get("timing", "separate")) == "paired"
        self._check_prompt_lengths()

    def _check_prompt_lengths(self) -> None:
        """Reject prompts that cannot fit before anything is written."""
        window = self.target.context_window
        for question in self.questions:
            prompt = build_prompt(
                self.target.template, list(question.turns), [""] * (len(question.turns) - 1)
            )
            length = len(self.target.encode(prompt))
            if length >= window:
                raise HarnessError(
                    f"question {question.question_id}: prompt of {length} tokens does not fit the "
                    f"context window of {self.target.name} ({window} tokens)"
                )

    def run(self, tracker: Tracker | None = None) -> RunSummary:
        """Answer every question (and repeat) not yet in the answers file; ``tracker`` hears
        of the run folder once it is claimed and of each record once it is on disk."""
        cfg = self.cfg
        folder = run_dir(cfg)
        answers_path = folder / answers_name(cfg.bench.get("shard"))
        self._claim_folder(folder)
        done = {(r["question_id"], r.get("repeat", 0)) for r in read_records(answers_path, repair=True)}
        work = [(q, repeat) for q in self.questions for repeat in range(self.repeats)]
        todo = [(q, repeat) for q, repeat in work if (q.question_id, repeat) not in done]
        is_ar = isinstance(self.drafter, NoDrafter)
        paired = self.paired and not is_ar
        check = self.greedy and bool(cfg.engine.check_ar_match) and not is_ar
        companion = None
        if paired or check:
            run_reference = ar_run_reference(cfg, result_config) if check and not paired else {}
            companion = ArCompanion(
                self.target, cfg.temperature, self._prompt_ids, self.max_new_tokens, self._seed, run_reference
            )

        if tracker is not None:
            tracker.start(folder)
        self._write_environment(folder, self._warm_up(companion if paired else None))
        progress = tqdm(
            todo,
            desc=f"{cfg.model.name} {run_label(cfg)} {temperature_label(cfg.temperature)}",
            unit="q",
            initial=len(done),
            total=len(work),
        )
        with RecordWriter(answers_path) as writer:
            for index, (question, repeat) in enumerate(progress):
                ar = None
                # AR right before the method on every other question, right after on the rest.
                ar_first = paired and index % 2 == 0
                if ar_first:
                    ar = companion.decode(question, repeat)
                record = self._answer(question, repeat)
                if paired and not ar_first:
                    ar = companion.decode(question, repeat)
                if ar is not None:
                    record["paired_ar"] = {
                        "new_tokens": ar["new_tokens"],
                        "wall_time_s": ar["wall_time_s"],
                        "order": "before" if ar_first else "after",
                    }
                if check:
                    expected = ar["token_ids"] if ar is not None else companion.reference(question)
                    record.update(companion.check(question, record, expected))
                writer.write(record)
                if tracker is not None:
                    tracker.log_question(record)
        return RunSummary(folder, answers_path, len(work), len(work))

    def _claim_folder(self, folder: Path) -> None:
        """Write the config, or refuse to mix with a different config."""
        folder.mkdir(parents=True, exist_ok=True)
        config_path = folder / "config.yaml"
        current = result_config(self.cfg)
        if config_path.exists():
            previous = result_config(OmegaConf.load(config_path))
            if previous != current:
                raise HarnessError(
                    f"{folder} holds a run with a different config; use another out_dir or run_name, "
                    f"or delete the folder"
                )
        else:
            write_text_atomic(config_path, OmegaConf.to_yaml(self.cfg, resolve=True))

    def _write_environment(self, folder: Path, warm_up_seconds: float) -> None:
        """The machine, the model's dtype and kernels, and the warm-up's time (compilation
        included) apart from decoding."""
        info = environment.describe(self.target.device)
        info["model_source"] = self.target.source
        info["kernels"] = self.target.kernels
        info["dtype"] = str(self.target.dtype).removeprefix("torch.")
        info["warm_up_seconds"] = round(warm_up_seconds, 2)
        environment_path = folder / environment_name(self.cfg.bench.get("shard"))
        write_text_atomic(environment_path, json.dumps(info, indent=2) + "\n")

    def _warm_up(self, companion: ArCompanion | None) -> float:
        """Untimed generations so one-time costs (allocations, kernels, compilation) hit no
        drafter, nor the AR decodes paired with it; returns their seconds. A compiled forward
        is warmed on two prompts of different lengths, so its shapes are already dynamic."""
        tokens = int(self.cfg.engine.warmup_tokens)
        if tokens <= 0 or not self.questions:
            return 0.0
        started = time.perf_counter()
        compiled = "compiled" in self.target.kernels
        for question in self.questions[: 2 if compiled else 1]:
            prompt = self._prompt_ids(question, 0, [])
            self.engine.generate(prompt, self.drafter, tokens, seed=self.cfg.seed)
            if companion is not None or compiled:
                ar = companion.engine if companion is not None else Engine(self.target, 0.0, FixedBudget(0))
                ar.generate(prompt, NoDrafter(), tokens, seed=self.cfg.seed)
        return time.perf_counter() - started

    def _prompt_ids(self, question: Question, turn: int, answers: list[str]) -> list[int]:
        prompt = build_prompt(self.target.template, list(question.turns[: turn + 1]), answers)
        return self.target.encode(prompt)

    def _seed(self, question_id: int, turn: int, repeat: int) -> int:
        # Independent of run order, so a resumed or sharded run samples the same tokens.
        return (int(self.cfg.seed) * 1_000_003 + question_id * 10 + turn + 7919 * repeat) % (2**63)

    def _answer(self, question: Question, repeat: int = 0) -> dict:
        answers: list[str] = []
        turns = []
        for turn in range(len(question.turns)):
            prompt_ids = self._prompt_ids(question, turn, answers)
            seed = self._seed(question.question_id, turn, repeat)
            generation = self.engine.generate(prompt_ids, self.drafter, self.max_new_tokens, seed=seed)
            text = self.target.decode(generation.tokens).strip()
            answers.append(text)
            turns.append(_turn_record(text, generation))
        return {
            "question_id": question.question_id,
            "repeat": repeat,
            "category": question.category,
            "subcategory": question.subcategory,
            "new_tokens": sum(t["new_tokens"] for t in turns),
            "wall_time_s": sum(t["wall_time_s"] for t in turns),
            "steps": sum(t["steps"] for t in turns),
            "accept_lengths": [n for t in turns for n in t["accept_lengths"]],
            "turns": turns,
        }


def make_budget(cfg: DictConfig, target, drafter):
    """The verification budget policy: what the method's authors verify per step (``paper``),
    a fixed number, or chosen per step from the target's cost curve (``auto``)."""
    budget = str(cfg.engine.budget)
    if isinstance(drafter, NoDrafter):
        return FixedBudget(0)
    if budget == "paper":
        return FixedBudget(drafter.paper_budget)
    if budget.isdigit():
        return FixedBudget(int(budget))
    if budget == "auto":
        from spec_bench.engine.auto_budget import auto_budget

        return auto_budget(cfg, target, drafter)
    raise HarnessError(f"engine.budget must be paper, auto or an integer >= 0, got '{budget}'")


def _turn_record(text: str, generation: Generation) -> dict:
    return {
        "text": text,
        "token_ids": generation.tokens,
        "new_tokens": len(generation.tokens),
        "wall_time_s": generation.wall_time_s,
        "steps": generation.steps,
        "accept_lengths": generation.accept_lengths,
        "budgets": generation.budgets,
        "proposed": generation.proposed,
        "accepted_by_source": generation.accepted_by_source,
        "phase_times": generation.phase_times,
        "stop_reason": generation.stop_reason,
    }
