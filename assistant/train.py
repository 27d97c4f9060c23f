"""Fit the learned models (``assistant.scorer``) on the development sets.

Usage::

    python -m assistant.train [--data ../shared/bench-data] [--work /tmp/assistant-train] [--seed 0]
        [--per-set 300] [--refit] [--passages | --answerability] [--out FILE]

For each development set (SQuAD 1.1 dev, CMRC 2018 trial, DRCD dev, the SQuAD 2.0 and XQuAD
development halves, XQuAD in both directions) the evaluation sample (``--limit 300``, seed 0, as in
the README) is converted and indexed under ``--work`` when missing. The training questions are
*other* questions of the same articles (never a question of any evaluation sample, never an article
of the XQuAD or SQuAD 2.0 test halves, which SQuAD 1.1 dev holds too: ``TEST_HALVES``), asked through
``Assistant.ask``; every candidate sentence the answer stage scored becomes a row of
``scorer.FEATURE_NAMES``, labelled 1 when it supports the gold evidence (``metrics.supports``, the
judgement of citation precision). ``eval/gold.jsonl`` over the sample corpus is one source among
them. Questions asked against a corpus without their article (CMRC against DRCD and back, SQuAD
against the sample corpus; for the answerability model alone, XQuAD's across languages) and SQuAD
2.0's unanswerable questions only give negatives: they calibrate abstention.

``--passages`` fits the passage ranker first (``scorer.PASSAGE_FEATURE_NAMES``, one row per fused
passage of an answerable training question, labelled 1 when the passage supports the evidence): the
sentence scorer's features (its passage's rank and score) come from the order it gives.

A logistic regression (scikit-learn, fixed seed) is fitted on all rows; the abstention threshold is
the best sentence's probability that keeps false abstention at ``FALSE_ABSTENTION`` over the
answerable questions, on out-of-fold probabilities. The model, its figures per set (out of fold)
and the threshold are written as JSON; answering needs numpy only. Needs the ``train`` extra
(scikit-learn).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .evaluation.gold import GoldItem, check_evidence, load_gold
from .evaluation.metrics import supports
from .evaluation.squad import (
    article_title,
    convert,
    evidence_span,
    locate_answer,
    read_squad,
    squad_questions,
    test_titles,
)
from .scorer import (
    ANSWERABILITY_NAMES,
    FEATURE_INDEX,
    FEATURE_NAMES,
    PASSAGE_FEATURE_NAMES,
    SentenceScorer,
    answerability_path,
    answerability_row,
    model_path,
    passage_ranker_path,
    shipped_scorer,
)

# (name, questions file, passages file or None), under the bench-data directory.
DEV_SETS: tuple[tuple[str, str, str | None], ...] = (
    ("squad11", "squad/dev-v1.1.json.gz", None),
    ("cmrc", "cmrc2018/cmrc2018_trial.json.gz", None),
    ("drcd", "drcd/DRCD_dev.json.gz", None),
    ("squad2", "squad/dev-v2.0.devhalf.json.gz", None),
    ("xq_en_zh", "xquad/xquad.en.devhalf.json.gz", "xquad/xquad.zh.devhalf.json.gz"),
    ("xq_zh_en", "xquad/xquad.zh.devhalf.json.gz", "xquad/xquad.en.devhalf.json.gz"),
)
# The evaluation samples of these sets take nearly every question of their articles (CMRC 2018 has
# one paragraph per article): their training questions come from a second sample (seed 1), indexed
# on its own under ``work/NAME-train``.
SEPARATE_TRAINING = {"cmrc": 1, "drcd": 1}
# The test halves whose articles SQuAD 1.1 dev holds too: XQuAD's English side, and every answerable
# question of the SQuAD 2.0 test half (its 18 articles; 17 are XQuAD's). They stay out of training and
# of the SQuAD 1.1 evaluation sample, on which changes are chosen.
TEST_HALVES = ("xquad/xquad.en.testhalf.json.gz", "squad/dev-v2.0.testhalf.json.gz")
# Questions asked against a corpus that lacks their article: (questions of, asked over the index of).
FOREIGN: tuple[tuple[str, str], ...] = (("cmrc", "drcd"), ("drcd", "cmrc"), ("squad11", "gold"))
# Every cross-lingual training question was answerable, so the answerability model learnt "the best
# sentence is in the other language" as a sign of an answer (it abstained on none of the XQuAD
# questions asked over a corpus of the other language without their article). These give it
# cross-lingual negatives, for it alone (source "ASKED@OVER+"): in the sentence scorer's training they
# cost it out of fold (docs/experiments.md, twelfth session).
FOREIGN_CROSS_LINGUAL: tuple[tuple[str, str], ...] = (("xq_en_zh", "cmrc"), ("xq_zh_en", "squad2"))
EVAL_LIMIT = 300
# More questions for the answerability model alone (not the sentence scorer), drawn after the
# sentence scorer's from the same shuffled pool, as source "NAME+": SQuAD 2.0's development half has
# 2,788 unanswerable questions to learn abstention from, the others calibrate false abstention.
EXTRA: dict[str, int] = {"squad2": 1500, "squad11": 400, "drcd": 300}
FOREIGN_PER_SET = 100
# The abstention threshold keeps at most this share of answerable development questions unanswered
# by the model alone (out of fold).
FALSE_ABSTENTION = 0.01
# The answerability model's threshold: this share of answerable development questions abstained on,
# out of fold (the hand checks and retrieval misses add their own).
ANSWERABILITY_FALSE_ABSTENTION = 0.02
RATES = (0.01, 0.02, 0.03, 0.04, 0.05)
C = 1.0  # inverse regularization strength of the logistic regression
FOLDS = 5


@dataclass
class QuestionRows:
    """The candidates of one question: features, labels (supports the evidence), hand scores."""

    source: str
    qid: str
    answerable: bool
    features: list[list[float]]
    labels: list[int]
    checks: list[float] = field(default_factory=list)  # ``answer.Checks.values()``

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "qid": self.qid,
            "answerable": self.answerable,
            "features": [[round(v, 6) for v in row] for row in self.features],
            "labels": self.labels,
            "checks": self.checks,
        }


@lru_cache(maxsize=2)
def test_half_titles(data: Path) -> frozenset[str]:
    """The article titles of ``TEST_HALVES`` under ``data`` (read once: every set's collection asks)."""
    return frozenset(test_titles(data / f for f in TEST_HALVES))


def prepare(work: Path, data: Path, only: str | None = None) -> dict[str, Path]:
    """Convert and index each development set's evaluation sample under ``work`` when missing (only
    set ``only``'s index, when given); the sample corpus with ``eval/gold.jsonl`` goes to ``work/gold``."""
    dirs: dict[str, Path] = {}
    for name, file, pair in DEV_SETS:
        out = work / name
        if not (out / "gold.jsonl").is_file():
            convert(data / file, out, limit=EVAL_LIMIT, pair=data / pair if pair else None, overwrite=True,
                    without_articles=test_half_titles(data))
        dirs[name] = out
    gold = work / "gold"
    if not (gold / "gold.jsonl").is_file():
        import shutil

        root = Path(__file__).resolve().parent.parent
        shutil.copytree(root / "corpus", gold / "corpus", dirs_exist_ok=True)
        shutil.copy(root / "eval" / "gold.jsonl", gold / "gold.jsonl")
    dirs["gold"] = gold
    for name, out in dirs.items():
        if (only is None or name == only) and not (out / "index").is_dir():
            _open(out).ingest()
    return dirs


def _open(out: Path) -> Any:
    from .config import Config
    from .core import Assistant

    config = Config.from_env(index_dir=out / "index", corpus_dir=out / "corpus")
    # Collection records candidates before abstention; the answerability model being refitted (whose
    # features may have changed) must not be read.
    return Assistant(replace(config, answer=replace(config.answer, answerability=False)))


def training_items(
    name: str,
    out: Path,
    data: Path,
    exclude: set[str],
    banned_titles: frozenset[str],
    limit: int,
    seed: int,
    skip: int = 0,
) -> list[GoldItem]:
    """Up to ``limit`` questions of the articles in ``out``'s corpus that no evaluation sample asks
    (``exclude``) and that are not in a ``banned_titles`` article, as gold items (evidence as the
    converter makes it); the first ``skip`` usable ones are left out (another use took them)."""
    file, pair = next((f, p) for n, f, p in DEV_SETS if n == name)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    questions = [q for q in squad_questions(read_squad(data / file)) if q.question]
    source = read_squad(data / pair) if pair else None
    paired = {q.id: q for q in squad_questions(source)} if source else {}
    titles = [article_title(a) for a in (source or read_squad(data / file))["data"]]
    articles = {int(p.name[:4]) for p in (out / "corpus").glob("*.jsonl")}
    pool = []
    for q in questions:
        src = paired.get(q.id, q) if pair else q
        if q.id in exclude or src.article not in articles or titles[src.article] in banned_titles:
            continue
        pool.append((q, src))
    random.Random(seed).shuffle(pool)
    items: list[GoldItem] = []
    for q, src in pool:
        if len(items) >= limit + skip:
            break
        if q.impossible or src.impossible:
            items.append(GoldItem(q.id, q.question, answerable=False))
            continue
        found = next((sp for t, s in src.answers if (sp := locate_answer(src.context, t, s)) is not None), None)
        if found is None:
            continue
        s, e = evidence_span(src.context, found[0], found[1], int(manifest.get("max_chars", 600)))
        items.append(
            GoldItem(q.id, q.question, evidence=[src.context[s:e]], answer_contains=[src.context[found[0] : found[1]]])
        )
    return items[skip:]


def collect(assistant: Any, items: Sequence[GoldItem], source: str, answerable: bool = True) -> list[QuestionRows]:
    """Ask every item and keep the candidates of its first scoring (the whole question); with
    ``answerable=False`` every candidate is a negative (the corpus lacks the article)."""
    from .answer import record_candidates

    out: list[QuestionRows] = []
    for item in items:
        with record_candidates() as sink:
            assistant.ask(item.question, history=list(item.history) or None)
        if not sink:
            continue
        candidates, _, checks = sink[0]
        ok = answerable and item.answerable
        labels = [int(ok and supports(c.text, item.evidence)) for c in candidates]
        out.append(
            QuestionRows(source, item.id, ok, [list(c.features) for c in candidates], labels, list(checks.values()))
        )
    return out


def collect_passages(assistant: Any, items: Sequence[GoldItem], source: str) -> list[QuestionRows]:
    """Ask every answerable item and keep the passages of its first learned ranking: their
    ``PASSAGE_FEATURE_NAMES`` rows, labelled 1 when the passage supports the evidence."""
    from .retrieval import record_passages

    out: list[QuestionRows] = []
    for item in items:
        if not item.answerable:
            continue
        with record_passages() as sink:
            assistant.ask(item.question, history=list(item.history) or None)
        if not sink:
            continue
        features, passages = sink[0]
        labels = [int(supports(p.text, item.evidence)) for p in passages]
        out.append(QuestionRows(source, item.id, True, features.tolist(), labels))
    return out


def _matrix(
    rows: Sequence[QuestionRows], names: Sequence[str] = FEATURE_NAMES, known: tuple[str, ...] = FEATURE_NAMES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray([f for r in rows for f in r.features], dtype=float)[:, [known.index(n) for n in names]]
    y = np.asarray([lab for r in rows for lab in r.labels], dtype=int)
    groups = np.asarray([i for i, r in enumerate(rows) for _ in r.labels], dtype=int)
    return x, y, groups


def fit(
    rows: Sequence[QuestionRows],
    seed: int,
    names: Sequence[str] = FEATURE_NAMES,
    known: tuple[str, ...] = FEATURE_NAMES,
) -> SentenceScorer:
    """Logistic regression on standardized features (``names`` of the rows' ``known`` columns), all rows."""
    x, y, _ = _matrix(rows, names, known)
    return SentenceScorer(tuple(names), *fit_logistic(x, y, seed), 0.5, {}, known)


def out_of_fold(
    rows: Sequence[QuestionRows],
    seed: int,
    kind: str = "logistic",
    names: Sequence[str] = FEATURE_NAMES,
    known: tuple[str, ...] = FEATURE_NAMES,
) -> list[np.ndarray]:
    """Per question, its candidates' probabilities from a model fitted without its fold."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    folds = np.random.default_rng(seed).integers(0, FOLDS, len(rows))
    probs: list[np.ndarray] = [np.zeros(0)] * len(rows)
    for k in range(FOLDS):
        train = [r for r, f in zip(rows, folds, strict=True) if f != k]
        if kind == "logistic":
            scorer = fit(train, seed, names, known)
            predict = scorer.probabilities
        else:
            x, y, _ = _matrix(train, names, known)
            gb = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed).fit(x, y)

            def predict(features: np.ndarray, gb: Any = gb) -> np.ndarray:
                return np.asarray(gb.predict_proba(features[:, [known.index(n) for n in names]])[:, 1])

        for i, (r, f) in enumerate(zip(rows, folds, strict=True)):
            if f == k:
                probs[i] = predict(np.asarray(r.features, dtype=float))
    return probs


def top1(rows: Sequence[QuestionRows], scores: Sequence[np.ndarray]) -> dict[str, float]:
    """Per source, the share of answerable questions whose best-scored candidate supports the evidence."""
    hit: dict[str, list[int]] = {}
    for r, s in zip(rows, scores, strict=True):
        if r.answerable and len(s):
            hit.setdefault(r.source, []).append(r.labels[int(np.argmax(s))])
    return {k: round(float(np.mean(v)), 4) for k, v in sorted(hit.items())}


def threshold_for(rows: Sequence[QuestionRows], probs: Sequence[np.ndarray], rate: float) -> float:
    """The best-sentence probability below which at most ``rate`` of answerable questions fall."""
    best = sorted(float(p.max()) for r, p in zip(rows, probs, strict=True) if r.answerable and len(p))
    return best[int(rate * len(best))] if best else 0.5


def abstention_figures(rows: Sequence[QuestionRows], probs: Sequence[np.ndarray], t: float) -> dict[str, Any]:
    """Per source: share of answerable questions below ``t`` and of unanswerable ones below it."""
    out: dict[str, dict[str, float]] = {}
    for r, p in zip(rows, probs, strict=True):
        if not len(p):
            continue
        d = out.setdefault(r.source, {"answerable": 0, "false_abstention": 0, "unanswerable": 0, "abstained": 0})
        below = float(p.max()) < t
        if r.answerable:
            d["answerable"] += 1
            d["false_abstention"] += below
        else:
            d["unanswerable"] += 1
            d["abstained"] += below
    return {
        k: {
            "false_abstention": round(d["false_abstention"] / d["answerable"], 4) if d["answerable"] else None,
            "abstention_recall": round(d["abstained"] / d["unanswerable"], 4) if d["unanswerable"] else None,
        }
        for k, d in sorted(out.items())
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.train", description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--data", type=Path, default=root.parent / "shared" / "bench-data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/assistant-train"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-set", type=int, default=300, help="training questions per development set")
    parser.add_argument("--refit", action="store_true", help="fit on the features collected before; collect none")
    parser.add_argument("--collect-only", nargs="*", default=None, help="only collect these sets' features")
    parser.add_argument("--out", type=Path, default=model_path())
    parser.add_argument("--compare-gb", action="store_true", help="also measure gradient boosting out of fold")
    parser.add_argument("--without", nargs="*", default=[], help="fit without these features (an ablation)")
    parser.add_argument(
        "--passages",
        action="store_true",
        help="collect for and fit the passage ranker (before the sentence scorer, whose features it orders)",
    )
    parser.add_argument(
        "--answerability",
        action="store_true",
        help="fit the answerability model (on the shipped sentence scorer's probabilities) instead",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=ANSWERABILITY_FALSE_ABSTENTION,
        help="the answerability model's out-of-fold false-abstention rate",
    )
    args = parser.parse_args(argv)
    if not args.refit and not (args.data / TEST_HALVES[0]).is_file():
        parser.error(f"no question sets at --data {args.data} (it needs ../shared/bench-data: its development "
                     "sets to train on, its test halves to leave out)")
    names = [n for n, _, _ in DEV_SETS] + ["gold"]
    todo = args.collect_only if args.collect_only is not None else names
    rows: list[QuestionRows] = []
    for name in names:
        cache = args.work / "features" / f"{'passages-' if args.passages else ''}{name}.jsonl"
        if name in todo and not args.refit:
            collected = build_rows(args.data, args.work, args.seed, args.per_set, name, args.passages)
            cache.parent.mkdir(parents=True, exist_ok=True)
            with cache.open("w", encoding="utf-8") as fh:
                for r in collected:
                    fh.write(json.dumps(r.to_dict()) + "\n")
        if cache.is_file():
            rows += [QuestionRows(**json.loads(line)) for line in cache.read_text(encoding="utf-8").splitlines()]
    if args.collect_only is not None:
        return 0
    unknown = sorted(set(args.without) - set(FEATURE_NAMES))
    if unknown:
        parser.error(f"unknown features {unknown}")
    if args.passages:
        return fit_passages_main(rows, args)
    if args.answerability:
        return fit_answerability_main(rows, args)
    rows = [r for r in rows if not r.source.endswith("+")]  # the answerability model's alone
    used = [n for n in FEATURE_NAMES if n not in args.without]
    scorer = fit(rows, args.seed, used)
    oof = out_of_fold(rows, args.seed, names=used)
    hand = [np.asarray(r.features, dtype=float)[:, FEATURE_INDEX["hand_score_ratio"]] for r in rows]
    t = threshold_for(rows, oof, FALSE_ABSTENTION)
    meta = {
        **_fit_meta(rows, "the sentence supports the gold evidence (evaluation.metrics.supports)", args.seed),
        "top1_supporting_out_of_fold": top1(rows, oof),
        "top1_supporting_hand_score": top1(rows, hand),
        "false_abstention_target": FALSE_ABSTENTION,
        "abstention_out_of_fold": abstention_figures(rows, oof, t),
    }
    if args.compare_gb:  # slow on 2 cores; it did not beat the logistic regression (docs/experiments.md)
        meta["top1_supporting_gradient_boosting_out_of_fold"] = top1(rows, out_of_fold(rows, args.seed, "gb", used))
    model = SentenceScorer(scorer.names, scorer.mean, scorer.scale, scorer.weights, scorer.intercept, t, meta)
    return _write_model(model, args.out)


def answerability_matrix(rows: Sequence[QuestionRows], scorer: SentenceScorer) -> tuple[np.ndarray, np.ndarray]:
    """One ``scorer.ANSWERABILITY_NAMES`` row per question (with ``scorer``'s probabilities) and its
    label: the question is answerable from the corpus it was asked over."""
    x = []
    for r in rows:
        features = np.asarray(r.features, dtype=float)
        x.append(answerability_row(features, scorer.probabilities(features), tuple(r.checks)))
    return np.asarray(x, dtype=float), np.asarray([int(r.answerable) for r in rows], dtype=int)


def fit_logistic(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Standardization and a logistic regression (``C``): mean, scale, weights, intercept."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=C, max_iter=5000, random_state=seed).fit((x - mean) / scale, y)
    return mean, scale, model.coef_[0], float(model.intercept_[0])


def fit_answerability_main(rows: Sequence[QuestionRows], args: argparse.Namespace) -> int:
    """Fit, measure out of fold and write the answerability model (``--answerability``)."""
    scorer = shipped_scorer()
    if scorer is None:
        raise SystemExit("the answerability model needs the shipped sentence scorer")
    rows = [r for r in rows if r.features]
    x, y = answerability_matrix(rows, scorer)

    def model(train: np.ndarray, t: float = 0.5, meta: dict[str, Any] | None = None) -> SentenceScorer:
        fitted = fit_logistic(x[train], y[train], args.seed)
        return SentenceScorer(ANSWERABILITY_NAMES, *fitted, t, meta or {}, ANSWERABILITY_NAMES)

    folds = np.random.default_rng(args.seed).integers(0, FOLDS, len(rows))
    oof = np.zeros(len(rows))
    for k in range(FOLDS):
        oof[folds == k] = model(folds != k).probabilities(x[folds == k])
    # One probability per question: the helpers of the sentence scorer's threshold read it as its best.
    per_question = [np.array([p]) for p in oof]
    t = threshold_for(rows, per_question, args.rate)
    meta = {
        **_fit_meta(rows, "the question is answerable from the corpus it was asked over", args.seed),
        "rows": len(rows),  # one per question
        "sentence_scorer": {"date": scorer.meta.get("date"), "threshold": scorer.threshold},
        "false_abstention_target": args.rate,
        "abstention_out_of_fold": abstention_figures(rows, per_question, t),
        # Other operating points (``AnswerSettings.answerability_threshold``): rate -> threshold.
        "thresholds_out_of_fold": {f"{r:g}": round(threshold_for(rows, per_question, r), 4) for r in RATES},
    }
    final = model(np.ones(len(rows), dtype=bool), t, meta)
    return _write_model(final, args.out if args.out != model_path() else answerability_path())


def _write_model(model: SentenceScorer, out: Path) -> int:
    """Write a fitted model as the package's JSON and print its figures; the exit status."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(model.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in model.meta.items() if k not in ("model", "label")}, indent=1))
    return 0


def _fit_meta(rows: Sequence[QuestionRows], label: str, seed: int) -> dict[str, Any]:
    """What every fitted model records of its fit: model, label, seed, date, questions and rows."""
    return {
        "model": f"logistic regression (scikit-learn LogisticRegression, C={C:g}) on standardized features",
        "label": label,
        "seed": seed,
        "date": dt.date.today().isoformat(),
        "questions": {s: sum(1 for r in rows if r.source == s) for s in sorted({r.source for r in rows})},
        "rows": int(sum(len(r.labels) for r in rows)),
    }


def fit_passages_main(rows: Sequence[QuestionRows], args: argparse.Namespace) -> int:
    """Fit, measure out of fold (hit@1 against the hand-weighted order) and write the passage ranker."""
    rows = [r for r in rows if r.features]
    names = PASSAGE_FEATURE_NAMES
    oof = out_of_fold(rows, args.seed, names=names, known=names)
    hand = [-np.arange(len(r.labels), dtype=float) for r in rows]  # the rows come in the hand order
    meta = {
        **_fit_meta(rows, "the passage supports the gold evidence (evaluation.metrics.supports)", args.seed),
        "hit_at_1_out_of_fold": top1(rows, oof),
        "hit_at_1_hand_weights": top1(rows, hand),
    }
    ranker = fit(rows, args.seed, names, names)
    final = SentenceScorer(names, ranker.mean, ranker.scale, ranker.weights, ranker.intercept, 0.5, meta, names)
    return _write_model(final, args.out if args.out != model_path() else passage_ranker_path())


def corpus_texts(corpus: Path) -> list[str]:
    """The texts of the documents in ``corpus``, as ingest finds and reads them."""
    from .documents import iter_files, load_file

    return [doc.text for f in iter_files([corpus]) for doc in load_file(f)]


def lacking(items: Sequence[GoldItem], texts: Sequence[str]) -> list[GoldItem]:
    """The answerable ``items`` none of whose evidence ``texts`` holds (``gold.check_evidence``):
    asked over those texts, they have no answer (XQuAD's articles are in SQuAD's corpora too)."""
    answerable = [i for i in items if i.answerable]
    missing = set(check_evidence(answerable, texts))
    return [i for i in answerable if all((i.id, e) in missing for e in i.evidence)]


def build_rows(
    data: Path, work: Path, seed: int, per_set: int, name: str, passages: bool = False
) -> list[QuestionRows]:
    """The candidates of set ``name``'s training questions over its index, and of the questions of
    other sets asked over it without their article (``FOREIGN``, ``FOREIGN_CROSS_LINGUAL``); see the
    module docstring. With ``passages``, the passages of its answerable training questions instead."""
    dirs = prepare(work, data, only=name)
    exclude = {item.id for d in list(dirs.values()) for item in load_gold(d / "gold.jsonl")}
    banned = test_half_titles(data)

    for n, sample_seed in SEPARATE_TRAINING.items():
        train_dir = work / f"{n}-train"
        if not (train_dir / "gold.jsonl").is_file():
            file = next(f for m, f, _ in DEV_SETS if m == n)
            convert(data / file, train_dir, limit=EVAL_LIMIT, seed=sample_seed, overwrite=True,
                    without_articles=banned)
        dirs[f"{n}-train"] = train_dir

    def items_of(n: str) -> list[GoldItem]:
        if n == "gold":
            return load_gold(dirs["gold"] / "gold.jsonl")
        own = dirs[f"{n}-train" if n in SEPARATE_TRAINING else n]
        return training_items(n, own, data, exclude, banned, per_set, seed)

    where = dirs[f"{name}-train" if name in SEPARATE_TRAINING else name]
    if not (where / "index").is_dir():
        _open(where).ingest()
    assistant = _open(where)
    if passages:
        return collect_passages(assistant, items_of(name), name)
    rows = collect(assistant, items_of(name), name)
    foreign_sets = [(a, "") for a, o in FOREIGN if o == name] + [
        (a, "+") for a, o in FOREIGN_CROSS_LINGUAL if o == name
    ]
    texts = corpus_texts(where / "corpus") if foreign_sets else []
    for asked, suffix in foreign_sets:
        foreign = lacking(items_of(asked), texts)[:FOREIGN_PER_SET]
        rows += collect(assistant, foreign, f"{asked}@{name}{suffix}", answerable=False)
    if name in EXTRA:
        extra = training_items(name, where, data, exclude, banned, EXTRA[name], seed, skip=per_set)
        rows += collect(assistant, extra, f"{name}+")
    print(f"{name}: {len(rows)} questions", file=sys.stderr)
    return rows


if __name__ == "__main__":
    sys.exit(main())
