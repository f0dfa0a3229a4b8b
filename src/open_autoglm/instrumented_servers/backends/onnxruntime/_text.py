"""Text around an ONNX decoder: chat template, tokenizer, incremental detokenizer, sampler."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from open_autoglm.instrumented_servers._backend import ChatMessage, SamplingParams, TokenLogprob


class ChatTemplate:
    """The model's Jinja chat template (as transformers renders it), or ChatML without one."""

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = "") -> None:
        self._bos, self._eos = bos_token, eos_token
        self._template: Any = None
        if source:
            try:
                from jinja2.sandbox import ImmutableSandboxedEnvironment
            except ImportError as exc:
                raise ValueError(
                    "this model's chat template needs jinja2; install the [onnx] extra"
                ) from exc

            def raise_exception(message: str) -> None:
                raise ValueError(f"chat template: {message}")

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = raise_exception
            self._template = env.from_string(source)

    def render(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt for ``messages``, ending with the assistant's turn opened."""
        if self._template is None:
            turns = [f"<|im_start|>{m.role}\n{m.text}<|im_end|>\n" for m in messages]
            return "".join(turns) + "<|im_start|>assistant\n"
        rendered: str = self._template.render(
            messages=[{"role": m.role, "content": m.text} for m in messages],
            add_generation_prompt=True,
            bos_token=self._bos,
            eos_token=self._eos,
        )
        return rendered


class TextTokenizer:
    """``tokenizer.json`` through the ``tokenizers`` library."""

    def __init__(self, path: Path, bos_token_id: int | None) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self.bos_token_id = bos_token_id

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self._tok.encode(text, add_special_tokens=True).ids
        # A chat template that writes BOS itself plus a post-processor that adds one: keep one.
        bos = self.bos_token_id
        if bos is not None and len(ids) > 1 and ids[0] == bos and ids[1] == bos:
            ids = ids[1:]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        text: str = self._tok.decode(list(ids), skip_special_tokens=True)
        return text

    @property
    def vocab_size(self) -> int:
        """Token ids run from 0 to this minus one (added tokens included)."""
        size: int = self._tok.get_vocab_size(with_added_tokens=True)
        return size

    def token_text(self, token: int) -> str:
        """One token's text, special tokens shown (``<|im_end|>``): for log probabilities."""
        text: str = self._tok.decode([token], skip_special_tokens=False)
        return text


@dataclass(slots=True)
class IncrementalDetokenizer:
    """Text deltas of a growing id list, holding back incomplete UTF-8 and stop-string prefixes.

    Decodes a short window (the ids since the last emitted text and a few before, for
    tokenizers whose spacing depends on the previous token), so each step costs the same.
    """

    tokenizer: TextTokenizer
    stop: tuple[str, ...] = ()
    ids: list[int] = field(default_factory=list)
    text: str = ""  # all text decoded so far (held-back text included)
    emitted: int = 0  # characters of ``text`` already handed out
    stopped: bool = False
    _prefix: int = 0
    _read: int = 0

    def add(self, token_id: int) -> str:
        """Append a token; return the text that can be shown now (maybe empty)."""
        self.ids.append(token_id)
        prefix_text = self.tokenizer.decode(self.ids[self._prefix : self._read])
        new_text = self.tokenizer.decode(self.ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.text += new_text[len(prefix_text) :]
            self._prefix, self._read = self._read, len(self.ids)
        if self.stop:
            start = max(0, self.emitted - max(len(s) for s in self.stop))
            hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.stopped = True
                return self.flush()
            holdback = max(len(s) for s in self.stop) - 1
            end = max(self.emitted, len(self.text) - holdback)
        else:
            end = len(self.text)
        delta = self.text[self.emitted : end]
        self.emitted = end
        return delta

    def flush(self) -> str:
        delta = self.text[self.emitted :]
        self.emitted = len(self.text)
        return delta


def token_logprob(
    logits: npt.NDArray[np.float32], token: int, top: int, text: Callable[[int], str]
) -> TokenLogprob:
    """``token``'s natural-log probability under the model's distribution (log-softmax of the
    raw ``logits``, before temperature and top-p), with the ``top`` most likely tokens."""
    scores = logits.astype(np.float64)
    peak = scores.max()
    norm = peak + np.log(np.exp(scores - peak).sum())
    alternatives: tuple[tuple[str, float], ...] = ()
    if top:
        best = np.argpartition(-scores, top - 1)[:top]
        best = best[np.argsort(-scores[best], kind="stable")]
        alternatives = tuple((text(int(i)), float(scores[i] - norm)) for i in best)
    return TokenLogprob(text(token), float(scores[token] - norm), alternatives)


def sample(
    logits: npt.NDArray[np.float32], params: SamplingParams, rng: np.random.Generator
) -> int:
    """Greedy for temperature 0, else temperature and nucleus (top-p) sampling."""
    if params.temperature <= 0.0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / params.temperature
    scaled -= scaled.max()
    probs = np.exp(scaled)
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs)
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, params.top_p)) + 1]
        kept = probs[keep] / probs[keep].sum()
        return int(keep[rng.choice(len(keep), p=kept)])
    return int(rng.choice(len(probs), p=probs))
