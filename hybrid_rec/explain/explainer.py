"""Explanations: facts → prompt → backend → check → :class:`Explanation`.

The shape is a pipeline (``preprocess → _forward → postprocess``):

1. **facts** (:mod:`hybrid_rec.explain.facts`) for the (user, item) pair;
2. **prompt**: versioned system and user templates from ``hybrid_rec/prompts``.
   ``explain_v3`` (the default) gives the model only the template's sentences
   as a draft to rewrite, after a system prompt that holds nothing
   item-specific: the stable text comes first, so llama.cpp reuses its cached
   tokens and evaluates only the short draft per call (~70 of ~220 tokens on
   ml-100k), and the answer is made to start with "You" (:data:`ANSWER_START`),
   which keeps the 0.5B model from opening with the title and drifting into
   invented praise. ``explain_v2`` adds the
   facts as a delimited data block; ``explain_v1`` asks for free writing from
   the facts (on ml-100k the 0.5B model passed the check on the first try far
   less often with it: see ``benchmarks/explain.md``). Untrusted text is
   quoted, cut and cleaned. A JSON schema bounds the answer;
3. **generate** with the configured backend. Which facts the text cites is read
   from the text itself (:func:`cited_fact_ids`: the titles, values, numbers
   and cues it names) unless the model is asked to list ids
   (``model_cites=True``, a second, grammar-constrained call on llama.cpp);
4. **check** (:func:`check_explanation`): every catalogue title the text names
   is the recommended item or a fact's item; every attribute value, number and
   proper name it names is in the facts (the item's title and attributes, never
   its untrusted description); the cited fact ids exist and include an item
   behind the recommendation; it neither links anywhere, holds markup, copies
   free text or the prompt at length, talks about or echoes instructions, nor
   claims reception, people, plot, price, sales or popularity ("praised",
   "classic", "directed", "free", "bestseller") the facts do not hold. A failure
   gets one retry (sampled, told what was wrong), then the template backend
   writes the explanation. Timeouts, errors and unparseable output fall back at
   once, logged.

Results are cached by (user, item, model, prompt version, language, answer
start, facts). :meth:`Explainer.explain_many` sends the first attempts to the
backend as one batch (llama.cpp decodes them together).

>>> from hybrid_rec.explain import explain               # doctest: +SKIP
>>> explain(rec, "42", "1210").text                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hybrid_rec.config import ExplainConfig
from hybrid_rec.data.columns import Columns
from hybrid_rec.errors import ExplanationError, ModelFileError
from hybrid_rec.explain.backends import (
    Backend,
    BackendError,
    BackendTimeout,
    Generation,
    GenerationRequest,
    LlamaCppBackend,
    TemplateBackend,
    TransformersBackend,
    attribute_label,
    render_template,
    template_words,
    tidy_stops,
)
from hybrid_rec.explain.facts import (
    PLACEHOLDERS,
    Fact,
    Facts,
    attribute_columns,
    build_facts,
    build_new_user_facts,
    clean_text,
    split_values,
    title_column,
)

if TYPE_CHECKING:
    from hybrid_rec.recommender import HybridRecommender

__all__ = [
    "PROMPT_VERSION",
    "CatalogueMentions",
    "CheckResult",
    "Explainer",
    "Explanation",
    "add_explanations",
    "build_messages",
    "check_explanation",
    "cited_fact_ids",
    "explain",
    "explain_for_new_user",
    "explain_many",
    "get_explainer",
    "load_prompt",
    "output_schema",
    "parse_output",
]

log = logging.getLogger(__name__)
C = Columns

PROMPT_VERSION = "explain_v3"
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
LANGUAGES = ("en", "zh")
MAX_FACT_IDS = 4
MIN_CHARS = {"en": 20, "zh": 8}
ANSWER_START = {"en": "You", "zh": ""}
"""What a model's explanation is made to begin with, by language (see
:class:`~hybrid_rec.explain.backends.GenerationRequest`)."""
COPY_WORDS = 8
"""An explanation may not copy this many consecutive words of the item's free text."""

# CJK characters are tokens of their own, so "喜欢Toy Story" still shows "Toy Story".
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
_HAS_CJK = re.compile(rf"[{_CJK}]")
_SENTENCE_END = re.compile(r"[.!?。！？][\"'”’)\]」』》]*(?=\s|$)|[。！？][\"'”’)\]」』》]*")
_ENDS_SENTENCE = re.compile(r"[.!?。！？][\"'”’)\]」』》]*$")
_BOUNDARY = frozenset({".", "!", "?", "。", "！", "？", ":", ";", "：", "；"})
_QUOTES = frozenset({'"', "'", "“", "”", "‘", "’", "《", "》", "「", "」", "*", "_"})
_QUOTED = re.compile(
    r"(?<!\w)'([^'\n]+?)'(?!\w)|\"([^\"\n]+?)\"|“([^”\n]+?)”|‘([^’\n]+?)’(?!\w)"
    r"|«\s*([^»\n]+?)\s*»|《([^》\n]+?)》|「([^」\n]+?)」"
)
"""A quoted phrase: what an answer quotes is a title or the user's words, word for word."""
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")
_LINK = re.compile(
    r"https?://|www\.|[\w.+-]+@[\w-]+\.\w+|\b[\w-]+\.(?:com|net|org|io|ru|cn|info|biz|xyz|example)\b"
    r"|javascript:|\]\(",
    re.IGNORECASE,
)
_DOMAIN = re.compile(r"(?<![\w.])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.[a-z]{2,24}(?:/\S*)?(?!\w)")
"""A bare host name (``cheap-deals.shop``, ``bit.ly/xyz``): lower case, so "e.g." and
"U.S." are not one."""
_MARKUP = re.compile(r"<(?:/\s*)?[A-Za-z][^<>]*>")
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget)\b[^.]{0,40}\b(?:instruction|prompt|rule|direction)s?\b"
    r"|\bsystem prompt\b|\binstructions?\b"
    r"|\b(?:reply|respond|answer|output)\b[^.!?]{0,30}\b(?:only|exactly|verbatim)\b"
    r"|\bas (?:requested|instructed|you asked)\b",
    re.IGNORECASE,
)
_CLAIM = re.compile(
    r"\b(?:praised|acclaimed|award(?:-winning|s)?|oscars?|classics?|masterpieces?|critics?"
    r"|critically|must-(?:see|watch)|iconic|beloved|blockbusters?|starring|stars|directed"
    r"|directors?|cast|plot|storyline|based on a true story"
    r"|great choice|perfect (?:choice|pick)|fun and engaging|engaging|amazing|fantastic"
    r"|on the market"
    r"|free|prices?|priced|cheap(?:er|est)?|discount(?:ed|s)?|on sale|sales?|deals?|offers?"
    r"|bargains?|best[- ]?sell(?:er|ers|ing)|top[- ]rated|millions?|thousands|ships?|shipping"
    r"|delivery|buy|order now|limited[- ]time|today only|guaranteed|hit|costs?|dollars?"
    r"|euros?|pounds|percent|per cent|twists?|twist ending)\b|[$€£¥%]",
    re.IGNORECASE,
)
"""Claims about reception, people, plot, price or sales, and generic praise, that facts
never hold (allowed when they do)."""
_POPULARITY = re.compile(
    r"\b(?:popular|loved by|in demand|everyone|everybody|crowd[- ]pleas\w*|trending)\b",
    re.IGNORECASE,
)
"""Popularity, which only a ``popular`` fact supports."""
_PERSON = re.compile(r"\b(?:to|for) me\b|\byou(?:'ve| have)? recommended\b", re.IGNORECASE)
"""Who recommends to whom, mixed up ("you recommended X to me")."""
_LIKING = re.compile(
    r"\byou(?:'ve| have)? (?:really |also )?(?:enjoyed|liked|loved|adored)\b|\byour favou?rites?\b"
    r"|你喜欢过|因为你喜欢|你很喜欢",
    re.IGNORECASE,
)
"""Phrases that say the user liked an item: wrong about an item they rated low."""
_NAME_WORD = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]+)*$|^[A-Z]\.?$|^Mc[A-Z][a-z]+$")
_STARTERS = frozenset(
    [
        "The",
        "This",
        "That",
        "These",
        "Those",
        "It",
        "Its",
        "You",
        "Your",
        "If",
        "Since",
        "Because",
        "As",
        "Like",
        "With",
        "For",
        "And",
        "But",
        "So",
        "A",
        "An",
        "In",
        "On",
        "At",
        "Both",
        "All",
        "We",
        "They",
        "He",
        "She",
        "His",
        "Her",
        "Their",
        "Here",
        "There",
        "What",
        "When",
        "While",
        "Given",
        "Based",
        "Also",
        "Fans",
        "Anyone",
        "Whether",
        "Just",
        "Another",
        "One",
        "Each",
        "Then",
        "Now",
        "Plus",
        "Overall",
        "Thanks",
    ]
)
_ARTICLE = re.compile(r"^(.*\S),\s*(The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)$")
_PAREN = re.compile(r"^(.*\S)\s*\(([^()]*)\)$")


