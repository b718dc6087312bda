"""The one way the benchmarks print their results: a Markdown table, then notes as a list."""

from collections.abc import Iterable, Sequence


def print_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], notes: Sequence[str] = ()
) -> None:
    """Print ``rows`` (cells already formatted) under ``header``, then a blank line and
    ``notes`` as list items, ready to paste into docs/*.md."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
