"""Imports sit at the top of their module; one inside a function says why, on its line.

A function-level import hides what a module depends on and can hide an import cycle until the function
runs. Such an import is kept only where something needs it, with `# lazy: REASON` on its line:
an optional extra (`import onnx  # lazy: the optional [onnx] extra`), start-up time (a module that
`digitlab --help` reads), or a process boundary. cli/ and the package `__init__` files are exempt: they
load on every start, so their imports are lazy by design.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "digitlab"
REASON = re.compile(r"#\s*lazy:\s*\S")  # the marker and at least one word of reason


def unexplained_imports(source: str) -> list[tuple[int, str]]:
    """(line number, source line) of each import inside a function or method with no `# lazy:` reason.

    The reason may sit on any line of a multi-line import statement.
    """
    lines = source.splitlines()
    comments = {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    found = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and in_function:
                span = range(child.lineno, child.end_lineno + 1)
                if not any(REASON.search(comments.get(n, "")) for n in span):
                    found.append((child.lineno, lines[child.lineno - 1].strip()))
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(ast.parse(source), False)
    return found


def checked_modules() -> list[Path]:
    """Every module of the package except cli/ and the `__init__` files."""
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if p.name != "__init__.py" and "cli" not in p.relative_to(PACKAGE).parts[:-1])


def test_function_level_imports_give_their_reason():
    problems = [f"src/digitlab/{path.relative_to(PACKAGE)}:{line}: {text}"
                for path in checked_modules()
                for line, text in unexplained_imports(path.read_text(encoding="utf-8"))]
    assert not problems, ("imports inside functions: move each to the top of its module, or say why it must "
                          "wait with `# lazy: REASON` on its line:\n" + "\n".join(problems))


def test_the_check_finds_an_import_without_a_reason(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import os\n"                                        # 1 top level: fine
        "\n"
        "def f():\n"
        "    import json\n"                                  # 4 no reason
        "    import onnx  # lazy: the optional [onnx] extra\n"
        "    import ray  # lazy:\n"                          # 6 the marker without a reason
        "    s = '# lazy: not a comment'; import csv\n"      # 7 the marker inside a string
        "\n"
        "class C:\n"
        "    import math\n"                                  # 10 class body: runs at import time
        "    async def m(self):\n"
        "        def inner():\n"
        "            from pathlib import (\n"                # 13 nested, multi-line, no reason
        "                Path,\n"
        "            )\n"
        "        from typing import (  # lazy: a reason on the statement's first line\n"
        "            Any,\n"
        "        )\n"
        "        return inner\n",
        encoding="utf-8",
    )
    found = unexplained_imports(planted.read_text(encoding="utf-8"))
    assert [line for line, _ in found] == [4, 6, 7, 13]
    assert found[0][1] == "import json"


def test_the_check_covers_every_layer_but_cli():
    checked = {p.relative_to(PACKAGE).parts[0] for p in checked_modules()}
    assert {"data", "models", "train", "evaluate", "viz", "workflows", "inference", "serve", "files.py"} <= checked
    assert "cli" not in checked
    assert not any(p.name == "__init__.py" for p in checked_modules())
