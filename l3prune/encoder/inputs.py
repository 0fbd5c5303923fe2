"""Turning `[text, ...]` / `[[instruction, text], ...]` into model inputs with a pooling mask.

One rule joins an instruction to its text, in training and in inference alike: the instruction
is stripped and ends in ": " unless it already ends in punctuation (`join_instruction`). The
model reads that joined string, wrapped in the model's user turn when `use_chat_template` is set
(`chat.user_turn_wrap`), tokenised as one with the tokenizer's own special tokens, as it would any
text (tokenising the pieces apart would feed it a lone space token and the text's first word
without its leading space). Which token belongs to which piece (the wrap's opening, the
instruction, the text, the wrap's closing) comes from the tokenizer's character offsets; a slow
tokenizer, which has none, gets the pieces tokenised apart instead. With `eos_token` pooling the
tokenizer's EOS is appended when it does not end the input already (LLM2Vec does the same), so
that the pooled token is an EOS.

Pooled, with `skip_instruction`: the text and everything after it (the wrap's closing, EOS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .chat import user_turn_wrap

Input = str | Sequence[str]


def split_input(item: Input) -> tuple[str, str]:
    """`text` or `[instruction, text]` -> (instruction, text)."""
    if isinstance(item, str):
        return "", item
    if isinstance(item, Sequence) and len(item) == 2 and all(isinstance(x, str) for x in item):
        return item[0], item[1]
    raise ValueError(f"bad encoder input {item!r}: give a string or an [instruction, text] pair of strings")


def instruction_prefix(instruction: str) -> str:
    instruction = instruction.strip()
    if not instruction:
        return ""
    return instruction + (" " if instruction[-1] in ":;.?!" else ": ")


def join_instruction(instruction: str, text: str) -> str:
    """The text the model reads for an (instruction, text) pair."""
    return instruction_prefix(instruction) + text


@dataclass
class Pieces:
    """The token ids of one input, in reading order."""

    before: list[int]  # what the tokenizer adds before (BOS) and the wrap's opening
    instruction: list[int]
    text: list[int]
    after: list[int]  # the wrap's closing, what the tokenizer adds after, an appended EOS


class InputBuilder:
    """Tokenises encoder inputs: ids, attention mask and the mask of tokens to pool."""

    def __init__(
        self,
        tokenizer,
        max_length: int,
        doc_max_length: int,
        skip_instruction: bool,
        use_chat_template: bool,
        append_eos: bool = False,
    ):
        self.tokenizer = tokenizer
        self.doc_max_length = doc_max_length
        self.skip_instruction = skip_instruction
        self.use_chat_template = use_chat_template
        self.wrap = user_turn_wrap(tokenizer) if use_chat_template else ("", "")
        self.append_eos = append_eos
        probe = self.pieces([("", "a")])[0]
        self.fixed_tokens = len(probe.before) + len(probe.after)  # around every text
        self.set_max_length(max_length)

    def set_max_length(self, max_length: int) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive token count, got {max_length!r}")
        if self.fixed_tokens >= max_length:
            raise ValueError(
                f"max_length={max_length} leaves no room for text after {self.fixed_tokens} special tokens"
            )
        self.max_length = max_length

    def _ids(self, texts: list[str], add_special_tokens: bool = False) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]

    def pieces(self, pairs: list[tuple[str, str]]) -> list[Pieces]:
        """Each (instruction, text) pair read as one string, cut into its pieces; not truncated."""
        split = self._split_by_offsets if self.tokenizer.is_fast else self._split_apart
        pieces = split(pairs)
        eos = self.tokenizer.eos_token_id
        if self.append_eos and eos is not None:
            for piece in pieces:
                if (piece.after or piece.text or [None])[-1] != eos:
                    piece.after.append(eos)
        return pieces

    def _split_by_offsets(self, pairs: list[tuple[str, str]]) -> list[Pieces]:
        head, tail = self.wrap
        prefixes = [instruction_prefix(instruction) for instruction, _ in pairs]
        joined = [head + prefix + text + tail for prefix, (_, text) in zip(prefixes, pairs, strict=True)]
        encoded = self.tokenizer(joined, add_special_tokens=True, return_offsets_mapping=True)
        result = []
        for prefix, (_, text), ids, offsets in zip(
            prefixes, pairs, encoded["input_ids"], encoded["offset_mapping"], strict=True
        ):
            # a token belongs to the first piece its last character falls in; added special
            # tokens have no characters and stand before or after everything else
            bounds = (len(head), len(head) + len(prefix), len(head) + len(prefix) + len(text))
            piece = Pieces([], [], [], [])
            for token, (start, end) in zip(ids, offsets, strict=True):
                if start == end:
                    (
                        piece.before if not (piece.instruction or piece.text or piece.after) else piece.after
                    ).append(token)
                elif end <= bounds[0]:
                    piece.before.append(token)
                elif end <= bounds[1]:
                    piece.instruction.append(token)
                elif end <= bounds[2]:
                    piece.text.append(token)
                else:
                    piece.after.append(token)
            result.append(piece)
        return result

    def _split_apart(self, pairs: list[tuple[str, str]]) -> list[Pieces]:
        head, tail = self.wrap
        specials_before, specials_after = self._special_tokens()
        head_ids, tail_ids = self._ids([head, tail]) if head or tail else ([], [])
        prefixes = self._ids([instruction_prefix(instruction) for instruction, _ in pairs])
        texts = self._ids([text for _, text in pairs])
        return [
            Pieces(specials_before + head_ids, prefix, text, tail_ids + specials_after)
            for prefix, text in zip(prefixes, texts, strict=True)
        ]

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer itself puts before and after a text (e.g. BOS, EOS)."""
        probe = "hello world"
        with_specials = self._ids([probe], add_special_tokens=True)[0]
        plain = self._ids([probe])[0]
        for start in range(len(with_specials) - len(plain) + 1):
            if with_specials[start : start + len(plain)] == plain:
                return with_specials[:start], with_specials[start + len(plain) :]
        return [], []

    def token_ids(
        self, inputs: Sequence[Input], max_length: int | None = None
    ) -> tuple[list[list[int]], list[int]]:
        """Unpadded ids per input and the index where its pooled part starts; cut to `max_length`
        tokens (default: the builder's) and texts to doc_max_length."""
        room = (max_length or self.max_length) - self.fixed_tokens
        if room < 1:
            raise ValueError(
                f"max_length={max_length} leaves no room for text after {self.fixed_tokens} special tokens"
            )
        ids, pool_starts = [], []
        for piece in self.pieces([split_input(item) for item in inputs]):
            instruction = piece.instruction[
                : room - 1
            ]  # an over-long instruction still leaves one text token
            text = piece.text[: min(self.doc_max_length, room - len(instruction))]
            ids.append(piece.before + instruction + text + piece.after)
            pool_starts.append(len(piece.before) + len(instruction) if self.skip_instruction else 0)
        return ids, pool_starts

    def pad(self, ids: list[list[int]], pool_starts: list[int]) -> dict[str, torch.Tensor]:
        """Left-pad to the longest sequence; positions count real tokens only, so padding never
        changes a text's embedding."""
        width = max(len(x) for x in ids)
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        pool_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, (seq, start) in enumerate(zip(ids, pool_starts, strict=True)):
            offset = width - len(seq)
            input_ids[row, offset:] = torch.tensor(seq, dtype=torch.long)
            attention_mask[row, offset:] = 1
            pool_mask[row, offset + start :] = 1
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "pool_mask": pool_mask,
        }

    def __call__(self, inputs: Sequence[Input], max_length: int | None = None) -> dict[str, torch.Tensor]:
        if len(inputs) == 0:
            raise ValueError("no inputs to tokenize: give at least one text")
        return self.pad(*self.token_ids(inputs, max_length))
