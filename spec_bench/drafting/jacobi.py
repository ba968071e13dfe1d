"""The Jacobi window of Lookahead decoding (Fu, Bailis, Stoica, Zhang; ICML 2024), shared by
Lookahead and Hierarchy Drafting: a 2-D window of guessed future tokens evaluated as branch
nodes beside the drafts, one Jacobi iteration per step, whose columns yield LEVEL-grams.

Follows the greedy path of ``hao-ai-lab/LookaheadDecoding`` (``lade``) as Spec-Bench runs it
(``ALWAYS_FWD_ONE=1``). Where lade has no counterpart (a budget smaller than the window), the
choice is ours and said so.
"""

from __future__ import annotations

import random

from spec_bench.engine.proposal import ROOT, Proposal, StepResult


class JacobiWindow:
    """The lookahead branch: WINDOW columns of LEVEL-1 guessed tokens, one Jacobi iteration a step.

    Layout. ``columns[c]`` lists a column's tokens top to bottom; all columns have the same
    height R. Token (r, c) sits at depth ``c + r`` below the root, and the top of column 0
    *is* the root (the last accepted token), so C columns cost ``C*R - 1`` branch nodes
    (27 for LEVEL=5, WINDOW=7). As branch nodes, (0, c) hangs below (0, c-1) and (r, c)
    below (r-1, c): a token sees the top row up to its own column plus the tokens above it
    in its column, which is lade's lookahead attention mask. The model's prediction at the
    bottom of column c is the next Jacobi guess for depth ``c + R``.

    Initialisation (lade's ``set_token = copy_from``): the top row is the root followed by
    ``WINDOW + LEVEL - 3`` tokens drawn at random from the prompt; R = 1.

    Warm-up (R < LEVEL-1, the first LEVEL-2 steps; lade's ``fill_level``): every column gets
    its prediction appended and column 0 is dropped, the others moving one to the left. As
    the root moves one token forward, this keeps every guess at its absolute position.
    After LEVEL-2 steps the window is WINDOW columns of LEVEL-1 tokens.

    Steady state (R = LEVEL-1): column c plus its prediction is a harvested n-gram (lade's
    ``update_token_map``: key = top token, i.e. the root for column 0, then rows 1..LEVEL-2
    and the prediction). Then each column drops its top token and takes the prediction at
    the bottom (lade: ``past_tokens[l] = past_tokens[l + 1]``, the new predictions becoming
    the last row), again keeping absolute positions.

    In both phases the top of column 0 then becomes the new root: row 1's guess for the
    position right after the old root is replaced by the token actually there.

    Accepting k > 1 tokens changes nothing else: as lade with ``ALWAYS_FWD_ONE``, the window
    advances one iteration and is re-anchored at the new root, k-1 positions later than its
    trajectory. Its guesses stay useful (the pool is keyed by token, not position) and the
    next iterations condition on the new root, instead of dropping k-1 columns and refilling
    them at random (lade's disabled alternative).

    Partial windows (ours: lade always evaluates the whole window). When ``add_to`` feeds only
    the first c columns, only those iterate and yield n-grams. The others keep their tokens
    in the steady state; in warm-up they still move left and grow, by a token drawn from the
    prompt as at initialisation, so the window stays rectangular.

    ``reset`` re-seeds the window's own generator with the run's seed, so a request's window
    (and speed) never depends on the requests before it, e.g. after a resumed run.
    """

    def __init__(self, level: int, window: int) -> None:
        if level < 3:
            raise ValueError(f"lookahead needs level >= 3 (a window row plus the root), got {level}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.level = level
        self.window = window
        self.rng = random.Random(0)
        self.columns: list[list[int]] = []
        self._prompt: list[int] = []
        # Per column fed to the last proposal, the branch index of each row (ROOT for the
        # root), to read the predictions back.
        self._nodes: list[list[int]] = []

    @property
    def rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    @property
    def warming_up(self) -> bool:
        return self.rows < self.level - 1

    def reset(self, prompt_ids: list[int], seed: int = 0) -> None:
        if not prompt_ids:
            raise ValueError("the Jacobi window is initialised from the prompt, which is empty")
        self.rng.seed(seed)
        self._prompt = list(prompt_ids)
        guesses = [self.rng.choice(self._prompt) for _ in range(self.window + self.level - 3)]
        self.columns = [[self._prompt[-1]]] + [[token] for token in guesses]
        self._nodes = []

    @property
    def full_size(self) -> int:
        """Branch nodes of the whole window once warmed up: WINDOW x (LEVEL-1), minus the root."""
        return self.window * (self.level - 1) - 1

    def size(self, columns: int | None = None) -> int:
        """Branch nodes taken by the first ``columns`` columns (all by default)."""
        count = len(self.columns) if columns is None else min(columns, len(self.columns))
        return max(0, count * self.rows - 1)

    def columns_fitting(self, room: int) -> int:
        """The most leading columns whose nodes fit in ``room``."""
        if room < 0 or not self.columns:
            return 0
        return min(len(self.columns), (room + 1) // self.rows)

    def add_to(self, proposal: Proposal, columns: int | None = None) -> list[int]:
        """Add the first ``columns`` columns (all by default) as branch nodes, column by column;
        returns their branch indices. The caller keeps the budget (see ``columns_fitting``)."""
        count = len(self.columns) if columns is None else max(0, min(columns, len(self.columns)))
        nodes: list[list[int]] = []
        added: list[int] = []
        for c in range(count):
            column_nodes: list[int] = []
            for r, token in enumerate(self.columns[c]):
                if c == 0 and r == 0:
                    column_nodes.append(ROOT)  # the root is the engine's, not a branch node
                    continue
                parent = column_nodes[r - 1] if r > 0 else nodes[c - 1][0]
                column_nodes.append(proposal.add_branch(token, parent))
                added.append(column_nodes[-1])
            nodes.append(column_nodes)
        self._nodes = nodes
        return added

    def advance(self, step: StepResult) -> list[list[int]]:
        """One Jacobi iteration after ``step`` (``step.tokens``: accepted, bonus included);
        returns the harvested LEVEL-token n-grams (none during warm-up). The window is the
        only source of branch nodes, so a step whose proposal has none fed no column (the
        prefill, or a budget too small for one)."""
        fed = self._nodes if step.proposal.branch_tokens else []
        self._nodes = []
        accepted, branch_predictions = step.tokens, step.branch_predictions
        if not accepted:
            return []
        if fed and len(branch_predictions) != len(step.proposal.branch_tokens):
            raise ValueError(
                f"{len(branch_predictions)} branch predictions for "
                f"{len(step.proposal.branch_tokens)} branch nodes"
            )
        # The guess below each evaluated column; column 0 of a one-row window is the root alone,
        # whose prediction is the step's bonus token (and the column is dropped anyway).
        guesses = [branch_predictions[nodes[-1]] if nodes[-1] != ROOT else None for nodes in fed]

        harvested: list[list[int]] = []
        if self.warming_up:
            moved = []
            for c in range(1, len(self.columns)):
                guess = guesses[c] if c < len(guesses) else self.rng.choice(self._prompt)
                moved.append(self.columns[c] + [guess])
            self.columns = moved
        else:
            for c, guess in enumerate(guesses):
                harvested.append(self.columns[c] + [guess])
                self.columns[c] = self.columns[c][1:] + [guess]
        self.columns[0] = [accepted[-1], *self.columns[0][1:]]
        return harvested
