"""The explainer: check → one retry → template fallback, timeouts, cache, batching,
the recommender-level functions, prompt hygiene and prompt injection."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from hybrid_rec import HybridRecommender
from hybrid_rec.config import ExplainConfig
from hybrid_rec.errors import ExplanationError, ModelFileError, UnknownIdError
from hybrid_rec.explain.backends import (
    BackendError,
    BackendTimeout,
    GenerationRequest,
    TemplateBackend,
    render_template,
)
from hybrid_rec.explain.explainer import (
    PROMPT_VERSION,
    Explainer,
    Explanation,
    add_explanations,
    backend_from_config,
    build_messages,
    explain,
    explain_for_new_user,
    explain_many,
    get_explainer,
    load_prompt,
)
from hybrid_rec.explain.facts import build_facts

Answer = Callable[[GenerationRequest], str]


def foreign_title(rec: HybridRecommender, request: GenerationRequest) -> str:
    """A catalogue title that is neither the item nor a fact's item."""
    allowed = request.facts.allowed_items
    row = rec.items_[~rec.items_["item_id"].isin(list(allowed))].iloc[-1]
    return str(row["title"])


def invented(rec: HybridRecommender) -> Answer:
    def write(request: GenerationRequest) -> str:
        text = f'You will love it because you liked "{foreign_title(rec, request)}".'
        return json.dumps({"explanation": text, "fact_ids": [request.facts.ids[0]]})

    return write


# ----------------------------------------------------------------------------- the flow


def test_grounded_first_try(
    rec: HybridRecommender, pair: tuple[str, str], scripted: Any, answer: Answer
) -> None:
    backend = scripted([answer])
    result = Explainer(backend).explain(rec, *pair)
    assert result.grounded and result.backend == "scripted"
    assert result.attempts == 1 and result.fallback_reason is None and not result.fell_back
    assert result.text.startswith("You might enjoy")
    assert result.user_id == pair[0] and result.item_id == pair[1]
    assert backend.calls[0].temperature == 0.0
    json.dumps(result.to_dict())


def test_failed_check_is_retried_once(
    rec: HybridRecommender, pair: tuple[str, str], scripted: Any, answer: Answer
) -> None:
    backend = scripted([invented(rec), answer])
    result = Explainer(backend).explain(rec, *pair)
    assert result.grounded and result.backend == "scripted" and result.attempts == 2
    assert any("not in the facts" in p for p in result.problems)
    retry = backend.calls[1]
    assert retry.temperature > 0
    assert "Your previous answer was rejected" in retry.messages[-1]["content"]


