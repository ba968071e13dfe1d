"""AR beside a drafter's run: the tokens its greedy answers must equal, and with
``bench.timing=paired`` AR's own time on each question, decoded in the same process right
before or after the method's answer (alternating), so the question's speedup is a ratio of
two decodes a moment apart and a shared machine's drift cancels out of it.

The reference for the greedy check is, in this order: the paired AR decode; the AR run of the
same model and bench profile in the same runs root; an untimed AR decode here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spec_bench.data import Question
from spec_bench.engine.budget import FixedBudget
from spec_bench.engine.decode import Engine
from spec_bench.engine.proposal import NoDrafter
from spec_bench.greedy_check import DEFECT, MATCH, classify, first_difference
from spec_bench.records import read_records

PromptIds = Callable[[Question, int, list[str]], list[int]]


class ArCompanion:
    def __init__(
        self,
        target,
        temperature: float,
        prompt_ids: PromptIds,
        max_new_tokens: int,
        seed_of: Callable[[int, int, int], int],
        run_reference: dict[int, list[list[int]]] | None = None,
    ) -> None:
        self.target = target
        self.engine = Engine(target, temperature, FixedBudget(0))
        self.prompt_ids = prompt_ids
        self.max_new_tokens = max_new_tokens
        self.seed_of = seed_of  # (question id, turn, repeat) -> seed, the method's own
        self.run_reference = run_reference or {}

    def decode(self, question: Question, repeat: int = 0) -> dict:
        """AR's answer to every turn of ``question``: token ids per turn and its timing."""
        answers: list[str] = []
        turns, wall = [], 0.0
        for turn in range(len(question.turns)):
            prompt = self.prompt_ids(question, turn, answers)
            seed = self.seed_of(question.question_id, turn, repeat)
            generation = self.engine.generate(prompt, NoDrafter(), self.max_new_tokens, seed=seed)
            answers.append(self.target.decode(generation.tokens).strip())
            turns.append(generation.tokens)
            wall += generation.wall_time_s
        return {"token_ids": turns, "new_tokens": sum(map(len, turns)), "wall_time_s": wall}

    def reference(self, question: Question) -> list[list[int]]:
        """AR's greedy tokens per turn, from the AR run when there is one, else decoded."""
        found = self.run_reference.get(question.question_id)
        if found is None:
            found = self.decode(question)["token_ids"]
            self.run_reference[question.question_id] = found
        return found

    def check(self, question: Question, record: dict, expected: list[list[int]]) -> dict:
        """The greedy check's fields for ``record``: ``ar_match``, ``greedy_check`` (match,
        near_tie or defect) and, when they differ, where and by how much (``ar_mismatch``)."""
        actual = [turn["token_ids"] for turn in record["turns"]]
        where = first_difference(expected, actual)
        if where is None:
            return {"ar_match": True, "greedy_check": MATCH}
        turn, position = where
        if turn >= min(len(expected), len(actual)):
            return {"ar_match": False, "greedy_check": DEFECT, "ar_mismatch": {"turn": turn, "kind": DEFECT}}
        # Turns before the first difference are equal, so AR's prompt for this turn is the method's.
        answers = [self.target.decode(tokens).strip() for tokens in expected[:turn]]
        prompt = self.prompt_ids(question, turn, answers)
        mismatch = classify(self.target, prompt, expected[turn], actual[turn], turn, position)
        return {"ar_match": False, "greedy_check": mismatch.kind, "ar_mismatch": mismatch.as_record()}


def ar_run_reference(
    cfg: DictConfig, result_config: Callable[[DictConfig], dict]
) -> dict[int, list[list[int]]]:
    """AR token ids per question from this bench's ``ar`` run (same model and profile), if any."""
    folder = Path(cfg.out_dir) / cfg.bench.name / cfg.model.name / "ar" / "t0"
    config_path = folder / "config.yaml"
    if not config_path.exists():
        return {}
    theirs, ours = result_config(OmegaConf.load(config_path)), result_config(cfg)
    if any(theirs.get(key) != ours.get(key) for key in ("model", "bench")):
        return {}
    reference = {}
    for path in sorted(folder.glob("answers*.jsonl")):
        for record in read_records(path):
            if record.get("repeat", 0) == 0:
                reference[record["question_id"]] = [turn["token_ids"] for turn in record["turns"]]
    return reference
