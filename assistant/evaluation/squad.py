"""Convert SQuAD-layout JSON (SQuAD 1.1/2.0, CMRC 2018, DRCD, XQuAD) into a corpus and a gold file.

Usage::

    python -m assistant.evaluation.squad FILE OUT_DIR [--limit N] [--seed S] [--max-chars 600]
        [--pair OTHER_FILE] [--per-article 10] [--dataset NAME] [--overwrite]

Writes ``OUT_DIR/corpus/<NNNN>_<article>.jsonl`` (one line per paragraph:
``{"id", "title", "text", "language"}``), ``OUT_DIR/gold.jsonl``, ``OUT_DIR/manifest.json`` and
``OUT_DIR/ATTRIBUTION.md`` (the data are CC BY-SA: keep the attribution with derived files).

* Evidence is the sentence(s) of the context holding the first locatable answer (at least
  ``MIN_EVIDENCE_CHARS`` long, CJK characters counting twice, so a neighbour sentence is added to a
  very short one such as an abbreviation split off by the sentence splitter), cut to a
  window of ``--max-chars`` around the answer when longer; the answer text itself when the sentence
  cannot be found. ``answer_contains`` is that answer's text. Answers are located by their offset,
  else by text nearest to the offset (CMRC 2018 has offsets of -1 and off by a few characters).
* SQuAD 2.0 ``is_impossible`` questions become ``answerable: false`` with no evidence.
* ``--limit N`` keeps N questions: a seeded shuffle of the articles, then up to ``--per-article``
  seeded-shuffled questions from each article taken round-robin (so the sample spreads over articles),
  topped up from the chosen articles if needed. Every paragraph of a chosen article goes into the
  corpus (distractors); contexts are never cut (the chunker splits them).
* ``--pair OTHER_FILE`` (XQuAD): questions from FILE, passages, evidence and answer from the
  paragraph of OTHER_FILE holding the same question id (cross-lingual).
* Tags: the dataset name (``squad-v1.1``, ``squad-v2.0``, ``cmrc2018``, ``drcd``, ``xquad``...) and
  the question language (``en``/``zh``), plus ``cross-lingual`` for a pair of different languages.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.evaluation.gold import GoldItem, dump_gold

__all__ = [
    "ConversionSummary",
    "SquadQuestion",
    "convert",
    "dataset_name",
    "detect_language",
    "evidence_span",
    "locate_answer",
    "main",
    "read_squad",
    "sample_questions",
    "split_sentences",
    "squad_questions",
]

MIN_EVIDENCE_CHARS = 20

_LICENCES = {
    "squad": "CC BY-SA 4.0 (SQuAD, Rajpurkar et al.)",
    "xquad": "CC BY-SA 4.0 (XQuAD, Artetxe et al.)",
    "cmrc2018": "CC BY-SA 4.0 (CMRC 2018, Cui et al., EMNLP-IJCNLP 2019)",
    "drcd": "CC BY-SA 3.0 (DRCD, Delta Research Center; adapted from Wikipedia)",
}

_BOUNDARY = re.compile(
    r"[。！？!?．]+[”’\"'」』）)\]]*"  # CJK and ASCII ! ? end a sentence anywhere
    r"|\.+[”’\"'」』）)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9\u3400-\u9fff])"  # ". " before a capital or digit
    r"|\n+"
)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass
class SquadQuestion:
    """One question of a SQuAD-layout file, with where it sits (article and paragraph indexes)."""

    id: str
    question: str
    article: int
    paragraph: int
    context: str
    answers: list[tuple[str, int]]
    impossible: bool


@dataclass
class ConversionSummary:
    """What ``convert`` wrote."""

    dataset: str
    language: str
    passage_language: str
    articles: int
    paragraphs: int
    questions: int
    answerable: int
    unanswerable: int
    skipped: list[str] = field(default_factory=list)  # ids whose answer is not in the context

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def read_squad(path: str | Path) -> dict[str, Any]:
    """Load a SQuAD-layout JSON file, gzip-compressed or not (detected from the magic bytes)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    data = json.loads(raw.decode("utf-8-sig"))
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f'{path}: not SQuAD layout (no top-level "data" list)')
    return data


