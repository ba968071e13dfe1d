"""What the harness's command-line tools share: the run config as ``run.py`` composes it,
and an argument parser whose help is the tool's own docstring."""

from __future__ import annotations

import argparse
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(overrides: list[str], with_hydra: bool = False):
    """The config exactly as ``python run.py <overrides>`` composes it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=with_hydra)


def doc_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser whose description is the docstring's first paragraph and whose epilog is
    the rest, kept as written (examples stay aligned)."""
    summary, _, details = (doc or "").partition("\n\n")  # `or`: docstrings vanish under -OO
    return argparse.ArgumentParser(
        prog=prog,
        description=summary,
        epilog=details,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
