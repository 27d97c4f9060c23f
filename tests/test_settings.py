"""Settings: every ``ASSISTANT_*`` variable and setting flag parsed and validated in one place.

A bad value is refused with one line naming the variable (or flag) and the value, exit code 2, never
a traceback: checked for every variable through the real CLI in a subprocess, and for the command
line's own arguments. The README's configuration table is compared with the settings object.

The module imports only what existed before ``config.Settings`` (and reaches ``Settings`` through the
module at run time), so the CLI tests run, and fail, against code without it.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, cli_env

from assistant import config
from assistant.errors import ConfigError

PORT_RULE = "must be an integer between 1 and 65535"
MB_RULE = "must be a number of megabytes above 0 and at most 1024"
TIMEOUT_RULE = "must be a number of seconds above 0 and at most 600"
TOKENS_RULE = "must be an integer between 16 and 4096"
HOST_RULE = "must be an IP address or a host name, e.g. 127.0.0.1 or 0.0.0.0"
URL_RULE = "must be an http:// or https:// URL, e.g. http://127.0.0.1:8000"
LINE_RULE = "must be one line of printable characters"

# (variable, bad value, the rule the message gives). Secrets (API key, password) are named, not shown.
BAD_ENV: list[tuple[str, str, str]] = [
    ("ASSISTANT_INDEX", "   ", "must not be blank"),
    ("ASSISTANT_CORPUS", " ", "must not be blank"),
    ("ASSISTANT_CHROMA_URL", "ftp://127.0.0.1:8000", URL_RULE),
    ("ASSISTANT_CHROMA_URL", "localhost:99999", URL_RULE),
    ("ASSISTANT_EMBEDDING_MODEL", "  ", "must not be blank"),
    ("ASSISTANT_QUERY_PREFIX", "query:\n", LINE_RULE),
    ("ASSISTANT_PASSAGE_PREFIX", "passage:\t", LINE_RULE),
    ("ASSISTANT_EMBEDDING_BACKEND", "tensorflow", "must be one of auto, onnx, sentence-transformers"),
    ("ASSISTANT_CHUNK_TOKENS", "abc", TOKENS_RULE),
    ("ASSISTANT_CHUNK_TOKENS", "0", TOKENS_RULE),
    ("ASSISTANT_CHUNK_TOKENS", "-3", TOKENS_RULE),
    ("ASSISTANT_CHUNK_TOKENS", "200.5", TOKENS_RULE),
    ("ASSISTANT_ANSWERABILITY_THRESHOLD", "1.5", "must be a number between 0 and 1"),
    ("ASSISTANT_ANSWERABILITY_THRESHOLD", "nan", "must be a number between 0 and 1"),
    ("ASSISTANT_ANSWERABILITY_THRESHOLD", "-0.1", "must be a number between 0 and 1"),
    ("ASSISTANT_CHUNK_TOKENS", "99999", TOKENS_RULE),
    ("ASSISTANT_CHUNK_TOKENS_ZH", "15", TOKENS_RULE),
    ("ASSISTANT_CHUNK_TOKENS_ZH", "四百", TOKENS_RULE),
    ("ASSISTANT_RERANKER", "  ", "must not be blank"),
    ("ASSISTANT_LLM_URL", "ftp://llm.example/v1", URL_RULE),
    ("ASSISTANT_LLM_URL", "localhost:8080/v1", URL_RULE),
    ("ASSISTANT_LLM_URL", "http://", URL_RULE),
    ("ASSISTANT_LLM_MODEL", " ", "must not be blank"),
    ("ASSISTANT_LLM_API_KEY", "sk-secret-123\n", "must be one word without spaces or line breaks"),
    ("ASSISTANT_LLM_TIMEOUT", "abc", TIMEOUT_RULE),
    ("ASSISTANT_LLM_TIMEOUT", "nan", TIMEOUT_RULE),
    ("ASSISTANT_LLM_TIMEOUT", "-1", TIMEOUT_RULE),
    ("ASSISTANT_LLM_TIMEOUT", "0", TIMEOUT_RULE),
    ("ASSISTANT_LLM_TIMEOUT", "inf", TIMEOUT_RULE),
    ("ASSISTANT_HOST", "not a host", HOST_RULE),
    ("ASSISTANT_HOST", "-bad-.example", HOST_RULE),
    ("ASSISTANT_ALLOWED_HOSTS", "assistant.example.edu evil", "must be host names separated by commas, e.g. "
     "assistant.example.edu, or *"),
    ("ASSISTANT_ALLOWED_HOSTS", "https://assistant.example.edu", "must be host names separated by commas, e.g. "
     "assistant.example.edu, or *"),
    ("ASSISTANT_TRUSTED_PROXIES", "nginx", "must be IP addresses or networks separated by commas, e.g. "
     "127.0.0.1 or 10.0.0.0/8"),
    ("ASSISTANT_TRUSTED_PROXIES", "10.0.0.0/33", "must be IP addresses or networks separated by commas, e.g. "
     "127.0.0.1 or 10.0.0.0/8"),
    ("ASSISTANT_EVENTS_PER_MINUTE", "0", "must be an integer between 1 and 1000000"),
    ("ASSISTANT_QUESTIONS_AT_ONCE", "four", "must be an integer between 1 and 10000"),
    ("ASSISTANT_NEW_SESSIONS_PER_10_MINUTES", "-5", "must be an integer between 1 and 1000000"),
    ("ASSISTANT_PORT", "abc", PORT_RULE),
    ("ASSISTANT_PORT", "0", PORT_RULE),
    ("ASSISTANT_PORT", "99999", PORT_RULE),
    ("ASSISTANT_PORT", "80.5", PORT_RULE),
    ("ASSISTANT_ADMIN_PASSWORD", "hunter2\n", LINE_RULE),
    ("ASSISTANT_MAX_FILE_MB", "abc", MB_RULE),
    ("ASSISTANT_MAX_FILE_MB", "nan", MB_RULE),
    ("ASSISTANT_MAX_FILE_MB", "inf", MB_RULE),
    ("ASSISTANT_MAX_FILE_MB", "-5", MB_RULE),
    ("ASSISTANT_MAX_FILE_MB", "0", MB_RULE),
    ("ASSISTANT_MAX_FILE_MB", "2048", MB_RULE),
    ("ASSISTANT_CACHE_DIR", "  ", "must not be blank"),
    ("ASSISTANT_CEDICT_PATH", "/nonexistent/cedict_ts.u8", "must be an existing file"),
]
SECRETS = {"ASSISTANT_LLM_API_KEY", "ASSISTANT_ADMIN_PASSWORD"}
GOLD = REPO / "eval" / "gold.jsonl"


def expected_message(name: str, value: str) -> str:
    rule = next(rule for var, bad, rule in BAD_ENV if var == name and bad == value)
    if name in SECRETS:
        return f"{name} {rule}, got a value of {len(value)} characters (not shown)"
    return f"{name} {rule}, got {value!r}"


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    """``python -m assistant.cli ARGS`` in a subprocess, with ``env`` added to the test environment."""
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *map(str, args)],
        cwd=cwd,
        env={**cli_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_refused(proc: Any, message: str) -> None:
    """Exit code 2 and exactly one line on stderr, ``error: MESSAGE``; no traceback, nothing on stdout."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.stderr.splitlines() == [f"error: {message}"], proc.stderr
    assert proc.stdout == ""


