"""Settings from flags and environment variables, validated on construction."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .answer import AnswerSettings
from .chunking import ChunkerSettings
from .embedding import DEFAULT_MODEL, EmbeddingSettings
from .errors import ConfigError
from .retrieval import RetrievalSettings


@dataclass(frozen=True)
class LLMSettings:
    """An OpenAI-compatible endpoint for optional answer synthesis."""

    url: str
    model: str = "default"
    api_key: str = "none"
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"LLM url must start with http:// or https://, got {self.url!r}")
        if not 0 < self.timeout <= 600:
            raise ConfigError(f"LLM timeout must be between 0 and 600 seconds, got {self.timeout}")


@dataclass(frozen=True)
class Config:
    """Everything the assistant needs to open an index and answer."""

    index_dir: Path = Path("index")
    corpus_dir: Path = Path("corpus")
    chroma_url: str | None = None
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    chunker: ChunkerSettings = field(default_factory=ChunkerSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    llm: LLMSettings | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Config:
        """Build from ``ASSISTANT_*`` environment variables; keyword overrides (flags) win."""
        env = dict(os.environ) if env is None else env

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else default

        def integer(name: str, default: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError as exc:
                raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc

        llm_url = get("ASSISTANT_LLM_URL")
        values: dict[str, object] = {
            "index_dir": Path(get("ASSISTANT_INDEX", "index") or "index"),
            "corpus_dir": Path(get("ASSISTANT_CORPUS", "corpus") or "corpus"),
            "chroma_url": get("ASSISTANT_CHROMA_URL"),
            "embedding": EmbeddingSettings(
                model=get("ASSISTANT_EMBEDDING_MODEL", DEFAULT_MODEL) or DEFAULT_MODEL,
                query_prefix=get("ASSISTANT_QUERY_PREFIX"),
                passage_prefix=get("ASSISTANT_PASSAGE_PREFIX"),
            ),
            "chunker": ChunkerSettings(max_tokens=integer("ASSISTANT_CHUNK_TOKENS", ChunkerSettings.max_tokens)),
            "retrieval": RetrievalSettings(reranker=get("ASSISTANT_RERANKER")),
            "llm": LLMSettings(
                url=llm_url,
                model=get("ASSISTANT_LLM_MODEL", "default") or "default",
                api_key=get("ASSISTANT_LLM_API_KEY", "none") or "none",
                timeout=float(get("ASSISTANT_LLM_TIMEOUT", "30") or 30),
            )
            if llm_url
            else None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
