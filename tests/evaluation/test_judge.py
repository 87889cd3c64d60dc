from rag.evaluation.judge import VerdictCache
from tests.fakes import ScriptedLLM


def test_judge_verdicts_are_cached_by_model_and_prompt(tmp_path):
    llm = ScriptedLLM("yes", "no")
    cache = VerdictCache(tmp_path / "judge.json")
    assert cache.ask(llm, "prompt one") is True
    assert cache.ask(llm, "prompt one") is True  # answered from the cache: the queued "no" is unused
    assert llm.replies == ["no"]
    assert VerdictCache(tmp_path / "judge.json").ask(llm, "prompt one") is True  # and from disk
    assert cache.ask(llm, "prompt two") is False
