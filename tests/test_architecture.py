"""The code stays a house a newcomer can live in: short functions, app factories that only wire.

Mapping tables (FHIR resources written out field by field) may be long; anything else over
80 lines is a closure that grew, and is found here rather than by the next reader."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SERVICES = Path(__file__).parent.parent / "services"
LONGEST_FUNCTION = 80
LONGEST_APP_FACTORY = 50


def _functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []
    for path in sorted(SERVICES.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append((str(path.relative_to(SERVICES.parent)), node))
    return found


def _length(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1  # type: ignore[attr-defined]


def test_no_function_in_services_is_over_80_lines() -> None:
    long = [
        f"{path}:{node.lineno} {node.name} ({_length(node)} lines)"
        for path, node in _functions()
        if _length(node) > LONGEST_FUNCTION
    ]
    assert not long, "split these: " + "; ".join(long)


def test_each_service_app_factory_only_wires() -> None:
    factories = [(path, node) for path, node in _functions() if node.name == "create_app"]
    assert {path for path, _ in factories} >= {"services/sip/api.py", "services/consent/api.py"}
    for path, node in factories:
        assert _length(node) <= LONGEST_APP_FACTORY, f"{path}: create_app is {_length(node)} lines"
        routes = [
            decorator
            for inner in ast.walk(node)
            if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef) and inner is not node
            for decorator in inner.decorator_list
        ]
        assert not routes, f"{path}: create_app defines routes inside itself"


def test_every_place_the_readme_table_names_exists() -> None:
    root = SERVICES.parent
    readme = (root / "README.md").read_text()
    table = readme[readme.index("## What is there") : readme.index("### FHIR API, today")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    missing = []
    for row in rows:
        place, what = row.split("|")[1:3]
        folders = [name.strip("`") for name in place.split(", ")]
        for folder in folders:
            if not (root / folder.strip().strip("`")).exists():
                missing.append(folder)
        # Files named in the description live in the row's (first) folder or are full paths.
        for name in re.findall(r"`([\w/]+\.py|[\w]+/)`", what):
            candidates = [root / name] + [root / f.strip().strip("`") / name for f in folders]
            if not any(candidate.exists() for candidate in candidates):
                missing.append(f"{name} (row {place.strip()})")
    assert rows and not missing, f"the README names what is not there: {missing}"
