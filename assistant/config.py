"""Settings from flags and environment variables, validated on construction.

``Settings`` is the one place that reads ``ASSISTANT_*`` environment variables and the command line's
setting flags (``--index``, ``--port``...); ``check_arguments`` checks the commands' own arguments
(``--k``, the files they read or write). A bad value raises ``ConfigError`` with one line naming the
variable or flag and the value, e.g. ``ASSISTANT_PORT must be an integer between 1 and 65535, got 'abc'``.
Nothing is read at import time: modules that need a setting at run time build it when they need it
(``Settings.from_env(only={"max_file_mb"}).max_file_mb``), so a test or a server sees the current
environment.

``Settings.config()`` turns the flat settings into the ``Config`` an ``Assistant`` runs with.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .answer import AnswerSettings
from .chunking import ChunkerSettings
from .embedding import BACKEND_ALIASES, BACKENDS, DEFAULT_MODEL, EmbeddingSettings
from .errors import ConfigError
from .retrieval import RetrievalSettings

# A parser turns the text of a variable or flag into its value, or raises ValueError with the rule the
# text broke ("must be ..."); the caller adds the name and the value.
Parser = Callable[[str], Any]

ASK_MAX_K = 50  # as the HTTP API's ``k`` (server.AskRequest)
EVAL_MAX_K = 10  # evaluation.metrics.MAX_RANK: hit@k and MRR are computed up to rank 10

_DIGITS = re.compile(r"[+-]?[0-9]+")  # int() would also take "1_000" and non-ASCII digits
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _printable(raw: str, what: str = "must be one line of printable characters") -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in raw):
        raise ValueError(what)
    return raw


def integer(low: int, high: int) -> Parser:
    """An integer in ``[low, high]``."""

    def parse(raw: str) -> int:
        text = raw.strip()
        if not _DIGITS.fullmatch(text) or not low <= int(text) <= high:
            raise ValueError(f"must be an integer between {low} and {high}")
        return int(text)

    return parse


def _finite(raw: str) -> float:
    """``raw`` as a float, NaN when it is none (so the callers' finite range checks reject it)."""
    try:
        return float(raw.strip())
    except ValueError:
        return math.nan


def number(high: float, unit: str) -> Parser:
    """A finite number above 0 and at most ``high`` (float() alone would take "nan", "inf" and "-5")."""

    def parse(raw: str) -> float:
        value = _finite(raw)
        if not (math.isfinite(value) and 0 < value <= high):
            raise ValueError(f"must be a number of {unit} above 0 and at most {high:g}")
        return value

    return parse


def probability(raw: str) -> float:
    """A number from 0 to 1."""
    value = _finite(raw)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError("must be a number between 0 and 1")
    return value


def nonblank(raw: str) -> str:
    """A model id, path or name: not blank, one line."""
    if not raw.strip():
        raise ValueError("must not be blank")
    return _printable(raw)


def one_line(raw: str) -> str:
    """Free text on one line (a prefix: its spaces matter, so nothing is stripped)."""
    return _printable(raw)


def embedding_backend(raw: str) -> str:
    """How the default model runs: "auto", "onnx" or "sentence-transformers" ("torch" is another name
    for the last); case and surrounding spaces do not matter."""
    value = BACKEND_ALIASES.get(raw.strip().lower())
    if value is None or value not in BACKENDS:
        raise ValueError(f"must be one of {', '.join(BACKENDS)}")
    return value


def token(raw: str) -> str:
    """An API key: no spaces or line breaks (a pasted key often ends with one)."""
    if not raw or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in raw):
        raise ValueError("must be one word without spaces or line breaks")
    return raw


def password(raw: str) -> str | None:
    """A staff password; blank means none (management off), as it always did."""
    if not raw.strip():
        return None
    return _printable(raw, "must be one line of printable characters")