# ============================================================================ result


@dataclass(frozen=True)
class Explanation:
    """A checked explanation of one recommendation.

    Parameters
    ----------
    text
        The explanation.
    facts
        The facts it rests on (all of them; ``fact_ids`` says which it cites).
    grounded
        Whether ``text`` passed the grounding check (the template always does).
    backend
        Who wrote ``text``: ``llama_cpp``, ``transformers`` or ``template``.
    fact_ids
        The facts the text cites.
    item_id, user_id
        The pair explained (``user_id`` is ``None`` for a new user).
    model
        The model of the backend that was asked first.
    language
        ``"en"`` or ``"zh"``.
    attempts
        Model generations made (0 when only the template was used).
    fallback_reason
        Why the template wrote it instead of the model (``None`` if it did not).
    problems
        What the check found in rejected attempts.
    seconds, tokens
        Wall time and generated tokens of the model calls.
    cached
        Served from the cache.
    """

    text: str
    facts: tuple[Fact, ...]
    grounded: bool
    backend: str
    fact_ids: tuple[str, ...] = ()
    item_id: str = ""
    user_id: str | None = None
    model: str | None = None
    language: str = "en"
    attempts: int = 0
    fallback_reason: str | None = None
    problems: tuple[str, ...] = ()
    seconds: float = 0.0
    tokens: int = 0
    cached: bool = False

    @property
    def fell_back(self) -> bool:
        """Whether the template replaced a model's answer."""
        return self.fallback_reason is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["facts"] = [f.to_dict() for f in self.facts]
        return out


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_explanation`: ``ok`` and the problems found."""

    ok: bool
    problems: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()
    """Catalogue titles the text names (allowed or not)."""


# ============================================================================ prompts


@functools.lru_cache(maxsize=32)
def load_prompt(name: str, language: str = "en") -> str:
    """A prompt template from ``hybrid_rec/prompts`` (``#`` comment lines dropped).

    ``name`` is e.g. ``"explain_v1_system"``; for ``language="zh"`` the
    ``_zh`` variant is used when it exists.
    """
    candidates = [f"{name}_{language}.txt"] if language != "en" else []
    candidates.append(f"{name}.txt")
    for file in candidates:
        path = PROMPTS_DIR / file
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            return "\n".join(x for x in lines if not x.startswith("#")).strip()
    raise ExplanationError(
        f"prompt template {candidates[0]!r} not found in {PROMPTS_DIR}; "
        "reinstall hybrid_rec (prompts are package data)."
    )


def _fill(template: str, values: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ExplanationError(f"prompt placeholder {{{key}}} has no value.")
        return values[key]

    return re.sub(r"\{(\w+)\}", sub, template)


def _q(text: str | None) -> str:
    return f'"{text}"'


def _fact_line(fact: Fact, facts: Facts) -> str:
    """One fact as a line of the data block (values already cleaned)."""
    label = attribute_label(fact.attribute)
    by_id = facts.by_id()
    if fact.kind == "history_item":
        if fact.liked is False and fact.value is not None:
            return f"{_q(fact.title)} is in your history, though you rated it only {fact.value:g}"
        if fact.liked is False:  # a view or a click: no sign the user liked it
            return f"{_q(fact.title)} is in your history (you looked at it)"
        return f"you liked {_q(fact.title)}"
    if fact.kind == "picked_item":
        return f"you picked {_q(fact.title)} as something you like"
    if fact.kind == "shared_attribute":
        names = " and ".join(_q(by_id[r].title) for r in fact.related if r in by_id)
        return f"like {names}, it has the {label} {fact.value}"
    if fact.kind == "item_attribute":
        if fact.attribute == "year":
            return f"it is from {fact.value}"
        return f"its {label}: {', '.join(split_values(fact.value))}"
    if fact.kind == "stated_taste":
        return f"you described your taste as {_q(str(fact.value))}"
    if fact.kind == "taste_match":
        return f"its {label} {fact.value} matches what you described"
    if fact.kind == "cold_item":
        return "it is new: nobody has interacted with it yet"
    if fact.kind == "long_tail":
        who = "person has" if str(fact.value) == "1" else "people have"
        return f"only {fact.value} {who} interacted with it, so it is easy to miss"
    if fact.kind == "popular":
        return f"it is popular: {fact.value} people have interacted with it"
    if fact.kind == "content_share":
        if float(fact.value or 0) >= 0.5:
            return "the match rests mostly on its description and attributes"
        return "the match rests mostly on what people with similar taste chose"
    return f"{fact.kind}: {fact.value}"


def _item_data(facts: Facts, include_description: bool) -> str:
    """The item block for prompts that otherwise show only the draft: empty unless the
    description is included (untrusted: cleaned, cut, quoted as data)."""
    if not (include_description and facts.description):
        return ""
    return f"<item>\n{_item_block(facts, True)}\n</item>\n"


def _item_block(facts: Facts, include_description: bool) -> str:
    """The item as data: its title (its attributes are facts) and maybe its description."""
    lines = [f"title: {_q(facts.title)}"]
    if include_description and facts.description:
        lines.append(f"description (catalogue data, may be cut): {_q(facts.description)}")
    return "\n".join(lines)


def build_messages(
    facts: Facts,
    *,
    language: str = "en",
    prompt: str = PROMPT_VERSION,
    feedback: Sequence[str] = (),
    include_description: bool = False,
) -> tuple[dict[str, str], ...]:
    """System and user messages for ``facts``.

    ``feedback`` (on a retry) says what the check rejected; ``include_description``
    puts the item's free text (cleaned, cut, quoted as data) in the item block.
    """
    draft = render_template(facts, language)[0]
    user = _fill(
        load_prompt(f"{prompt}_user", language),
        {
            "item": _item_block(facts, include_description),
            "item_data": _item_data(facts, include_description),
            "facts": "\n".join(f"{f.id}: {_fact_line(f, facts)}" for f in facts.facts),
            "title": _q(facts.title),
            "title_bare": facts.title,
            "draft": draft,
            # titles in single quotes, as an answer (a JSON string) writes them: a model
            # that restates the draft then copies it token for token (prompt lookup)
            "draft_text": draft.replace('"', "'"),
        },
    )
    if feedback:
        user += "\nYour previous answer was rejected: " + "; ".join(feedback[:3]) + ". Fix it."
    return (
        {"role": "system", "content": load_prompt(f"{prompt}_system", language)},
        {"role": "user", "content": user},
    )


def max_chars_for(max_tokens: int, language: str) -> int:
    """Longest explanation for a ``max_tokens`` budget: what is left after ~40 tokens of
    JSON and ids, at 3 characters per token (2 for Chinese, whose answers carry the
    catalogue's English titles at ~4 characters per token); 240 (160) for 120.

    At 1 character per token a Chinese answer was cut inside its first title and
    emptied by the trim (measured with the 1.5B model on ml-100k)."""
    if language == "zh":
        return max(30, (max_tokens - 40) * 2)
    return max(60, (max_tokens - 40) * 3)


def output_schema(fact_ids: Sequence[str], max_chars: int, *, cite: bool = True) -> dict[str, Any]:
    """JSON schema of the answer: bounded lengths; with ``cite``, also the cited ids
    (from ``fact_ids`` only). Without it the answer is the explanation alone and the
    cited facts are read from the text (:func:`cited_fact_ids`)."""
    properties: dict[str, Any] = {
        "explanation": {"type": "string", "minLength": 10, "maxLength": max_chars}
    }
    if cite:
        properties["fact_ids"] = {
            "type": "array",
            "items": {"type": "string", "enum": list(fact_ids)},
            "minItems": 1,
            "maxItems": max(1, min(MAX_FACT_IDS, len(fact_ids))),
        }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


# ============================================================================ parsing


def parse_output(raw: str) -> tuple[str, tuple[str, ...]]:
    """The explanation and fact ids from a backend's answer.

    A JSON object cut off inside the explanation (the token budget ran out) is
    closed and kept; :func:`trim_to_sentence` then drops the unfinished sentence.

    Raises
    ------
    ExplanationError
        Empty output, no JSON object, or the wrong fields.
    """
    text = (raw or "").strip()
    if not text:
        raise ExplanationError("empty output")
    start = text.find("{")
    if start < 0:
        raise ExplanationError("output is not JSON")
    body = text[start:]
    obj: Any = None
    for candidate in (body[: body.rfind("}") + 1], body + '"}', body + '"]}'):
        try:
            obj = json.loads(candidate)
            break
        except json.JSONDecodeError:
            continue
    if not isinstance(obj, dict):
        raise ExplanationError("output is not a JSON object")
    explanation, ids = obj.get("explanation"), obj.get("fact_ids", [])
    if not isinstance(explanation, str) or not explanation.strip():
        raise ExplanationError("output has no explanation text")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ExplanationError("fact_ids is not a list of strings")
    return explanation.strip(), tuple(dict.fromkeys(ids))


def trim_to_sentence(text: str, max_chars: int | None = None, *, cut_off: bool = False) -> str:
    """``text`` ending on a full sentence.

    A finished answer without a final stop gets one. An answer that was cut
    off (``cut_off``, or ``max_chars`` reached) loses its unfinished part: it
    ends at its last sentence end (abbreviations such as "Mrs." and initials
    are not ends) if that keeps at least 40% of it, else at its last clause
    boundary (", " or "; ") with a full stop, else it is emptied.
    """
    text = tidy_stops(" ".join(text.split()))
    if not text:
        return ""
    cut_off = cut_off or (max_chars is not None and len(text) >= max_chars - 5)
    if _ENDS_SENTENCE.search(text) and not _abbreviation_before(text, len(text) - 1):
        return text
    stop = "。" if _HAS_CJK.search(text) else "."
    if not cut_off:
        return text + stop
    ends = _sentence_ends(text)
    if ends and ends[-1] >= 0.4 * len(text):
        return text[: ends[-1]].rstrip()
    clauses = [
        m.start()
        for m in re.finditer(r"[,;，；](?=\s|[^\s])", text)
        if _depth(text, m.start()) == 0
    ]
    if clauses and clauses[-1] >= 0.4 * len(text):
        return text[: clauses[-1]].rstrip() + stop
    return text[: ends[-1]].rstrip() if ends else ""


_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "no", "vol"})


def _abbreviation_before(text: str, dot: int) -> bool:
    """Whether the full stop at ``dot`` ends an abbreviation or an initial ("Mrs.", "E.T.")."""
    if text[dot] != ".":
        return False
    word = re.search(r"(\w+)$", text[:dot])
    if word is None:
        return False
    w = word.group(1)
    return w.lower() in _ABBREVIATIONS or (len(w) == 1 and w.isupper()) or _depth(text, dot) > 0


def _depth(text: str, pos: int) -> int:
    """Parentheses open at ``pos``."""
    before = text[:pos]
    return max(0, before.count("(") - before.count(")"))


def _strip_fact_ids(text: str, ids: Sequence[str]) -> str:
    """Remove cited ids the model wrote into the prose (``(h1)``, ``[a2, h1]``)."""
    if not ids:
        return text
    alt = "|".join(re.escape(i) for i in ids)
    text = re.sub(rf"\s*[(\[]\s*(?:{alt})(?:\s*[,;/]\s*(?:{alt}))*\s*[)\]]", "", text)
    text = re.sub(rf"\s*\bfacts?\s+(?:{alt})\b", "", text, flags=re.IGNORECASE)
    return " ".join(text.split())


# ============================================================================ the check


def _tokens(text: str) -> list[re.Match[str]]:
    return list(_TOKEN.finditer(text))


def title_variants(title: object) -> set[str]:
    """How a catalogue title may appear in prose: as stored, with a trailing
    ``", The"`` moved to the front or dropped, and without a trailing ``(...)``."""
    base = clean_text(title, 300)
    out = {base}
    paren = _PAREN.match(base)
    if paren:
        out.add(paren.group(1))
        if len(paren.group(2)) >= 4:
            out.add(paren.group(2))
    for value in list(out):
        art = _ARTICLE.match(value)
        if art:
            out.update({f"{art.group(2)} {art.group(1)}", art.group(1)})
    return {v for v in out if v.lower() not in PLACEHOLDERS}


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    surface: str
    item_ids: frozenset[str]


class CatalogueMentions:
    """Finds catalogue titles, attribute values and years named in a text.

    Titles match case-sensitively on token sequences (longest first, so
    "Alien 3" is not also "Alien"); a one-word title counts when it is quoted
    or does not open a sentence ("Heat" in "Like Heat, ..." is a title,
    "Fear of ..." opening a sentence is not). Attribute values match
    case-insensitively, from columns with at most ``max_vocabulary`` distinct
    values (genres, categories, brands; not keyword clouds).

    Parameters
    ----------
    items
        The catalogue (``item_id``, a title column, attribute columns).
    max_vocabulary
        Columns with more distinct values than this are not checked.
    """

    def __init__(self, items: pd.DataFrame, *, max_vocabulary: int = 500) -> None:
        ids = items[C.item].astype(str).tolist()
        titles = items[title_column(items)].tolist()
        self.titles: dict[tuple[str, ...], set[str]] = {}
        for item_id, title in zip(ids, titles, strict=True):
            for variant in title_variants(title):
                key = tuple(m.group() for m in _tokens(variant))
                if key:
                    self.titles.setdefault(key, set()).add(item_id)
        self._title_len = min(24, max((len(k) for k in self.titles), default=1))
        self.values: dict[tuple[str, ...], str] = {}
        self.years: dict[str, str] = {}
        for col in attribute_columns(items):
            if col == "year":
                self.years = {
                    i: str(int(y)) for i, y in zip(ids, items[col], strict=True) if pd.notna(y)
                }
                continue
            vocab = {v for cell in items[col] for v in split_values(cell)}
            if len(vocab) > max_vocabulary:
                continue
            for value in vocab:
                key = tuple(m.group().lower() for m in _tokens(value))
                if key:
                    self.values[key] = value
        self._value_len = max((len(k) for k in self.values), default=1)

    def find_titles(self, text: str) -> list[_Mention]:
        """Titles named in ``text``, left to right, longest match first."""
        toks = _tokens(text)
        words = [t.group() for t in toks]
        out: list[_Mention] = []
        i = 0
        while i < len(toks):
            for n in range(min(self._title_len, len(toks) - i), 0, -1):
                ids = self.titles.get(tuple(words[i : i + n]))
                if ids is None or (n == 1 and not self._counts_alone(words, i)):
                    continue
                start, end = toks[i].start(), toks[i + n - 1].end()
                out.append(_Mention(start, end, text[start:end], frozenset(ids)))
                i += n - 1
                break
            i += 1
        return out

    @staticmethod
    def _counts_alone(words: Sequence[str], i: int) -> bool:
        prev = words[i - 1] if i > 0 else None
        nxt = words[i + 1] if i + 1 < len(words) else None
        if prev in _QUOTES and nxt in _QUOTES:
            return True
        if not words[i][:1].isupper() and not words[i][:1].isdigit():
            return False
        return prev is not None and prev not in _BOUNDARY and prev not in _QUOTES

    def find_values(
        self, text: str, skip: Sequence[tuple[int, int]] = ()
    ) -> list[tuple[str, int, int]]:
        """Attribute values named in ``text`` outside the ``skip`` spans (e.g. titles),
        with their character spans."""
        toks = [t for t in _tokens(text) if not any(a <= t.start() < b for a, b in skip)]
        words = [t.group().lower() for t in toks]
        found = []
        i = 0
        while i < len(words):
            for n in range(min(self._value_len, len(words) - i), 0, -1):
                value = self.values.get(tuple(words[i : i + n]))
                if value is not None:
                    found.append((value, toks[i].start(), toks[i + n - 1].end()))
                    i += n - 1
                    break
            i += 1
        return found


def check_explanation(
    text: str,
    fact_ids: Sequence[str],
    facts: Facts,
    mentions: CatalogueMentions,
    *,
    language: str = "en",
    prompt: str = "",
) -> CheckResult:
    """Hold ``text`` to ``facts``: what it names must be there.

    Checks: length (and Chinese characters for ``zh``); cited ids exist and
    include an item behind the recommendation (a history or picked item) when
    there is one; every
    catalogue title named belongs to the recommended item or a fact's item;
    every attribute value named is among the item's values, the facts' values
    or the words of the user's stated taste; every number (a year, a count)
    appears in the facts or the item's title and attributes (a share's digits
    do not count); no other proper name (a run of capitalised words, such as
    an invented director, or one inside a sentence: "try Dune") that the facts
    do not contain; no link, host name, e-mail address or markup; no run of
    :data:`COPY_WORDS` words copied from the description or from ``prompt``
    (the system prompt: a model told to reveal it must not); no talk of
    instructions or prompts, nor an echoed one ("reply only with", "as
    requested"); no claims about reception, people, plot, price or sales
    ("praised", "classic", "directed", "free", "bestseller", "$") the facts do
    not hold; no popularity without a ``popular`` fact. The item's description
    is never evidence: it is untrusted catalogue text.
    """
    problems = _check_form(text, fact_ids, facts, language)
    found = mentions.find_titles(text)
    allowed_items = facts.allowed_items
    allowed_values = facts.allowed_values
    # the user's own words count as evidence; the item's description does not: it is
    # untrusted catalogue text ("it won 3 Oscars"), never checked, mostly never shown
    taste_words = (facts.taste or "").lower()
    numbers = _known_numbers(facts, mentions, taste_words)
    problems.extend(
        f"names {m.surface!r}, which is not in the facts"
        for m in found
        if not (m.item_ids & allowed_items or m.surface.lower() in allowed_values)
        # a count the facts state that a title also reads as ("with 187 interactions"
        # beside the film "187"): the number check holds it
        and not (m.surface.isdigit() and m.surface in numbers)
    )
    spans = [(m.start, m.end) for m in found]
    values = mentions.find_values(text, spans)
    for value in dict.fromkeys(v for v, _, _ in values):
        low = value.lower()
        if low not in allowed_values and not re.search(rf"(?<!\w){re.escape(low)}", taste_words):
            problems.append(f"names the attribute {value!r}, which is not in the facts")
    known_text = _known_text(facts, mentions, taste_words)
    problems.extend(_check_numbers(text, numbers))
    problems.extend(_check_names(text, [*spans, *((a, b) for _, a, b in values)], known_text))
    problems.extend(_check_quotes(text, spans, known_text))
    outside_titles = _blank(text, spans)
    outside_values = _blank(outside_titles, [(a, b) for _, a, b in values])
    if _LINK.search(text) or _DOMAIN.search(outside_titles):
        problems.append("contains a link or address")
    if _MARKUP.search(outside_titles):
        problems.append("contains markup")
    item_words = " ".join(filter(None, [facts.description, facts.taste])).lower()
    if _copies(text, item_words):
        problems.append("copies the item's description")
    if prompt and _copies(text, prompt):
        problems.append("repeats the prompt")
    if _INSTRUCTION.search(text):
        problems.append("talks about instructions or prompts")
    claims = [w for w in dict.fromkeys(_CLAIM.findall(outside_titles)) if not _said(w, known_text)]
    if claims:
        problems.append(f"claims what the facts do not say ({', '.join(claims[:3])})")
    if not facts.of_kind("popular") and (said := _POPULARITY.search(outside_titles)):
        problems.append(f"calls the item popular ({said.group()}), which the facts do not")
    if language == "en":
        problems.extend(_check_words(outside_values, facts, f"{known_text} {taste_words}"))
    problems.extend(_check_liking(text, facts))
    problems.extend(_check_repetition(text))
    if _PERSON.search(text):
        problems.append("mixes up who recommends to whom")
    return CheckResult(not problems, tuple(problems), tuple(m.surface for m in found))


_CONNECTIVES_TEXT = """
    a an the and or but also too so as of in on at to for from by with into about you
    your yours it its it's this that these those they them their there here which who
    what where when both each all any one ones more most some same similar other another
    is are was were be been being has have had do does did can could may might would
    will like liked likes enjoy enjoys enjoyed enjoying love loved loves fan fans
    favourite favorite watched read bought chose picked picks pick recommend recommended
    recommendation suggest suggested match matches matched fits fit share shares shared
    sharing common together well just very much many because since if than then s film
    films movie movies book books title titles item items product products show shows
    series story stories episode choice choices option good great nice worth look try
    suits suit suited plenty lot lots bit few people person users others viewers readers
    listeners seen rated viewed interacted sequel prequel follows followed science
    fiction year years decade decades era asked described wanted wrote said looking
"""
CONNECTIVES = frozenset(_CONNECTIVES_TEXT.split())
"""Words an English explanation may use besides the facts' and the template's own."""


def _check_words(text: str, facts: Facts, known: str) -> list[str]:
    """Every word outside the titles and values named comes from the facts, the
    template's phrases or :data:`CONNECTIVES`: an answer's own statement ("this file
    contains malware", "log in again to verify your password", an invented plot) uses
    words none of them holds. A blocklist of claims could not list them all."""
    allowed = CONNECTIVES | template_words()
    allowed |= set(re.findall(r"[a-z]+", known))
    allowed |= set(re.findall(r"[a-z]+", render_template(facts, "en")[0].lower()))
    unknown = [
        w
        for w in dict.fromkeys(re.findall(r"[a-z]+", text.lower()))
        if w not in allowed and w.removesuffix("s") not in allowed and f"{w}s" not in allowed
    ]
    if not unknown:
        return []
    return [f"says what no fact holds (words: {', '.join(unknown[:5])})"]


def _sentence_ends(text: str) -> list[int]:
    """Where sentences end ("Mrs." and initials are not ends)."""
    return [
        m.end() for m in _SENTENCE_END.finditer(text) if not _abbreviation_before(text, m.start())
    ]


def _sentences(text: str) -> list[str]:
    cuts = [0, *_sentence_ends(text), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(cuts) if text[a:b].strip()]


def _check_liking(text: str, facts: Facts) -> list[str]:
    """No sentence says the user liked a history item they rated low, or liked the
    recommended item itself (which they have not met) without naming an item they did.
    Titles are masked before the text is cut into sentences: "Airplane!" ends none."""
    items = facts.of_kind("history_item", "picked_item")
    low = [f.title for f in items if f.liked is False and f.title]  # rated low, or a view
    liked = [f.title for f in items if f.liked is not False and f.title]
    masked, marks = _mask_titles(text, [*low, *liked, facts.title])
    problems: list[str] = []
    for sentence in _sentences(masked):
        if not _LIKING.search(sentence):
            continue
        problems.extend(
            f"says you liked {title!r}, which you rated low or only looked at"
            for title in low
            if marks[title] in sentence
        )
        if marks[facts.title] in sentence and not any(marks[t] in sentence for t in liked):
            problems.append(f"says you liked {facts.title!r}, the item being recommended")
    return problems


def _mask_titles(text: str, titles: Sequence[str]) -> tuple[str, dict[str, str]]:
    """``text`` with each title (longest first, any case) replaced by a marker that holds
    no punctuation, and the marker of each title."""
    marks: dict[str, str] = {}
    for n, title in enumerate(sorted(set(titles), key=len, reverse=True)):
        marks[title] = f"\ue000{n}\ue001"
        pattern = rf"(?<!\w){re.escape(title)}(?!\w)"
        text = re.sub(pattern, marks[title], text, flags=re.IGNORECASE)
    return text, marks


def _check_repetition(text: str) -> list[str]:
    seen: set[str] = set()
    for sentence in _sentences(text):
        key = " ".join(_words(sentence))
        if len(key) > 10 and key in seen:
            return ["repeats a sentence"]
        seen.add(key)
    return []


_CUES: dict[str, tuple[str, ...]] = {
    "cold_item": ("new", "newly", "fresh", "新"),
    "long_tail": ("easy to miss", "few", "overlooked", "hidden", "rare", "错过", "很少"),
    "popular": ("popular", "favourite", "favorite", "loved", "热门", "受欢迎"),
    "stated_taste": ("taste", "described", "口味", "描述"),
    "content_share": ("description", "attributes", "content", "similar taste", "描述", "属性"),
}
"""Words that cite a fact without a title, value or number of its own."""


def _words(text: str) -> tuple[str, ...]:
    return tuple(m.group().lower() for m in _TOKEN.finditer(text))


def _has(words: Sequence[str], phrase: str) -> bool:
    """Whether the token sequence of ``phrase`` occurs in ``words`` (whole tokens)."""
    sub = _words(phrase)
    n = len(sub)
    return n > 0 and any(tuple(words[i : i + n]) == sub for i in range(len(words) - n + 1))


def _named_items(words: list[str], facts: Facts) -> set[str]:
    """Ids of the facts' items whose titles occur in ``words``, longest title first. A
    match (the recommended item's own title too) is blanked, so that "Alien 3" does not
    also name "Alien" and a title's words are not read as attribute values."""
    titles = [(f.title or "", f.id) for f in facts.of_kind("history_item", "picked_item")]
    variants = sorted(
        (
            (_words(v), fid)
            for title, fid in [*titles, (facts.title, "")]
            for v in title_variants(title)
        ),
        key=lambda x: -len(x[0]),
    )
    found = set()
    for sub, fid in variants:
        n = len(sub)
        for i in range(len(words) - n + 1):
            if n and tuple(words[i : i + n]) == sub:
                found.add(fid)
                words[i : i + n] = [""] * n
    return found - {""}


def cited_fact_ids(
    text: str, facts: Facts, mentions: CatalogueMentions | None = None
) -> tuple[str, ...]:
    """The facts ``text`` actually names, in the facts' order.

    A history or picked item counts when its title is named (longest title
    first); an attribute fact when one of its values is; a year or popularity
    fact when its number is; newness, popularity, a stated taste and content
    share also by a cue word ("new", "popular", "easy to miss", "taste",
    "description"). Reading the citations off the text replaces asking the
    model for them: it costs no generation, and a text that names none of the
    facts is rejected by the check. ``mentions`` (the catalogue) is not needed
    and kept for symmetry with :func:`check_explanation`.
    """
    words = list(_words(text))
    named = _named_items(words, facts)  # blanks the titles, so values are not read in them
    out = []
    for fact in facts.facts:
        if fact.kind in ("history_item", "picked_item"):
            hit = fact.id in named
        elif fact.kind in ("shared_attribute", "item_attribute", "taste_match"):
            hit = any(_has(words, v) for v in split_values(fact.value))
        else:
            number = [str(fact.value)] if fact.kind in ("long_tail", "popular") else []
            hit = any(_has(words, w) for w in (*number, *_CUES.get(fact.kind, ())))
        if hit:
            out.append(fact.id)
    return tuple(out)


def _check_form(text: str, fact_ids: Sequence[str], facts: Facts, language: str) -> list[str]:
    problems = []
    if len(text) < MIN_CHARS.get(language, 20):
        problems.append("the explanation is empty or too short")
    if language == "zh" and not _HAS_CJK.search(text):
        problems.append("the explanation is not in Chinese")
    if not fact_ids:
        problems.append("names none of the facts")
    reasons = {f.id for f in facts.of_kind("history_item", "picked_item")}
    if fact_ids and reasons and not reasons & set(fact_ids):
        problems.append("names none of the items behind the recommendation")
    unknown = [i for i in fact_ids if i not in set(facts.ids)]
    if unknown:
        problems.append(f"unknown fact ids {unknown}")
    return problems


def _known_parts(
    facts: Facts, mentions: CatalogueMentions, taste_words: str, *, shares: bool = True
) -> list[str]:
    """What the facts, the item's title and attributes and the user's stated taste say;
    without ``shares``, fact values that are fractions (a content share, 0.62) are left
    out: no fact line or draft states them as a number."""
    parts = [facts.title, taste_words]
    parts += [v for vals in facts.item_attributes.values() for v in vals]
    for f in facts.facts:
        fraction = isinstance(f.value, float) and not f.value.is_integer()
        values = (f.title, f.value) if shares or not fraction else (f.title,)
        parts += [str(x) for x in values if x is not None]
    parts += [mentions.years.get(i, "") for i in facts.allowed_items]
    return parts


def _known_text(facts: Facts, mentions: CatalogueMentions, taste_words: str) -> str:
    """:func:`_known_parts` as one lower-case string."""
    return " ".join(_known_parts(facts, mentions, taste_words)).lower()


def _known_numbers(facts: Facts, mentions: CatalogueMentions, taste_words: str) -> set[str]:
    """The whole numbers the facts state: in titles, values, counts and years."""
    parts = _known_parts(facts, mentions, taste_words, shares=False)
    return set(re.findall(r"\d+", " ".join(parts)))


def _said(word: str, known: str) -> bool:
    """Whether ``known`` holds ``word`` as a word (or its plural); a symbol anywhere."""
    low = word.lower()
    if not low[:1].isalnum():
        return low in known
    return re.search(rf"(?<!\w){re.escape(low)}s?(?!\w)", known) is not None


def _blank(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the ``spans`` (titles found in it) replaced by spaces."""
    out = list(text)
    for a, b in spans:
        out[a:b] = " " * (b - a)
    return "".join(out)


def _check_numbers(text: str, numbers: set[str]) -> list[str]:
    """Every number in ``text`` (``1995``, ``the 1990s``, ``300 people``) is a known one."""
    decades = {x[:3] for x in numbers if len(x) == 4}

    def known_number(n: str) -> bool:
        return n in numbers or (len(n) == 4 and n.endswith("0") and n[:3] in decades)

    return [
        f"names the number {n}, which is not in the facts"
        for n in dict.fromkeys(re.findall(r"\d+", text))
        if not known_number(n)
    ]


def _check_names(text: str, skip: Sequence[tuple[int, int]], known: str) -> list[str]:
    """Capitalised words outside titles and values must be known: runs of two or more
    anywhere (an invented director or award is the commonest small-model invention),
    and single ones inside a sentence ("try Dune", "set in Berlin")."""
    problems = []
    run: list[tuple[int, re.Match[str]]] = []
    toks = _tokens(text)
    for i, tok in enumerate([*toks, None]):
        inside = tok is not None and any(a <= tok.start() < b for a, b in skip)
        if tok is not None and not inside and _NAME_WORD.match(tok.group()):
            if not run and tok.group() in _STARTERS and _opens_sentence(toks, i):
                continue
            run.append((i, tok))
            continue
        single = (
            len(run) == 1 and len(run[0][1].group()) > 2 and not _opens_sentence(toks, run[0][0])
        )
        if len(run) >= 2 or single:
            name = text[run[0][1].start() : run[-1][1].end()]
            if not _said(name, known):
                problems.append(f"names {name!r}, which is not in the facts")
        run = []
    return problems


def _check_quotes(text: str, spans: Sequence[tuple[int, int]], known: str) -> list[str]:
    """A quoted phrase of two or more words must be a title found in the text or words
    the facts hold as they stand: a misquoted title ("consacre una grande" for "une
    grande") names nothing in the catalogue, so the other checks let it through."""
    problems = []
    for match in _QUOTED.finditer(text):
        start, end = match.span()
        quoted = next(g for g in match.groups() if g is not None).strip(" .,;:!?")
        if len(quoted.split()) < 2 or any(a < end and start < b for a, b in spans):
            continue
        if not _said(quoted, known):
            problems.append(f"quotes {quoted!r}, which no fact holds word for word")
    return problems


def _opens_sentence(toks: Sequence[re.Match[str]], i: int) -> bool:
    return i == 0 or toks[i - 1].group() in _BOUNDARY or toks[i - 1].group() in _QUOTES


def _copies(text: str, source: str, n: int = COPY_WORDS) -> bool:
    src = re.findall(r"\w+", source.lower())
    if len(src) < n:
        return False
    grams = {tuple(src[i : i + n]) for i in range(len(src) - n + 1)}
    out = re.findall(r"\w+", text.lower())
    return any(tuple(out[i : i + n]) in grams for i in range(len(out) - n + 1))


# ============================================================================ cache


def _transient(reason: str | None) -> bool:
    """A fallback for a reason that may pass (a timeout on a busy machine, a backend
    error): kept out of the cache, so the next request asks the model again. A
    template chosen because the model's answers failed the check is kept."""
    return reason is not None and reason.startswith(("timeout", "backend error"))


class _LRU:
    """A small thread-safe LRU cache."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[tuple[str, ...], Explanation] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, ...]) -> Explanation | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[str, ...], value: Explanation) -> None:
        if self.maxsize <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


# ============================================================================ explainer


@dataclass
class _Job:
    """One explanation in flight."""

    facts: Facts
    key: tuple[str, ...]
    attempts: int = 0
    problems: tuple[str, ...] = ()
    seconds: float = 0.0
    tokens: int = 0
    result: Explanation | None = None


class Explainer:
    """Checked explanations from a backend, with retry, template fallback and a cache.

    Parameters
    ----------
    backend
        Any :class:`~hybrid_rec.explain.backends.Backend`; ``None`` is the template.
    language
        ``"en"`` or ``"zh"``.
    max_tokens
        Token budget of one answer (the explanation's length bound follows from it).
    timeout_s
        Time budget of one explanation, retry included; past it the template answers.
    prompt
        Prompt template version (files ``{prompt}_system.txt`` / ``{prompt}_user.txt``,
        ``_zh`` variants for Chinese): ``explain_v2`` rewrites the template's draft,
        ``explain_v1`` writes freely from the facts.
    retries
        Extra model attempts after a failed check.
    cache_size
        Explanations kept in memory (0 disables the cache).
    include_description
        Show the model the item's description (untrusted: cleaned, cut, quoted as
        data). Off by default: the 0.5B model retold plots, critiqued the text and
        invented more with it (and a description is the main injection surface).
    withhold_instructions
        Drop description sentences that address a model before the prompt sees them.
    answer_start
        Words a model's explanation is forced to begin with; ``None`` is the
        language's default (:data:`ANSWER_START`: "You" in English), ``""`` none.
    model_cites
        Ask the model to list the fact ids it used (a ``fact_ids`` array in the
        schema: on llama.cpp a second, grammar-constrained call, ~1-2 s more). Off by
        default: the cited facts are read from the text (:func:`cited_fact_ids`);
        ids a backend returns anyway are used as given.
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        language: str = "en",
        max_tokens: int = 120,
        timeout_s: float = 20.0,
        prompt: str = PROMPT_VERSION,
        retries: int = 1,
        cache_size: int = 4096,
        include_description: bool = False,
        withhold_instructions: bool = True,
        model_cites: bool = False,
        answer_start: str | None = None,
    ) -> None:
        if language not in LANGUAGES:
            raise ExplanationError(f"language must be one of {LANGUAGES}, got {language!r}.")
        self.backend: Backend = backend if backend is not None else TemplateBackend()
        self.fallback = TemplateBackend()
        self.language = language
        self.max_tokens = max_tokens
        self.max_chars = max_chars_for(max_tokens, language)
        self.timeout_s = timeout_s
        self.prompt = prompt
        self.retries = retries
        self.cache = _LRU(cache_size)
        self.include_description = include_description
        self.withhold = withhold_instructions
        self.model_cites = model_cites
        self.answer_start = ANSWER_START[language] if answer_start is None else answer_start
        self._mentions: tuple[tuple[int, int], CatalogueMentions] | None = None
        if language == "zh" and "0.5b" in str(getattr(self.backend, "model_id", "")):
            log.warning("Chinese explanations read better with model='qwen2.5-1.5b'.")

    @classmethod
    def from_config(cls, config: ExplainConfig | None = None) -> Explainer:
        """An explainer as ``config`` says; a model that cannot load falls back to the
        template backend (logged with the reason and the fix)."""
        cfg = config or ExplainConfig()
        return cls(
            backend_from_config(cfg),
            language=cfg.language,
            max_tokens=cfg.max_tokens,
            timeout_s=cfg.timeout_s,
        )

    # ------------------------------------------------------------------ public

    def explain(self, rec: HybridRecommender, user_id: str, item_id: str) -> Explanation:
        """Explain recommending ``item_id`` to the known user ``user_id``.

        Raises
        ------
        UnknownIdError
            The user or the item is unknown.
        """
        return self.explain_many(rec, [(user_id, item_id)])[0]

    def explain_many(
        self, rec: HybridRecommender, pairs: Sequence[tuple[str, str]]
    ) -> list[Explanation]:
        """Explain several (user, item) pairs; first attempts go to the backend as one batch."""
        facts, mentions = self.gathered(
            rec,
            lambda: [build_facts(rec, str(u), str(i), withhold=self.withhold) for u, i in pairs],
        )
        return self.explain_facts(rec, facts, mentions)

    def explain_for_new_user(
        self,
        rec: HybridRecommender,
        item_id: str,
        liked_items: Sequence[str] = (),
        text: str | None = None,
    ) -> Explanation:
        """Explain recommending ``item_id`` to a new user (picked items and/or stated taste)."""
        facts, mentions = self.gathered(
            rec,
            lambda: [build_new_user_facts(rec, item_id, liked_items, text, withhold=self.withhold)],
        )
        return self.explain_facts(rec, facts, mentions)[0]

    def gathered(
        self, rec: HybridRecommender, build: Callable[[], list[Facts]]
    ) -> tuple[list[Facts], CatalogueMentions]:
        """The facts ``build`` gathers and the catalogue's title index, from one state of
        the model (its read lock held): the text is written after, without the lock."""
        with rec.lock.read():
            return build(), self.mentions(rec.items_)

    def explain_facts(
        self,
        rec: HybridRecommender,
        facts: Sequence[Facts],
        mentions: CatalogueMentions | None = None,
    ) -> list[Explanation]:
        """Explanations for ready-made facts (cache, batch, check, retry, fallback).

        The model's lock is not held while the backend writes: an update waits only
        for the facts (``mentions``, the catalogue's title index, is taken with them)."""
        if mentions is None:
            mentions = self.gathered(rec, list)[1]
        jobs = [_Job(f, self._key(f)) for f in facts]
        for job in jobs:
            hit = self.cache.get(job.key)
            if hit is not None:
                job.result = dataclasses.replace(hit, cached=True)
        pending = [j for j in jobs if j.result is None]
        if isinstance(self.backend, TemplateBackend):
            for job in pending:
                job.result = self._template(job, mentions, reason=None)
        else:
            self._run_model(pending, mentions)
        for job in pending:
            assert job.result is not None
            if not _transient(job.result.fallback_reason):
                self.cache.put(job.key, job.result)
        return [j.result for j in jobs if j.result is not None]

    def mentions(self, items: pd.DataFrame) -> CatalogueMentions:
        """The title/value index of ``items`` (rebuilt when the catalogue changes)."""
        key = (id(items), len(items))
        if self._mentions is None or self._mentions[0] != key:
            self._mentions = (key, CatalogueMentions(items))
        return self._mentions[1]

    # ------------------------------------------------------------------ internals

    def _key(self, facts: Facts) -> tuple[str, ...]:
        user = facts.user_id if facts.user_id is not None else "<new>"
        model = str(getattr(self.backend, "model_id", self.backend.name))
        prompt = self.prompt + ("-desc" if self.include_description else "")
        prompt += "" if self.withhold else "-raw"
        prompt += "-cite" if self.model_cites else ""
        start = self.answer_start
        return (user, facts.item_id, model, prompt, self.language, start, facts.digest())

    def _request(self, job: _Job) -> GenerationRequest:
        retry = job.attempts > 0
        return GenerationRequest(
            messages=build_messages(
                job.facts,
                language=self.language,
                prompt=self.prompt,
                feedback=job.problems,
                include_description=self.include_description,
            ),
            schema=output_schema(job.facts.ids, self.max_chars, cite=self.model_cites),
            max_tokens=self.max_tokens,
            facts=job.facts,
            language=self.language,
            temperature=0.7 if retry else 0.0,
            seed=int(hashlib.sha256(job.key[-1].encode()).hexdigest()[:8], 16) + job.attempts,
            answer_start=self.answer_start,
        )

    def _run_model(self, jobs: list[_Job], mentions: CatalogueMentions) -> None:
        deadline = {id(j): time.perf_counter() + self.timeout_s for j in jobs}
        todo = jobs
        for _ in range(1 + self.retries):
            if not todo:
                return
            left = min(deadline[id(j)] - time.perf_counter() for j in todo)
            if left <= 0:
                break
            results = self._generate([self._request(j) for j in todo], left)
            retry = []
            for job, result in zip(todo, results, strict=True):
                job.attempts += 1
                self._accept(job, result, mentions)
                if job.result is None:
                    retry.append(job)
            todo = retry
        for job in todo:
            reason = "timeout" if job.attempts == 0 else "check failed: " + "; ".join(job.problems)
            job.result = self._template(job, mentions, reason=reason)

    def _generate(
        self, requests: list[GenerationRequest], timeout_s: float
    ) -> list[Generation | BackendError]:
        if len(requests) > 1 and self.backend.supports_batch:
            return self.backend.generate_batch(requests, timeout_s=timeout_s)
        out: list[Generation | BackendError] = []
        for request in requests:
            try:
                out.append(self.backend.generate(request, timeout_s=timeout_s))
            except BackendError as exc:
                out.append(exc)
        return out

    def _accept(
        self, job: _Job, result: Generation | BackendError, mentions: CatalogueMentions
    ) -> None:
        """Parse and check one answer; on success set ``job.result``, on a hard
        failure (timeout, error, unparseable) fall back at once."""
        if isinstance(result, BackendError):
            kind = "timeout" if isinstance(result, BackendTimeout) else "backend error"
            log.warning("explanation of %s: %s (%s); using the template", job.key[:2], kind, result)
            job.result = self._template(job, mentions, reason=f"{kind}: {result}")
            return
        job.seconds += result.seconds
        job.tokens += result.tokens
        try:
            text, ids = parse_output(result.text)
        except ExplanationError as exc:
            log.warning(
                "explanation of %s: unusable output (%s): %.120r; using the template",
                job.key[:2],
                exc,
                result.text,
            )
            job.result = self._template(job, mentions, reason=f"unusable output: {exc}")
            return
        text = trim_to_sentence(
            _strip_fact_ids(text, job.facts.ids),
            self.max_chars,
            cut_off=bool(result.meta.get("truncated")) or not result.text.rstrip().endswith("}"),
        )
        if not ids:
            ids = cited_fact_ids(text, job.facts, mentions)
        rules = load_prompt(f"{self.prompt}_system", self.language).split("\nExample")[0]
        check = check_explanation(
            text, ids, job.facts, mentions, language=self.language, prompt=rules
        )
        if check.ok:
            job.result = self._explanation(job, text, ids, grounded=True, backend=self.backend.name)
            return
        job.problems = check.problems
        log.info("explanation of %s rejected: %s: %.200r", job.key[:2], check.problems, text)

    def _template(self, job: _Job, mentions: CatalogueMentions, reason: str | None) -> Explanation:
        request = GenerationRequest((), {}, self.max_tokens, job.facts, language=self.language)
        text, ids = parse_output(self.fallback.generate(request).text)
        check = check_explanation(text, ids, job.facts, mentions, language=self.language)
        if not check.ok:  # a bug in the template or the check: say so loudly
            log.error("template explanation failed the check: %s: %r", check.problems, text)
        if reason:
            log.info("explanation of %s falls back to the template: %s", job.key[:2], reason)
        return self._explanation(
            job, text, ids, grounded=check.ok, backend=self.fallback.name, reason=reason
        )

    def _explanation(
        self,
        job: _Job,
        text: str,
        ids: Sequence[str],
        *,
        grounded: bool,
        backend: str,
        reason: str | None = None,
    ) -> Explanation:
        return Explanation(
            text=text,
            facts=job.facts.facts,
            grounded=grounded,
            backend=backend,
            fact_ids=tuple(ids),
            item_id=job.facts.item_id,
            user_id=job.facts.user_id,
            model=str(getattr(self.backend, "model_id", self.backend.name)),
            language=self.language,
            attempts=job.attempts,
            fallback_reason=reason,
            problems=job.problems,
            seconds=job.seconds,
            tokens=job.tokens,
        )


# ============================================================================ backends by config

_BACKENDS: dict[tuple[str, str, int], Backend] = {}
_BACKENDS_LOCK = threading.Lock()


def backend_from_config(config: ExplainConfig, *, strict: bool = False) -> Backend:
    """The backend ``config`` names, loaded once per process and shared.

    A model that cannot be loaded (llama-cpp-python or the model packages
    missing, a sha256 mismatch) is logged with the fix and replaced by the
    template backend, unless ``strict``, which raises the
    :class:`~hybrid_rec.errors.ModelFileError`.
    """
    if config.backend == "template":
        return TemplateBackend()
    key = (config.backend, config.model, config.threads)
    with _BACKENDS_LOCK:
        if key in _BACKENDS:
            return _BACKENDS[key]
        try:
            backend: Backend
            if config.backend == "llama_cpp":
                backend = LlamaCppBackend(config.model, n_threads=config.threads)
            else:
                backend = TransformersBackend(config.model, threads=config.threads)
        except ModelFileError as exc:
            if strict:
                raise
            log.warning("explanations fall back to the template backend: %s", exc)
            return TemplateBackend()
        _BACKENDS[key] = backend
        return backend


# ============================================================================ recommender-level API

_EXPLAINERS: weakref.WeakKeyDictionary[Any, tuple[str, Explainer]] = weakref.WeakKeyDictionary()


def get_explainer(rec: HybridRecommender) -> Explainer:
    """The explainer of ``rec`` (built from ``rec.config.explain``, rebuilt when it changes)."""
    cfg = rec.config.explain
    fingerprint = cfg.model_dump_json()
    held = _EXPLAINERS.get(rec)
    if held is None or held[0] != fingerprint:
        held = (fingerprint, Explainer.from_config(cfg))
        _EXPLAINERS[rec] = held
    return held[1]


def explain(
    rec: HybridRecommender, user_id: str, item_id: str, *, explainer: Explainer | None = None
) -> Explanation:
    """Explain recommending ``item_id`` to ``user_id`` (``rec``'s explainer unless given)."""
    return (explainer or get_explainer(rec)).explain(rec, user_id, item_id)


def explain_many(
    rec: HybridRecommender,
    pairs: Sequence[tuple[str, str]],
    *,
    explainer: Explainer | None = None,
) -> list[Explanation]:
    """Explain several (user, item) pairs in one batch where the backend allows."""
    return (explainer or get_explainer(rec)).explain_many(rec, pairs)


def explain_for_new_user(
    rec: HybridRecommender,
    item_id: str,
    liked_items: Sequence[str] = (),
    text: str | None = None,
    *,
    explainer: Explainer | None = None,
) -> Explanation:
    """Explain recommending ``item_id`` to a new user from picked items and/or stated taste."""
    return (explainer or get_explainer(rec)).explain_for_new_user(rec, item_id, liked_items, text)


def add_explanations(
    rec: HybridRecommender,
    frame: pd.DataFrame,
    *,
    top: int = 3,
    liked_items: Sequence[str] = (),
    text: str | None = None,
    explainer: Explainer | None = None,
) -> pd.DataFrame:
    """``frame`` (``recommend`` or ``recommend_for_new_user`` output) with an
    ``explanation`` column for each user's ``top`` ranks (``None`` below them).

    Without a ``user_id`` column the rows are a new user's, explained from
    ``liked_items`` / ``text``.
    """
    ex = explainer or get_explainer(rec)
    out = frame.copy()
    out["explanation"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    chosen = out[out[C.rank] <= top] if C.rank in out.columns else out.head(top)
    if chosen.empty:
        return out
    if C.user in out.columns:
        pairs = list(zip(chosen[C.user].astype(str), chosen[C.item].astype(str), strict=True))
        results = ex.explain_many(rec, pairs)
    else:
        facts, mentions = ex.gathered(
            rec,
            lambda: [
                build_new_user_facts(rec, str(i), liked_items, text, withhold=ex.withhold)
                for i in chosen[C.item]
            ],
        )
        results = ex.explain_facts(rec, facts, mentions)
    out.loc[chosen.index, "explanation"] = [r.text for r in results]
    return out
