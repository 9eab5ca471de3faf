"""models/fetch.py, the fetch script that needs no Rust build."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "models" / "fetch.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def test_fetch_is_idempotent_and_repairs(tmp_path):
    first = run("--model-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "fetched into" in first.stdout
    folder = tmp_path / "all-minilm-l6-v2"
    assert (folder / "model.safetensors").stat().st_size > 80_000_000

    second = run("--model-dir", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout

    vocab = folder / "vocab.txt"
    data = bytearray(vocab.read_bytes())
    data[100] ^= 0x20
    vocab.write_bytes(bytes(data))
    repaired = run("all-minilm-l6-v2", "--model-dir", str(tmp_path))
    assert repaired.returncode == 0, repaired.stderr
    assert "fetched into" in repaired.stdout
    assert "up to date" in run("--model-dir", str(tmp_path)).stdout

    models = {"all-minilm-l6-v2", "efficientnet-lite0"}
    assert (tmp_path / "efficientnet-lite0" / "efficientnet-lite0-57934424.pth").is_file()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in models]
    assert leftovers == []


def test_unknown_model_exits_2(tmp_path):
    result = run("gpt-17", "--model-dir", str(tmp_path))
    assert result.returncode == 2
    assert "gpt-17" in result.stderr
    assert "all-minilm-l6-v2" in result.stderr


def test_model_dir_that_is_a_file_exits_6(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    result = run("--model-dir", str(blocker))
    assert result.returncode == 6
    assert "not-a-folder" in result.stderr
    assert "Traceback" not in result.stderr
