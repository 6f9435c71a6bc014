"""The README is a contract: front matter for the Space, and every setting documented."""

from __future__ import annotations

import re

from backend.config import Settings
from tests.servers import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_space_front_matter() -> None:
    match = re.match(r"---\n(.*?)\n---\n", README, re.DOTALL)
    assert match, "README must start with Hugging Face Space front matter"
    front = dict(line.split(": ", 1) for line in match.group(1).splitlines() if ": " in line)
    assert front["sdk"] == "gradio"
    assert front["app_file"] == "ui/app.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", front["sdk_version"])
    assert front["python_version"].strip('"').startswith("3.")


def test_every_backend_setting_is_documented() -> None:
    missing = [
        f"SSECHAT_{name.upper()}"
        for name in Settings.model_fields
        if f"`SSECHAT_{name.upper()}`" not in README
    ]
    assert not missing, f"settings missing from README: {missing}"


def test_readme_names_the_two_commands() -> None:
    assert "make run" in README
    assert "make test" in README


def test_every_variable_the_ui_reads_is_documented() -> None:
    names: set[str] = set()
    for path in (REPO_ROOT / "ui").glob("*.py"):
        names.update(re.findall(r"""env\.get\(\s*["']([A-Z_]+)["']""", path.read_text()))
    assert "SSECHAT_BACKEND_URL" in names  # the pattern still finds what it should
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert not missing, f"UI variables missing from README: {missing}"
