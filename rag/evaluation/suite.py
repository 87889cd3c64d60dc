"""Benchmark suites: JSON Lines of questions with their gold papers (see eval/README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from rag.corpus import normalise_title
from rag.jsonl import JsonLinesError, read_jsonl
from rag.sanitise import clean, has_surrogate, normalise_question

TYPES = ("single", "multi", "detail", "unanswerable")


class SuiteError(JsonLinesError):
    """A suite that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    type: str
    gold: tuple[str, ...]  # paper ids (titles are resolved on load)
    key_facts: tuple[str, ...] = ()
    notes: str = ""
    parts: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (sub-question, its key facts) for multi-part questions

    @property
    def answerable(self) -> bool:
        return self.type != "unanswerable"


@dataclass
class Suite:
    name: str
    questions: list[Question] = field(default_factory=list)


def load_suite(path: Path, titles: dict[str, str]) -> Suite:
    """Read a suite; `titles` maps paper id -> title of the indexed corpus, to resolve gold titles."""
    path = Path(path)
    by_title = {normalise_title(t): pid for pid, t in titles.items()}
    if not path.is_file():
        what = "is a directory; give the suite's .jsonl file" if path.is_dir() else "no such suite file"
        raise SuiteError(path, None, what)
    suite = Suite(name=path.stem)
    seen: set[str] = set()
    for number, row in read_jsonl(path, SuiteError):

        def bad(message: str, number: int = number) -> SuiteError:
            return SuiteError(path, number, message)

        for key in ("id", "question", "type"):
            if row.get(key) is not None and not isinstance(row[key], str):
                how = "quote it" if isinstance(row[key], int | float) else "write it as one string"
                raise bad(f"{key!r} must be text, not {type(row[key]).__name__} ({str(row[key])[:40]}); {how}")
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise bad(f"missing or empty {key!r}")
        if row["type"] not in TYPES:
            raise bad(f"type {row['type']!r} is not one of {', '.join(TYPES)}")
        if row["id"] in seen:
            raise bad(f"duplicate question id {row['id']!r}")
        seen.add(row["id"])
        gold_in = row.get("gold", [])
        facts = row.get("key_facts", [])
        if not isinstance(gold_in, list) or not all(isinstance(g, str) for g in gold_in):
            raise bad("'gold' must be a list of paper ids or titles")
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            raise bad("'key_facts' must be a list of strings")
        notes = row.get("notes") or ""
        if not isinstance(notes, str):
            raise bad("'notes' must be a string")
        parts_in = row.get("parts", [])
        if not isinstance(parts_in, list) or not all(
            isinstance(p, dict)
            and isinstance(p.get("ask"), str)
            and isinstance(p.get("key_facts", []), list)
            and all(isinstance(f, str) for f in p.get("key_facts", []))
            for p in parts_in
        ):
            raise bad('\'parts\' must be a list of {"ask": text, "key_facts": [text, ...]}')
        parts = tuple((clean(p["ask"]), tuple(p.get("key_facts", []))) for p in parts_in)
        if any(has_surrogate(t) for t in (row["id"], row["question"], *gold_in, *facts, notes)):
            raise bad("the line holds an unpaired surrogate (such as \\ud800), not valid Unicode")
        gold = []
        for g in gold_in:
            pid = g if g in titles else by_title.get(normalise_title(g))
            if pid is None:
                raise bad(f"gold {g!r} is neither a paper id nor a title in the store")
            gold.append(pid)
        if row["type"] == "unanswerable" and gold:
            raise bad("an unanswerable question cannot have gold papers")
        if row["type"] != "unanswerable" and not gold:
            raise bad("an answerable question needs at least one gold paper")
        suite.questions.append(
            Question(
                row["id"],
                normalise_question(row["question"]),
                row["type"],
                tuple(gold),
                tuple(facts),
                clean(notes),
                parts,
            )
        )
    if not suite.questions:
        raise SuiteError(path, None, "the suite has no questions")
    return suite


def bundled_suites() -> list[Path]:
    """The suites shipped with rag (eval/suites: tune, then test), from a wheel or a checkout."""
    packaged = Path(str(resources.files("rag") / "_suites"))
    folder = packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "eval" / "suites"
    return sorted(folder.glob("*.jsonl"), key=lambda p: (p.stem != "tune", p.stem))
