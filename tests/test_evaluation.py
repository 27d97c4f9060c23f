"""Tests of the evaluation harness: metrics, gold files, the HTML report, the SQuAD converter, run_eval."""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table

from assistant.evaluation import (
    EvalResult,
    GoldFormatError,
    GoldItem,
    aggregate,
    by_tag,
    check_evidence,
    dump_gold,
    fold,
    load_gold,
    load_records,
    percentile,
    render_html,
    run_eval,
    score_record,
    score_records,
    supports,
)
from assistant.evaluation.__main__ import main as rescore_main
from assistant.evaluation.report import highlight
from assistant.evaluation.squad import convert, evidence_span, locate_answer, main, split_sentences
from assistant.schema import Answer, Citation, Passage

# --------------------------------------------------------------------------- fold / supports

# 100 distinct characters, so the longest common substring with a prefix of it is exactly that prefix.
QUOTE100 = "".join(chr(0x4E00 + i) for i in range(100))
FILLER = "#" * 30


def test_fold_collapses_white_space_and_case() -> None:
    assert fold("  Hello\n\t WORLD\u3000 ß ") == "hello world ss"
    assert fold("") == ""


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [(59, False), (60, True), (61, True), (100, True)],
)
def test_supports_sixty_percent_rule(prefix: int, expected: bool) -> None:
    passage = FILLER + QUOTE100[:prefix] + FILLER
    assert supports(passage, [QUOTE100]) is expected


def test_supports_cut_at_chunk_start() -> None:
    # a chunk boundary cut the quote: the passage holds its last 61 %
    assert supports(QUOTE100[39:] + " next sentence.", [QUOTE100])
    assert not supports(QUOTE100[41:] + " next sentence.", [QUOTE100])


def test_supports_folds_case_and_white_space() -> None:
    evidence = ["The Alliance was founded\nin  March 2021."]
    assert supports("Intro. THE alliance WAS founded in march 2021. More text.", evidence)
    assert supports("联盟于\u3000二〇二一年 成立。", ["联盟于 二〇二一年\n成立。"])
    assert not supports("Something else entirely.", evidence)


def test_supports_short_quotes_need_the_whole_quote() -> None:
    # 60 % of "1990" would be 3 characters; short quotes must match whole (min 10 chars)
    assert not supports("It happened in 1991.", ["1990"])
    assert supports("It happened in 1990.", ["1990"])
    assert not supports("", ["1990"])
    assert not supports("anything", [])
    assert not supports("anything", ["   "])


def _lcs_brute_force(a: str, b: str) -> int:
    best = 0
    for i in range(len(a)):
        for j in range(i + best + 1, len(a) + 1):
            if a[i:j] not in b:
                break
            best = j - i
    return best


@settings(max_examples=300, deadline=None)
@given(
    quote=st.text(alphabet="abc ", min_size=1, max_size=40), passage=st.text(alphabet="abcd \n", max_size=80)
)
def test_supports_matches_brute_force(quote: str, passage: str) -> None:
    fq, fp = fold(quote), fold(passage)
    if not fq or not fp:
        expected = False
    else:
        needed = max(math.ceil(0.6 * len(fq) - 1e-9), min(10, len(fq)))
        expected = fq in fp or _lcs_brute_force(fq, fp) >= needed
    assert supports(passage, [quote]) is expected


def test_supports_any_of_several_quotes() -> None:
    assert supports("prefix " + QUOTE100[:70], ["unrelated sentence that is long enough", QUOTE100])


# --------------------------------------------------------------------------- score_record / aggregate

GOLD_A = "The alliance brings together forty vocational schools and twelve companies."
GOLD_B = "联盟由常州工程职业技术学院牵头，成员包括四十所职业院校。"
GOLD_C = "The testing park opened its training centre in 2023 with support from SGS."
OTHER = "A distractor passage about something unrelated to the question at all."


def _passage(text: str, doc: str = "d") -> dict[str, Any]:
    return {"doc_id": doc, "text": text, "score": 0.5}


def _citation(n: int, text: str, quote: str) -> dict[str, Any]:
    return {
        "n": n,
        "doc_id": f"doc{n}",
        "title": "t",
        "text": text,
        "quote": quote,
        "start": 0,
        "end": len(quote),
    }