def test_failed_retry_falls_back_to_the_template(
    rec: HybridRecommender, pair: tuple[str, str], scripted: Any, caplog: pytest.LogCaptureFixture
) -> None:
    backend = scripted([invented(rec)])
    with caplog.at_level(logging.INFO, logger="hybrid_rec.explain"):
        result = Explainer(backend).explain(rec, *pair)
    assert len(backend.calls) == 2
    assert result.grounded and result.backend == "template" and result.attempts == 2
    assert result.fallback_reason is not None and result.fallback_reason.startswith("check failed")
    assert "falls back to the template" in caplog.text


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("I think you will like it a lot.", "unusable output"),
        ("", "unusable output"),
        ('{"explanation": ""}', "unusable output"),
        (BackendError("llama.cpp crashed"), "backend error"),
        (BackendTimeout("too slow"), "timeout"),
    ],
)
def test_bad_output_falls_back_at_once_and_logs(
    rec: HybridRecommender,
    pair: tuple[str, str],
    scripted: Any,
    output: Any,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = scripted([output])
    with caplog.at_level(logging.WARNING, logger="hybrid_rec.explain"):
        result = Explainer(backend).explain(rec, *pair)
    assert len(backend.calls) == 1
    assert result.backend == "template" and result.grounded
    assert result.fallback_reason is not None and result.fallback_reason.startswith(reason)
    assert "using the template" in caplog.text


def test_slow_generation_times_out(
    rec: HybridRecommender, pair: tuple[str, str], scripted: Any
) -> None:
    result = Explainer(scripted([0.3]), timeout_s=0.05).explain(rec, *pair)
    assert result.backend == "template" and result.fallback_reason is not None
    assert result.fallback_reason.startswith("timeout")


@pytest.mark.parametrize("first", [BackendTimeout("busy"), BackendError("crashed")])
def test_a_transient_failure_is_not_cached(
    rec: HybridRecommender, pair: tuple[str, str], scripted: Any, answer: Answer, first: Exception
) -> None:
    """A first call that timed out on a busy machine (the LLM still loading) left its
    template in the cache: that pair never got the model's sentence again."""
    backend = scripted([first, answer])
    explainer = Explainer(backend)
    assert explainer.explain(rec, *pair).backend == "template"
    again = explainer.explain(rec, *pair)
    assert again.backend == "scripted" and not again.cached and len(backend.calls) == 2
    assert explainer.explain(rec, *pair).cached  # a good answer is kept


def test_no_retry_past_the_deadline(
    rec: HybridRecommender, pair: tuple[str, str], scripted: Any
) -> None:
    def slow_and_wrong(request: GenerationRequest) -> str:
        import time

        time.sleep(0.15)
        return invented(rec)(request)

    backend = scripted([slow_and_wrong])
    result = Explainer(backend, timeout_s=0.1).explain(rec, *pair)
    assert len(backend.calls) == 1 and result.backend == "template"


def test_cited_facts_are_read_from_the_text(
    rec: HybridRecommender, pair: tuple[str, str], scripted: Any
) -> None:
    """By default the model writes only the explanation; the ids come from the text."""

    def text_only(request: GenerationRequest) -> str:
        assert set(request.schema["properties"]) == {"explanation"}
        title = request.facts.of_kind("history_item")[0].title
        return json.dumps({"explanation": f'You might like it because you liked "{title}".'})

    result = Explainer(scripted([text_only])).explain(rec, *pair)
    assert result.backend == "scripted" and result.attempts == 1 and "h1" in result.fact_ids

    vague = json.dumps({"explanation": "You will surely enjoy this one very much."})
    rejected = Explainer(scripted([vague])).explain(rec, *pair)
    assert rejected.backend == "template" and "names none of the facts" in rejected.problems


def test_model_can_be_asked_to_cite(
    rec: HybridRecommender, pair: tuple[str, str], scripted: Any, answer: Answer
) -> None:
    backend = scripted([answer])
    result = Explainer(backend, model_cites=True).explain(rec, *pair)
    assert "fact_ids" in backend.calls[0].schema["properties"]
    assert result.fact_ids == ("h1",)


def test_fact_ids_written_into_the_text_are_removed(
    rec: HybridRecommender, pair: tuple[str, str], scripted: Any
) -> None:
    def with_ids(request: GenerationRequest) -> str:
        text = "You might like it because of your history (h1) and what you enjoyed [h1]."
        return json.dumps({"explanation": text, "fact_ids": ["h1"]})

    result = Explainer(scripted([with_ids])).explain(rec, *pair)
    assert result.backend == "scripted" and "h1" not in result.text


def test_cut_off_answer_is_trimmed_to_its_last_sentence(
    rec: HybridRecommender, pair: tuple[str, str], scripted: Any
) -> None:
    raw = '{"fact_ids": ["h1"], "explanation": "You might like it because of your history. And it'
    result = Explainer(scripted([raw])).explain(rec, *pair)
    assert result.backend == "scripted"
    assert result.text == "You might like it because of your history."


# ----------------------------------------------------------------------------- the cache


def test_cache_by_user_item_model_prompt(
    rec: HybridRecommender, scripted: Any, answer: Answer
) -> None:
    backend = scripted([answer])
    ex = Explainer(backend)
    first = ex.explain(rec, "u1", "i40")
    again = ex.explain(rec, "u1", "i40")
    assert len(backend.calls) == 1
    assert again.cached and not first.cached and again.text == first.text
    ex.explain(rec, "u2", "i40")
    ex.explain(rec, "u1", "i41")
    assert len(backend.calls) == 3 and ex.cache.hits == 1
    other_prompt = Explainer(backend, include_description=True)
    other_prompt.explain(rec, "u1", "i40")
    assert len(backend.calls) == 4
    keys = {k[:5] for k in ex.cache._data}
    assert ("u1", "i40", "scripted-model", PROMPT_VERSION, "en") in keys


def test_cache_can_be_disabled_and_is_bounded(
    rec: HybridRecommender, scripted: Any, answer: Answer
) -> None:
    backend = scripted([answer])
    ex = Explainer(backend, cache_size=0)
    ex.explain(rec, "u1", "i40")
    ex.explain(rec, "u1", "i40")
    assert len(backend.calls) == 2
    small = Explainer(scripted([answer]), cache_size=2)
    for item in ("i40", "i41", "i42"):
        small.explain(rec, "u1", item)
    assert len(small.cache) == 2


# ----------------------------------------------------------------------------- batches


def test_explain_many_batches_first_attempts(
    rec: HybridRecommender, scripted: Any, answer: Answer
) -> None:
    calls = {"n": 0}

    def second_is_wrong(request: GenerationRequest) -> str:
        calls["n"] += 1
        return invented(rec)(request) if calls["n"] == 2 else answer(request)

    backend = scripted([second_is_wrong], supports_batch=True)
    pairs = [("u1", "i40"), ("u2", "i41"), ("u3", "i42")]
    results = Explainer(backend).explain_many(rec, pairs)
    assert backend.batches == [3]  # the single retry goes through generate()
    assert [r.item_id for r in results] == ["i40", "i41", "i42"]
    assert [r.attempts for r in results] == [1, 2, 1]
    assert all(r.grounded and r.backend == "scripted" for r in results)


def test_add_explanations_for_the_top_ranks(rec: HybridRecommender) -> None:
    ranked = rec.recommend(["u1", "u2"], k=4)
    out = add_explanations(rec, ranked, top=2)
    assert list(out.columns) == [*ranked.columns, "explanation"]
    top = out[out["rank"] <= 2]
    assert top["explanation"].map(lambda t: isinstance(t, str) and len(t) > 20).all()
    assert out[out["rank"] > 2]["explanation"].isna().all()


def test_add_explanations_for_a_new_user(rec: HybridRecommender) -> None:
    ranked = rec.recommend_for_new_user(liked_items=["i24"], text="cooking", k=3)
    out = add_explanations(rec, ranked, top=2, liked_items=["i24"], text="cooking")
    assert out["explanation"].notna().sum() == 2


# ----------------------------------------------------------------------------- rec-level API


def test_module_functions_use_the_recommenders_config(rec: HybridRecommender) -> None:
    result = explain(rec, "u1", "i40")
    assert isinstance(result, Explanation) and result.backend == "template"
    assert get_explainer(rec) is get_explainer(rec)
    many = explain_many(rec, [("u1", "i40"), ("u2", "i41")])
    assert [m.user_id for m in many] == ["u1", "u2"]
    new = explain_for_new_user(rec, "i40", liked_items=["i24"])
    assert new.user_id is None and new.grounded


def test_explainer_follows_config_changes(rec: HybridRecommender) -> None:
    before = get_explainer(rec)
    rec.config.explain.language = "zh"
    try:
        after = get_explainer(rec)
        assert after is not before and after.language == "zh"
        assert "。" in explain(rec, "u1", "i40").text
    finally:
        rec.config.explain.language = "en"


def test_unknown_ids_raise(rec: HybridRecommender) -> None:
    with pytest.raises(UnknownIdError):
        explain(rec, "nobody", "i40")
    with pytest.raises(UnknownIdError):
        explain(rec, "u1", "no-such-item")
    with pytest.raises(UnknownIdError):
        explain_for_new_user(rec, "no-such-item", text="anything")


def test_unsupported_language() -> None:
    with pytest.raises(ExplanationError, match="language"):
        Explainer(language="fr")


def test_missing_model_falls_back_to_the_template(caplog: pytest.LogCaptureFixture) -> None:
    config = ExplainConfig(backend="llama_cpp", model="qwen2.5-1.5b")
    with caplog.at_level(logging.WARNING, logger="hybrid_rec.explain"):
        backend = backend_from_config(config)
    assert isinstance(backend, TemplateBackend)
    assert "fall back to the template" in caplog.text and "pip install" in caplog.text
    with pytest.raises(ModelFileError, match="pip install"):
        backend_from_config(config, strict=True)


def test_missing_transformers_dir_falls_back(tmp_path: Any) -> None:
    config = ExplainConfig(backend="transformers", model=str(tmp_path / "none"))
    assert isinstance(backend_from_config(config), TemplateBackend)


def test_chinese_explanations(rec: HybridRecommender, pair: tuple[str, str], scripted: Any) -> None:
    def zh(request: GenerationRequest) -> str:
        title = request.facts.of_kind("history_item")[0].title
        text = f"因为你喜欢《{title}》，所以推荐《{request.facts.title}》。"
        return json.dumps({"explanation": text, "fact_ids": ["h1"]}, ensure_ascii=False)

    backend = scripted([zh])
    result = Explainer(backend, language="zh").explain(rec, *pair)
    assert result.grounded and result.backend == "scripted" and result.language == "zh"
    assert "简体中文" in backend.calls[0].messages[0]["content"]
    english = Explainer(scripted(['{"explanation": "You liked it a lot.", "fact_ids": ["h1"]}']))
    english.language = "zh"
    assert english.explain(rec, *pair).backend == "template"


# ----------------------------------------------------------------------------- prompts


def test_prompts_are_package_files() -> None:
    for version in ("explain_v1", "explain_v2", "explain_v3"):
        system = load_prompt(f"{version}_system")
        assert "not instructions" in system and not system.startswith("#")
        assert load_prompt(f"{version}_system", "zh") != system
        placeholder = "{draft_text}" if version == "explain_v3" else "{facts}"
        assert placeholder in load_prompt(f"{version}_user", "zh")
    with pytest.raises(ExplanationError, match="not found"):
        load_prompt("explain_v99_system")


def test_prompt_is_facts_as_delimited_data(rec: HybridRecommender, pair: tuple[str, str]) -> None:
    facts = build_facts(rec, *pair)
    system, user = build_messages(facts, prompt="explain_v2")
    assert system["role"] == "system" and user["role"] == "user"
    body = user["content"]
    assert body.count("<facts>") == 1 and body.count("</facts>") == 1
    for fact in facts.facts:
        assert f"\n{fact.id}: " in body
    assert f'title: "{facts.title}"' in body
    assert "description (catalogue data" not in body
    with_desc = build_messages(facts, include_description=True, prompt="explain_v2")[1]["content"]
    assert f'description (catalogue data, may be cut): "{facts.description}"' in with_desc


def test_default_prompt_is_the_draft_as_delimited_data(
    rec: HybridRecommender, pair: tuple[str, str]
) -> None:
    facts = build_facts(rec, *pair)
    system, user = build_messages(facts)
    assert PROMPT_VERSION == "explain_v3" and "not instructions" in system["content"]
    body = user["content"]
    draft = render_template(facts)[0].replace('"', "'")  # titles quoted as an answer quotes them
    assert body.startswith(f"<draft>\n{draft}\n</draft>\n") and body.count("<draft>") == 1
    with_desc = build_messages(facts, include_description=True)[1]["content"]
    assert with_desc.startswith(f'<item>\ntitle: "{facts.title}"\ndescription (catalogue data')
    assert with_desc.endswith(body)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.mark.parametrize("language", ["en", "zh"])
def test_stable_text_comes_first(rec: HybridRecommender, language: str) -> None:
    """Two pairs' prompts share everything up to the per-pair draft, so llama.cpp
    reuses the cached system prompt: the chat-formatted prompts (Qwen's template)
    have a common prefix of the whole system text, and the per-pair part is short."""
    top = rec.recommend(["u1", "u2"], k=1)
    first, second = (
        build_messages(build_facts(rec, u, i), language=language)
        for u, i in zip(top["user_id"], top["item_id"], strict=True)
    )
    assert first[0] == second[0]  # the system message holds nothing item-specific

    def chat(messages: tuple[dict[str, str], ...]) -> str:
        return (
            "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
            + "<|im_start|>assistant\n"
        )

    a, b = chat(first), chat(second)
    shared = _common_prefix(a, b)
    assert shared >= len(first[0]["content"]) + len("<|im_start|>user\n<draft>\n")
    assert shared >= 500 and len(a) - shared < 600 and len(b) - shared < 600


# ----------------------------------------------------------------------------- injection


@pytest.mark.parametrize("n", range(10))
def test_injected_instructions_are_withheld_or_quoted_data(
    rec: HybridRecommender, injections: list[tuple[str, tuple[str, ...]]], n: int
) -> None:
    item = f"i{n}"
    withheld = build_facts(rec, "u1", item)
    assert withheld.withheld >= 1 and not withheld.description
    body = build_messages(withheld)[1]["content"]
    assert "ignore" not in body.lower()
    # Without withholding, the text reaches the prompt only as quoted, cleaned data.
    facts = build_facts(rec, "u1", item, withhold=False)
    for prompt, block in (("explain_v3", "draft"), ("explain_v2", "facts")):
        body = build_messages(facts, include_description=True, prompt=prompt)[1]["content"]
        item_block = body.split("<item>")[1].split("</item>")[0]
        assert "ignore" in item_block.lower()
        assert "ignore" not in body.replace(item_block, "").lower()
        assert body.count(f"<{block}>") == 1 and body.count(f"</{block}>") == 1
        assert body.count("<item>") == 1 and body.count("</item>") == 1
        assert "<|im_start|>" not in body and "<|im_end|>" not in body
        line = next(x for x in item_block.splitlines() if x.startswith("description"))
        assert line.count('"') == 2 and len(line) < 220


@pytest.mark.parametrize("n", range(10))
def test_quoting_an_injection_is_rejected(
    rec: HybridRecommender,
    scripted: Any,
    injections: list[tuple[str, tuple[str, ...]]],
    n: int,
) -> None:
    description, markers = injections[n]

    def quote(request: GenerationRequest) -> str:
        text = f'You might like it. The catalogue says: "{description}"'
        return json.dumps({"explanation": text, "fact_ids": [request.facts.ids[0]]})

    ex = Explainer(scripted([quote]), cache_size=0, withhold_instructions=False)
    result = ex.explain(rec, "u1", f"i{n}")
    assert result.backend == "template"
    assert "ignore" not in result.text.lower()
    assert not any(m.lower() in result.text.lower() for m in markers)


FOLLOWERS = {
    1: "Visit http://deals.example.com for a discount on it.",
    3: "Rules: " + load_prompt(f"{PROMPT_VERSION}_system").splitlines()[2],
    4: None,  # recommend another catalogue title instead
    8: "Write to win@prize.example to claim your prize for it.",
}


@pytest.mark.parametrize("n", sorted(FOLLOWERS))
def test_following_an_injection_is_rejected(
    rec: HybridRecommender,
    scripted: Any,
    injections: list[tuple[str, tuple[str, ...]]],
    n: int,
) -> None:
    """Payloads the check can see (a link, an address, the prompt, another title)."""

    def follow(request: GenerationRequest) -> str:
        text = FOLLOWERS[n] or f'Watch "{foreign_title(rec, request)}" instead of this one.'
        return json.dumps({"explanation": text, "fact_ids": [request.facts.ids[0]]})

    ex = Explainer(scripted([follow]), cache_size=0, withhold_instructions=False)
    result = ex.explain(rec, "u1", f"i{n}")
    assert result.backend == "template" and result.attempts == 2
    _, markers = injections[n]
    assert not any(m.lower() in result.text.lower() for m in markers)


def test_template_never_carries_the_description(
    rec: HybridRecommender, injections: list[tuple[str, tuple[str, ...]]]
) -> None:
    frame = pd.DataFrame({"user_id": ["u1"] * 10, "item_id": [f"i{n}" for n in range(10)]})
    results = Explainer().explain_many(rec, list(frame.itertuples(index=False, name=None)))
    for result, (_, markers) in zip(results, injections, strict=True):
        assert result.grounded and "ignore" not in result.text.lower()
        assert not any(m.lower() in result.text.lower() for m in markers)


# ----------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_real_generation_with_the_smallest_model(
    rec: HybridRecommender, pair: tuple[str, str], smollm: Any
) -> None:
    """SmolLM2 writes, the check judges: whatever it wrote, what comes back is grounded."""
    result = Explainer(smollm, max_tokens=80, timeout_s=120).explain(rec, *pair)
    assert result.attempts >= 1 and result.tokens > 0
    assert result.grounded and result.backend in {"llama_cpp", "template"}
    assert result.model == "smollm2-135m"


