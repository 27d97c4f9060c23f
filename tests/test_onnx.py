"""The default model through ONNX Runtime: same vectors as sentence-transformers, cached by model hash,
and a fallback to sentence-transformers (one warning line) when the export cannot be made."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, cli_env

from assistant import embedding, onnx_encoder
from assistant.embedding import DEFAULT_MODEL, Embedder, EmbeddingSettings, default_model_path
from assistant.errors import ConfigError

MODEL_DIR = Path(default_model_path())

SENTENCES = [
    "When was the Changzhou Inspection, Testing and Certification Industry-Education Alliance launched?",
    "常州检验检测认证产教联盟是由哪个单位牵头发起的？",
    "东昌府区葫芦种植面积有多大？",
    "The gourd industry in Dongchangfu District has a planting area of over 30,000 acres.",
    "产教融合“破题”人才瓶颈 山东职教赋能区域经济提质增效",
    "Mixed 中英文 text: 2025年10月28日, AI + 职业教育 (vocational education) ½ ™ café",
    "  leading and trailing spaces\t\n",
    "query: what is the alliance?",
    "passage: 联盟成立于2023年。",
    "a",
    "",
]


def _long_texts() -> list[str]:
    """Texts of about 250, 256, 257 and 300 word pieces, and a 3,000-character Chinese one."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    words = ("industry education integration alliance vocational college enterprise training " * 60).split()
    out = []
    for target in (250, 254, 255, 256, 300):
        n = target - 2
        out.append(" ".join(words[:n]))
        assert len(tok.encode(out[-1]).ids) == target
    out.append("产教融合共同体由职业院校和龙头企业共同组建，" * 125)
    return out


@pytest.fixture(scope="module")
def both() -> tuple[Embedder, Embedder]:
    onnx = Embedder(EmbeddingSettings(backend="onnx"))
    torch = Embedder(EmbeddingSettings(backend="sentence-transformers"))
    _ = onnx.model, torch.model
    assert (onnx.backend, torch.backend) == ("onnx", "sentence-transformers")
    return onnx, torch


def test_vectors_match_sentence_transformers(both: tuple[Embedder, Embedder]) -> None:
    onnx, torch = both
    texts = SENTENCES + _long_texts()
    for settings in (
        EmbeddingSettings(backend="onnx"),
        EmbeddingSettings(query_prefix="query: ", passage_prefix="passage: "),
    ):
        for name in ("encode_passages", "encode_queries"):
            a_emb = Embedder(settings)
            a_emb._model, a_emb.backend = onnx.model, "onnx"
            b_emb = Embedder(settings)
            b_emb._model = torch.model
            a, b = getattr(a_emb, name)(texts), getattr(b_emb, name)(texts)
            assert a.shape == b.shape == (len(texts), 384) and a.dtype == np.float32
            cos = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            assert (1 - cos).max() < 1e-4, (name, settings.prefixes, (1 - cos).max())
            assert np.abs(np.linalg.norm(a, axis=1) - 1).max() < 1e-5


def test_batches_and_order_do_not_change_vectors(both: tuple[Embedder, Embedder]) -> None:
    onnx, _ = both
    texts = SENTENCES + _long_texts()
    together = onnx.model.encode(texts, batch_size=64)
    alone = np.stack([onnx.model.encode([t])[0] for t in texts])
    assert np.abs(together - alone).max() < 1e-5  # padding to the batch's longest text is masked out
    assert onnx.model.encode("a").shape == (384,)
    assert onnx.model.encode([]).shape == (0, 384)


def test_tokens_are_sentence_transformers_tokens(both: tuple[Embedder, Embedder]) -> None:
    onnx, torch = both
    texts = SENTENCES + _long_texts()
    ours = onnx.model.tokenize(texts)
    theirs = torch.model.tokenize(texts)
    for key in ("input_ids", "attention_mask"):
        assert np.array_equal(ours[key], np.asarray(theirs[key])), key
    assert ours["input_ids"].shape[1] == onnx.model.max_seq_length == 256