def _items() -> list[GoldItem]:
    return [
        GoldItem("q1", "How many schools?", evidence=[GOLD_A], answer_contains=["forty"], tags=["en"]),
        GoldItem("q2", "Who won the 1990 World Cup?", answerable=False, tags=["en", "unanswerable"]),
        GoldItem(
            "q3", "联盟由谁牵头？", evidence=[GOLD_B], answer_contains=["常州工程职业技术学院"], tags=["zh"]
        ),
        GoldItem(
            "q4",
            "When did the training centre open?",
            evidence=[GOLD_C],
            answer_contains=["2023", "SGS", "March"],
            tags=["zh"],
        ),
    ]


def _records() -> list[dict[str, Any]]:
    return [
        {  # gold passage at rank 2, one supporting citation, correct answer
            "id": "q1",
            "answer": "It brings together Forty vocational schools [1].",
            "abstained": False,
            "citations": [_citation(1, "Intro. " + GOLD_A + " Outro.", GOLD_A)],
            "retrieved": [_passage(OTHER), _passage("Intro. " + GOLD_A)] + [_passage(OTHER)] * 8,
            "latency_ms": 100.0,
        },
        {  # unanswerable, rightly abstained
            "id": "q2",
            "answer": "I could not find this in the documents.",
            "abstained": True,
            "citations": [],
            "retrieved": [_passage(OTHER)],
            "latency_ms": 200.0,
        },
        {  # answerable but abstained (false abstention); gold passage at rank 7; stray citation ignored
            "id": "q3",
            "answer": "没有找到相关信息。",
            "abstained": True,
            "citations": [_citation(1, GOLD_B, GOLD_B)],
            "retrieved": [_passage(OTHER)] * 6 + [_passage(GOLD_B)],
            "latency_ms": 300.0,
        },
        {  # gold at rank 1; 3 citations, 2 support (one by quote, one by a quote cut to 61 %)
            "id": "q4",
            "answer": "The centre opened in 2023 with SGS.",
            "abstained": False,
            "citations": [
                _citation(1, GOLD_C, GOLD_C),
                _citation(2, "x " + GOLD_C, GOLD_C[: int(len(GOLD_C) * 0.7)]),
                _citation(3, GOLD_C + " " + OTHER, OTHER),  # passage supports, quote does not
            ],
            "retrieved": [_passage(GOLD_C), _passage(OTHER)],
            "latency_ms": 400.0,
        },
    ]


def test_score_record_per_question() -> None:
    items, records = _items(), _records()
    s1, s2, s3, s4 = (score_record(i, r, k=5) for i, r in zip(items, records, strict=True))
    assert (s1.rank, s1.hit_at_1, s1.hit_at_k, s1.reciprocal_rank) == (2, False, True, 0.5)
    assert (s1.citation_precision, s1.has_supporting_citation, s1.answer_correct) == (1.0, True, True)
    assert s1.quote_lengths == [len(GOLD_A)]
    assert s2.rank is None and s2.hit_at_1 is None and s2.reciprocal_rank is None
    assert s2.answer_correct is None and s2.citation_precision is None and s2.abstained
    assert (s3.rank, s3.hit_at_k, s3.reciprocal_rank) == (7, False, pytest.approx(1 / 7))
    assert s3.n_citations == 0 and s3.has_supporting_citation is False and s3.answer_correct is False
    assert s4.rank == 1 and s4.hit_at_1
    assert (s4.n_citations, s4.n_supporting_citations, s4.n_supporting_passages) == (3, 2, 3)
    assert s4.citation_precision == pytest.approx(2 / 3)
    assert s4.answer_correct is False  # "March" is missing


def test_score_record_rank_beyond_ten_and_bad_k() -> None:
    item = _items()[0]
    record = {
        "id": "q1",
        "answer": "",
        "abstained": False,
        "retrieved": [_passage(OTHER)] * 10 + [_passage(GOLD_A)],
    }
    score = score_record(item, record, k=5)
    assert score.rank is None and score.reciprocal_rank == 0.0 and score.hit_at_k is False
    assert score.citation_precision is None and score.has_supporting_citation is False
    with pytest.raises(ValueError):
        score_record(item, record, k=0)
    with pytest.raises(ValueError):
        score_record(item, record, k=11)


