"""The code's shape, held by tests: functions a newcomer reads in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "musicvae"
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