# --------------------------------------------------------------------------- every variable, real CLI


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, v, _ in BAD_ENV], ids=lambda x: repr(x)[:24])
def test_bad_variable_stops_the_cli_with_one_line(name: str, value: str, tmp_path: Path) -> None:
    # ``docs`` on a missing index (./index in tmp_path) would also exit 2, with another message: the
    # message is what counts. No --index: it would hide ASSISTANT_INDEX.
    proc = run("docs", cwd=tmp_path, env={name: value})
    assert_refused(proc, expected_message(name, value))
    if name in SECRETS:
        assert value.strip() not in proc.stderr  # a secret is never echoed
    else:
        assert repr(value) in proc.stderr
    assert not (tmp_path / "index").exists()


@pytest.mark.parametrize(
    "command",
    [["ingest"], ["docs"], ["ask", "what is it?"], ["chat"], ["eval", GOLD], ["serve"]],
    ids=lambda c: c[0],
)
def test_bad_port_is_reported_by_every_command(command: list[str | Path], tmp_path: Path) -> None:
    """Every command validates every setting (a broken environment is reported at once, not when a
    command happens to use it), cleanly: ASSISTANT_PORT=abc used to crash all six with a traceback."""
    proc = run(*command, "--index", tmp_path / "index", cwd=tmp_path, env={"ASSISTANT_PORT": "abc"})
    assert_refused(proc, "ASSISTANT_PORT must be an integer between 1 and 65535, got 'abc'")