def test_aggregate_exact_values() -> None:
    items, records = _items(), _records()
    scores = [score_record(i, r, k=5) for i, r in zip(items, records, strict=True)]
    m = aggregate(scores)
    assert (m["n"], m["n_answerable"], m["n_unanswerable"], m["n_abstained"], m["n_errors"]) == (
        4,
        3,
        1,
        2,
        0,
    )
    assert m["hit@1"] == pytest.approx(1 / 3)
    assert m["hit@k"] == pytest.approx(2 / 3)
    assert m["mrr@10"] == pytest.approx((1 / 2 + 1 / 7 + 1 / 1) / 3)  # q1, q3, q4 (q2 is unanswerable)
    # micro: (1 + 2) supporting / (1 + 3) citations; the macro mean would be (1 + 2/3) / 2 = 5/6
    assert m["citation_precision"] == pytest.approx(3 / 4)
    assert m["citation_precision_passage"] == pytest.approx(4 / 4)
    assert m["citation_recall"] == pytest.approx(2 / 3)
    assert m["answer_accuracy"] == pytest.approx(1 / 3)
    assert m["abstention_recall"] == 1.0
    assert m["abstention_precision"] == 0.5
    assert m["false_abstention_rate"] == pytest.approx(1 / 3)
    assert m["citations_per_answer"] == 2.0
    quote_lengths = sorted([len(GOLD_A), len(GOLD_C), int(len(GOLD_C) * 0.7), len(OTHER)])
    assert m["median_quote_chars"] == (quote_lengths[1] + quote_lengths[2]) / 2
    assert (m["latency_p50_ms"], m["latency_p95_ms"]) == (200.0, 400.0)  # nearest rank


def test_aggregate_none_when_denominator_is_zero() -> None:
    items, records = _items(), _records()
    only_unanswerable = aggregate([score_record(items[1], records[1], k=5)])
    for key in ("hit@1", "hit@k", "mrr@10", "citation_precision", "citation_recall", "answer_accuracy"):
        assert only_unanswerable[key] is None, key
    assert only_unanswerable["false_abstention_rate"] is None
    assert only_unanswerable["abstention_recall"] == 1.0
    empty = aggregate([])
    assert empty["n"] == 0 and empty["latency_p50_ms"] is None and empty["median_quote_chars"] is None


def test_by_tag() -> None:
    items, records = _items(), _records()
    scores = [score_record(i, r, k=5) for i, r in zip(items, records, strict=True)]
    groups = by_tag(items, scores)
    assert list(groups) == ["all", "en", "unanswerable", "zh"]
    assert (
        groups["en"]["n"] == 2 and groups["en"]["hit@1"] == 0.0 and groups["en"]["abstention_recall"] == 1.0
    )
    assert groups["zh"]["hit@1"] == 0.5 and groups["zh"]["false_abstention_rate"] == 0.5
    assert groups["unanswerable"]["n_answerable"] == 0 and groups["unanswerable"]["hit@k"] is None


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5.0
    assert percentile(values, 95) == 10.0
    assert percentile(values, 10) == 1.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 0)


# --------------------------------------------------------------------------- gold files


def _write(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_gold_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "gold.jsonl",
        [
            json.dumps({"id": "a", "question": "Q?", "evidence": ["some text"], "answer_contains": ["x"]}),
            "",
            json.dumps(
                {"id": "b", "question": "问题？", "history": ["上一个问题"], "tags": ["zh", "followup"]}
            ),
        ],
    )
    a, b = load_gold(path)
    assert a.answerable and a.evidence == ["some text"] and a.history == [] and a.tags == []
    assert not b.answerable and b.history == ["上一个问题"] and b.tags == ["zh", "followup"]


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"id": "x", "question": "Q?", ', "invalid JSON"),
        ('["not", "an", "object"]', "expected a JSON object"),
        ('{"id": "x"}', '"question"'),
        ('{"id": "", "question": "Q?"}', '"id"'),
        ('{"id": "x", "question": "Q?", "answerable": true}', "needs at least one"),
        ('{"id": "x", "question": "Q?", "answerable": "yes", "evidence": ["e"]}', '"answerable"'),
        ('{"id": "x", "question": "Q?", "evidence": "a string"}', '"evidence" must be a list'),
        ('{"id": "x", "question": "Q?", "history": [1, 2]}', '"history" must be a list'),
        ('{"id": "x", "question": "Q?", "anwserable": false}', "unknown key"),
        ('{"id": "ok", "question": "Q?", "evidence": ["e"]}', "duplicate id"),
    ],
)
def test_load_gold_errors_name_line_and_reason(tmp_path: Path, bad_line: str, reason: str) -> None:
    good = json.dumps({"id": "ok", "question": "Fine?", "evidence": ["e"]})
    path = _write(tmp_path / "gold.jsonl", [good, "", bad_line])
    with pytest.raises(GoldFormatError) as info:
        load_gold(path)
    assert isinstance(info.value, ValueError)
    assert info.value.line == 3
    assert f"{path}:3:" in str(info.value) and reason in str(info.value)