def test_the_default_embedder_uses_onnx_and_no_torch(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from assistant.embedding import Embedder
        e = Embedder()
        v = e.encode_queries(["常州检验检测认证产教联盟是由哪个单位牵头发起的？"])
        heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers", "sklearn") if m in sys.modules)
        print(e.backend, v.shape[1], heavy)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "onnx 384 []"


def test_cache_folder_names_the_model_hash(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(MODEL_DIR, model, ignore=shutil.ignore_patterns("model.safetensors"))
    (model / "model.safetensors").symlink_to(MODEL_DIR / "model.safetensors")
    cache = tmp_path / "cache"
    first = onnx_encoder.onnx_path(model, cache, DEFAULT_MODEL)
    assert first.parent.parent == cache / "onnx" and first.name == "model.onnx"
    assert first.parent.name.startswith(f"{DEFAULT_MODEL}-") and first.parent.name.endswith(
        f"-e{onnx_encoder.EXPORT_RECIPE}"
    )
    assert onnx_encoder.onnx_path(model, cache, DEFAULT_MODEL) == first  # from the memo (same sizes and times)
    assert onnx_encoder.model_hash(model) == onnx_encoder.model_hash(model, cache / "onnx")
    config = model / "config.json"
    config.write_text(config.read_text().replace('"gelu"', '"gelu_new"'))
    changed = onnx_encoder.onnx_path(model, cache, DEFAULT_MODEL)
    assert changed != first  # a changed model file is a new export, never the stale one
    # Without the memo, the content hash is the one in the folder name.
    assert onnx_encoder.model_hash(model) == changed.parent.name.split("-")[-2]


def test_unsupported_layouts_are_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(MODEL_DIR, model, ignore=shutil.ignore_patterns("model.safetensors"))
    pooling = model / "1_Pooling" / "config.json"
    pooling.write_text(pooling.read_text().replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true'))
    with pytest.raises(onnx_encoder.OnnxUnavailable, match="unsupported pooling"):
        onnx_encoder.model_layout(model)
    (model / "tokenizer.json").unlink()
    pooling.write_text(pooling.read_text().replace('"pooling_mode_cls_token": true', '"pooling_mode_cls_token": false'))
    with pytest.raises(onnx_encoder.OnnxUnavailable, match="no tokenizer.json"):
        onnx_encoder.model_layout(model)


def test_failed_export_falls_back_with_one_warning_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(model_dir: Path, target: Path) -> None:
        raise onnx_encoder.OnnxUnavailable("export failed (OnnxExporterError: Module onnx is not installed!)")

    monkeypatch.setattr(onnx_encoder, "_run_export", failing)
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("ASSISTANT_EMBEDDING_BACKEND", raising=False)
    emb = Embedder()
    vec = emb.encode_queries(["What does the alliance do?"])
    assert emb.backend == "sentence-transformers" and vec.shape == (1, 384)
    assert emb.fallback_reason and "onnx is not installed" in emb.fallback_reason
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: all-MiniLM-L6-v2 through ONNX Runtime is unavailable (")
    assert err[0].endswith("using sentence-transformers")
    # Forced ONNX does not fall back: it says why it cannot run.
    with pytest.raises(ConfigError, match="cannot run all-MiniLM-L6-v2 through ONNX Runtime: export failed"):
        _ = Embedder(EmbeddingSettings(backend="onnx")).model


def test_backend_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EmbeddingSettings().chosen_backend({}) == "auto"
    assert EmbeddingSettings().chosen_backend({"ASSISTANT_EMBEDDING_BACKEND": "torch"}) == "sentence-transformers"
    assert EmbeddingSettings(backend="onnx").chosen_backend({"ASSISTANT_EMBEDDING_BACKEND": "torch"}) == "onnx"
    with pytest.raises(
        ConfigError,
        match="^ASSISTANT_EMBEDDING_BACKEND must be one of auto, onnx, sentence-transformers, got 'tensorflow'$",
    ):
        EmbeddingSettings().chosen_backend({"ASSISTANT_EMBEDDING_BACKEND": "tensorflow"})
    # The validated setting (config.Settings) reaches the embedder through Settings.config().
    from assistant.config import Settings

    settings = Settings.from_env({"ASSISTANT_EMBEDDING_BACKEND": "torch"}).config().embedding
    assert settings.backend == "sentence-transformers"
    assert settings.chosen_backend({"ASSISTANT_EMBEDDING_BACKEND": "onnx"}) == "sentence-transformers"
    with pytest.raises(ConfigError, match="embedding backend must be one of"):
        EmbeddingSettings(backend="tensorflow")
    with pytest.raises(ConfigError, match="serves only the default model"):
        _ = Embedder(EmbeddingSettings(model="intfloat/multilingual-e5-small", backend="onnx")).model


@pytest.mark.slow
def test_missing_onnx_package_falls_back_in_a_real_process(tmp_path: Path) -> None:
    """The export runs in a child process that cannot import onnx: the question is still answered."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "onnx.py").write_text("raise ModuleNotFoundError(\"No module named 'onnx'\")\n")
    env = {**cli_env(), "ASSISTANT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": f"{fake}{os.pathsep}{REPO}"}
    code = (
        "from assistant.embedding import Embedder\n"
        "e = Embedder()\n"
        "v = e.encode_queries(['hi'])\n"
        "print(e.backend, v.shape)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "sentence-transformers (1, 384)"
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "onnx" in err[0].lower() and err[0].endswith("using sentence-transformers"), err
    assert not list((tmp_path / "cache" / "onnx").glob("*/model.onnx"))


@pytest.mark.slow
def test_broken_cached_file_is_exported_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    target = onnx_encoder.onnx_path(MODEL_DIR, cache, DEFAULT_MODEL)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not an onnx file")
    encoder = onnx_encoder.load(MODEL_DIR, cache, DEFAULT_MODEL)
    assert target.stat().st_size > 1_000_000 and oct(target.stat().st_mode & 0o777) == "0o644"
    assert encoder.encode(["hi"]).shape == (1, 384)


def test_background_embedder_is_one_thread_and_gives_the_same_vectors(both: tuple[Embedder, Embedder]) -> None:
    onnx, torch = both
    bulk = onnx.background()
    assert bulk is not onnx and bulk is onnx.background()  # made once
    assert bulk.threads == 1 and bulk.background() is bulk
    assert bulk.model.backend == "onnx" and bulk.backend == "onnx"
    assert bulk.model.session.get_session_options().intra_op_num_threads == 1
    assert onnx.model.session.get_session_options().intra_op_num_threads == 0  # the question path: every core
    texts = SENTENCES + _long_texts()
    assert np.abs(bulk.encode_passages(texts) - onnx.encode_passages(texts)).max() < 1e-5
    # torch's threads are set for the whole process: sentence-transformers has no separate bulk encoder
    assert torch.background() is torch
    with pytest.raises(ConfigError, match="got -1"):
        Embedder(threads=-1)


def test_a_server_ingest_embeds_through_the_background_embedder(tmp_path: Path) -> None:
    """With a write lock (the server's path), passages and sentences go through the one-thread
    session; the CLI's ingest (no write lock) keeps every core."""
    import threading
    from contextlib import contextmanager

    from assistant.ingest import ingest
    from assistant.store import Store

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Kestrel\n\nThe Kestrel alliance trains welders in Zibo. It opened in 2021.\n")
    embedder = Embedder()
    used: list[int] = []
    bulk = embedder.background()
    real = Embedder.encode_passages

    def spy(self: Embedder, texts, progress=None):  # type: ignore[no-untyped-def]
        used.append(self.threads)
        return real(self, texts, progress)

    lock = threading.Lock()

    @contextmanager
    def write_lock():  # type: ignore[no-untyped-def]
        with lock:
            yield

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Embedder, "encode_passages", spy)
        report = ingest([corpus], Store(tmp_path / "server"), embedder, corpus_root=corpus, write_lock=write_lock)
        assert report.added == 1 and used and set(used) == {bulk.threads} == {1}
        used.clear()
        (corpus / "a.md").write_text("# Kestrel\n\nThe Kestrel alliance trains welders in Zibo. It opened in 2022.\n")
        report = ingest([corpus], Store(tmp_path / "cli"), embedder, corpus_root=corpus)
        assert report.added == 1 and used and set(used) == {0}


def test_a_batch_of_more_queries_than_the_cache_holds(both: tuple[Embedder, Embedder]) -> None:
    onnx, _ = both
    texts = [f"question number {i}" for i in range(embedding.QUERY_CACHE + 20)] + ["question number 3"]
    vectors = onnx.encode_queries(texts)
    assert vectors.shape == (len(texts), 384)
    assert np.allclose(vectors[3], vectors[-1]) and not np.allclose(vectors[3], vectors[4])
    assert np.allclose(vectors[7], onnx.encode_queries(["question number 7"])[0], atol=1e-5)
