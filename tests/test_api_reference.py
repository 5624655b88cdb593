"""docs/api.md documents every public name once, under the one path users import it from.

A public module is any module of the package whose dotted path has no part starting with
``_``; its public names are its ``__all__``. A name added to ``__all__`` and not to the
reference, or exported from two user-facing modules, fails here.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

import secretkit

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api.md"

# Modules that hold one implementation each (STYLE.md: one backend, one module) and whose
# names users import from the module named here, which re-exports them. A name such a
# module exports and nothing re-exports is documented under this module's own path.
IMPLEMENTATION = {
    "secretkit.backends.env": "secretkit.backends",
    "secretkit.backends.dotenv": "secretkit.backends",
    "secretkit.backends.files": "secretkit.backends",
    "secretkit.backends.memory": "secretkit.backends",
    "secretkit.backends.vault_auth": "secretkit.backends.vault",
}


def public_modules() -> dict[str, ModuleType]:
    """Every public module of the package that declares ``__all__``, imported."""
    names = ["secretkit"] + [
        info.name
        for info in pkgutil.walk_packages(secretkit.__path__, "secretkit.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    modules = {name: importlib.import_module(name) for name in names}
    return {name: module for name, module in modules.items() if hasattr(module, "__all__")}


def exported() -> dict[str, object]:
    """``module.name`` -> the object, for every name in a public module's ``__all__``."""
    return {
        f"{m}.{name}": getattr(module, name)
        for m, module in public_modules().items()
        for name in module.__all__
    }


def documented() -> dict[str, object]:
    """``path`` -> the object, for every ``::: path`` directive of docs/api.md."""
    found: dict[str, object] = {}
    for path in re.findall(r"^::: (\S+)$", API.read_text(), re.M):
        module_name, _, name = path.rpartition(".")
        found[path] = getattr(importlib.import_module(module_name), name)
    return found


def test_every_name_in_a_public_all_exists() -> None:
    """A name listed in a public module's ``__all__`` can be imported from it."""
    missing = [
        f"{m}.{name}"
        for m, module in public_modules().items()
        for name in module.__all__
        if not hasattr(module, name)
    ]
    assert missing == []


def test_every_public_name_is_in_the_api_reference() -> None:
    """Each object a public module exports is documented in docs/api.md (under some public path)."""
    shown = {id(obj) for obj in documented().values()}
    missing = sorted(path for path, obj in exported().items() if id(obj) not in shown)
    assert missing == [], f"add to docs/api.md: {missing}"


def test_the_api_reference_names_each_object_once_by_the_path_users_import_it_from() -> None:
    """Each directive names a name in its module's ``__all__``, and each object once.

    An object a user-facing module exports is not documented by its implementation module's path.
    """
    docs = documented()
    exports = exported()
    user_facing = {id(obj) for path, obj in exports.items() if path.rpartition(".")[0] not in IMPLEMENTATION}
    wrong = []
    seen: dict[int, str] = {}
    for path, obj in docs.items():
        module_name = path.rpartition(".")[0]
        if path not in exports:
            wrong.append(f"{path}: not in {module_name}.__all__")
        elif module_name in IMPLEMENTATION and id(obj) in user_facing:
            wrong.append(f"{path}: import it from {IMPLEMENTATION[module_name]}")
        if id(obj) in seen:
            wrong.append(f"{path}: documented already as {seen[id(obj)]}")
        seen.setdefault(id(obj), path)
    assert wrong == []


def test_a_public_name_has_one_import_path() -> None:
    """No object is in the ``__all__`` of two user-facing modules (implementation modules aside)."""
    paths: dict[int, list[str]] = {}
    for path, obj in exported().items():
        module_name = path.rpartition(".")[0]
        if module_name in IMPLEMENTATION:
            assert (
                getattr(importlib.import_module(IMPLEMENTATION[module_name]), path.rpartition(".")[2], obj)
                is obj
            )
            continue
        paths.setdefault(id(obj), []).append(path)
    assert [p for p in paths.values() if len(p) > 1] == []


def test_implementation_modules_are_real() -> None:
    """Every module the exemption names exists and is public, so the list cannot hide a typo."""
    assert set(IMPLEMENTATION) <= set(public_modules())
    assert set(IMPLEMENTATION.values()) <= set(public_modules())
