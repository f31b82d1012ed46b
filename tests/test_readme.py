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


def _stylegan_commands(text):
    """Every `stylegan <subcommand> ...` invocation in the README's bash blocks, as argument lists."""
    import shlex
    for block in _bash_blocks(text):
        for line in block.splitlines():
            for part in line.split("&&"):
                args = shlex.split(part, comments=True)
                if len(args) > 1 and args[0] == "stylegan":
                    yield args[1:]


def test_readme_train_generate_and_mixing_commands_parse():
    """The main command, the quick tour's generate / style-mixing lines and the dataset examples use options that exist, with values of
    the right types (parsed by the real click commands; nothing runs)."""
    from stylegan.cli import main

    commands = [a for a in _stylegan_commands((ROOT / "README.md").read_text())
                if a[0] in ("train", "generate", "style-mixing", "dataset", "metrics")]
    assert {a[0] for a in commands} == {"train", "generate", "style-mixing", "dataset", "metrics"}
    for args in commands:
        command = main.get_command(None, args[0])
        command.make_context(args[0], args[1:])  # raises click.UsageError on an unknown option or a bad value
