"""Docs that are generated from code must match the code, and the command lines the docs show must name real
commands, options, presets and config keys."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_up_to_date():
    rendered = subprocess.run([sys.executable, str(ROOT / "scripts" / "config_reference.py")], capture_output=True,
                              text=True, check=True).stdout
    assert (ROOT / "docs" / "configuration.md").read_text() == rendered, \
        "run: python scripts/config_reference.py > docs/configuration.md"


def _doc_command_lines() -> list[tuple[str, list[str]]]:
    """(file, arguments after `gankit`) for every gankit command line in docs/*.md's shell blocks: continuation lines
    joined, `# ...` and backquoted `# ...` comments dropped, `a && b` split."""
    import re
    import shlex

    found = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        blocks, language = [], None
        for line in path.read_text().splitlines():
            if line.startswith("```"):
                language = line[3:].strip() if language is None else None
                if language is not None:
                    blocks.append((language, []))
            elif language is not None:
                blocks[-1][1].append(line)
        for language, lines in blocks:
            if language not in ("", "bash", "sh", "console"):
                continue
            text = re.sub(r"`#[^`]*`", "", re.sub(r"\\\n\s*", " ", "\n".join(lines)))
            for line in text.splitlines():
                for part in line.split(" #")[0].split("&&"):
                    if part.strip().startswith(("gankit ", "python -m gankit ", "torchrun ")):
                        args = shlex.split(part)
                        found.append((path.name, args[args.index("gankit") + 1:]))
    return found


def test_docs_command_lines_name_real_commands_options_presets_and_keys():
    """Every `gankit ...` line in the docs names a command that exists, options it has, and (for `train`) a preset
    and config keys that resolve, so a reader who copies one gets no 'no such option' or 'unknown key'."""
    import typer.main

    from gankit.cli import app
    from gankit.variants import resolve

    commands = typer.main.get_command(app).commands
    lines = _doc_command_lines()
    assert len(lines) > 100
    for name, args in lines:
        command = commands.get(args[0])
        assert command is not None, (name, args)
        params = {opt: p for p in command.params for opt in [*p.opts, *getattr(p, "secondary_opts", [])]}
        values, positional = set(), []
        for i, arg in enumerate(args[1:], 1):
            if arg.startswith("-") and i not in values:
                option = params.get(arg.split("=")[0])
                assert option is not None, f"{name}: `gankit {' '.join(args)}` has no option {arg}"
                if not option.is_flag and "=" not in arg:
                    values.add(i + 1)
            elif i not in values:
                positional.append(arg)
        if args[0] == "train" and "--resume" not in args:
            preset, overrides = (positional[0], positional[1:]) if "=" not in positional[0] else (None, positional)
            if preset is None or not (preset.endswith((".yaml", ".yml")) or "/" in preset):
                resolve(preset, overrides)  # raises on an unknown preset, key or value


def test_benchmark_command_lines_in_the_docs_name_real_scripts_and_options():
    import re

    shown = 0
    for path in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        for match in re.finditer(r"python (benchmarks/\w+\.py)([^\n`|]*)", path.read_text()):
            script = ROOT / match.group(1)
            assert script.is_file(), f"{path.name}: {match.group(0)}"
            source = script.read_text()
            for flag in re.findall(r"(--[\w-]+)", match.group(2)):
                assert f'"{flag}"' in source, f"{path.name}: {match.group(0)}: {script.name} has no {flag}"
            shown += 1
    assert shown > 50


def test_python_examples_in_the_docs_name_real_imports_methods_and_keywords():
    """The docs' Python blocks (design.md's run in test_design_doc.py) compile; what they import from gankit exists,
    and calls on a model from gankit.load use methods and keywords it has, so a renamed API cannot leave them
    stale."""
    import ast
    import importlib
    import inspect
    import re

    from gankit.train import Generator

    checked = 0
    for path in sorted((ROOT / "docs").glob("*.md")):
        if path.name == "design.md":
            continue
        for block in re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M):
            tree = ast.parse(block, filename=path.name)
            models = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gankit"):
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        assert hasattr(module, alias.name), f"{path.name}: {node.module} has no {alias.name}"
                elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                        ast.unparse(node.value.func) == "gankit.load":
                    models |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        isinstance(node.func.value, ast.Name) and node.func.value.id in models:
                    method = getattr(Generator, node.func.attr, None)
                    assert method is not None, f"{path.name}: a loaded model has no {node.func.attr}()"
                    accepted = inspect.signature(method).parameters
                    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
                        for keyword in node.keywords:
                            assert keyword.arg in accepted, f"{path.name}: {node.func.attr}() takes no {keyword.arg}="
                    checked += 1
    assert checked >= 10
