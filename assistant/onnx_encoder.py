"""The default embedding model through ONNX Runtime and ``tokenizers``: embeddings without torch.

Importing sentence-transformers costs seconds (torch, transformers, scikit-learn) before the first
question can be embedded; ONNX Runtime and the ``tokenizers`` library load in a fraction of that. The
ONNX graph is exported once from the packaged model's own weights (the BERT encoder, mean pooling over
the attention mask and L2 normalization: what sentence-transformers computes for all-MiniLM-L6-v2) by
a child process that imports torch (``python -m assistant.onnx_encoder SRC DEST``), so the process
asking questions never does. It is cached as ``<cache>/onnx/<model>-<hash>-e<recipe>/model.onnx``:
the hash covers every file of the model directory, so a changed model is exported again, never used
stale. Tokenization is the model's ``tokenizer.json`` with truncation at the model's
``max_seq_length`` and padding to the longest text of a batch, as sentence-transformers does.

Anything this module cannot handle raises ``OnnxUnavailable``; ``embedding.Embedder`` then falls back
to sentence-transformers with a one-line warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_atomic

EXPORT_RECIPE = 1  # bump when the exported graph changes: the cache folder name carries it
ONNX_FILE = "model.onnx"
_EXPORT_TIMEOUT = 900.0  # seconds; importing torch on a loaded 2-core machine takes a while
_HASH_MEMO = "hashes.json"
_SKIP_FILES = {"README.md", ".gitattributes"}


class OnnxUnavailable(Exception):
    """The ONNX path cannot serve this model here (unsupported layout, failed export, broken file)."""


# --------------------------------------------------------------------------- what the model is


def model_layout(model_dir: Path) -> dict[str, Any]:
    """Check that ``model_dir`` is a Transformer → mean Pooling → Normalize model and describe it.

    Returns ``max_seq_length``, ``dimension`` and the pad token; raises ``OnnxUnavailable`` for any
    other layout (CLS or max pooling, a Dense layer, no ``tokenizer.json``, lower-casing done by
    sentence-transformers itself...), which the exported graph would not reproduce.
    """

    def read(name: str) -> Any:
        try:
            return json.loads((model_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OnnxUnavailable(f"cannot read {name} of {model_dir} ({type(exc).__name__})") from exc

    modules = read("modules.json")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"]):
        raise OnnxUnavailable(f"unsupported module layout {kinds}")
    normalize = kinds[-1] == "Normalize"
    pooling = read(f"{modules[1].get('path') or '1_Pooling'}/config.json")
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        raise OnnxUnavailable(f"unsupported pooling {sorted(modes)}")
    st_config = read("sentence_bert_config.json")
    if st_config.get("do_lower_case"):
        raise OnnxUnavailable("sentence-transformers lower-casing is not reproduced")
    config = read("config.json")
    if not (model_dir / "tokenizer.json").is_file():
        raise OnnxUnavailable("no tokenizer.json")
    limit = min(int(st_config.get("max_seq_length") or 512), int(config.get("max_position_embeddings") or 512))
    return {
        "max_seq_length": limit,
        "dimension": int(pooling.get("word_embedding_dimension") or config["hidden_size"]),
        "normalize": normalize,
        "model_type": config.get("model_type"),
    }


def _model_files(model_dir: Path) -> list[Path]:
    return sorted(
        p for p in model_dir.rglob("*") if p.is_file() and p.name not in _SKIP_FILES and "__pycache__" not in p.parts
    )


def model_hash(model_dir: Path, memo_dir: Path | None = None) -> str:
    """SHA-256 over the model directory's files (names and contents), as 16 hex digits.

    Hashing the 90 MB of weights takes ~0.2 s, so the result is remembered in ``memo_dir`` keyed on
    every file's name, size and modification time: a start-up only stats the files, and any change to
    one of them (a reinstalled or edited model) computes the content hash again.
    """
    files = _model_files(model_dir)
    stamp = [[str(p.relative_to(model_dir)), st.st_size, st.st_mtime_ns] for p in files for st in [p.stat()]]
    memo_file = memo_dir / _HASH_MEMO if memo_dir is not None else None
    key = str(model_dir.resolve())
    memo: dict[str, Any] = {}
    if memo_file is not None:
        try:
            memo = json.loads(memo_file.read_text(encoding="utf-8"))
            entry = memo.get(key)
            if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
                return str(entry["sha256"])
        except (OSError, ValueError, AttributeError):
            memo = {}
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(model_dir)).encode() + b"\0")
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    value = digest.hexdigest()[:16]
    if memo_file is not None:
        memo = memo if isinstance(memo, dict) else {}
        memo[key] = {"stamp": stamp, "sha256": value}
        try:
            write_atomic(memo_file, json.dumps(memo, indent=1).encode())
        except OSError:
            pass  # a read-only cache only costs the hashing again
    return value


def onnx_path(model_dir: Path, cache_dir: Path, name: str) -> Path:
    """Where the export of ``model_dir`` lives (its folder name carries the model hash and the recipe)."""
    root = cache_dir / "onnx"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64]
    return root / f"{safe}-{model_hash(model_dir, root)}-e{EXPORT_RECIPE}" / ONNX_FILE


# --------------------------------------------------------------------------- the export (child process)


def export(model_dir: Path, target: Path) -> None:
    """Export ``model_dir`` to ``target`` (atomically). Imports torch: runs in the child process."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    layout = model_layout(model_dir)
    # Eager attention traces to plain ONNX ops with a dynamic sequence length.
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            tokens = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            # sentence_transformers.models.Pooling (mean) and Normalize, in the same order of operations.
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            summed = (tokens * mask).sum(1)
            counts = mask.sum(1).clamp(min=1e-9)
            pooled = summed / counts
            if layout["normalize"]:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return pooled

    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    args = (ids, (ids != 0).long(), torch.zeros_like(ids))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["sentence_embedding"] = {0: "batch"}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".model-", suffix=".onnx")
    os.close(fd)
    try:
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Pooled(model),
                args,
                tmp,
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        meta = {"recipe": EXPORT_RECIPE, "source": str(model_dir), "torch": torch.__version__, **layout}
        (target.parent / "export.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared like the model is
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run_export(model_dir: Path, target: Path) -> None:
    """Export in a child process (torch stays out of this one); ``OnnxUnavailable`` with its last line."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "assistant.onnx_encoder", str(model_dir), str(target)],
            capture_output=True,
            text=True,
            timeout=_EXPORT_TIMEOUT,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OnnxUnavailable(f"export did not run ({type(exc).__name__}: {exc})") from exc
    if proc.returncode != 0 or not target.is_file():
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        raise OnnxUnavailable(f"export failed ({lines[-1] if lines else f'exit code {proc.returncode}'})")


def ensure_export(model_dir: Path, cache_dir: Path, name: str) -> Path:
    """The cached ONNX file of ``model_dir``, exported first if missing (one process at a time)."""
    model_layout(model_dir)
    target = onnx_path(model_dir, cache_dir, name)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = open(target.parent / ".export.lock", "a+")  # noqa: SIM115 - held across the export
    except OSError as exc:
        raise OnnxUnavailable(f"cache folder {target.parent} is not writable ({exc.strerror})") from exc
    with lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # another process exporting the same model: wait for it
        except (ImportError, OSError):
            pass
        if not target.is_file():
            _run_export(model_dir, target)
    return target


# --------------------------------------------------------------------------- the encoder


class OnnxEncoder:
    """Sentence embeddings from an exported model; ``encode`` mirrors ``SentenceTransformer.encode``."""

    backend = "onnx"

    def __init__(self, model_dir: Path, onnx_file: Path, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        layout = model_layout(model_dir)
        self.model_dir = model_dir
        self.onnx_file = onnx_file
        self.max_seq_length: int = layout["max_seq_length"]
        self._dimension: int = layout["dimension"]
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        padding = tokenizer.padding or {}
        pad_token = str(padding.get("pad_token") or "[PAD]")
        pad_id = tokenizer.token_to_id(pad_token)
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)  # to the longest
        self.tokenizer = tokenizer
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        # No busy-waiting between operators: on a shared 2-core machine it burns CPU others need, and
        # measured no slower (bench: 29.5 vs 26.8 chunks/s with spinning, sentence-transformers 22.3).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a broken file
            raise OnnxUnavailable(f"cannot load {onnx_file} ({type(exc).__name__})") from exc
        self._inputs = {i.name for i in self.session.get_inputs()}
        self._lock = threading.Lock()  # tokenizers' padding settings are per object; keep calls serial

    def get_sentence_embedding_dimension(self) -> int:
        return self._dimension

    get_embedding_dimension = get_sentence_embedding_dimension

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            encodings = self.tokenizer.encode_batch(list(texts))
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return {k: v for k, v in feeds.items() if k in self._inputs}

    def encode(
        self,
        sentences: Sequence[str] | str,
        batch_size: int = 32,
        normalize_embeddings: bool = True,
        convert_to_numpy: bool = True,
        show_progress_bar: bool = False,
        **_: Any,
    ) -> np.ndarray:
        """Embed ``sentences`` in batches of ``batch_size`` (in the given order), as float32 rows."""
        single = isinstance(sentences, str)
        texts: list[str] = [sentences] if isinstance(sentences, str) else list(sentences)
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        out = []
        for b in range(0, len(texts), batch_size):
            (vectors,) = self.session.run(None, self.tokenize(texts[b : b + batch_size]))
            out.append(np.asarray(vectors, dtype=np.float32))
        result = np.concatenate(out)
        if normalize_embeddings:
            norms = np.linalg.norm(result, axis=1, keepdims=True)
            result = result / np.maximum(norms, 1e-12)
        return result[0] if single else result


def load(model_dir: Path, cache_dir: Path, name: str, threads: int = 0) -> OnnxEncoder:
    """The ONNX encoder of ``model_dir``: exported on first use, re-exported once if the cached file is broken.
    ``threads``: ONNX Runtime's intra-op threads (0: its default, one per core)."""
    target = ensure_export(model_dir, cache_dir, name)
    try:
        return OnnxEncoder(model_dir, target, threads=threads)
    except OnnxUnavailable:
        target.unlink(missing_ok=True)
        return OnnxEncoder(model_dir, ensure_export(model_dir, cache_dir, name), threads=threads)


def main(argv: list[str] | None = None) -> int:
    """``python -m assistant.onnx_encoder MODEL_DIR TARGET``: the export, run by ``ensure_export``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m assistant.onnx_encoder MODEL_DIR TARGET.onnx", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        export(Path(args[0]), Path(args[1]))
    except Exception as exc:  # reported to the parent as one line
        print(f"{type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
