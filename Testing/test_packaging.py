"""Packaging: every engine package is in pyproject's explicit list, and the wheel ships the resources."""

import sys
import tomllib
import zipfile
from pathlib import Path
import subprocess

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_engine_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    engine = ROOT / "DDICSlicer"
    found = {".".join(p.parent.relative_to(engine).parts) for p in (engine / "ddic").rglob("__init__.py")}
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == {"ddic._resources"}


@pytest.mark.slow
def test_wheel_ships_manifest_and_bundled_models(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             str(ROOT), "-w", str(tmp_path)], capture_output=True, text=True)
    if result.returncode != 0 and "No module named pip" in result.stderr:
        pytest.skip("pip is not available in this interpreter")
    assert result.returncode == 0, result.stderr[-2000:]
    wheel = next(tmp_path.glob("ddicslicer-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ddic/_resources/models/manifest.json" in names
    for domain in ("us", "mri"):
        folder = ROOT / "Resources" / "models" / f"demo-{domain}"
        for path in folder.glob("*"):
            if path.suffix in (".json", ".safetensors"):
                assert f"ddic/_resources/models/demo-{domain}/{path.name}" in names
    assert not any(name.endswith(".sh") for name in names)
