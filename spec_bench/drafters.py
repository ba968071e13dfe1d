"""Drafter registry: a name in ``conf/drafter/<name>.yaml`` -> the module that builds it.

Each module exposes ``build(cfg, target) -> Drafter`` where ``cfg`` is the whole run
config (the drafter's own settings under ``cfg.drafter``) and ``target`` the loaded
model. Modules are imported only when chosen, so one drafter's dependencies never slow
down or break another's runs.
"""

from __future__ import annotations

import importlib
import importlib.util

from spec_bench.errors import HarnessError

DRAFTER_MODULES = {
    "ar": "spec_bench.engine.ar",
    "pld": "baselines.pld",
    "rest": "baselines.rest",
    "lookahead": "baselines.lookahead",
    "hd": "hd.drafter",
}


def build_drafter(cfg, target):
    kind = cfg.drafter.get("kind", cfg.drafter.name)
    module_name = DRAFTER_MODULES.get(kind)
    if module_name is None:
        raise HarnessError(f"unknown drafter '{kind}'; choose one of {', '.join(DRAFTER_MODULES)}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise HarnessError(
                f"drafter '{kind}' is not implemented yet ({module_name} is missing)"
            ) from None
        raise
    return module.build(cfg, target)


def is_implemented(kind: str) -> bool:
    module_name = DRAFTER_MODULES.get(kind)
    return module_name is not None and importlib.util.find_spec(module_name) is not None