def url(schemeless: bool = False) -> Parser:
    """An http:// or https:// URL with a host (and a valid port, if any)."""

    def parse(raw: str) -> str:
        rule = "must be an http:// or https:// URL, e.g. http://127.0.0.1:8000"
        if not raw or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in raw):
            raise ValueError(rule)
        # The Chroma client always took "host:port" as http://host:port (store.parse_chroma_url); keep that.
        parsed = urlparse(f"http://{raw}" if schemeless and "://" not in raw else raw)
        try:
            port_ok = parsed.port is None or parsed.port > 0
        except ValueError:
            port_ok = False
        if parsed.scheme not in ("http", "https") or not parsed.hostname or not port_ok:
            raise ValueError(rule)
        return raw

    return parse


def host_name(raw: str) -> str:
    """An IP address or a host name (what uvicorn can bind)."""
    try:
        ipaddress.ip_address(raw)
        return raw
    except ValueError:
        pass
    labels = raw[:-1].split(".") if raw.endswith(".") else raw.split(".")
    if not raw or len(raw) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError("must be an IP address or a host name, e.g. 127.0.0.1 or 0.0.0.0")
    return raw


def host_names(raw: str) -> str:
    """Host names clients may address the server by, comma-separated: ``*`` (any), a name, or
    ``.example.edu`` (that name and its subdomains). Given back normalized (lower case, no spaces)."""
    names = [n for n in (n.strip().lower().rstrip(".") for n in raw.split(",")) if n]
    for name in names:
        if name != "*":
            try:
                host_name(name[1:] if name.startswith(".") else name)
            except ValueError:
                raise ValueError("must be host names separated by commas, e.g. assistant.example.edu, "
                                 "or *") from None
    return ",".join(names)


def ip_networks(raw: str) -> str:
    """IP addresses or networks, comma-separated (``127.0.0.1``, ``10.0.0.0/8``). Given back normalized."""
    items = [n.strip() for n in raw.split(",") if n.strip()]
    try:
        return ",".join(str(ipaddress.ip_network(n, strict=False)) if "/" in n else str(ipaddress.ip_address(n))
                        for n in items)
    except ValueError:
        raise ValueError("must be IP addresses or networks separated by commas, e.g. 127.0.0.1 or "
                         "10.0.0.0/8") from None


def directory(raw: str) -> Path:
    """A directory, existing or to be created (the file system is not looked at: the index and
    corpus may not exist yet, and ``Store`` reports a file where a directory should be)."""
    if not raw.strip():
        raise ValueError("must not be blank")
    return Path(_printable(raw)).expanduser()


def existing_file(raw: str) -> Path:
    """A file that exists."""
    path = Path(raw).expanduser()
    if not raw.strip() or not path.is_file():
        raise ValueError("must be an existing file")
    return path


def existing_directory(raw: str) -> Path:
    """A directory that exists."""
    path = Path(raw).expanduser()
    if not raw.strip() or not path.is_dir():
        raise ValueError("must be an existing directory")
    return path


def output_file(raw: str) -> Path:
    """A file to write: its directory exists (checked before a long run, not after it)."""
    path = Path(raw).expanduser()
    if not raw.strip() or path.is_dir() or not path.parent.is_dir():
        raise ValueError("must be a file in an existing directory")
    return path


def message(label: str, raw: object, rule: str, secret: bool = False) -> str:
    """``LABEL rule, got 'value'``; a secret's value is not repeated (it would land in logs)."""
    if secret:
        return f"{label} {rule}, got a value of {len(str(raw))} characters (not shown)"
    return f"{label} {rule}, got {raw!r}"


def parse_value(label: str, raw: str, parse: Parser, secret: bool = False) -> Any:
    """``parse(raw)``, or ``ConfigError`` naming ``label`` and the value."""
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(message(label, raw, str(exc), secret)) from None


@dataclass(frozen=True)
class Spec:
    """Where one setting comes from: its environment variable, its flag, its default (as the README
    shows it) and its parser."""

    env: str
    default: str | None
    parse: Parser
    flag: str | None = None
    secret: bool = False