def test_load_gold_empty_file(tmp_path: Path) -> None:
    with pytest.raises(GoldFormatError, match="no gold items"):
        load_gold(_write(tmp_path / "gold.jsonl", [""]))


def test_check_evidence() -> None:
    items = [
        GoldItem("a", "Q?", evidence=["The Alliance  was\nfounded in 2021.", "missing quote"]),
        GoldItem("b", "Q?", evidence=["联盟成立"]),
        GoldItem("c", "Q?", answerable=False),
    ]
    corpus = ["Intro. the alliance was founded in 2021. More.", "二〇二一年，联盟成立。"]
    assert check_evidence(items, corpus) == [("a", "missing quote")]
    # a quote must lie inside one text, not across two
    assert check_evidence([GoldItem("d", "Q?", evidence=["more. 二〇"])], corpus) == [("d", "more. 二〇")]


# --------------------------------------------------------------------------- HTML report

EVIL = 'Hi <script>alert("x")</script> and <img src=x onerror=alert(1)> & co.'


def test_highlight_escapes_and_marks() -> None:
    assert highlight("a <b> quote here", "quote") == "a &lt;b&gt; <mark>quote</mark> here"
    assert highlight("Line one\nQUOTE  here", "quote here") == "Line one\n<mark>QUOTE  here</mark>"
    assert highlight("x quote y quote", "quote", offset=10) == "x quote y <mark>quote</mark>"
    assert "not found" in highlight("abc", "zzz")


def test_html_report_escapes_everything() -> None:
    item = GoldItem("q<1>", "What <b>is</b> this?", history=["<i>before</i>"], evidence=[EVIL], tags=["<t>"])
    record = {
        "id": "q<1>",
        "history": ["<i>before</i>"],
        "standalone_question": "<u>standalone</u>",
        "answer": "Answer with <script>evil()</script>",
        "abstained": False,
        "citations": [_citation(1, "Before. " + EVIL + " After.", EVIL)],
        "retrieved": [_passage(EVIL, doc="<doc>")],
        "latency_ms": 12.0,
    }
    result = score_records([item], [record], k=3)
    html = result.render_html(title="<title>")
    assert "<script" not in html and "<img" not in html and "<b>is" not in html and "<u>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<mark>Hi &lt;script&gt;" in html
    assert "&lt;t&gt;" in html and "&lt;i&gt;before&lt;/i&gt;" in html and "&lt;doc&gt;" in html
    assert "<svg" in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert render_html(result.items, result.records, result.scores, result.metrics, 3).startswith(
        "<!DOCTYPE html>"
    )


# --------------------------------------------------------------------------- SQuAD converter


def _squad_fixture() -> dict[str, Any]:
    ctx1 = (
        "The alliance was founded in Changzhou in 2021. It has forty member schools. "
        "Its secretariat is at the Vocational Institute of Engineering."
    )
    ctx2 = "Distractor paragraph about the same article. Nothing to see here."
    ctx3 = "Another article talks about testing. The park opened in 2023! Visitors came."
    return {
        "version": "v2.0",
        "data": [
            {
                "title": "Changzhou_Alliance",
                "paragraphs": [
                    {
                        "context": ctx1,
                        "qas": [
                            {
                                "id": "s1",
                                "question": "How many member schools?",
                                "answers": [{"text": "forty", "answer_start": ctx1.index("forty")}],
                                "is_impossible": False,
                            },
                            {  # wrong offset (as in CMRC 2018): located by text
                                "id": "s2",
                                "question": "Where is the secretariat?",
                                "answers": [
                                    {"text": "Vocational Institute of Engineering", "answer_start": -1}
                                ],
                                "is_impossible": False,
                            },
                            {
                                "id": "s3",
                                "question": "Who founded the moon base?",
                                "answers": [],
                                "plausible_answers": [{"text": "Changzhou", "answer_start": 28}],
                                "is_impossible": True,
                            },
                        ],
                    },
                    {"context": ctx2, "qas": []},
                ],
            },
            {
                "title": "Testing_Park",
                "paragraphs": [
                    {
                        "context": ctx3,
                        "qas": [
                            {
                                "id": "s4",
                                "question": "When did the park open?",
                                "answers": [{"text": "2023", "answer_start": ctx3.index("2023")}],
                                "is_impossible": False,
                            }
                        ],
                    }
                ],
            },
        ],
    }