def squad_questions(data: dict[str, Any]) -> list[SquadQuestion]:
    """Every question of a SQuAD-layout dict, in file order."""
    out: list[SquadQuestion] = []
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article.get("paragraphs", [])):
            context = str(para.get("context", ""))
            for qa in para.get("qas", []):
                answers = [(str(x.get("text", "")), int(x.get("answer_start", -1))) for x in qa.get("answers", [])]
                out.append(
                    SquadQuestion(
                        id=str(qa["id"]),
                        question=str(qa.get("question", "")).strip(),
                        article=a,
                        paragraph=p,
                        context=context,
                        answers=answers,
                        impossible=bool(qa.get("is_impossible", False)),
                    )
                )
    return out


def article_title(article: dict[str, Any]) -> str:
    """An article's title as the file has it: what names the same article in another file."""
    return str(article.get("title", ""))


def test_titles(files: Iterable[str | Path]) -> set[str]:
    """The article titles of SQuAD-layout ``files``: SQuAD 1.1 dev holds every article, and every
    answerable question, of the SQuAD 2.0 test half, and the English side of XQuAD's."""
    return {article_title(article) for f in files for article in read_squad(f)["data"]}


def detect_language(texts: Iterable[str]) -> str:
    """``"zh"`` when CJK characters are at least a fifth of the letters, else ``"en"``."""
    cjk = latin = 0
    for text in texts:
        cjk += len(_CJK.findall(text))
        latin += len(_LATIN.findall(text))
    return "zh" if cjk and cjk >= 0.2 * (cjk + latin) else "en"


