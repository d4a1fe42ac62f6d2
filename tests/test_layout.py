"""The package reads like the factory: stages import only the shared ground, themselves and the stages
before them; the shared ground imports no stage; nothing imports the CLI; no import circles; and
`import distill.cli` stays light (no torch, transformers, trl or llama_cpp)."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "distill"
STAGES = ["sample", "filter", "train", "evaluate", "export", "laptop"]  # pipeline order
ORCHESTRATORS = {"distill.cli", "distill.__main__", "distill.pipeline", "distill.rounds"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(path: Path) -> set[str]:
    """Every distill module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("distill"):
            for alias in node.names:  # `from distill.train import sft` names the submodule
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("distill")}
    return found


GRAPH = {m: imports_of(p) - {m} for m, p in MODULES.items()}


def stage_of(module: str) -> int | None:
    """Index of the module's stage in pipeline order; None for the shared ground."""
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def test_every_stage_is_a_package_with_a_docstring():
    for stage in STAGES:
        init = PKG / stage / "__init__.py"
        assert init.exists(), f"distill/{stage}/ is not a package"
        assert ast.get_docstring(ast.parse(init.read_text())), f"distill/{stage}/__init__.py has no docstring"


def test_stages_never_import_a_later_stage_or_the_cli():
    bad = []
    for module, deps in GRAPH.items():
        if module in ORCHESTRATORS:
            continue
        mine = stage_of(module)
        for dep in deps:
            if dep in ORCHESTRATORS:
                bad.append(f"{module} imports {dep}")
            theirs = stage_of(dep)
            if theirs is not None and (mine is None or theirs > mine):
                where = "the shared ground" if mine is None else f"stage {STAGES[mine]}"
                bad.append(f"{module} ({where}) imports {dep} (stage {STAGES[theirs]})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_circles():
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for dep in sorted(GRAPH.get(m, ())):
            if dep not in GRAPH:
                continue
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[m] = "done"

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_cli_import_is_light():
    code = ("import sys, distill.cli; heavy = sorted(m for m in ('torch', 'transformers', 'trl', 'llama_cpp', "
            "'datasets', 'pandas') if m in sys.modules); print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"`import distill.cli` pulls in {out}"
