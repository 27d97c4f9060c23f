"""Re-score saved answer records.

``python -m assistant.evaluation GOLD RECORDS [--k 5] [--html FILE] [--json FILE]``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from assistant.evaluation.gold import GoldFormatError, load_gold
from assistant.evaluation.runner import load_records, score_records


def main(argv: Sequence[str] | None = None) -> int:
    """Score ``RECORDS`` (JSONL from ``EvalResult.write_records``) against ``GOLD``; print a table."""
    parser = argparse.ArgumentParser(prog="python -m assistant.evaluation", description=main.__doc__)
    parser.add_argument("gold", type=Path, help="gold JSONL file")
    parser.add_argument("records", type=Path, help="records JSONL file")
    parser.add_argument("--k", type=int, default=5, help="k of hit@k (1-10, default 5)")
    parser.add_argument("--html", type=Path, default=None, help="write the HTML report here")
    parser.add_argument("--json", type=Path, default=None, help="write the metrics JSON here")
    args = parser.parse_args(argv)
    console = Console()
    try:
        result = score_records(load_gold(args.gold), load_records(args.records), args.k)
    except (OSError, GoldFormatError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        return 2
    console.print(result.table())
    if args.html:
        result.write_html(args.html)
    if args.json:
        result.write_json(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