def dataset_name(path: str | Path, data: dict[str, Any] | None = None) -> str:
    """Dataset tag from the file path (and the file's ``version`` for SQuAD)."""
    full = str(path).lower()
    for key, name in (("xquad", "xquad"), ("cmrc", "cmrc2018"), ("drcd", "drcd")):
        if key in full:
            return name
    stem = Path(path).name.lower().split(".json")[0]
    if "squad" in full or stem.startswith(("dev-v", "train-v")):
        version = str((data or {}).get("version", "")).lstrip("v") or stem.rpartition("-v")[2]
        return f"squad-v{version}" if version else "squad"
    return re.sub(r"[^\w.\-]+", "_", stem) or "dataset"


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans ``(start, end)`` of ``text``, white space trimmed, empty ones dropped."""
    cuts = [m.end() for m in _BOUNDARY.finditer(text)]
    spans: list[tuple[int, int]] = []
    start = 0
    for end in [*cuts, len(text)]:
        s, e = start, end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            spans.append((s, e))
        start = end
    return spans


def locate_answer(context: str, text: str, start: int) -> tuple[int, int] | None:
    """Span of the answer in the context: at ``start`` if it is there, else its nearest occurrence."""
    for candidate in (text, text.strip()):
        if not candidate:
            continue
        if start >= 0 and context[start : start + len(candidate)] == candidate:
            return start, start + len(candidate)
        positions: list[int] = []
        pos = context.find(candidate)
        while pos >= 0:
            positions.append(pos)
            pos = context.find(candidate, pos + 1)
        if positions:
            best = min(positions, key=lambda p: abs(p - start)) if start >= 0 else positions[0]
            return best, best + len(candidate)
    return None


def _window(context: str, s: int, e: int, a_s: int, a_e: int, max_chars: int) -> tuple[int, int]:
    """A span of at most ``max_chars`` inside ``[s, e)`` around the answer, snapped to white space."""
    if a_e - a_s >= max_chars:
        return a_s, a_e
    slack = max_chars - (a_e - a_s)
    ws = max(s, a_s - slack // 2)
    we = min(e, ws + max_chars)
    ws = max(s, we - max_chars)
    # do not cut a word in two (Chinese has no spaces: then nothing moves)
    cut = context.find(" ", ws, a_s)
    if ws > s and not context[ws - 1].isspace() and cut >= 0:
        ws = cut + 1
    cut = context.rfind(" ", a_e, we)
    if we < e and not context[we].isspace() and cut >= 0:
        we = cut
    return ws, we


def _weight(text: str) -> int:
    """Length with CJK characters counted twice (a Chinese character carries about a word)."""
    return len(text) + len(_CJK.findall(text))


def evidence_span(
    context: str, a_s: int, a_e: int, max_chars: int = 600, min_chars: int = MIN_EVIDENCE_CHARS
) -> tuple[int, int]:
    """Span of the evidence for an answer at ``[a_s, a_e)``: its sentence(s), else the answer itself."""
    sents = split_sentences(context)
    hit = [i for i, (s, e) in enumerate(sents) if s < a_e and e > a_s]
    if not hit:
        return a_s, a_e
    i0, i1 = hit[0], hit[-1]
    while _weight(context[sents[i0][0] : sents[i1][1]]) < min_chars:
        if i1 + 1 < len(sents):
            i1 += 1
        elif i0 > 0:
            i0 -= 1
        else:
            break
    s, e = sents[i0][0], sents[i1][1]
    if e - s > max_chars:
        s, e = _window(context, s, e, a_s, a_e, max_chars)
    while s < e and context[s].isspace():
        s += 1
    while e > s and context[e - 1].isspace():
        e -= 1
    return (s, e) if s < e else (a_s, a_e)


def sample_questions(
    questions: Sequence[SquadQuestion], limit: int | None, seed: int = 0, per_article: int = 10
) -> list[SquadQuestion]:
    """Deterministic sample of ``limit`` questions spread over a seeded sample of articles."""
    if limit is None or limit >= len(questions):
        return list(questions)
    if limit <= 0:
        return []
    rng = random.Random(seed)
    by_article: dict[int, list[SquadQuestion]] = {}
    for q in questions:
        by_article.setdefault(q.article, []).append(q)
    order = sorted(by_article)
    rng.shuffle(order)
    cap = max(1, per_article)
    chosen: list[list[SquadQuestion]] = []
    capacity = 0
    for a in order:
        qs = list(by_article[a])
        rng.shuffle(qs)
        chosen.append(qs)
        capacity += min(len(qs), cap)
        if capacity >= limit:
            break
    picked: list[SquadQuestion] = []
    for r in range(cap):
        for qs in chosen:
            if r < len(qs) and len(picked) < limit:
                picked.append(qs[r])
    for qs in chosen:  # top up beyond the per-article cap when the articles ran out
        for q in qs[cap:]:
            if len(picked) < limit:
                picked.append(q)
    return picked


def _slug(title: str) -> str:
    return re.sub(r"[^\w\-]+", "_", title).strip("_")[:60] or "article"


def _title(article: dict[str, Any]) -> str:
    return article_title(article).replace("_", " ").strip()


def _prepare_out(out_dir: Path, overwrite: bool) -> Path:
    corpus = out_dir / "corpus"
    existing = [p for p in corpus.glob("*") if p.is_file()] if corpus.is_dir() else []
    if (existing or (out_dir / "gold.jsonl").exists()) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a corpus or gold file (use --overwrite)")
    for p in existing:
        if p.suffix == ".jsonl":
            p.unlink()
    corpus.mkdir(parents=True, exist_ok=True)
    return corpus


def convert(
    file: str | Path,
    out_dir: str | Path,
    limit: int | None = None,
    seed: int = 0,
    max_chars: int = 600,
    pair: str | Path | None = None,
    per_article: int = 10,
    dataset: str | None = None,
    overwrite: bool = False,
    without_articles: Collection[str] = (),
) -> ConversionSummary:
    """Write ``out_dir/corpus/*.jsonl``, ``gold.jsonl``, ``manifest.json`` and ``ATTRIBUTION.md``.

    ``without_articles``: titles of articles to leave out, questions and passages (``test_titles``:
    SQuAD 1.1 dev holds the articles and questions of the SQuAD 2.0 and XQuAD test halves)."""
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    data = read_squad(file)
    name = dataset or dataset_name(file, data)
    excluded = set(without_articles)
    left_out = {a for a, article in enumerate(data["data"]) if article_title(article) in excluded}
    # A handful of upstream questions are empty strings (one in CMRC 2018 trial): nothing to ask.
    questions = [q for q in squad_questions(data) if q.question and q.article not in left_out]
    language = detect_language(q.question for q in questions[:500])
    passages_data = data
    passage_language = detect_language(q.context for q in questions[:200])
    paired: dict[str, SquadQuestion] = {}
    if pair is not None:
        passages_data = read_squad(pair)
        paired = {q.id: q for q in squad_questions(passages_data)}
        questions = [q for q in questions if q.id in paired]
        passage_language = detect_language(q.context for q in list(paired.values())[:200])
    sample = sample_questions(questions, limit, seed, per_article)

    out = Path(out_dir)
    corpus = _prepare_out(out, overwrite)
    source_articles = passages_data["data"]
    if limit is None or limit >= len(questions):
        article_ids = [a for a, article in enumerate(source_articles) if article_title(article) not in excluded]
    else:
        article_ids = sorted({(paired[q.id] if pair is not None else q).article for q in sample})

    def para_id(a: int, p: int) -> str:
        own = source_articles[a]["paragraphs"][p].get("id")
        return f"{name}-{passage_language}-{own if own else f'{a}-{p}'}"

    n_paragraphs = 0
    for a in article_ids:
        article = source_articles[a]
        title = _title(article)
        with (corpus / f"{a:04d}_{_slug(title)}.jsonl").open("w", encoding="utf-8") as fh:
            for p, para in enumerate(article.get("paragraphs", [])):
                line = {
                    "id": para_id(a, p),
                    "title": title,
                    "text": para.get("context", ""),
                    "language": passage_language,
                }
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
                n_paragraphs += 1

    tags = [name, language]
    if pair is not None and passage_language != language:
        tags.append("cross-lingual")
    items: list[GoldItem] = []
    skipped: list[str] = []
    for q in sample:
        src = paired[q.id] if pair is not None else q
        meta: dict[str, Any] = {
            "dataset": name,
            "source": Path(pair if pair is not None else file).name,
            "paragraph_id": para_id(src.article, src.paragraph),
            "title": _title(source_articles[src.article]),
        }
        if q.impossible or src.impossible:
            items.append(GoldItem(q.id, q.question, answerable=False, tags=list(tags), meta=meta))
            continue
        found = None
        for text, start in src.answers:
            span = locate_answer(src.context, text, start)
            if span is not None:
                found = span
                break
        if found is None:
            skipped.append(q.id)
            continue
        s, e = evidence_span(src.context, found[0], found[1], max_chars)
        items.append(
            GoldItem(
                q.id,
                q.question,
                answerable=True,
                evidence=[src.context[s:e]],
                answer_contains=[src.context[found[0] : found[1]]],
                tags=list(tags),
                meta=meta,
            )
        )
    dump_gold(items, out / "gold.jsonl")

    summary = ConversionSummary(
        dataset=name,
        language=language,
        passage_language=passage_language,
        articles=len(article_ids),
        paragraphs=n_paragraphs,
        questions=len(items),
        answerable=sum(1 for i in items if i.answerable),
        unanswerable=sum(1 for i in items if not i.answerable),
        skipped=skipped,
    )
    manifest = {
        "source": str(file),
        "pair": str(pair) if pair is not None else None,
        "limit": limit,
        "seed": seed,
        "max_chars": max_chars,
        "per_article": per_article,
        "without_articles": sorted(without_articles),
        **summary.to_dict(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    family = "squad" if name.startswith("squad") else name
    licence = _LICENCES.get(family, "see the licence of the source data")
    sources = ", ".join(Path(p).name for p in ([file, pair] if pair is not None else [file]))
    (out / "ATTRIBUTION.md").write_text(
        f"# Attribution\n\nDerived from `{sources}` ({name}) by `assistant.evaluation.squad`: "
        f"paragraphs copied verbatim, questions sampled (seed {seed}).\n\nLicence: {licence}. "
        "This derived data is shared under the same licence; keep this file with it.\n",
        encoding="utf-8",
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m assistant.evaluation.squad",
        description="Convert a SQuAD-layout JSON(.gz) file into a corpus directory and a gold JSONL file.",
    )
    parser.add_argument("file", type=Path, help="SQuAD-layout JSON or JSON.gz (questions)")
    parser.add_argument("out_dir", type=Path, help="output directory (corpus/, gold.jsonl)")
    parser.add_argument("--limit", type=int, default=None, help="number of questions (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--max-chars", type=int, default=600, help="longest evidence quote (default 600)")
    parser.add_argument("--pair", type=Path, default=None, help="take passages from this file (same ids)")
    parser.add_argument("--per-article", type=int, default=10, help="questions per article before top-up")
    parser.add_argument("--dataset", default=None, help="dataset tag (default: from the file name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus and gold file")
    parser.add_argument("--without-articles-of", type=Path, nargs="+", default=[], metavar="FILE",
                        help="leave out the articles of these SQuAD-layout files (test sets whose articles "
                             "FILE also holds)")
    args = parser.parse_args(argv)
    try:
        summary = convert(
            args.file,
            args.out_dir,
            limit=args.limit,
            seed=args.seed,
            max_chars=args.max_chars,
            pair=args.pair,
            per_article=args.per_article,
            dataset=args.dataset,
            overwrite=args.overwrite,
            without_articles=test_titles(args.without_articles_of),
        )
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{summary.dataset} ({summary.language}"
        f"{' -> ' + summary.passage_language if args.pair else ''}): {summary.questions} questions "
        f"({summary.answerable} answerable, {summary.unanswerable} unanswerable), "
        f"{summary.articles} articles, {summary.paragraphs} paragraphs -> {args.out_dir}"
    )
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} question(s) whose answer is not in the context", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
