"""Chinese names without ``jieba.posseg`` (``assistant.zh_names``): the same words as the tagger gives, from a
cached table, and a cache that is rebuilt when it is stale, broken or cannot be written."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import REPO

from assistant import zh_names

FLAGS = ("ns", "nr", "nt", "nz", "nrt")
EXTRA = [
    "张伟和李娜在北京大学见面。",
    "欧阳娜娜是谁？王小明去了哪里",
    "常州检验检测认证产教联盟是由哪个单位牵头发起的？",
    "南海区与佛山职业技术学院共建了什么平台？",
    "2023年，Huawei与苏州工业园区签约，ABC123公司也参加了。",
    "台積電在新竹科學園區設廠",  # traditional characters, as a question may be written
    "What about 常州?",
    "",
    "。。。",
]


def expected(text: str) -> list[str]:
    import jieba.posseg as pseg

    return [w for w, f in pseg.lcut(text) if f in FLAGS and len(w) >= 2]


def texts() -> list[str]:
    out = [
        json.loads(line)["question"]
        for name in ("gold.jsonl", "realistic.jsonl")
        for line in (REPO / "eval" / name).open(encoding="utf-8")
    ]
    for path in sorted((REPO / "corpus").rglob("*")):
        if path.is_file() and path.suffix in (".txt", ".md", ".jsonl"):
            text = path.read_text(encoding="utf-8", errors="replace")
            out += [s for s in re.split(r"(?<=[。！？\n])", text) if s.strip()]  # sentences, lines
    return [t for t in out if re.search(r"[\u4e00-\u9fff]", t)] + EXTRA


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(zh_names, "_tables", None)


def assert_same(items: list[str]) -> int:
    got = {t: zh_names.name_words(t, hmm_chars=10**9) for t in items}  # the tagger's words, whatever it costs
    want = {t: expected(t) for t in items}
    assert [t for t in items if got[t] != want[t]] == []
    return sum(map(len, want.values()))


def test_same_names_as_jieba_posseg() -> None:
    items = texts()
    assert len(items) > 120
    assert assert_same(items) > 100


def test_same_names_on_cmrc_contexts() -> None:
    """Thousands of sentences of Chinese news and encyclopedia text (many person names found by the HMM)."""
    data = Path("/work/shared/bench-data/cmrc2018/cmrc2018_trial.json.gz")
    if not data.exists():
        pytest.skip("CMRC 2018 trial set not on this machine")
    import gzip

    raw = json.loads(gzip.decompress(data.read_bytes()))
    contexts = [p["context"] for d in raw.get("data", raw) for p in d["paragraphs"]][:300]
    items = [s for c in contexts for s in re.split(r"(?<=[。！？])", c) if s.strip()]
    assert len(items) > 2000
    assert assert_same(items) > 2000


def test_cache_is_written_then_read_without_posseg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = zh_names.name_words("张伟和李娜在北京大学见面。")
    files = list((tmp_path / "cache").glob("jieba-names-v*.marshal"))
    assert len(files) == 1
    monkeypatch.setattr(zh_names, "_tables", None)

    def no_build(tokenizer: object) -> None:
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(zh_names, "_build", no_build)
    assert zh_names.name_words("张伟和李娜在北京大学见面。") == first == expected("张伟和李娜在北京大学见面。")


def test_stale_or_broken_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zh_names.warm_up()
    (cache_file,) = (tmp_path / "cache").glob("jieba-names-v*.marshal")
    for content in (b"", b"not marshal", cache_file.read_bytes()[:1000]):
        cache_file.write_bytes(content)
        monkeypatch.setattr(zh_names, "_tables", None)
        assert zh_names.name_words("王小明去了南京") == expected("王小明去了南京")
        assert cache_file.stat().st_size > 1_000_000  # written again


def test_cache_key_follows_the_dictionary_file(tmp_path: Path) -> None:
    """An edited dictionary (size or modification time) gets another cache file; jieba's default too."""
    import shutil
    import types

    import jieba

    copy = tmp_path / "dict.txt"
    shutil.copy(Path(jieba.__file__).parent / "dict.txt", copy)
    tokenizer = types.SimpleNamespace(dictionary=str(copy))
    first, key = zh_names._cache_file(tokenizer)
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 1_000_000_000))
    second, key2 = zh_names._cache_file(tokenizer)
    assert first is not None and second is not None and first != second and key != key2
    default, _ = zh_names._cache_file(types.SimpleNamespace(dictionary=None))
    assert default is not None and default not in (first, second)
    assert default.parent == tmp_path / "cache"


