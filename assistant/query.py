"""A question analysed once: ``analyse_query`` makes the ``schema.Query`` that retrieval
(``Retriever.retrieve``) and the answer stage (``answer.extractive_answer``) read."""

from __future__ import annotations

from .answer import answer_kind, asked_role, asks_source, counted_tokens, expected_types
from .chat import Rewrite, entities, is_elliptical
from .retrieval import CONTEXT_WEIGHT, analyse, focus_text
from .schema import Query, QueryTerms
from .text import to_simplified


def analyse_query(
    question: str,
    rewrite: Rewrite | None = None,
    focus_weight: float = 0.0,
    subject: str = "",
    terms: QueryTerms | None = None,
) -> Query:
    """``question`` (as asked) with its conversation ``rewrite`` (``chat.rewrite``; none: the question
    stands alone), analysed once.

    Search terms are those of the standalone question (``terms``, when the caller has them). The
    answer's sentences are chosen by the question's own terms: a follow-up's carried-over context
    counts half (it finds the passage; the new question decides which sentences answer it), and
    with ``focus_weight`` the words next to the question word weigh ``1 + focus_weight``. A
    sub-question's ``subject`` (``chat.split_subjects``) must be named in the documents like the
    question's own names.
    """
    rw = rewrite or Rewrite(question)
    standalone = rw.standalone
    search_terms = terms if terms is not None else analyse(standalone)
    focus = focus_text(standalone)
    if rw.context:
        answer_terms = analyse(question, focus_weight).merged(analyse(rw.context).scaled(CONTEXT_WEIGHT))
    elif focus_weight > 0 and focus:
        answer_terms = analyse(standalone, focus_weight)
    else:
        answer_terms = search_terms  # without focus words this would repeat the search's terms
    # The lexicons' question patterns are written in simplified characters: "幾所", "哪個" as "几所", "哪个".
    plain = to_simplified(question)
    # An elliptical follow-up ("What about Nanhai?") asks what the previous question asked.
    elliptical = bool(rw.context) and is_elliptical(question) and answer_kind(plain) is None
    asks = to_simplified(standalone) if elliptical else plain
    kind = answer_kind(asks)
    return Query(
        text=question,
        standalone=standalone,
        language=answer_terms.language,
        terms=search_terms,
        answer_terms=answer_terms,
        asks=asks,
        kind=kind,
        types=tuple(expected_types(asks)),
        focus=focus,
        names=tuple(dict.fromkeys([*entities(question), *([subject] if subject else [])])),
        role=asked_role(asks),
        counted=counted_tokens(asks) if kind == "number" else frozenset(),
        followup=bool(rw.context),
        source=asks_source(asks),
    )
