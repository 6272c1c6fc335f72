"""The package's layers (docs/architecture.md): a module never imports from a higher layer, and no two modules
import each other, directly or through others. Every import statement counts, also the ones inside functions.

Read from the source with `ast` (no import side effects), so a new module is checked the moment it exists.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: lowest first; a module may import its own layer and the ones below it
LAYERS: tuple[tuple[str, ...], ...] = (
    ("benchmark.errors", "benchmark.seeding", "benchmark.importing", "benchmark.warnings_log"),
    ("metrics", "benchmark.models", "benchmark.data"),
    ("benchmark.sampling", "estimators"),
    ("benchmark.presets",),
    ("benchmark.training",),
    ("benchmark.config",),
    ("benchmark.execution",),
    ("benchmark.protocols",),
    ("benchmark.report",),
    ("benchmark.runner",),
    ("benchmark.publish",),
    ("benchmark.cli", "benchmark.api", "benchmark.__main__", "benchmark"),  # the Python API beside the CLI
)
#: public names kept at their old place after a move to a higher layer (PEP 562 `__getattr__`, imported only when
#: the name is used): (importing module, imported module)
COMPAT_REEXPORTS = {("benchmark.models", "benchmark.presets.loading")}
PACKAGES = ("benchmark", "estimators", "metrics")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules `name` imports (the deepest known module of each imported name)."""
    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {resolve(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*package[:len(package) - node.level + 1], *([node.module] if node.module else [])]) \
                if node.level else (node.module or "")
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else resolve(base))
    return {m for m in found if m and m != name}


def layer_of(module: str) -> int:
    best = (-1, -1)
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                best = max(best, (len(prefix), index))
    assert best[1] >= 0, f"{module} is in no layer: add its package to LAYERS and to docs/architecture.md"
    return best[1]


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, without the compatibility re-exports (lazy, see COMPAT_REEXPORTS)."""
    known = modules()
    return {name: {d for d in imports(name, path, known) if (name, d) not in COMPAT_REEXPORTS}
            for name, path in known.items()}


def test_no_module_imports_from_a_higher_layer():
    upward = sorted(f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
                    for m, deps in graph().items() for d in deps
                    if layer_of(d) > layer_of(m))
    assert not upward, "\n".join(upward)


def test_there_are_no_import_circles():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not circles, circles


def test_the_checker_sees_a_planted_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The two tests above would fail on a planted defect (a checker that sees nothing passes everything)."""
    for package, body in {"benchmark": "", "estimators": "", "metrics": ""}.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(body)
    (tmp_path / "metrics" / "a.py").write_text("from benchmark.runner import x\n")
    (tmp_path / "benchmark" / "runner").mkdir()
    (tmp_path / "benchmark" / "runner" / "__init__.py").write_text("")
    (tmp_path / "benchmark" / "runner" / "x.py").write_text("def f():\n    from metrics import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(AssertionError, match="metrics.a .layer 1. imports benchmark.runner.x"):
        test_no_module_imports_from_a_higher_layer()
    with pytest.raises(AssertionError, match="benchmark.runner.x"):
        test_there_are_no_import_circles()


@pytest.mark.parametrize("package", [p for p in ("benchmark",)])
def test_few_modules_stay_at_the_top_and_every_sub_package_says_its_job(package):
    top = sorted(p.name for p in (ROOT / package).glob("*.py"))
    assert len(top) <= 6, top
    for init in (ROOT / package).glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc, f"{init.relative_to(ROOT)}: its docstring says its job and what it may import"


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in modules().values()
            if (n := len(p.read_text().splitlines())) > 420}
    assert not long, long


PUBLIC_NAMES = {  # module: the names a researcher imports from it (README, DESIGN "Core interfaces")
    "estimators": ("UncertaintyEstimator", "EstimatorResult", "Requirements", "register", "create", "available",
                   "get_class", "parameters", "scale_window"),
    "metrics": ("frechet_distance", "fid_from_features", "precision_recall", "sparsification", "bootstrap_ci",
                "FilteredFID", "FIDInfinity", "PrecisionRecall", "build_feature_extractor"),
    "benchmark.models": ("DiffusionModel", "DiffusersUNet", "GaussianMixtureModel", "PlainTorchModel", "ModelSpec",
                         "FactorySpec", "load_model"),
    "benchmark.sampling": ("sample", "initial_noise", "initial_labels", "StepContext", "SampleResult"),
    "benchmark.config": ("load_config", "parse_config", "RunConfig", "EstimatorSpec", "PROTOCOLS"),
    "benchmark.runner.run": ("run_benchmark",),
    "benchmark.presets": ("Preset", "get", "names", "register"),
    "benchmark.config.plugins": ("ESTIMATOR_GROUP", "PRESET_GROUP", "load_plugins"),
    "benchmark.errors": ("ConfigError", "CapabilityError", "MissingAssetError", "RunFault"),
    "benchmark": ("run", "load", "compare", "Run", "Replicates"),  # the Python API (docs/python_api.md)
}


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_public_names_keep_working(module):
    import importlib

    imported = importlib.import_module(module)
    missing = [name for name in PUBLIC_NAMES[module] if not hasattr(imported, name)]
    assert not missing, f"{module} lost {missing}"


def test_load_model_from_models_is_the_presets_one_and_importing_models_loads_no_preset():
    import subprocess
    import sys as _sys

    code = ("import sys, benchmark.models as m; assert 'benchmark.presets' not in sys.modules; "
            "from benchmark.presets.loading import load_model; assert m.load_model is load_model")
    done = subprocess.run([_sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
