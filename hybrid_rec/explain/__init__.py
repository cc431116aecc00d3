"""Grounded natural-language explanations of recommendations.

Facts (:mod:`~hybrid_rec.explain.facts`) → versioned prompt → a backend
(:mod:`~hybrid_rec.explain.backends`: llama.cpp, transformers, template) →
the grounding check and fallback (:mod:`~hybrid_rec.explain.explainer`).
GGUF model files come from packages (:mod:`~hybrid_rec.explain.models`).

>>> from hybrid_rec.explain import Explainer, LlamaCppBackend      # doctest: +SKIP
>>> ex = Explainer(LlamaCppBackend("qwen2.5-0.5b"))                 # doctest: +SKIP
>>> ex.explain(rec, "42", "1210")                                   # doctest: +SKIP
Explanation(text='...', facts=(...), grounded=True, backend='llama_cpp', ...)
"""

from __future__ import annotations

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
    PROMPT_VERSION,
    CatalogueMentions,
    CheckResult,
    Explainer,
    Explanation,
    add_explanations,
    backend_from_config,
    build_messages,
    check_explanation,
    cited_fact_ids,
    explain,
    explain_for_new_user,
    explain_many,
    get_explainer,
    output_schema,
    parse_output,
)
from hybrid_rec.explain.facts import Fact, Facts, build_facts, build_new_user_facts
from hybrid_rec.explain.models import MODELS, ModelSpec, cache_dir, model_path

__all__ = [
    "MODELS",
    "PROMPT_VERSION",
    "Backend",
    "BackendError",
    "BackendTimeout",
    "CatalogueMentions",
    "CheckResult",
    "Explainer",
    "Explanation",
    "Fact",
    "Facts",
    "Generation",
    "GenerationRequest",
    "LlamaCppBackend",
    "ModelSpec",
    "TemplateBackend",
    "TransformersBackend",
    "add_explanations",
    "backend_from_config",
    "build_facts",
    "build_messages",
    "build_new_user_facts",
    "cache_dir",
    "check_explanation",
    "cited_fact_ids",
    "explain",
    "explain_for_new_user",
    "explain_many",
    "get_explainer",
    "model_path",
    "output_schema",
    "parse_output",
    "render_template",
]
