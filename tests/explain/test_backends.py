"""One contract, run against every backend: template, transformers (a tiny Llama built
in the test) and llama.cpp (SmolLM2, the smallest real GGUF model; slow)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybrid_rec import HybridRecommender
from hybrid_rec.explain.backends import (
    Backend,
    BackendError,
    BackendTimeout,
    Generation,
    GenerationRequest,
    LlamaCppBackend,
    TemplateBackend,
    TransformersBackend,
    render_template,
)
from hybrid_rec.explain.explainer import (
    Explainer,
    build_messages,
    max_chars_for,
    output_schema,
)
from hybrid_rec.explain.facts import Facts, build_facts, build_new_user_facts

BACKENDS = [
    pytest.param("template", id="template"),
    pytest.param("transformers", id="transformers"),
    pytest.param("llama_cpp", id="llama_cpp", marks=pytest.mark.slow),  # skips without SmolLM2
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tiny_llama_dir: Path) -> Iterator[Backend]:
    if request.param == "template":
        yield TemplateBackend()
    elif request.param == "transformers":
        yield TransformersBackend(tiny_llama_dir, threads=1)
    else:
        yield request.getfixturevalue("smollm")


def _request(
    facts: Facts, *, max_tokens: int = 80, language: str = "en", cite: bool = True
) -> GenerationRequest:
    return GenerationRequest(
        messages=build_messages(facts, language=language),
        schema=output_schema(facts.ids, max_chars_for(max_tokens, language), cite=cite),
        max_tokens=max_tokens,
        facts=facts,
        language=language,
    )


@pytest.fixture(scope="module")
def facts(rec: HybridRecommender, pair: tuple[str, str]) -> Facts:
    return build_facts(rec, *pair)


# ----------------------------------------------------------------------------- the contract


def test_follows_the_protocol(backend: Backend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name in {"template", "transformers", "llama_cpp"}
    assert isinstance(backend.model_id, str) and backend.model_id
    assert isinstance(backend.supports_batch, bool)


def test_generate_returns_text_within_budget(backend: Backend, facts: Facts) -> None:
    result = backend.generate(_request(facts, max_tokens=60))
    assert isinstance(result, Generation)
    assert isinstance(result.text, str) and result.text
    assert result.tokens <= 60
    assert result.seconds >= 0


def test_greedy_generation_is_reproducible(backend: Backend, facts: Facts) -> None:
    request = _request(facts, max_tokens=40)
    assert backend.generate(request).text == backend.generate(request).text


def test_batch_is_one_answer_per_request_in_order(backend: Backend, rec: HybridRecommender) -> None:
    top = rec.recommend(["u1", "u2", "u3"], k=1)
    facts = [build_facts(rec, u, i) for u, i in zip(top["user_id"], top["item_id"], strict=True)]
    requests = [_request(f, max_tokens=40) for f in facts]
    results = backend.generate_batch(requests)
    assert len(results) == len(requests)
    assert all(isinstance(r, Generation | BackendError) for r in results)
    assert backend.generate_batch([]) == []
    if isinstance(backend, TemplateBackend):  # the template is deterministic per facts
        for r, f in zip(results, facts, strict=True):
            assert isinstance(r, Generation)
            assert json.loads(r.text)["explanation"] == render_template(f)[0]


def test_timeout_raises_or_answers_at_once(backend: Backend, facts: Facts) -> None:
    try:
        result = backend.generate(_request(facts, max_tokens=60), timeout_s=1e-4)
    except BackendTimeout:
        return
    assert isinstance(backend, TemplateBackend) and result.seconds < 0.1


def test_explainer_over_backend_is_always_grounded(
    backend: Backend, rec: HybridRecommender, pair: tuple[str, str]
) -> None:
    explanation = Explainer(backend, cache_size=0).explain(rec, *pair)
    assert explanation.grounded
    assert explanation.backend in {backend.name, "template"}
    assert explanation.text and set(explanation.fact_ids) <= {f.id for f in explanation.facts}


# ----------------------------------------------------------------------------- per backend


def test_template_text_is_fluent_and_grounded(facts: Facts) -> None:
    text, ids = render_template(facts)
    assert text.startswith(f'You might like "{facts.title}" because you enjoyed')
    assert text.endswith(".") and ids and set(ids) <= set(facts.ids)
    assert facts.description is None or facts.description not in text


def test_template_in_chinese(facts: Facts) -> None:
    text, _ = render_template(facts, "zh")
    assert f"《{facts.title}》" in text and "因为你喜欢" in text and text.endswith("。")


def test_template_for_new_user(rec: HybridRecommender) -> None:
    facts = build_new_user_facts(rec, "i20", ["i24"], text="I want cooking books")
    text, _ = render_template(facts)
    assert "you picked" in text and "I want cooking books" not in text
    taste_only = build_new_user_facts(rec, "i20", text="anything nice")
    assert "taste you described" in render_template(taste_only)[0]


def test_transformers_answers_with_the_prefix(tiny_llama_dir: Path, facts: Facts) -> None:
    backend = TransformersBackend(tiny_llama_dir, threads=1)
    text = backend.generate(_request(facts)).text
    assert text.startswith('{"explanation": "')


def test_transformers_end_to_end(
    tiny_llama_dir: Path, rec: HybridRecommender, pair: tuple[str, str]
) -> None:
    """The tiny Llama was taught one grounded answer: it passes the check as written."""
    result = Explainer(TransformersBackend(tiny_llama_dir, threads=1)).explain(rec, *pair)
    assert result.backend == "transformers" and result.grounded and result.attempts == 1
    assert result.text == "You might like it because you enjoyed similar items."
    assert result.fact_ids == ("h1",) and result.tokens > 0


def test_transformers_batch_equals_single(tiny_llama_dir: Path, rec: HybridRecommender) -> None:
    backend = TransformersBackend(tiny_llama_dir, threads=1)
    top = rec.recommend(["u4", "u5"], k=1)
    facts = [build_facts(rec, u, i) for u, i in zip(top["user_id"], top["item_id"], strict=True)]
    requests = [_request(f, max_tokens=30) for f in facts]
    batch = backend.generate_batch(requests)
    single = [backend.generate(r) for r in requests]
    assert [b.text for b in batch] == [s.text for s in single]  # type: ignore[union-attr]


def test_transformers_refuses_pickled_weights(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """A folder holding only pytorch_model.bin (a pickle) used to be loaded."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from hybrid_rec.errors import ModelFileError

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_llama_dir, pickled)
    model = AutoModelForCausalLM.from_pretrained(str(pickled), local_files_only=True)
    (pickled / "model.safetensors").unlink()
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")  # the file a pickle loads
    with pytest.raises(ModelFileError, match="could not load the model"):
        TransformersBackend(pickled)