def test_two_bad_variables_are_both_named_in_one_line(tmp_path: Path) -> None:
    env = {"ASSISTANT_PORT": "abc", "ASSISTANT_MAX_FILE_MB": "nan"}
    proc = run("docs", "--index", tmp_path / "index", cwd=tmp_path, env=env)
    assert_refused(
        proc,
        f"ASSISTANT_PORT {PORT_RULE}, got 'abc'; ASSISTANT_MAX_FILE_MB {MB_RULE}, got 'nan'",
    )


def test_every_variable_has_a_bad_value_test() -> None:
    names = {spec.env for spec in config.Settings.specs().values()}
    assert {name for name, _, _ in BAD_ENV} == names


# --------------------------------------------------------------------------- bad arguments, real CLI


@pytest.fixture(scope="module")
def empty_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index built by ``ingest`` from an empty corpus (fast: nothing to embed)."""
    base = tmp_path_factory.mktemp("empty-index")
    (base / "corpus").mkdir()
    proc = run("ingest", "--index", base / "index", "--corpus", base / "corpus", cwd=base)
    assert proc.returncode == 0, proc.stderr
    return base / "index"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "/nope.jsonl"], "GOLD must be an existing file, got '/nope.jsonl'"),
        (["eval", GOLD, "--k", "0"], "--k must be an integer between 1 and 10, got '0'"),
        (["eval", GOLD, "--k", "11"], "--k must be an integer between 1 and 10, got '11'"),
        (
            ["eval", GOLD, "--out", "/nonexistent-dir/r.json"],
            "--out must be a file in an existing directory, got '/nonexistent-dir/r.json'",
        ),
        (["ask", "what?", "--k", "-5"], "--k must be an integer between 1 and 50, got '-5'"),
        (["ask", "what?", "--k", "0"], "--k must be an integer between 1 and 50, got '0'"),
        (["ask", "what?", "--k", "abc"], "--k must be an integer between 1 and 50, got 'abc'"),
        (["ask", "what?", "--k", "51"], "--k must be an integer between 1 and 50, got '51'"),
        (["serve", "--port", "99999"], "--port must be an integer between 1 and 65535, got '99999'"),
        (["serve", "--port", "0"], "--port must be an integer between 1 and 65535, got '0'"),
        (["serve", "--host", "a host"], f"--host {HOST_RULE}, got 'a host'"),
        (["docs", "--chroma-url", "ftp://x:1"], f"--chroma-url {URL_RULE}, got 'ftp://x:1'"),
        (["ask", "what?", "--llm-url", "file:///etc/passwd"], f"--llm-url {URL_RULE}, got 'file:///etc/passwd'"),
        (["docs", "--model", " "], "--model must not be blank, got ' '"),
        (["ask"], "the following arguments are required: question (see assistant ask --help)"),
        (["ask", "what?", "--nope"], "unrecognized arguments: --nope (see assistant --help)"),
    ],
    ids=lambda x: " ".join(map(str, x))[:40] if isinstance(x, list) else None,
)
def test_bad_argument_is_refused_with_one_line(args: list[str | Path], message: str, empty_index: Path) -> None:
    proc = run(*args, "--index", empty_index, cwd=empty_index.parent)
    assert_refused(proc, message)


def test_flag_wins_over_its_variable_and_is_named(tmp_path: Path) -> None:
    proc = run("serve", "--port", "99999", cwd=tmp_path, env={"ASSISTANT_PORT": "7860"})
    assert_refused(proc, "--port must be an integer between 1 and 65535, got '99999'")


def test_read_only_command_on_a_missing_index_says_so(tmp_path: Path) -> None:
    typo = tmp_path / "typo"
    for command in (["docs"], ["ask", "what?"], ["chat"], ["eval", GOLD]):
        proc = run(*command, "--index", typo, cwd=tmp_path)
        assert_refused(
            proc,
            f"no index at {typo}: run `assistant ingest` to build it, "
            "or point --index / ASSISTANT_INDEX at an existing index",
        )
        assert not typo.exists()  # not silently created


def test_ingest_still_creates_a_missing_index_and_docs_then_reads_it(empty_index: Path) -> None:
    assert (empty_index / "chroma").is_dir()
    proc = run("docs", "--json", "--index", empty_index, cwd=empty_index.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_imports_read_no_setting(tmp_path: Path) -> None:
    """Bad values break no import: settings are read when used (documents.py read one at import)."""
    env = {**cli_env(), "ASSISTANT_MAX_FILE_MB": "abc", "ASSISTANT_PORT": "abc", "ASSISTANT_CACHE_DIR": " "}
    code = "import assistant.cli, assistant.config, assistant.documents, assistant.translate, assistant.server"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- the settings object


def test_defaults_are_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    s = config.Settings.from_env({})
    assert s == config.Settings()
    assert (s.index, s.corpus, s.chroma_url) == (Path("index"), Path("corpus"), None)
    assert (s.embedding_model, s.query_prefix, s.passage_prefix) == ("all-MiniLM-L6-v2", None, None)
    assert s.embedding_backend == "auto"
    assert s.config().embedding.backend == "auto"
    assert s.chunk_tokens == 200
    assert s.reranker is None
    assert (s.llm_url, s.llm_model, s.llm_api_key, s.llm_timeout) == (None, "default", "none", 30.0)
    assert (s.host, s.port, s.admin_password) == ("127.0.0.1", 7860, None)
    assert (s.max_file_mb, s.max_file_bytes) == (20.0, 20 * 1024 * 1024)
    assert (s.cache_dir, s.cedict_path) == (Path("/home/someone/.cache/assistant"), None)


def test_good_values_parse(tmp_path: Path) -> None:
    cedict = tmp_path / "cedict.u8"
    cedict.write_text("# empty\n", encoding="utf-8")
    env = {
        "ASSISTANT_INDEX": "/srv/index",
        "ASSISTANT_CORPUS": "/srv/corpus",
        "ASSISTANT_CHROMA_URL": "chroma.internal:8000",  # no scheme: http, as store.parse_chroma_url takes it
        "ASSISTANT_EMBEDDING_MODEL": "intfloat/multilingual-e5-small",
        "ASSISTANT_QUERY_PREFIX": "query: ",
        "ASSISTANT_PASSAGE_PREFIX": "passage: ",
        "ASSISTANT_EMBEDDING_BACKEND": " Torch ",  # another name of sentence-transformers; case and spaces ignored
        "ASSISTANT_CHUNK_TOKENS": " 128 ",
        "ASSISTANT_RERANKER": "cross-encoder/ms-marco-MiniLM-L-6-v2",
        "ASSISTANT_LLM_URL": "https://llm.example:8443/v1",
        "ASSISTANT_LLM_MODEL": "qwen2.5",
        "ASSISTANT_LLM_API_KEY": "sk-abc123",
        "ASSISTANT_LLM_TIMEOUT": "2.5",
        "ASSISTANT_HOST": "::",
        "ASSISTANT_PORT": "8080",
        "ASSISTANT_ADMIN_PASSWORD": "correct horse battery staple",
        "ASSISTANT_MAX_FILE_MB": "0.5",
        "ASSISTANT_CACHE_DIR": str(tmp_path / "cache"),
        "ASSISTANT_CEDICT_PATH": str(cedict),
    }
    s = config.Settings.from_env(env)
    assert s == config.Settings(
        index=Path("/srv/index"),
        corpus=Path("/srv/corpus"),
        chroma_url="chroma.internal:8000",
        embedding_model="intfloat/multilingual-e5-small",
        query_prefix="query: ",
        passage_prefix="passage: ",
        embedding_backend="sentence-transformers",
        chunk_tokens=128,
        reranker="cross-encoder/ms-marco-MiniLM-L-6-v2",
        llm_url="https://llm.example:8443/v1",
        llm_model="qwen2.5",
        llm_api_key="sk-abc123",
        llm_timeout=2.5,
        host="::",
        port=8080,
        admin_password="correct horse battery staple",
        max_file_mb=0.5,
        cache_dir=tmp_path / "cache",
        cedict_path=cedict,
    )
    assert s.max_file_bytes == 524288
    c = s.config()
    assert (c.index_dir, c.corpus_dir) == (Path("/srv/index"), Path("/srv/corpus"))
    assert c.chroma_url == "chroma.internal:8000"
    assert c.embedding.model == "intfloat/multilingual-e5-small"
    assert c.embedding.prefixes == ("query: ", "passage: ")
    assert c.embedding.backend == "sentence-transformers"
    assert c.chunker.max_tokens == 128
    assert c.retrieval.reranker == "cross-encoder/ms-marco-MiniLM-L-6-v2"
    assert c.llm == config.LLMSettings("https://llm.example:8443/v1", "qwen2.5", "sk-abc123", 2.5)


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("ASSISTANT_HOST", "0.0.0.0", "host", "0.0.0.0"),
        ("ASSISTANT_HOST", "localhost", "host", "localhost"),
        ("ASSISTANT_HOST", "assistant-1.example.org", "host", "assistant-1.example.org"),
        ("ASSISTANT_PORT", "1", "port", 1),
        ("ASSISTANT_PORT", "65535", "port", 65535),
        ("ASSISTANT_MAX_FILE_MB", "1024", "max_file_mb", 1024.0),
        ("ASSISTANT_LLM_TIMEOUT", "600", "llm_timeout", 600.0),
        ("ASSISTANT_CHUNK_TOKENS", "16", "chunk_tokens", 16),
        ("ASSISTANT_CHUNK_TOKENS_ZH", "4096", "chunk_tokens_zh", 4096),
        ("ASSISTANT_EMBEDDING_BACKEND", "onnx", "embedding_backend", "onnx"),
        ("ASSISTANT_EMBEDDING_BACKEND", "sentence_transformers", "embedding_backend", "sentence-transformers"),
        ("ASSISTANT_CHROMA_URL", "http://10.0.0.5:8000", "chroma_url", "http://10.0.0.5:8000"),
        ("ASSISTANT_ADMIN_PASSWORD", "   ", "admin_password", None),  # blank: management off, as before
        ("ASSISTANT_PORT", "", "port", 7860),  # empty: unset, as before
    ],
)
def test_edge_values_parse(name: str, value: str, field: str, expected: object) -> None:
    assert getattr(config.Settings.from_env({name: value}), field) == expected


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, v, _ in BAD_ENV], ids=lambda x: repr(x)[:24])
def test_bad_value_raises_config_error_naming_it(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.Settings.from_env({name: value})
    assert str(err.value) == expected_message(name, value)


def test_flags_win_and_are_named() -> None:
    env = {"ASSISTANT_PORT": "8000", "ASSISTANT_INDEX": "/from/env"}
    s = config.Settings.from_env(env, flags={"port": "9000", "index": None})
    assert (s.port, s.index) == (9000, Path("/from/env"))
    with pytest.raises(ConfigError, match=r"^--port must be an integer between 1 and 65535, got '99999'$"):
        config.Settings.from_env(env, flags={"port": "99999"})
    with pytest.raises(TypeError):
        config.Settings.from_env({}, flags={"prot": "1"})


def test_only_reads_the_named_settings() -> None:
    env = {"ASSISTANT_PORT": "abc", "ASSISTANT_MAX_FILE_MB": "5"}
    assert config.Settings.from_env(env, only={"max_file_mb"}).max_file_mb == 5.0
    with pytest.raises(ConfigError, match="ASSISTANT_PORT"):
        config.Settings.from_env(env)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match=r"^ASSISTANT_PORT must be an integer between 1 and 65535, got 0$"):
        config.Settings(port=0)
    with pytest.raises(ConfigError, match=r"^ASSISTANT_MAX_FILE_MB must be .*, got nan$"):
        config.Settings(max_file_mb=math.nan)
    with pytest.raises(ConfigError, match=r"^ASSISTANT_HOST must be set, got None$"):
        config.Settings(host=None)  # type: ignore[arg-type]


def test_config_from_env_keeps_working() -> None:
    env = {"ASSISTANT_CHUNK_TOKENS": "100", "ASSISTANT_CHUNK_TOKENS_ZH": "150"}
    c = config.Config.from_env(env, index_dir=Path("/x"))
    assert (c.index_dir, c.chunker.max_tokens, c.chunker.max_tokens_zh, c.llm) == (Path("/x"), 100, 150, None)
    with pytest.raises(ConfigError, match=r"^ASSISTANT_CHUNK_TOKENS must be an integer between 16 and 4096, got '0'$"):
        config.Config.from_env({"ASSISTANT_CHUNK_TOKENS": "0"})


def test_modules_read_their_setting_when_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from assistant import documents, server, translate

    monkeypatch.setenv("ASSISTANT_MAX_FILE_MB", "1.5")
    assert documents.MAX_FILE_BYTES == documents.max_file_bytes() == 1572864
    assert documents.too_large_reason(3 * 1048576) == "file too large (3.0 MB; the limit is 1.5 MB)"
    monkeypatch.setenv("ASSISTANT_MAX_FILE_MB", "-5")
    with pytest.raises(ConfigError, match=r"^ASSISTANT_MAX_FILE_MB must be .*, got '-5'$"):
        documents.max_file_bytes()
    monkeypatch.delenv("ASSISTANT_MAX_FILE_MB")
    assert documents.MAX_FILE_BYTES == 20 * 1024 * 1024

    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(tmp_path))
    assert translate.cache_dir() == tmp_path
    monkeypatch.setenv("ASSISTANT_CEDICT_PATH", str(tmp_path / "missing.u8"))
    with pytest.raises(ConfigError, match=r"^ASSISTANT_CEDICT_PATH must be an existing file"):
        translate.cedict_path()

    assert server.admin_password({"ASSISTANT_ADMIN_PASSWORD": "s3cret"}) == "s3cret"
    assert server.admin_password({"ASSISTANT_ADMIN_PASSWORD": " "}) is None
    assert server.admin_password({}) is None
    with pytest.raises(ConfigError, match=r"^ASSISTANT_ADMIN_PASSWORD .*\(not shown\)$"):
        server.admin_password({"ASSISTANT_ADMIN_PASSWORD": "s3cret\r\n"})


def test_check_arguments(tmp_path: Path) -> None:
    import argparse

    gold = tmp_path / "gold.jsonl"
    gold.write_text("", encoding="utf-8")
    args = argparse.Namespace(command="eval", gold=gold, k="3", ingest=None, out=str(tmp_path / "r.json"),
                              records=None, html=None)
    config.check_arguments(args)
    assert (args.k, args.out) == (3, tmp_path / "r.json")
    args = argparse.Namespace(command="eval", gold=gold, k="5", ingest=str(tmp_path / "nope"), out=None,
                              records=None, html=None)
    with pytest.raises(ConfigError, match=r"^--ingest must be an existing directory, got '.*nope'$"):
        config.check_arguments(args)
    args = argparse.Namespace(command="ask", k=None)
    config.check_arguments(args)
    assert args.k is None


# --------------------------------------------------------------------------- README


def readme_table() -> list[tuple[str, str, str]]:
    """(flag, variable, default cell) of each row of the README's configuration table."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n### Configuration\n", 1)[1]
    section = re.split(r"\n#{1,3} ", section, maxsplit=1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or line.startswith("|---") or "environment variable" in line:
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, line
        rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_readme_configuration_table_matches_the_settings() -> None:
    rows = readme_table()
    specs = {spec.env: spec for spec in config.Settings.specs().values()}
    assert [re.sub(r"`", "", var) for _, var, _ in rows] == [spec.env for spec in specs.values()]
    for flag_cell, var_cell, default_cell in rows:
        spec = specs[var_cell.strip("`")]
        flag = re.match(r"`(--[a-z-]+)", flag_cell)
        assert (flag.group(1) if flag else None) == spec.flag, (var_cell, flag_cell)
        code = re.match(r"`([^`]+)`", default_cell)
        if spec.default is None:
            assert "`" not in default_cell, (var_cell, default_cell)  # off / unset / chosen elsewhere
        else:
            assert code is not None and code.group(1) == spec.default, (var_cell, default_cell, spec.default)


def test_answerability_threshold_reaches_the_answer_settings() -> None:
    s = config.Settings.from_env({"ASSISTANT_ANSWERABILITY_THRESHOLD": " 0.38 "})
    assert s.config().answer.answerability_threshold == 0.38
    assert config.Settings.from_env({}).config().answer.answerability_threshold is None  # the model's own


def test_host_names_and_proxies_are_read_normalized() -> None:
    from assistant.gate import names

    s = config.Settings.from_env({"ASSISTANT_ALLOWED_HOSTS": " Assistant.Example.edu., .uni.example ,",
                                  "ASSISTANT_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8 ,::1"})
    assert names(s.allowed_hosts) == ("assistant.example.edu", ".uni.example")
    assert names(s.trusted_proxies) == ("127.0.0.1", "10.0.0.0/8", "::1")
    unset = config.Settings.from_env({})
    assert names(unset.allowed_hosts) == () and names(unset.trusted_proxies) == ()
