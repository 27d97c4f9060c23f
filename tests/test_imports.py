"""Nothing heavy at start-up: a plain ``assistant ask``, ``assistant docs`` and the ``serve`` path load only
what they use (issue 17). The heavy modules are torch and what stands on it, scikit-learn and llama-index:
seconds of import time before the first answer that the default model through ONNX Runtime does not need."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import cli_env, copy_corpus, run_cli

HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "scipy", "pandas", "llama_index")
SERVE_HEAVY = tuple(m for m in HEAVY if m != "pandas")  # Gradio imports pandas: the UI does use it


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus indexed by ``assistant ingest``, as a user builds it (the BM25 index included:
    building that on a first question would import bm25s and scipy, which a plain question does not)."""
    base = tmp_path_factory.mktemp("imports")
    corpus = copy_corpus(base / "corpus")
    proc = run_cli("ingest", "--index", base / "index", "--corpus", corpus, cwd=base, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return base / "index"


def imported_modules(stderr: str) -> set[str]:
    """Top-level names of the modules ``python -X importtime`` reports."""
    return {
        line.split("|")[-1].strip().split(".")[0] for line in stderr.splitlines() if line.startswith("import time:")
    }


def run_importtime(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "assistant.cli", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, imported_modules(proc.stderr)


@pytest.mark.parametrize(
    "question", ["When was the Changzhou alliance launched?", "常州检验检测认证产教联盟是由哪个单位牵头发起的？"]
)
def test_plain_ask_loads_no_heavy_module(index: Path, tmp_path: Path, question: str) -> None:
    # The names of Chinese questions come from a table cached once per machine (assistant.zh_names): build
    # it first, as any earlier Chinese question would have, so that the ask below reads it.
    warm = [sys.executable, "-c", "from assistant.zh_names import warm_up; warm_up()"]
    subprocess.run(warm, cwd=tmp_path, env=cli_env(), check=True, timeout=300)
    proc, modules = run_importtime(["ask", "--index", str(index), "--json", question], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"citations"' in proc.stdout  # a real answer, from a real query embedding
    assert {"onnxruntime", "tokenizers", "chromadb"} <= modules  # what it does use
    assert sorted(modules & set(HEAVY)) == []
    assert "gradio" not in modules
    # jieba's part-of-speech tagger costs ~0.3 s at import (~40 MB): zh_names gives its names without it.
    assert "jieba.posseg" not in {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}


def test_docs_loads_neither_the_model_nor_heavy_modules(index: Path, tmp_path: Path) -> None:
    proc, modules = run_importtime(["docs", "--index", str(index), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(modules & {*HEAVY, "onnxruntime", "jieba", "gradio"}) == []


def test_serve_path_loads_no_heavy_module(index: Path, tmp_path: Path) -> None:
    """What ``assistant serve`` runs before and for its first answer: the UI module, warm-up, one question."""
    code = textwrap.dedent(
        f"""
        import sys
        from assistant.cli import load_ui
        from assistant.core import Assistant
        ui = load_ui()
        a = Assistant.open({str(index)!r})
        a.warm_up()
        answer = a.ask("常州检验检测认证产教联盟是由哪个单位牵头发起的？")
        heavy = sorted(m for m in {SERVE_HEAVY!r} if m in sys.modules)
        print(a.embedder.backend, len(answer.citations) > 0, heavy)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "onnx True []"