def _write_squad(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(data, ensure_ascii=False).encode("utf-8")))
    return path


def _corpus_texts(out: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for f in sorted((out / "corpus").glob("*.jsonl"))
        for line in f.read_text("utf-8").splitlines()
    ]


def test_squad_converter(tmp_path: Path) -> None:
    src = _write_squad(tmp_path / "squad" / "dev-v2.0.json.gz", _squad_fixture())
    out = tmp_path / "out"
    summary = convert(src, out)
    assert (summary.questions, summary.answerable, summary.unanswerable, summary.paragraphs) == (4, 3, 1, 3)
    items = {i.id: i for i in load_gold(out / "gold.jsonl")}
    assert items["s1"].evidence == ["It has forty member schools."]
    assert items["s1"].answer_contains == ["forty"]
    assert items["s2"].evidence == ["Its secretariat is at the Vocational Institute of Engineering."]
    assert items["s4"].evidence == ["The park opened in 2023!"]
    assert not items["s3"].answerable and items["s3"].evidence == []
    assert items["s1"].tags == ["squad-v2.0", "en"]
    docs = _corpus_texts(out)
    assert {d["title"] for d in docs} == {"Changzhou Alliance", "Testing Park"}
    assert all(set(d) >= {"id", "title", "text"} for d in docs)
    texts = [d["text"] for d in docs]
    assert check_evidence(list(items.values()), texts) == []
    for item in items.values():  # the evidence is a sentence, never the whole context
        assert all(e not in texts for e in item.evidence)
    assert (out / "ATTRIBUTION.md").read_text("utf-8").count("CC BY-SA 4.0") == 1


def test_squad_converter_limit_is_deterministic_and_keeps_whole_articles(tmp_path: Path) -> None:
    src = _write_squad(tmp_path / "squad" / "dev-v2.0.json.gz", _squad_fixture())
    convert(src, tmp_path / "a", limit=2, seed=3, per_article=1)
    convert(src, tmp_path / "b", limit=2, seed=3, per_article=1)
    gold_a = (tmp_path / "a" / "gold.jsonl").read_text("utf-8")
    assert gold_a == (tmp_path / "b" / "gold.jsonl").read_text("utf-8")
    assert len(gold_a.splitlines()) == 2
    assert "s4" in gold_a  # one question per article first: both articles are sampled
    assert len(_corpus_texts(tmp_path / "a")) == 3  # with the distractor paragraph
    convert(src, tmp_path / "c", limit=1, seed=3)
    assert len(load_gold(tmp_path / "c" / "gold.jsonl")) == 1


def test_squad_converter_leaves_out_the_articles_of_test_files(tmp_path: Path) -> None:
    """SQuAD 1.1 dev holds the articles (and answerable questions) of the SQuAD 2.0 and XQuAD test
    halves: a development sample made from it leaves them out, questions and passages."""
    from assistant.evaluation.squad import main, test_titles

    fixture = _squad_fixture()
    src = _write_squad(tmp_path / "squad" / "dev-v1.1.json.gz", fixture)
    test = _write_squad(tmp_path / "squad" / "test.json.gz", {"version": "v2.0", "data": fixture["data"][1:]})
    assert test_titles([test]) == {"Testing_Park"}
    for limit in (None, 3):
        out = tmp_path / f"out-{limit}"
        summary = convert(src, out, limit=limit, without_articles={"Testing_Park"})
        assert {i.id for i in load_gold(out / "gold.jsonl")} == {"s1", "s2", "s3"}
        assert {d["title"] for d in _corpus_texts(out)} == {"Changzhou Alliance"} and summary.articles == 1
        manifest = json.loads((out / "manifest.json").read_text("utf-8"))
        assert manifest["without_articles"] == ["Testing_Park"]
    assert main([str(src), str(tmp_path / "cli"), "--without-articles-of", str(test)]) == 0
    assert {i.id for i in load_gold(tmp_path / "cli" / "gold.jsonl")} == {"s1", "s2", "s3"}


