"""The README's Python examples run as written."""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no Python example"
    for k, code in enumerate(blocks):
        namespace = {}
        exec(compile(code, f"README.md block {k}", "exec"), namespace)
    assert "matmul" in capsys.readouterr().out      # print(tape) showed the tape
