"""The README's set-up commands are the ones CI runs, so the README is proven on every CI run."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
    readme_commands = [line.strip() for block in _bash_blocks((ROOT / "README.md").read_text())
                       for line in block.splitlines() if "pytest" in line]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if "pytest" in line and not line.lstrip().startswith("#")]
    assert len(readme_commands) == 1 and ci_lines == readme_commands


def test_readme_main_command_pins_the_cpu_torch():
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert all("torch==2.13.0" in line for b in blocks for line in b.splitlines() if "pip install -e" in line)
