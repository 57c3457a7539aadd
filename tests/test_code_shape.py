"""The code's shape, held by tests: a package whose subpackages are the pipeline's stages, imports in one direction, and
functions a newcomer reads in one sitting."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "musicvae"
MAX_TOP_LEVEL_MODULES = 12  # the stages are subpackages; at the top: the trial, the command, the console, the API
MAX_LINES = 60  # a function's body, its docstring left out (nested functions count towards the one they are in)


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    start = node.body[1].lineno if has_docstring and len(node.body) > 1 else first.lineno
    return node.end_lineno - start + 1


def long_functions(root: Path, limit: int) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > limit:
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({_body_lines(node)} lines)")
    return found


def test_no_function_in_the_package_is_longer_than_sixty_lines() -> None:
    assert long_functions(PACKAGE, MAX_LINES) == []


def test_the_count_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (tmp_path / "long.py").write_text(f'def long():\n    """A docstring\n    on two lines."""\n{body}\n\n\ndef short():\n    return 1\n')
    assert long_functions(tmp_path, MAX_LINES) == [f"{tmp_path.name}/long.py:1 long (61 lines)"]


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path) -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports: every import statement, those inside
    functions (lazy) and under ``TYPE_CHECKING`` included; ``from a import b`` is module ``a.b`` where that is a module."""
    modules = {module_name(root, path): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1 packages
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return exc.args[1]
    return []


def test_the_package_has_at_most_twelve_top_level_modules() -> None:
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def stages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same imports between the package's folders (a top-level module stands for itself)."""

    def stage(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2])

    folded: dict[str, set[str]] = {}
    for module, imported in graph.items():
        folded.setdefault(stage(module), set()).update(stage(m) for m in imported if stage(m) != stage(module))
    return folded


def test_no_import_cycle_in_the_package() -> None:
    assert import_cycle(imports(PACKAGE)) == []


def test_the_stages_import_in_one_direction() -> None:
    """No cycle between the folders either (the README's module map lists them in this order)."""
    assert import_cycle(stages(imports(PACKAGE))) == []


@pytest.mark.parametrize(
    "second",
    [
        "from pkg.a import thing",  # at the top
        "def later():\n    from pkg import a",  # lazy
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a",  # a type only
        "def later():\n    from . import a",  # relative
    ],
)
def test_the_check_sees_a_cycle(tmp_path: Path, second: str) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import other\n")
    (package / "b.py").write_text(second + "\n")
    (package / "c.py").write_text("import pkg.a\n")  # no cycle of its own
    assert sorted(import_cycle(imports(package))[:-1]) == ["pkg.a", "pkg.b"]


def test_the_check_sees_a_cycle_between_folders(tmp_path: Path) -> None:
    for name, text in {"__init__": "", "x/__init__": "", "x/a": "from pkg.y.b import f\n", "y/__init__": "", "y/b": "", "y/c": "import pkg.x.a\n"}.items():
        (tmp_path / "pkg" / f"{name}.py").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / f"{name}.py").write_text(text)
    graph = imports(tmp_path / "pkg")
    assert import_cycle(graph) == []  # no module imports itself round
    assert sorted(import_cycle(stages(graph))[:-1]) == ["pkg.x", "pkg.y"]
