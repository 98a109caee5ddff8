"""Print the longest functions and files of the package (the style limits: files ≲ 300 lines, functions ≲ 60).

    python scripts/code_shape.py [--top N]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sdnet_cli"


def functions(path: Path) -> list[tuple[int, str]]:
    """``(lines, qualified name)`` of every function and method in ``path``."""
    out = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((child.end_lineno - child.lineno + 1, f"{prefix}{child.name}"))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(ast.parse(path.read_text()), "")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    files = sorted(PKG.rglob("*.py"))
    sizes = sorted(((len(p.read_text().splitlines()), p.relative_to(PKG.parent)) for p in files), reverse=True)
    funcs = sorted(((n, f"{p.relative_to(PKG.parent)}::{name}") for p in files for n, name in functions(p)), reverse=True)
    print("longest files:")
    for n, p in sizes[: args.top]:
        print(f"  {n:5d}  {p}")
    print("longest functions:")
    for n, name in funcs[: args.top]:
        print(f"  {n:5d}  {name}")


if __name__ == "__main__":
    main()