def test_squad_converter_pair_is_cross_lingual(tmp_path: Path) -> None:
    en_ctx = "The park opened in 2023. It trains inspectors."
    zh_ctx = "检测园区于2023年开园。园区负责培训检验员。"
    en = {
        "data": [
            {
                "title": "Park",
                "paragraphs": [
                    {
                        "context": en_ctx,
                        "qas": [
                            {
                                "id": "p1",
                                "question": "When did the park open?",
                                "answers": [{"text": "2023", "answer_start": 19}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    zh = {
        "data": [
            {
                "title": "Park",
                "paragraphs": [
                    {
                        "context": zh_ctx,
                        "qas": [
                            {
                                "id": "p1",
                                "question": "园区何时开园？",
                                "answers": [{"text": "2023年", "answer_start": 5}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    out = tmp_path / "x"
    summary = convert(
        _write_squad(tmp_path / "xquad.en.json.gz", en),
        out,
        pair=_write_squad(tmp_path / "xquad.zh.json.gz", zh),
    )
    assert (summary.language, summary.passage_language) == ("en", "zh")
    (item,) = load_gold(out / "gold.jsonl")
    assert item.question == "When did the park open?"
    assert item.evidence == ["检测园区于2023年开园。"] and item.answer_contains == ["2023年"]
    assert item.tags == ["xquad", "en", "cross-lingual"]
    assert [d["text"] for d in _corpus_texts(out)] == [zh_ctx]


def test_squad_cli_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write_squad(tmp_path / "cmrc2018_dev.json.gz", _squad_fixture())
    assert main([str(src), str(tmp_path / "o"), "--limit", "2"]) == 0
    assert "cmrc2018" in capsys.readouterr().out
    assert main([str(src), str(tmp_path / "o")]) == 2
    assert main([str(src), str(tmp_path / "o"), "--overwrite"]) == 0


def test_sentence_split_and_evidence_window() -> None:
    zh = "第一句话。第二句话！“第三句。”最后"
    assert [zh[s:e] for s, e in split_sentences(zh)] == ["第一句话。", "第二句话！", "“第三句。”", "最后"]
    en = "Dr. Smith left in 1990. He came back e.g. in 3.5 years. THE END"
    assert [en[s:e] for s, e in split_sentences(en)] == [
        "Dr.",
        "Smith left in 1990.",
        "He came back e.g. in 3.5 years.",
        "THE END",
    ]
    # a very short sentence is widened to a neighbour (at least 20 characters)
    s, e = evidence_span(en, en.index("Dr."), en.index("Dr.") + 3)
    assert en[s:e] == "Dr. Smith left in 1990."
    long = "word " * 300 + "ANSWER " + "word " * 300 + "."
    s, e = evidence_span(long, long.index("ANSWER"), long.index("ANSWER") + 6, max_chars=100)
    assert "ANSWER" in long[s:e] and e - s <= 100 and long[s:e] == long[s:e].strip()
    assert locate_answer("abc abc abc", "abc", 5) == (4, 7)
    assert locate_answer("abc", "zzz", 0) is None


# --------------------------------------------------------------------------- run_eval


# FakeAsker stands in for the real assistant (``assistant.core.Assistant``), which is being written in
# parallel and cannot be imported yet; it follows the same ``ask`` protocol and returns real ``Answer``s.
class FakeAsker:
    """Stands in for ``assistant.core.Assistant`` (not available yet): canned answers per question."""

    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[tuple[str, list[str] | None]] = []
        self.fail_on = fail_on

    def ask(self, question: str, history: list[str] | None = None, filters: dict | None = None) -> Answer:
        self.calls.append((question, history))
        if question == self.fail_on:
            raise RuntimeError("backend down")
        if "schools" in question:
            passage = Passage("d1::0", "d1", "Intro. " + GOLD_A, 0, 80, 0.9, metadata={"title": "Alliance"})
            distractor = Passage("d2::0", "d2", OTHER, 0, 70, 0.95)
            citation = Citation(
                1, "d1", "d1::0", "Alliance", "", "", "d1.txt", passage.text, 0, 80, GOLD_A, 7, 80
            )
            return Answer(
                question=question,
                standalone_question="How many schools does the alliance have?",
                answer="Forty vocational schools [1].",
                abstained=False,
                language="en",
                citations=[citation],
                retrieved=[distractor, passage],
                latency_ms=120.0,
            )
        return Answer(
            question,
            question,
            "I don't know.",
            True,
            "en",
            retrieved=[Passage("d2::0", "d2", OTHER, 0, 70, 0.2)],
        )


def test_run_eval_with_fake_asker(tmp_path: Path) -> None:
    items = [
        GoldItem(
            "q1",
            "And how many schools?",
            history=["What is the alliance?"],
            evidence=[GOLD_A],
            answer_contains=["forty"],
            tags=["en", "followup"],
        ),
        GoldItem("q2", "Who won the 1990 World Cup?", answerable=False, tags=["en"]),
    ]
    asker = FakeAsker()
    result = run_eval(asker, items, k=1, progress=False)
    assert asker.calls == [
        ("And how many schools?", ["What is the alliance?"]),
        ("Who won the 1990 World Cup?", None),
    ]
    rec = result.records[0]
    assert set(rec) >= {
        "id",
        "question",
        "standalone_question",
        "answer",
        "abstained",
        "citations",
        "retrieved",
        "latency_ms",
    }
    assert set(rec["citations"][0]) >= {"n", "doc_id", "title", "text", "quote", "start", "end"}
    assert [p["doc_id"] for p in rec["retrieved"]] == ["d2", "d1"] and rec["latency_ms"] == 120.0
    assert result.records[1]["latency_ms"] >= 0.0  # no latency reported: measured wall time
    m = result.metrics["all"]
    assert (m["hit@1"], m["hit@k"], m["mrr@10"]) == (0.0, 0.0, 0.5)
    assert (m["citation_precision"], m["citation_recall"], m["answer_accuracy"]) == (1.0, 1.0, 1.0)
    assert (m["abstention_recall"], m["false_abstention_rate"]) == (1.0, 0.0)
    assert set(result.metrics) == {"all", "en", "followup"}
    report = result.to_json()
    assert report["k"] == 1 and report["n"] == 2 and set(report["by_tag"]) == {"en", "followup"}
    json.dumps(report)

    # saved records re-score to the same metrics, independently of the run
    result.write_records(tmp_path / "records.jsonl")
    again = score_records(items, load_records(tmp_path / "records.jsonl"), k=1)
    assert again.metrics == result.metrics
    with pytest.raises(ValueError, match="no record"):
        score_records([*items, GoldItem("q9", "?", answerable=False)], result.records, k=1)

    result.write_html(tmp_path / "report.html")
    assert "<mark>" in (tmp_path / "report.html").read_text("utf-8")
    result.write_json(tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text("utf-8"))["metrics"]["hit@k"] == 0.0

    # the re-scoring command line
    dump_gold(items, tmp_path / "gold.jsonl")
    args = [str(tmp_path / "gold.jsonl"), str(tmp_path / "records.jsonl"), "--k", "1"]
    assert rescore_main([*args, "--json", str(tmp_path / "rescored.json")]) == 0
    assert json.loads((tmp_path / "rescored.json").read_text("utf-8"))["metrics"] == report["metrics"]
    assert rescore_main([str(tmp_path / "gold.jsonl"), str(tmp_path / "missing.jsonl")]) == 2

    table = result.table()
    assert isinstance(table, Table) and [c.header for c in table.columns] == [
        "metric",
        "all",
        "en",
        "followup",
    ]
    console = Console(record=True, width=160)
    console.print(table)
    assert "hit@1" in console.export_text()


def test_run_eval_errors_and_wide_table() -> None:
    items = [GoldItem(f"q{i}", f"question {i}", answerable=False, tags=[f"t{i}"]) for i in range(7)]
    with pytest.raises(RuntimeError):
        run_eval(FakeAsker(fail_on="question 3"), items, progress=False)
    result = run_eval(FakeAsker(fail_on="question 3"), items, progress=False, on_error="record")
    assert isinstance(result, EvalResult)
    assert result.metrics["all"]["n_errors"] == 1 and "backend down" in result.records[3]["error"]
    assert result.metrics["all"]["abstention_recall"] == pytest.approx(6 / 7)
    table = result.table()  # 7 tags: only the 5 most frequent get a column, beside "all"
    assert [c.header for c in table.columns] == ["metric", "all", "t0", "t1", "t2", "t3", "t4"]
    assert [c.header for c in result.table(tags=["t6"]).columns] == ["metric", "all", "t6"]
    with pytest.raises(ValueError):
        run_eval(FakeAsker(), items, k=11, progress=False)
