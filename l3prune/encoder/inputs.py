"""Turning `[text, ...]` / `[[instruction, text], ...]` into model inputs with a pooling mask.

One rule joins an instruction to its text, in training and in inference alike: the instruction
is stripped and ends in ": " unless it already ends in punctuation (`join_instruction`). The
model reads that joined string tokenised as one, as it would any text (tokenising the pieces
apart would feed it a lone space token and the text's first word without its leading space),
wrapped as [specials before] + tokens + [specials after]. The text's part starts at the first
token reaching past the instruction, found from the tokenizer's character offsets; a slow
tokenizer, which has none, gets the two pieces tokenised apart instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Input = str | Sequence[str]

_SENTINEL = "\u2063l3prune-text\u2063"


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


class InputBuilder:
    """Tokenises encoder inputs: ids, attention mask and the mask of tokens to pool."""

    def __init__(
        self, tokenizer, max_length: int, doc_max_length: int, skip_instruction: bool, use_chat_template: bool
    ):
        self.tokenizer = tokenizer
        self.doc_max_length = doc_max_length
        self.skip_instruction = skip_instruction
        self.use_chat_template = use_chat_template
        self.head, self.tail = self._chat_wrapping() if use_chat_template else self._special_tokens()
        self.set_max_length(max_length)

    def set_max_length(self, max_length: int) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive token count, got {max_length!r}")
        if len(self.head) + len(self.tail) >= max_length:
            raise ValueError(
                f"max_length={max_length} leaves no room for text after {len(self.head) + len(self.tail)} special tokens"
            )
        self.max_length = max_length

    def _ids(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _special_tokens(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer itself puts before and after a text (e.g. BOS, EOS)."""
        probe = "hello world"
        with_specials = self.tokenizer(probe)["input_ids"]
        plain = self._ids([probe])[0]
        for start in range(len(with_specials) - len(plain) + 1):
            if with_specials[start : start + len(plain)] == plain:
                return with_specials[:start], with_specials[start + len(plain) :]
        return [], []

    def _chat_wrapping(self) -> tuple[list[int], list[int]]:
        """Ids of the chat template around a single user turn holding the text."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                "use_chat_template=True but the tokenizer has no chat template; set use_chat_template=False"
            )
        rendered = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": _SENTINEL}], tokenize=False
        )
        before, after = rendered.split(_SENTINEL)
        head, tail = self._ids([before, after]) if (before or after) else ([], [])
        return head, tail

    def _split_ids(self, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """(instruction ids, text ids) of each joined input."""
        prefixes = [instruction_prefix(instruction) for instruction, _ in pairs]
        if not self.tokenizer.is_fast:
            return list(zip(self._ids(prefixes), self._ids([text for _, text in pairs]), strict=True))
        joined = [join_instruction(instruction, text) for instruction, text in pairs]
        encoded = self.tokenizer(joined, add_special_tokens=False, return_offsets_mapping=True)
        split = []
        for prefix, ids, offsets in zip(
            prefixes, encoded["input_ids"], encoded["offset_mapping"], strict=True
        ):
            text_start = next((i for i, (_, end) in enumerate(offsets) if end > len(prefix)), len(ids))
            split.append((ids[:text_start], ids[text_start:]))
        return split

    def token_ids(self, inputs: Sequence[Input]) -> tuple[list[list[int]], list[int]]:
        """Unpadded ids per input and the index where its pooled part starts."""
        ids, pool_starts = [], []
        for prefix, text in self._split_ids([split_input(item) for item in inputs]):
            room = self.max_length - len(self.head) - len(self.tail)
            prefix = prefix[: room - 1]  # an over-long instruction still leaves one text token
            text = text[: min(self.doc_max_length, room - len(prefix))]
            ids.append(self.head + prefix + text + self.tail)
            pool_starts.append(len(self.head) + len(prefix) if self.skip_instruction else 0)
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

    def __call__(self, inputs: Sequence[Input]) -> dict[str, torch.Tensor]:
        if len(inputs) == 0:
            raise ValueError("no inputs to tokenize: give at least one text")
        return self.pad(*self.token_ids(inputs))
