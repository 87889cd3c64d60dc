"""Chat history in SQLite under the data directory: conversations and their turns."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import RagError

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY, started REAL NOT NULL, title TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    question TEXT NOT NULL,
    standalone TEXT NOT NULL,
    answer TEXT NOT NULL,
    sources TEXT NOT NULL,          -- JSON: [{"n", "paper_id", "title", "cited"}]
    complete INTEGER NOT NULL,      -- 0 when the answer was cancelled or failed
    created REAL NOT NULL
);
"""


@dataclass
class Turn:
    question: str
    standalone: str
    answer: str
    sources: list[dict] = field(default_factory=list)
    complete: bool = True


class HistoryError(RagError):
    """The chat history file cannot be used."""


class History:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self.db = sqlite3.connect(path, check_same_thread=False)
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            raise HistoryError(
                f"the chat history {path} cannot be read ({exc}); move it away and rag chat starts a new one"
            ) from None

    def close(self) -> None:
        self.db.close()

    def new_conversation(self) -> int:
        with self.db:
            row_id = self.db.execute("INSERT INTO conversations (started) VALUES (?)", (time.time(),)).lastrowid
        assert row_id is not None  # an INSERT always sets it
        return row_id

    def last_conversation(self) -> int | None:
        row = self.db.execute("SELECT conversation_id FROM turns ORDER BY created DESC, id DESC LIMIT 1").fetchone()
        return int(row[0]) if row else None

    def add(self, conversation: int, turn: Turn) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO turns (conversation_id, question, standalone, answer, sources, complete, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation,
                    turn.question,
                    turn.standalone,
                    turn.answer,
                    json.dumps(turn.sources),
                    int(turn.complete),
                    time.time(),
                ),
            )
            self.db.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND title = ''", (turn.question[:80], conversation)
            )

    def turns(self, conversation: int) -> list[Turn]:
        rows = self.db.execute(
            "SELECT question, standalone, answer, sources, complete FROM turns WHERE conversation_id = ? ORDER BY id",
            (conversation,),
        ).fetchall()
        return [Turn(q, s, a, json.loads(src), bool(c)) for q, s, a, src, c in rows]

    def questions(self, limit: int = 200) -> list[str]:
        """Earlier questions, oldest first, for recalling with the up arrow."""
        rows = self.db.execute("SELECT question FROM turns ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [r[0] for r in reversed(rows)]

    def to_markdown(self, conversation: int) -> str:
        lines = ["# rag conversation", ""]
        for turn in self.turns(conversation):
            lines += [f"## {turn.question}", ""]
            lines += [turn.answer + ("" if turn.complete else "\n\n*(cancelled before it was complete)*"), ""]
            cited = [s for s in turn.sources if s.get("cited", True)]
            others = [s for s in turn.sources if not s.get("cited", True)]
            for heading, listed in (("Sources:", cited), ("Also retrieved, not cited:", others)):
                if listed:
                    lines += [heading, ""]
                    lines += [f"{s['n']}. {s['title']} (`{s['paper_id']}`)" for s in listed]
                    lines.append("")
        return "\n".join(lines)
