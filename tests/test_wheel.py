"""The wheel carries everything `campaign init` and `campaign render` need, templates included."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_renders(tmp_path: Path) -> None:
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pipeline/skeleton/templates/newsletter.mjml.j2" in names
    assert "pipeline/skeleton/campaigns/back-pain/article.md" in names
    assert "pipeline/web/preview_page.html" in names  # read at run time by `campaign preview`
    assert "pipeline/web/templates/preferences.html.j2" in names  # read at run time by `campaign serve`
    assert not [n for n in names if n.startswith("tests/")]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel)
    workspace = tmp_path / "elsewhere" / "clinic"
    run(venv / "bin" / "campaign", "init", workspace, cwd=tmp_path)
    out = run(venv / "bin" / "campaign", "render", "back-pain", cwd=workspace)
    assert out.splitlines() == [f"out/back-pain/{n}" for n in ("email.mjml", "email.html", "email.txt")]
    html = (workspace / "out" / "back-pain" / "email.html").read_text()
    assert "Is acupuncture effective for persistent back pain?" in html
