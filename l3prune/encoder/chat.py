"""The user-turn wrap: the text a chat model's own template puts around one user message.

The original L3Prune (after LLM2Vec) feeds its instruct models every input as a lone user turn,
and nothing else: Llama-3-Instruct `<|start_header_id|>user<|end_header_id|>\\n\\n` + text +
`<|eot_id|>`, Mistral-Instruct `[INST] ` + text + ` [/INST]`, Qwen2-Instruct `<|im_start|>user\\n`
+ text + `<|im_end|>`. The full chat template is not the same thing: Qwen2's adds a default system
turn, most add the BOS the tokenizer adds anyway, ChatML ends the turn with a newline. So the wrap
is read from the template with those parts taken out:

  before, after = the template rendered around one user message
  - a default system turn (the template renders one for a user-only conversation: it begins with
    what a system turn begins with and ends with what follows a system message) is dropped, up to
    and including the system turn's closing text;
  - a BOS text at the start is dropped when the tokenizer adds BOS itself;
  - trailing whitespace after the turn's closing text is dropped.
"""

from __future__ import annotations

_MESSAGE = "\u2063l3prune-message\u2063"
_SYSTEM = "\u2063l3prune-system\u2063"


def _render(tokenizer, messages: list[dict]) -> str | None:
    """The template applied to `messages`, or None when the template refuses them (e.g. a system turn)."""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    except Exception:  # templates raise their own errors (jinja's TemplateError, raise_exception)
        return None


def _split(rendered: str | None, marker: str) -> tuple[str, str] | None:
    if rendered is None or rendered.count(marker) != 1:
        return None
    before, after = rendered.split(marker)
    return before, after


def _without_default_system_turn(tokenizer, before: str) -> str:
    """`before` less a system turn the template put there by itself."""
    with_system = _split(
        _render(tokenizer, [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _MESSAGE}]),
        _SYSTEM,
    )
    system_only = _split(_render(tokenizer, [{"role": "system", "content": _SYSTEM}]), _SYSTEM)
    if with_system is None or system_only is None:  # the template has no system turn
        return before
    system_start = system_only[0]
    # what follows the system message: the system turn's closing text, then the user turn's opening
    between = with_system[1].split(_MESSAGE)[0]
    system_end = system_only[1].rstrip() if not between.startswith(system_only[1]) else system_only[1]
    if before.startswith(system_start) and between.startswith(system_end) and before.endswith(between):
        return between[len(system_end) :]
    return before


def user_turn_wrap(tokenizer) -> tuple[str, str]:
    """(text before, text after) one user message, as the original wraps its inputs."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "use_chat_template=True but the tokenizer has no chat template; set use_chat_template=False"
        )
    parts = _split(_render(tokenizer, [{"role": "user", "content": _MESSAGE}]), _MESSAGE)
    if parts is None:
        raise ValueError(
            "use_chat_template=True but the tokenizer's chat template does not render a single user message; "
            "set use_chat_template=False"
        )
    before, after = parts
    before = _without_default_system_turn(tokenizer, before)
    bos = tokenizer.bos_token
    if bos and before.startswith(bos) and _adds_bos(tokenizer):
        before = before[len(bos) :]
    return before, after.rstrip()


def _adds_bos(tokenizer) -> bool:
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id