def _setting(env: str, default: str | None, parse: Parser, flag: str | None = None, secret: bool = False) -> Any:
    # The field's default is the README's text; __post_init__ parses it on construction, never at
    # import ("~/.cache/assistant" is expanded for the user running it).
    return field(default=default, metadata={"spec": Spec(env, default, parse, flag, secret)})


@dataclass(frozen=True)
class Settings:
    """Every ``ASSISTANT_*`` environment variable and setting flag, parsed and validated.

    Build it with ``Settings.from_env()`` (flags win over variables); constructing it directly
    validates the values too. None means "not set" (off, or chosen elsewhere).
    """

    index: Path = _setting("ASSISTANT_INDEX", "index", directory, "--index")
    corpus: Path = _setting("ASSISTANT_CORPUS", "corpus", directory, "--corpus")
    chroma_url: str | None = _setting("ASSISTANT_CHROMA_URL", None, url(schemeless=True), "--chroma-url")
    embedding_model: str = _setting("ASSISTANT_EMBEDDING_MODEL", DEFAULT_MODEL, nonblank, "--model")
    query_prefix: str | None = _setting("ASSISTANT_QUERY_PREFIX", None, one_line)
    passage_prefix: str | None = _setting("ASSISTANT_PASSAGE_PREFIX", None, one_line)
    embedding_backend: str = _setting("ASSISTANT_EMBEDDING_BACKEND", "auto", embedding_backend)
    chunk_tokens: int = _setting("ASSISTANT_CHUNK_TOKENS", "200", integer(16, 4096))  # ChunkerSettings' range
    chunk_tokens_zh: int = _setting("ASSISTANT_CHUNK_TOKENS_ZH", "300", integer(16, 4096))
    answerability_threshold: float | None = _setting("ASSISTANT_ANSWERABILITY_THRESHOLD", None, probability)
    reranker: str | None = _setting("ASSISTANT_RERANKER", None, nonblank, "--reranker")
    llm_url: str | None = _setting("ASSISTANT_LLM_URL", None, url(), "--llm-url")
    llm_model: str = _setting("ASSISTANT_LLM_MODEL", "default", nonblank, "--llm-model")
    llm_api_key: str = _setting("ASSISTANT_LLM_API_KEY", "none", token, secret=True)
    llm_timeout: float = _setting("ASSISTANT_LLM_TIMEOUT", "30", number(600, "seconds"))
    host: str = _setting("ASSISTANT_HOST", "127.0.0.1", host_name, "--host")
    port: int = _setting("ASSISTANT_PORT", "7860", integer(1, 65535), "--port")
    allowed_hosts: str | None = _setting("ASSISTANT_ALLOWED_HOSTS", None, host_names)
    trusted_proxies: str | None = _setting("ASSISTANT_TRUSTED_PROXIES", None, ip_networks)
    events_per_minute: int = _setting("ASSISTANT_EVENTS_PER_MINUTE", "30", integer(1, 1_000_000))
    questions_at_once: int = _setting("ASSISTANT_QUESTIONS_AT_ONCE", "4", integer(1, 10_000))
    new_sessions: int = _setting("ASSISTANT_NEW_SESSIONS_PER_10_MINUTES", "200", integer(1, 1_000_000))
    admin_password: str | None = _setting("ASSISTANT_ADMIN_PASSWORD", None, password, secret=True)
    max_file_mb: float = _setting("ASSISTANT_MAX_FILE_MB", "20", number(1024, "megabytes"))
    cache_dir: Path = _setting("ASSISTANT_CACHE_DIR", "~/.cache/assistant", directory)
    cedict_path: Path | None = _setting("ASSISTANT_CEDICT_PATH", None, existing_file)

    def __post_init__(self) -> None:
        # Defaults and values given directly (not through from_env) meet the same rules: every value
        # is parsed from its text (re-parsing a parsed value gives it back unchanged).
        errors = []
        for f in fields(self):
            spec: Spec = f.metadata["spec"]
            value = getattr(self, f.name)
            if value is None:
                if spec.default is not None:
                    errors.append(message(spec.env, value, "must be set", spec.secret))
                continue
            try:
                object.__setattr__(self, f.name, spec.parse(str(value)))
            except ValueError as exc:
                errors.append(message(spec.env, value, str(exc), spec.secret))
        if errors:
            raise ConfigError("; ".join(errors))

    @classmethod
    def specs(cls) -> dict[str, Spec]:
        """Field name -> where it comes from (for the README table and its test)."""
        return {f.name: f.metadata["spec"] for f in fields(cls)}

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        flags: Mapping[str, object] | None = None,
        only: Collection[str] | None = None,
    ) -> Settings:
        """Read ``env`` (default ``os.environ``) and ``flags`` (field name -> flag value; None: not given).

        An empty variable counts as unset (as it always did). ``only`` reads just those fields (the rest
        keep their defaults): for code that needs one setting, which an unrelated bad variable must
        not break. Every bad value is reported, in one line.
        """
        env = os.environ if env is None else env
        flags = flags or {}
        specs = cls.specs()
        unknown = (set(flags) | set(only or ())) - set(specs)
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        values: dict[str, Any] = {}
        errors: list[str] = []
        for key, spec in specs.items():
            if only is not None and key not in only:
                continue
            flag_value = flags.get(key)
            if flag_value is not None:
                label, raw = spec.flag or key, str(flag_value)
            else:
                label, raw = spec.env, env.get(spec.env, "")
                if raw == "":
                    continue
            try:
                values[key] = spec.parse(raw)
            except ValueError as exc:
                errors.append(message(label, raw, str(exc), spec.secret))
        if errors:
            raise ConfigError("; ".join(errors))
        return cls(**values)

    @property
    def max_file_bytes(self) -> int:
        """Files larger than this are reported and skipped, never read."""
        return int(self.max_file_mb * 1024 * 1024)

    def config(self) -> Config:
        """The ``Config`` an ``Assistant`` runs with."""
        return Config(
            index_dir=self.index,
            corpus_dir=self.corpus,
            chroma_url=self.chroma_url,
            embedding=EmbeddingSettings(
                model=self.embedding_model,
                query_prefix=self.query_prefix,
                passage_prefix=self.passage_prefix,
                backend=self.embedding_backend,
            ),
            chunker=ChunkerSettings(max_tokens=self.chunk_tokens, max_tokens_zh=self.chunk_tokens_zh),
            retrieval=RetrievalSettings(reranker=self.reranker),
            answer=AnswerSettings(answerability_threshold=self.answerability_threshold),
            llm=LLMSettings(self.llm_url, self.llm_model, self.llm_api_key, self.llm_timeout) if self.llm_url else None,
        )


def check_arguments(args: argparse.Namespace) -> None:
    """Parse and check a command's own arguments in place: ``--k`` and the files it reads or writes.

    Setting flags (``--index``, ``--port``...) are ``Settings``' business; this covers the rest.
    """
    command = getattr(args, "command", None)
    if command == "ingest" and getattr(args, "defer", False) and not args.if_missing:
        raise ConfigError("--defer goes with --if-missing: it says which of the updates --if-missing makes wait")
    checks: list[tuple[str, str, Parser]] = []
    if command == "ask":
        checks.append(("k", "--k", integer(1, ASK_MAX_K)))
    if command == "eval":
        checks += [
            ("gold", "GOLD", existing_file),
            ("k", "--k", integer(1, EVAL_MAX_K)),
            ("ingest", "--ingest", existing_directory),
            ("out", "--out", output_file),
            ("records", "--records", output_file),
            ("html", "--html", output_file),
        ]
    for attr, label, parse in checks:
        raw = getattr(args, attr, None)
        if raw is not None:
            setattr(args, attr, parse_value(label, str(raw), parse))


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
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Config:
        """Build from ``ASSISTANT_*`` environment variables (``Settings``); keyword overrides win."""
        base = Settings.from_env(env).config()
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
