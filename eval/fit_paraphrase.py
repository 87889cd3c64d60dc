"""Choose the grounding check's paraphrase rule (GroundingTuning.paraphrase_*) and its on/off rules on eval/drafts/tune.

    RAG_DATA_DIR=... python eval/fit_paraphrase.py [--labels eval/drafts/tune/labels.jsonl]

It also prints the false-unsupported rate on eval/drafts/tune/paraphrases.jsonl (true claims
written as paraphrases; the other half, eval/drafts/paraphrases.jsonl, is reported by `rag eval`)
and the false-supported rate on eval/drafts/tune/near_misses.jsonl (plausible false claims about
the same papers: changed numbers, reversed findings, overreach, wrong details), with each rule off.

The tune labels (draft sentences citing corpus papers: reworded true claims, wrong citations,
changed numbers, reversed findings, overclaims) were written apart from eval/drafts/labels.jsonl,
which `rag eval` reports and which is never read here. Every (overlap floor, similarity) pair of
the grid is measured with `rag check`'s own scoring; the chosen pair has the highest balanced
accuracy, then the highest precision of the "not supported" flag, then the strictest similarity
and overlap floor.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from rag.config import load_settings
from rag.draft import Checker, CorpusIndex, load_entries, measure
from rag.evaluation.verifier_set import measure as paraphrase_measure
from rag.evaluation.verifier_set import written_pairs
from rag.grounding import GROUNDING, OverlapVerifier
from rag.jsonl import read_jsonl
from rag.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
FLOORS = [0.2, 0.3, 0.4, 0.5]
SIMILARITIES = [0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
RULES = [
    "opposites",
    "quantities",
    "second_window",
    "hedged",
    "remainders",
    "acronyms",
    "absolutes",
]  # GroundingTuning's on/off rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=Path, default=REPO / "eval" / "drafts" / "tune" / "labels.jsonl")
    args = parser.parse_args()
    rows = [row for _, row in read_jsonl(args.labels)]
    entries = load_entries([args.labels.parent / "refs.bib"])
    with Workspace(load_settings()) as ws:
        index = CorpusIndex.from_store(ws.store)
        embed = ws.embedder.embed_cached
        base = measure(rows, entries, Checker(index, None, OverlapVerifier()))
        print(
            f"without the paraphrase rule: balanced accuracy {base['balanced_accuracy']:.3f}, "
            f"'not supported' precision {base['unsupported_precision']:.3f}, by kind {base['accuracy_by_kind']}"
        )
        results = []
        for floor in FLOORS:
            for similarity in SIMILARITIES:
                tuning = replace(GROUNDING, paraphrase_overlap=floor, paraphrase_similarity=similarity)
                got = measure(rows, entries, Checker(index, None, OverlapVerifier(tuning, embed)))
                results.append((got["balanced_accuracy"], got["unsupported_precision"], similarity, floor, got))
                print(
                    f"floor {floor:.2f} similarity {similarity:.2f}: balanced accuracy "
                    f"{got['balanced_accuracy']:.3f}, precision {got['unsupported_precision']:.3f}"
                )
        best = max(results, key=lambda r: (r[0], r[1], r[2], r[3]))
        print(f"chosen: paraphrase_overlap={best[3]} paraphrase_similarity={best[2]} -> {best[4]}")
        # the switchable rules, each turned off in turn from the configured check: a rule stays on
        # only if turning it off lowers balanced accuracy here
        configured = measure(rows, entries, Checker(index, None, OverlapVerifier(GROUNDING, embed)))
        print(
            f"configured: balanced accuracy {configured['balanced_accuracy']:.3f}, by kind {configured['accuracy_by_kind']}"
        )
        # written paraphrases of true claims (tune half): what strict mode would remove from a
        # fluent model's correct answer
        abstracts = ws.store.abstracts(sorted(ws.store.titles()))
        true = written_pairs(args.labels.parent / "paraphrases.jsonl", abstracts)
        near = written_pairs(args.labels.parent / "near_misses.jsonl", abstracts, supported=False)

        def written(verifier: OverlapVerifier) -> str:
            """How a check does on the written claims: true paraphrases rejected, near misses accepted."""
            para, miss = paraphrase_measure(true, verifier), paraphrase_measure(near, verifier)
            return (
                f"paraphrases false-unsupported {1 - para['tpr']:.3f} of {para['pairs']}, "
                f"near misses false-supported {1 - miss['tnr']:.3f} of {miss['pairs']}"
            )

        print(f"written claims: {written(OverlapVerifier(GROUNDING, embed))}")
        for rule in RULES:
            off = OverlapVerifier(replace(GROUNDING, **{rule: False}), embed)
            got = measure(rows, entries, Checker(index, None, off))
            print(
                f"without {rule}: balanced accuracy {got['balanced_accuracy']:.3f}, precision "
                f"{got['unsupported_precision']:.3f}, by kind {got['accuracy_by_kind']}; {written(off)}"
            )


if __name__ == "__main__":
    main()
