"""Deterministic synthetic corpora for the scale benchmark, recombined from real text.

Sentences come from the sample corpus and from the public *development* sets (SQuAD 1.1 dev contexts,
CMRC 2018 trial, DRCD dev contexts; never the test sets). Each generated document draws its sentences
from these pools with a seeded ``random.Random``, swaps the city and organisation names it contains for
others from fixed lists (consistently within the document), and gets a title, outlet and date. Documents
are written as plain-text articles, Chinese digests (headline + ``Outlet· date`` lines, like
``corpus/003_…``) and JSON Lines batches, so the project's own loaders split them.

Levels are nested prefixes of one document stream: the 10k corpus holds the 1k corpus' documents plus
more. Chunk counts are exact: every written file is loaded and chunked with the project's own
``load_file`` and ``chunk_document`` (the same code the ingest runs).

Names that the gold set's unanswerable questions ask about (Shenzhen, Huawei, Hangzhou, Chengdu, ...)
are kept out of the generated text, so that those questions stay unanswerable at every size.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from assistant.chunking import ChunkerSettings, chunk_document, split_sentences
from assistant.documents import iter_files, load_file, source_text

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
DATA = Path("/work/shared/bench-data")
SEED = 20251122

# Development sets only (see the data README): tune/generate on these, never on the test sets.
DEV_SETS = {
    "squad": "squad/dev-v1.1.json.gz",
    "cmrc": "cmrc2018/cmrc2018_trial.json.gz",
    "drcd": "drcd/DRCD_dev.json.gz",
}

# Kept out of generated text: the unanswerable gold questions ask about these (q119, q129, q134, q135).
EXCLUDED = ("深圳", "Shenzhen", "Huawei", "华为", "華為", "杭州", "Hangzhou", "成都", "Chengdu")

EN_CITIES = [
    "Changzhou", "Suzhou", "Shanghai", "Foshan", "Nanhai", "Liaocheng", "Jinan", "Wuxi", "Nanjing",
    "Ningbo", "Qingdao", "Wuhan", "Tianjin", "Chongqing", "Hefei", "Zhengzhou", "Changsha", "Xiamen",
    "Dalian", "Kunming", "Guiyang", "Nanning", "Yangzhou", "Harbin", "Taiyuan", "Lanzhou", "Shenyang",
    "London", "Paris", "New York", "San Francisco", "Chicago", "Boston", "Denver", "Berlin", "Warsaw",
    "Geneva", "Melbourne", "Toronto", "Los Angeles", "Miami", "Houston", "Vienna", "Munich",
]
ZH_CITIES = [
    "常州", "苏州", "上海", "佛山", "南海", "聊城", "济南", "无锡", "南京", "宁波", "青岛", "武汉",
    "天津", "重庆", "合肥", "郑州", "长沙", "厦门", "大连", "昆明", "贵阳", "南宁", "扬州", "哈尔滨",
    "太原", "兰州", "沈阳", "北京", "广州", "西安", "台北", "台中", "高雄", "香港", "澳门", "福州",
]
EN_ORGS = [
    "Tongji University", "Soochow University", "Jiangsu University of Science and Technology",
    "Chongqing University of Technology", "Harbin Institute of Technology", "Wuxi Technician College",
    "Shandong Business Vocational College", "Hengtong Group", "SGS", "Siemens", "BYD", "Haier", "Midea",
    "CATL", "SAIC Motor", "Geely", "Sany Heavy Industry", "Bosch", "Schneider Electric", "ABB",
    "Harvard University", "Stanford University", "IBM", "General Electric", "the BBC", "the NFL",
    "Yale University", "Intel", "Microsoft", "Apple",
]
ZH_ORGS = [
    "同济大学", "苏州大学", "江苏科技大学", "重庆理工大学", "哈尔滨工业大学", "无锡技师学院",
    "山东商业职业技术学院", "亨通集团", "比亚迪", "海尔集团", "美的集团", "宁德时代", "上汽集团",
    "吉利汽车", "三一重工", "西门子", "博世", "施耐德电气", "清华大学", "北京大学", "复旦大学",
    "浙江大学", "国立台湾大学", "中国科学院", "国家电网", "中国移动",
]
EN_OUTLETS = ["Xinhua", "China Daily", "Global Times", "CGTN", "Zhong Guo Xin Wen Wang", "Jing Ji Ri Bao"]
ZH_OUTLETS = ["新华网", "人民网", "中国新闻网", "经济日报", "扬子晚报网", "环球网", "光明网"]
EN_TOPICS = [
    "launches an industry-education alliance", "signs a school-enterprise cooperation agreement",
    "opens a new training base", "holds its annual alliance meeting", "sets up a talent training class",
    "expands vocational education programmes", "hosts an integration forum", "unveils a joint laboratory",
]
ZH_TOPICS = [
    "成立产教融合联盟", "签署校企合作协议", "新建实训基地", "召开联盟年会", "开设人才培养班",
    "推进职业教育改革", "举办产教融合论坛", "揭牌联合实验室",
]


def _alternation(names: list[str]) -> re.Pattern[str]:
    ordered = sorted(set(names), key=len, reverse=True)
    return re.compile("|".join(re.escape(n) for n in ordered))


_EN_CITY_RE = re.compile(r"\b(?:" + _alternation(EN_CITIES).pattern + r")\b")
_EN_ORG_RE = re.compile(r"\b(?:" + _alternation(EN_ORGS).pattern + r")\b")
_ZH_CITY_RE = _alternation(ZH_CITIES)
_ZH_ORG_RE = _alternation(ZH_ORGS)
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass
class Pools:
    """Sentences by source: English (SQuAD, sample corpus) and Chinese (CMRC, DRCD, sample corpus)."""

    en: dict[str, list[str]] = field(default_factory=dict)
    zh: dict[str, list[str]] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {f"en:{k}": len(v) for k, v in self.en.items()} | {f"zh:{k}": len(v) for k, v in self.zh.items()}


def _squad_contexts(rel: str) -> list[str]:
    data = json.load(gzip.open(DATA / rel, "rt", encoding="utf-8"))
    return [p["context"] for a in data["data"] for p in a["paragraphs"]]


def _sentences(text: str) -> list[str]:
    return [text[s.start : s.end] for s in split_sentences(text)]


def _keep(sentence: str, zh: bool) -> bool:
    if any(x in sentence for x in EXCLUDED):
        return False
    if zh:
        return 8 <= len(sentence) <= 300 and len(_CJK.findall(sentence)) >= 0.5 * len(sentence)
    return 30 <= len(sentence) <= 400 and not _CJK.search(sentence)


def load_pools() -> Pools:
    pools = Pools()
    corpus_en: list[str] = []
    corpus_zh: list[str] = []
    for path in iter_files([CORPUS]):
        for doc in load_file(path, CORPUS):
            for s in _sentences(doc.text):
                (corpus_zh if _CJK.search(s) and _keep(s, True) else corpus_en).append(s)
    pools.en["corpus"] = [s for s in corpus_en if _keep(s, False)]
    pools.zh["corpus"] = [s for s in corpus_zh if _keep(s, True)]
    pools.en["squad"] = [s for c in _squad_contexts(DEV_SETS["squad"]) for s in _sentences(c) if _keep(s, False)]
    pools.zh["cmrc"] = [s for c in _squad_contexts(DEV_SETS["cmrc"]) for s in _sentences(c) if _keep(s, True)]
    pools.zh["drcd"] = [s for c in _squad_contexts(DEV_SETS["drcd"]) for s in _sentences(c) if _keep(s, True)]
    return pools


@dataclass
class GenDoc:
    language: str
    title: str
    outlet: str
    date: str
    paragraphs: list[str]


class Generator:
    """An endless, deterministic stream of documents recombined from the pools."""

    def __init__(self, pools: Pools, seed: int = SEED) -> None:
        self.pools = pools
        self.rng = random.Random(seed)

    def _sentence(self, zh: bool) -> str:
        r = self.rng.random()
        if zh:
            src = "corpus" if r < 0.05 else ("cmrc" if r < 0.55 else "drcd")
            pool = self.pools.zh[src]
        else:
            src = "corpus" if r < 0.25 else "squad"
            pool = self.pools.en[src]
        return pool[self.rng.randrange(len(pool))]

    def doc(self) -> GenDoc:
        rng = self.rng
        zh = rng.random() < 0.4
        cities, orgs = (ZH_CITIES, ZH_ORGS) if zh else (EN_CITIES, EN_ORGS)
        city, org = rng.choice(cities), rng.choice(orgs)
        # Consistent swaps inside one document: every city (organisation) name maps to one other.
        city_map: dict[str, str] = {}
        org_map: dict[str, str] = {}

        def swap_city(m: re.Match[str]) -> str:
            return city_map.setdefault(m.group(0), city if not city_map else rng.choice(cities))

        def swap_org(m: re.Match[str]) -> str:
            return org_map.setdefault(m.group(0), org if not org_map else rng.choice(orgs))

        city_re, org_re = (_ZH_CITY_RE, _ZH_ORG_RE) if zh else (_EN_CITY_RE, _EN_ORG_RE)
        n_sent = rng.randint(3, 26)
        paragraphs: list[str] = []
        left = n_sent
        while left > 0:
            k = min(left, rng.randint(2, 6))
            sents = [org_re.sub(swap_org, city_re.sub(swap_city, self._sentence(zh))) for _ in range(k)]
            paragraphs.append(("" if zh else " ").join(sents))
            left -= k
        topic = rng.choice(ZH_TOPICS if zh else EN_TOPICS)
        title = f"{city}{org}{topic}" if zh else f"{city}: {org} {topic}"
        outlet = rng.choice(ZH_OUTLETS if zh else EN_OUTLETS)
        date = f"{rng.randint(2022, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return GenDoc("zh" if zh else "en", title, outlet, date, paragraphs)

    def unit(self, n: int) -> tuple[str, str]:
        """The text of the n-th file and its suffix: a plain article, a Chinese digest, or a JSONL batch."""
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            d = self.doc()
            return d.title + "\n\n" + "\n\n".join(d.paragraphs) + "\n", ".txt"
        if r < 0.35:
            # A digest: Chinese headline, "Outlet· date time" line, article; several in one file.
            parts = []
            for _ in range(rng.randint(3, 8)):
                d = self.doc()
                headline = d.title if d.language == "zh" else f"{rng.choice(ZH_CITIES)}{rng.choice(ZH_TOPICS)}"
                parts.append(f"{headline}\n{d.outlet}· {d.date} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}")
                parts.append(" ".join(d.paragraphs) if d.language == "en" else "".join(d.paragraphs))
            return "\n".join(parts) + "\n", ".txt"
        lines = []
        for i in range(rng.randint(5, 40)):
            d = self.doc()
            record = {
                "id": f"g{n}-{i}",
                "title": d.title,
                "outlet": d.outlet,
                "date": d.date,
                "text": "\n".join(d.paragraphs),
            }
            lines.append(json.dumps(record, ensure_ascii=False))
        return "\n".join(lines) + "\n", ".jsonl"


@dataclass
class Level:
    target: int
    directory: Path
    chunks: int = 0  # exact, as the project's chunker cuts them (sample corpus included)
    documents: int = 0
    files: int = 0


def _count(path: Path, root: Path, chunker: ChunkerSettings) -> tuple[int, int]:
    docs = load_file(path, root)
    src = source_text(path) if path.suffix != ".jsonl" else None
    chunks = 0
    for doc in docs:
        chunks += len(chunk_document(doc, chunker, doc.text if "line" in doc.extra else src))
    return len(docs), chunks


def _trim_jsonl(text: str, path: Path, root: Path, chunker: ChunkerSettings, room: int) -> tuple[str, int, int]:
    """Keep the leading JSONL records that fit in ``room`` chunks (at least one)."""
    kept: list[str] = []
    docs = chunks = 0
    for line in text.splitlines():
        path.write_text(line + "\n", encoding="utf-8")
        _, c = _count(path, root, chunker)
        if kept and chunks + c > room:
            break
        kept.append(line)
        docs += 1
        chunks += c
        if chunks >= room:
            break
    return "\n".join(kept) + "\n", docs, chunks


def build_levels(base: Path, targets: list[int], seed: int = SEED, pools: Pools | None = None) -> list[Level]:
    """Write one corpus directory per target chunk count under ``base`` (nested prefixes of one stream)."""
    chunker = ChunkerSettings()
    pools = pools or load_pools()
    gen = Generator(pools, seed)
    targets = sorted(targets)
    levels = [Level(t, base / f"corpus-{t}") for t in targets]
    sample_docs = sample_chunks = 0
    for path in iter_files([CORPUS]):
        d, c = _count(path, CORPUS, chunker)
        sample_docs += d
        sample_chunks += c
    for lv in levels:
        if lv.directory.exists():
            shutil.rmtree(lv.directory)
        (lv.directory / "gen").mkdir(parents=True)
        for path in iter_files([CORPUS]):
            shutil.copyfile(path, lv.directory / path.name)
        lv.chunks, lv.documents, lv.files = sample_chunks, sample_docs, 5
    scratch = base / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    n = 0
    total = sample_chunks
    open_levels = [lv for lv in levels if lv.chunks < lv.target]
    while open_levels:
        text, suffix = gen.unit(n)
        name = f"gen/{n // 500:03d}/{n:06d}{suffix}"
        probe = scratch / f"probe{suffix}"
        probe.write_text(text, encoding="utf-8")
        docs, chunks = _count(probe, scratch, chunker)
        smallest = open_levels[0]
        room = smallest.target - total
        if chunks > room and suffix == ".jsonl":
            text, docs, chunks = _trim_jsonl(text, probe, scratch, chunker, room)
        total += chunks
        for lv in open_levels:
            out = lv.directory / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
            lv.chunks += chunks
            lv.documents += docs
            lv.files += 1
        open_levels = [lv for lv in open_levels if lv.chunks < lv.target]
        n += 1
    shutil.rmtree(scratch)
    return levels


def iter_level_texts(level: Level) -> Iterator[str]:
    """Chunk texts of a level, as the ingest will cut them (for the raw-encoder comparison)."""
    chunker = ChunkerSettings()
    for path in iter_files([level.directory]):
        src = source_text(path) if path.suffix != ".jsonl" else None
        for doc in load_file(path, level.directory):
            for c in chunk_document(doc, chunker, doc.text if "line" in doc.extra else src):
                yield c.text