def test_another_installs_cache_stays_an_old_formats_goes(tmp_path: Path) -> None:
    """Two installs on one machine (each with its own jieba, so its own key) keep their own files."""
    cache = tmp_path / "cache"
    cache.mkdir()
    other = cache / f"jieba-names-v{zh_names._FORMAT}-0123456789abcdef.marshal"
    old = cache / f"jieba-names-v{zh_names._FORMAT - 1}-0123456789abcdef.marshal"
    other.write_bytes(b"another install's table")
    old.write_bytes(b"an earlier format's table")
    zh_names.warm_up()
    files = {p.name for p in cache.glob("jieba-names-v*.marshal")}
    assert other.name in files and old.name not in files and len(files) == 2


def test_unwritable_cache_still_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(blocker / "cache"))
    assert zh_names.name_words("张伟在常州") == expected("张伟在常州")


def test_user_words_with_a_tag_count() -> None:
    import jieba

    from assistant.text import _get_jieba

    _get_jieba()
    word = "鑫淼垚联盟"
    assert word not in zh_names.name_words(f"{word}在哪里？")
    jieba.add_word(word, 1000, "nt")
    try:
        assert zh_names.name_words(f"{word}在哪里？") == [word] == expected(f"{word}在哪里？")
    finally:
        jieba.del_word(word)
        jieba.dt.user_word_tag_tab.pop(word, None)
        zh_names._user_tags.pop(word, None)


def test_jieba_reads_its_cache_whole() -> None:
    """text._get_jieba has jieba read its prefix-dictionary cache with marshal.loads of the whole file
    (marshal.load of the file object reads it in small pieces, ~3x the CPU): the same content."""
    import marshal
    import tempfile

    import jieba

    from assistant import text

    text._get_jieba()
    assert jieba.marshal is text._MarshalOfBytes
    cache = Path(jieba.dt.cache_file or Path(tempfile.gettempdir()) / "jieba.cache")
    if not cache.exists():
        pytest.skip("jieba wrote no cache here")
    with cache.open("rb") as a, cache.open("rb") as b:
        assert text._MarshalOfBytes.load(a) == marshal.load(b)
    assert len(jieba.dt.FREQ) > 300_000


def test_the_hmm_reads_a_bounded_number_of_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each HMM character costs the states squared (2,000 rare characters took 7.7 s of a question,
    third security review): a text sends at most MAX_HMM_CHARS characters through it, then no more."""
    import random

    read: list[int] = []
    real = zh_names._viterbi
    monkeypatch.setattr(zh_names, "_viterbi", lambda obs, tables: read.append(len(obs)) or real(obs, tables))
    rng = random.Random(0)
    rare = "".join(chr(rng.randint(0x9000, 0x9FA5)) for _ in range(2000))
    zh_names.name_words(rare)
    assert read == []  # one run longer than the budget: not read at all
    crafted = "，".join(rare[i : i + 12] for i in range(0, 2000, 12))  # 167 short runs
    zh_names.name_words(crafted)
    assert 0 < sum(read) <= zh_names.MAX_HMM_CHARS and max(read) <= 12
    assert zh_names.name_words("张伟和李娜在北京大学见面。") == expected("张伟和李娜在北京大学见面。")
