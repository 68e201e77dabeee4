"""The module paths of the flat layout keep working: `mh_lightning.fit` *is* `mh_lightning.training.cli`.

An import of an old path returns the module that now holds the code (the same object, so
classes, exceptions and monkeypatches are shared), and `python -m mh_lightning.fit` runs it.
A finder, not a file per old name, so that the moved files keep their history in git.
`mh_lightning.data`, `.model` and `.inference` are packages now and re-export their names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import CodeType, ModuleType

MOVED = {
    "mh_lightning.batching": "mh_lightning.data.batching",
    "mh_lightning.tiny": "mh_lightning.model.tiny",
    "mh_lightning.checkpoint": "mh_lightning.inference.loading",
    "mh_lightning.module": "mh_lightning.training.module",
    "mh_lightning.callbacks": "mh_lightning.training.callbacks",
    "mh_lightning.throughput": "mh_lightning.training.throughput",
    "mh_lightning.resume": "mh_lightning.training.resume",
    "mh_lightning.faults": "mh_lightning.training.faults",
    "mh_lightning.fit": "mh_lightning.training.cli",
    "mh_lightning.chat": "mh_lightning.cli.chat",
    "mh_lightning.export": "mh_lightning.cli.export",
    "mh_lightning.generate": "mh_lightning.cli.generate",
    "mh_lightning.evaluate": "mh_lightning.cli.evaluate",
    "mh_lightning.preview": "mh_lightning.cli.preview",
    "mh_lightning.metrics": "mh_lightning.evaluation.metrics",
}


class _MovedModule(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)  # registered under the old name too

    def exec_module(self, module: ModuleType) -> None:
        pass  # the target ran when it was imported

    def get_code(self, fullname: str) -> CodeType | None:  # `python -m OLD_NAME` runs the target's code
        spec = importlib.util.find_spec(self.target)
        return spec.loader.get_code(self.target)  # type: ignore[union-attr]


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        origin = importlib.util.find_spec(new).origin  # type: ignore[union-attr]  # runpy's sys.argv[0]
        return importlib.machinery.ModuleSpec(fullname, _MovedModule(new), origin=origin)


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())  # before any finder that might hold a stale copy
