#!/usr/bin/env python3
"""List imports inside gankit/ that point up the layer order (docs/design.md); `make test` runs this check.

    data → nets → losses / metrics → variants → train → doctor / report → cli

Usage: python tools/layers.py [PACKAGE_DIR]   (default: gankit). Exit 1 if any import points upward.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

RANK = {  # a module may import its own layer and lower ones only
    "errors": 0, "config": 0, "io": 0, "version": 0,
    "data": 1,
    "nets": 2,
    "losses": 3, "metrics": 3,
    "variants": 4,
    "train": 5,
    "doctor": 6, "report": 6, "edit": 6, "anomaly": 6, "explain": 6, "serve": 6,
    "cli": 7, "__init__": 7, "__main__": 7,
}


def _imported(node: ast.AST, rel: tuple[str, ...], package: str) -> list[list[str]]:
    """Module paths (inside the package, as parts) that one import statement names."""
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against this file's package
            base = list(rel[:-1])[: max(0, len(rel) - node.level)]
            return [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
        if node.module and node.module.split(".")[0] == package:
            return [node.module.split(".")[1:]]
    elif isinstance(node, ast.Import):
        return [a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == package]
    return []


def upward_imports(package_dir: Path) -> list[str]:
    """`file:line: src (layer a) imports dst (layer b)` for every import of a higher layer."""
    bad = []
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir).with_suffix("").parts
        src = rel[0] if rel else "__init__"
        if src not in RANK:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _imported(node, rel, package_dir.name):
                dst = target[0] if target else "__init__"
                if dst in RANK and RANK[dst] > RANK[src]:
                    bad.append(f"{path}:{node.lineno}: {src} (layer {RANK[src]}) imports {dst} (layer {RANK[dst]})")
    return bad


if __name__ == "__main__":
    found = upward_imports(Path(sys.argv[1] if len(sys.argv) > 1 else "gankit"))
    print("\n".join(found) if found else "layers: no import points up")
    sys.exit(1 if found else 0)
