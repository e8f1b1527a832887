"""Dataset recipes: each turns one public dataset's original files into rasid's data format."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from serving.errors import RasidError
from training.recipes import ans, asnd, austr, baly, mawqif


@dataclass(frozen=True)
class Recipe:
    """A recipe's name, its reader, the task columns it labels and the column order it writes."""

    name: str
    read: Callable
    tasks: tuple[str, ...]
    columns: tuple[str, ...]

    @property
    def options(self) -> list[str]:
        """Keyword options the reader accepts besides the source folder."""
        return list(inspect.signature(self.read).parameters)[1:]


def _recipe(name: str, module: ModuleType) -> Recipe:
    return Recipe(name, module.read, module.TASKS, module.COLUMNS)


RECIPES = {
    name: _recipe(name, module)
    for name, module in {"mawqif": mawqif, "asnd": asnd, "ans": ans, "austr": austr, "baly": baly}.items()
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise RasidError(f"there is no recipe {name!r}; the recipes are {', '.join(RECIPES)}")
    return RECIPES[name]
