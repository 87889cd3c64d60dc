"""Written paraphrases of true claims: the verifier's false-unsupported rate, as `rag eval` reports it."""

import json

from rag.evaluation.verifier_set import measure, written_pairs


def test_written_paraphrases_are_read_with_their_abstracts_and_measured(tmp_path):
    path = tmp_path / "paraphrases.jsonl"
    rows = [
        {
            "title": "Densing Law of LLMs",
            "claim": "LLM capacity density doubles about every three months.",
            "style": "reworded",
        },
        {"title": "densing law of llms ", "claim": "Capacity density doubles every ten years.", "style": "number"},
        {"title": "A paper that is not stored", "claim": "Anything at all.", "style": "general"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    abstracts = {
        "2412.04315": ("Densing Law of LLMs", "The capacity density of LLMs doubles approximately every three months.")
    }
    pairs = written_pairs(path, abstracts)
    assert [(p.kind, p.title, p.supported) for p in pairs] == [
        ("reworded", "Densing Law of LLMs", True),
        ("number", "Densing Law of LLMs", True),
    ]
    got = measure(pairs)
    # the reworded true claim is accepted, the wrong number is not: a false-unsupported rate of 0.5
    assert got["tpr"] == 0.5 and got["accuracy_by_kind"] == {"number": 0.0, "reworded": 1.0}