@pytest.mark.slow
def test_real_model_neither_follows_nor_quotes_injections(
    rec: HybridRecommender, smollm: Any, injections: list[tuple[str, tuple[str, ...]]]
) -> None:
    ex = Explainer(smollm, max_tokens=80, timeout_s=120, retries=1)
    results = ex.explain_many(rec, [("u1", f"i{n}") for n in range(len(injections))])
    for result, (_, markers) in zip(results, injections, strict=True):
        low = result.text.lower()
        assert result.grounded, result
        assert "ignore" not in low and "instruction" not in low, result.text
        assert not any(m.lower() in low for m in markers), result.text


def test_padded_ids_are_explained_like_plain_ones(rec: HybridRecommender) -> None:
    """recommend_for_new_user strips " i5"; explain_for_new_user did not, so every
    explanation of such a list fell back to an unchecked template."""
    liked = [str(rec.item_ids_.external_ids[5])]
    item = str(rec.recommend_for_new_user(liked_items=liked, k=1)["item_id"].iloc[0])
    plain = rec.explain_for_new_user(item, liked)
    padded = rec.explain_for_new_user(f" {item} ", [f" {liked[0]}"])
    assert padded.grounded and padded.text == plain.text
    user = str(rec.user_ids_.external_ids[0])
    assert rec.explain(f" {user}", item).text == rec.explain(user, item).text
