"""Build small, real, randomly initialised causal LMs for tests, benchmarks and the demo.

A byte-level BPE tokenizer is trained on the benchmark and corpus text under a data
root, a Llama or Qwen2 config is instantiated with random weights, and both are saved
with ``save_pretrained`` so that they load through the very code path that loads a hub
model (``AutoTokenizer`` / ``AutoModelForCausalLM``).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]

# ChatML-style template, as used by Qwen2; enough to exercise chat-template code paths.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    arch: str = "llama"  # "llama" or "qwen2"
    vocab_size: int = 4000
    hidden_size: int = 64
    intermediate_size: int = 176
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    seed: int = 0
    tokenizer: str = "bpe"  # "bpe" (byte-level, tokenizers) or "sentencepiece" (tokenizer.model, as Llama)


PRESETS: dict[str, TinySpec] = {
    # seconds to build, for unit tests
    "test": TinySpec(),
    "test-qwen2": TinySpec(arch="qwen2"),
    # a SentencePiece Llama: what llama.cpp's GGUF converter reads (tokenizer.model)
    "test-sp": TinySpec(tokenizer="sentencepiece"),
    # the demo: small enough to train on CPU in minutes, big enough to learn something
    "demo": TinySpec(vocab_size=6000, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=4),
    # ~60 M parameters, for CPU throughput benchmarks
    "bench60m": TinySpec(vocab_size=8000, hidden_size=640, intermediate_size=1728, num_hidden_layers=10,
                         num_attention_heads=10, num_key_value_heads=10),
}


def _strings(obj: object) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def tokenizer_corpus(data_root: Path, max_chars: int = 3_000_000) -> Iterator[str]:
    """Text for tokenizer training: IgakuQA (ja and en), then the MedTxt corpus, then MedQA."""
    data_root = Path(data_root)
    total = 0
    files = sorted((data_root / "igakuqa").rglob("*.jsonl")) if (data_root / "igakuqa").is_dir() else []
    files = [f for f in files if not f.name.endswith("_metadata.jsonl")]
    for f in files:
        for line in f.read_text(encoding="utf-8-sig").splitlines():
            if not line.strip():
                continue
            for s in _strings(json.loads(line)):
                total += len(s)
                yield s
        if total > max_chars:
            return
    for f in sorted((data_root / "medtxt").glob("*.xml")) if (data_root / "medtxt").is_dir() else []:
        text = re.sub(r"<[^>]+>", "\n", f.read_text(encoding="utf-8"))
        for line in text.splitlines():
            if line.strip():
                total += len(line)
                yield line.strip()
    medqa = data_root / "medqa"
    for f in sorted(medqa.rglob("*.jsonl")) if medqa.is_dir() else []:
        for line in f.read_text(encoding="utf-8").splitlines()[:2000]:
            if line.strip():
                yield from _strings(json.loads(line))


def train_tokenizer(data_root: Path, vocab_size: int):
    """Train a byte-level BPE tokenizer and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(data_root), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def train_sentencepiece(data_root: Path, vocab_size: int, out_dir: Path, max_chars: int = 400_000):
    """Train a SentencePiece BPE model (byte fallback, no normaliser, as Llama's) into
    ``out_dir/tokenizer.model`` and wrap it as a transformers Llama tokenizer (which reads
    tokenizer.model through protobuf)."""
    import io

    import sentencepiece as spm
    from transformers import AutoTokenizer

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=tokenizer_corpus(data_root, max_chars=max_chars), model_writer=buf, vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, character_coverage=0.995, normalization_rule_name="identity",
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, split_digits=True, num_threads=1, minloglevel=2,
        user_defined_symbols=["<|im_start|>", "<|im_end|>"], max_sentence_length=8192)
    (out_dir / "tokenizer.model").write_bytes(buf.getvalue())
    # loaded as a hub Llama is: tokenizer.model + tokenizer_config.json, converted by transformers
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "add_bos_token": True, "add_eos_token": False, "legacy": False}))
    tok = AutoTokenizer.from_pretrained(str(out_dir))
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_model(out_dir: str | Path, data_root: str | Path, spec: TinySpec | str = "test") -> Path:
    """Write a tokenizer + randomly initialised causal LM to ``out_dir`` and return it.

    Reuses ``out_dir`` when it already holds a model built from the same spec.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config

    spec = PRESETS[spec] if isinstance(spec, str) else spec
    out = Path(out_dir)
    marker = out / "jmedllm_tiny_spec.json"
    if marker.is_file() and json.loads(marker.read_text()) == asdict(spec):
        return out
    out.mkdir(parents=True, exist_ok=True)
    if spec.tokenizer == "sentencepiece":
        tokenizer = train_sentencepiece(Path(data_root), spec.vocab_size, out)
    else:
        tokenizer = train_tokenizer(Path(data_root), spec.vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
        tie_word_embeddings=False,
    )
    config = LlamaConfig(**common) if spec.arch == "llama" else Qwen2Config(**common)
    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<s>"], eos_token_id=[ids["</s>"], ids["<|im_end|>"]], pad_token_id=ids["<pad>"],
        do_sample=False,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    marker.write_text(json.dumps(asdict(spec), indent=1))
    return out


# The same ChatML shape for a vision-language model: content is a string or a list of parts,
# an image part becomes the model's image marker (which the processor expands into the image's tokens).
VISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ 'IMAGE_MARKER' }}{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
#: the tiny vision towers: 28x28 images in 14x14 patches, 4 image tokens per image
VISION_IMAGE_SIZE, VISION_PATCH = 28, 14
#: architecture -> the image marker its processor expands (LLaVA's <image>, Gemma 3's begin-of-image)
VISION_MARKERS = {"llava": "<image>", "gemma3": "<start_of_image>"}


def build_tiny_vlm(out_dir: str | Path, data_root: str | Path, spec: TinySpec | str = "test",
                   arch: str = "llava") -> Path:
    """Write a randomly initialised vision-language model with its processor to ``out_dir``; it
    loads as a hub one does (AutoProcessor / AutoModelForImageTextToText).

    ``arch``: "llava" (a one-layer CLIP vision tower, a projector and a Llama of ``spec``'s size)
    or "gemma3" (a one-layer SigLIP tower and a Gemma 3 text model whose first layer attends
    through a sliding window of 16 tokens, its second to everything). The processor holds the trained tokenizer with the image tokens, the
    architecture's PIL image processor and a chat template taking image parts. Reuses
    ``out_dir`` when it already holds one built from the same spec and architecture."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoTokenizer, GenerationConfig

    if arch not in VISION_MARKERS:
        raise ValueError(f"arch must be one of {', '.join(VISION_MARKERS)}, got {arch!r}")
    spec = PRESETS[spec] if isinstance(spec, str) else spec
    out = Path(out_dir)
    marker = out / "jmedllm_tiny_spec.json"
    wanted = asdict(spec) | {"vision": arch}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return out
    out.mkdir(parents=True, exist_ok=True)
    image_tokens = {"llava": ["<image>"], "gemma3": ["<start_of_image>", "<end_of_image>", "<image_soft_token>"]}[arch]
    tokenizer = train_tokenizer(Path(data_root), spec.vocab_size)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", *image_tokens]})
    if arch == "gemma3":  # Gemma 3's processor reads its image tokens from the tokenizer's named specials
        tokenizer.save_pretrained(out / "tokenizer-tmp")
        tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer-tmp", extra_special_tokens=dict(
            zip(("boi_token", "eoi_token", "image_token"), image_tokens)))
        shutil.rmtree(out / "tokenizer-tmp")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in [*SPECIAL_TOKENS, *image_tokens]}
    text = dict(vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
                num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
                num_key_value_heads=spec.num_key_value_heads, max_position_embeddings=spec.max_position_embeddings,
                bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  image_size=VISION_IMAGE_SIZE, patch_size=VISION_PATCH)
    n_image_tokens = (VISION_IMAGE_SIZE // VISION_PATCH) ** 2
    template = VISION_CHAT_TEMPLATE.replace("IMAGE_MARKER", VISION_MARKERS[arch])
    tokenizer.chat_template = template
    if arch == "llava":
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaProcessor
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        config = LlavaConfig(text_config=LlamaConfig(**text, tie_word_embeddings=False),
                             vision_config=CLIPVisionConfig(**vision, projection_dim=32), image_token_id=ids["<image>"],
                             vision_feature_layer=-1, vision_feature_select_strategy="default",
                             image_seq_length=n_image_tokens, projector_hidden_act="gelu", tie_word_embeddings=False)
        processor = LlavaProcessor(
            image_processor=CLIPImageProcessorPil(size={"shortest_edge": VISION_IMAGE_SIZE},
                                                  crop_size={"height": VISION_IMAGE_SIZE, "width": VISION_IMAGE_SIZE}),
            tokenizer=tokenizer, patch_size=VISION_PATCH, vision_feature_select_strategy="default",
            num_additional_image_tokens=1, chat_template=template, image_token="<image>")
    else:
        from transformers import Gemma3Config, Gemma3Processor
        from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

        config = Gemma3Config(text_config=text | dict(head_dim=spec.hidden_size // spec.num_attention_heads,
                                                      sliding_window=16,
                                                      layer_types=["sliding_attention", "full_attention"]),
                              vision_config=vision, mm_tokens_per_image=n_image_tokens,
                              boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
                              image_token_index=ids["<image_soft_token>"], tie_word_embeddings=False)
        processor = Gemma3Processor(
            image_processor=Gemma3ImageProcessorPil(size={"height": VISION_IMAGE_SIZE, "width": VISION_IMAGE_SIZE}),
            tokenizer=tokenizer, chat_template=template, image_seq_length=n_image_tokens)
    torch.manual_seed(spec.seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # weights initialised to zeros (Gemma 3's image projection) would hide every image
        for param in model.parameters():
            if param.dim() >= 2 and not param.any():
                param.normal_(0.0, 0.02)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<s>"], eos_token_id=[ids["</s>"], ids["<|im_end|>"]], pad_token_id=ids["<pad>"],
        do_sample=False)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    marker.write_text(json.dumps(wanted, indent=1))
    return out


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
