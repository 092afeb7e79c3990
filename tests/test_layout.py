"""The layout rules of the README ("Layout"), checked on the source: dependencies point downwards only."""

import ast
import importlib
import sys
from pathlib import Path

import pytest

import sagin_hil

ROOT = Path(sagin_hil.__file__).parent
LAYERS = ("phy", "codecs", "hil", "controllers", "flowgraphs", "calibration")
# What each layer may import from the others (README, "Layout": flowgraphs -> (controllers, codecs, hil,
# calibration) -> phy; codecs does not import phy; phy imports no other layer).
ALLOWED = {
    "phy": set(),
    "codecs": set(),
    "hil": {"phy"},
    "controllers": {"phy", "calibration", "codecs"},
    "calibration": {"phy", "codecs"},
    "flowgraphs": {"phy", "codecs", "hil", "controllers", "calibration"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_downwards(layer):
    bad = []
    for path in (ROOT / layer).rglob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] in LAYERS:
                bad.append(f"{path.relative_to(ROOT)} imports {name} (import through sagin_hil.)")
            if parts[0] == "sagin_hil" and len(parts) > 1 and parts[1] in LAYERS:
                if parts[1] != layer and parts[1] not in ALLOWED[layer]:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_root_module_shadows_the_standard_library():
    stdlib = set(sys.stdlib_module_names) - {"codecs"}  # `codecs` is the one mandated exception
    names = {p.stem for p in ROOT.glob("*.py")} | {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert not (names & stdlib), f"root names shadow the standard library: {sorted(names & stdlib)}"


def test_codecs_layer_is_not_the_stdlib_codecs():
    import codecs

    assert hasattr(codecs, "lookup") and Path(codecs.__file__).parent != ROOT
    assert importlib.import_module("sagin_hil.codecs").__name__ == "sagin_hil.codecs"
