"""Drafters from their configs: ``conf/drafter/<name>.yaml`` names its classes (``_target_``)
and settings, ``hydra.utils.instantiate`` builds them, and the run lends them its resources
(the target, caches, the datastore and model-database settings) through ``attach``.

The YAML is the one place for a drafter's defaults: the classes take their settings as
keyword arguments without defaults of their own.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from spec_bench.drafting.source import Resources
from spec_bench.errors import HarnessError

CONF_DRAFTERS = Path(__file__).resolve().parents[1] / "conf" / "drafter"


def known_drafters() -> list[str]:
    return sorted(path.stem for path in CONF_DRAFTERS.glob("*.yaml"))


def run_resources(cfg: DictConfig, target) -> Resources:
    return Resources(
        target=target,
        cache_dir=Path(cfg.cache_dir),
        data_dir=Path(cfg.data_dir),
        excluded_texts=tuple(benchmark_turns(cfg.questions)),
        seed=int(cfg.get("seed", 0)),
        datastore=OmegaConf.to_container(cfg.datastore, resolve=True),
        model_db=OmegaConf.to_container(cfg.model_db, resolve=True),
    )


def benchmark_turns(questions_file: str | Path) -> list[str]:
    """Every turn of the benchmark's questions: text no database may be built from."""
    from spec_bench.data import load_questions

    questions_file = Path(questions_file)
    if not questions_file.is_file():
        return []
    return [turn for question in load_questions(questions_file) for turn in question.turns]


def build_drafter(cfg: DictConfig, target):
    """The run's drafter, built from ``cfg.drafter`` and attached to the run's resources."""
    drafter = instantiate_drafter(cfg.drafter)
    attach = getattr(drafter, "attach", None)
    if attach is not None:
        attach(run_resources(cfg, target))
    return drafter


def instantiate_drafter(node: DictConfig):
    """The drafter a ``conf/drafter`` node describes, before it is attached to a run; a bad
    setting fails in one line."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    if "_target_" not in node:
        raise HarnessError(f"drafter '{node.get('name')}' has no _target_ in its config")
    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as error:
        cause = error.__cause__ or error
        if isinstance(cause, HarnessError):
            raise cause from None
        message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise HarnessError(f"cannot build drafter '{node.get('name')}': {message}") from None
