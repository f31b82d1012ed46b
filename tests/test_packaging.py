"""The wheel's package list covers every folder of code, so a non-editable install imports what an editable one does."""
import runpy
import sys
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parents[1]


def setup_arguments(monkeypatch) -> dict:
    captured: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.setattr(sys, "argv", ["setup.py"])
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    return captured


def test_every_code_folder_is_a_listed_package(monkeypatch):
    arguments = setup_arguments(monkeypatch)
    folder_of = {package: folder for package, folder in arguments["package_dir"].items()}
    listed = set(arguments["packages"])
    expected = set()
    for namespace, folder in folder_of.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            expected.add(".".join([namespace, *relative.parts]))
    missing = sorted(expected - listed)
    assert not missing, f"setup.py leaves these packages out of the wheel: {missing}"
    assert "stylegan.projection" in listed