def test_transformers_missing_dir_is_a_model_file_error(tmp_path: Path) -> None:
    from hybrid_rec.errors import ModelFileError

    with pytest.raises(ModelFileError, match="not a model directory"):
        TransformersBackend(tmp_path / "absent")


@pytest.mark.slow
def test_llama_cpp_output_follows_the_schema(smollm: LlamaCppBackend, facts: Facts) -> None:
    request = _request(facts, max_tokens=100)
    raw = smollm.generate(request).text
    data = json.loads(raw)
    assert set(data) == {"explanation", "fact_ids"}
    assert set(data["fact_ids"]) <= set(facts.ids) and 1 <= len(data["fact_ids"]) <= 4
    assert len(data["explanation"]) <= request.schema["properties"]["explanation"]["maxLength"]


@pytest.mark.slow
def test_llama_cpp_reuses_the_cached_system_prompt(
    smollm: LlamaCppBackend, rec: HybridRecommender
) -> None:
    """The stable system text comes first, so a second pair evaluates only its draft."""
    top = rec.recommend(["u6", "u7"], k=1)
    facts = [build_facts(rec, u, i) for u, i in zip(top["user_id"], top["item_id"], strict=True)]
    first, second = (_request(f, max_tokens=40, cite=False) for f in facts)
    system_tokens = len(smollm.tokens(smollm.prompt(first.messages[:1])))
    smollm.generate(first)
    result = smollm.generate(second)
    assert system_tokens > 50
    assert result.meta["prompt_reused"] >= system_tokens - 2  # the turn's end may merge
    assert result.prompt_tokens - result.meta["prompt_reused"] < result.prompt_tokens / 2
    assert json.loads(result.text).keys() == {"explanation"}  # no ids asked, no ids call


@pytest.mark.slow
def test_llama_cpp_batch_decodes_sequences_together(
    smollm: LlamaCppBackend, rec: HybridRecommender
) -> None:
    assert smollm.supports_batch
    top = rec.recommend(["u1", "u2", "u3"], k=1)
    facts = [build_facts(rec, u, i) for u, i in zip(top["user_id"], top["item_id"], strict=True)]
    requests = [_request(f, max_tokens=40, cite=False) for f in facts]
    before = smollm.generate(requests[0]).text
    results = smollm.generate_batch(requests)
    assert len(results) == 3
    for result in results:
        assert isinstance(result, Generation), result
        assert result.meta["batch"] == 3 and 0 < result.tokens <= 40
        assert result.meta["prompt_shared"] > 50
        explanation = json.loads(result.text)["explanation"]
        assert '"' not in explanation and "\n" not in explanation
    # the batch's sequences are gone from the KV cache: single calls answer as before
    assert smollm.generate(requests[0]).text == before
    timed_out = smollm.generate_batch(requests, timeout_s=1e-4)
    assert all(isinstance(r, BackendTimeout) for r in timed_out)
    assert smollm.generate(requests[0]).text == before


@pytest.mark.slow
def test_llama_cpp_explains_a_list_in_one_batch(
    smollm: LlamaCppBackend, rec: HybridRecommender
) -> None:
    ranked = rec.recommend(["u1"], k=3)
    pairs = list(zip(ranked["user_id"], ranked["item_id"], strict=True))
    results = Explainer(smollm, cache_size=0, timeout_s=120).explain_many(rec, pairs)
    assert [r.item_id for r in results] == list(ranked["item_id"])
    assert all(r.grounded and r.attempts >= 1 for r in results)


def test_template_uses_a_plural_label_before_a_list() -> None:
    """ "it has the genre Action, Adventure and Romance" read wrong."""
    from hybrid_rec.explain.facts import Fact

    def facts(*values: str) -> Facts:
        shared = [
            Fact(f"a{n}", "shared_attribute", attribute="genres", value=v, related=("h1",))
            for n, v in enumerate(values, start=1)
        ]
        history = Fact("h1", "history_item", item_id="1", title="Alien", liked=True)
        return Facts(item_id="2", title="Aliens", facts=(history, *shared))

    assert (
        'Like "Alien", it has the genres Action and Sci-Fi.'
        in render_template(facts("Action", "Sci-Fi"))[0]
    )
    assert 'Like "Alien", it has the genre Sci-Fi.' in render_template(facts("Sci-Fi"))[0]


def test_template_writes_one_stop_after_a_value_that_ends_with_one() -> None:
    """ "It has the author Luc Müller M.." (a bookshop review)."""
    from hybrid_rec.explain.facts import Fact

    author = Fact("a1", "item_attribute", attribute="author", value="Luc Müller M.")
    text, _ = render_template(Facts(item_id="2", title="Rivers", facts=(author,)))
    assert "It has the author Luc Müller M." in text and "M.." not in text
