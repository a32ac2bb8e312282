"""vllm engine pieces that run without a GPU: the clear message on CPU, SamplingParams arguments,
and parsing of vLLM's documented output shapes (``Logprob(logprob, rank, decoded_token)`` in
``CompletionOutput.logprobs`` / ``RequestOutput.prompt_logprobs``). GPU runs: bench/gpu_check.sh."""

from dataclasses import dataclass

import pytest

from jmedllm.engines.base import EngineError
from jmedllm.engines.vllm import continuation_from_prompt_logprobs, first_token_top, sampling_kwargs
from jmedllm.schema import GenerationParams


@dataclass
class Logprob:  # the fields of vllm.logprobs.Logprob
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:  # the fields of vllm.outputs.CompletionOutput used here
    text: str
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None


def test_sampling_arguments():
    kw = sampling_kwargs(GenerationParams(max_new_tokens=32, stop=("\n\n",), temperature=0.7, top_p=0.9, seed=3))
    assert kw == {"max_tokens": 32, "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["\n\n"]}
    assert "stop" not in sampling_kwargs(GenerationParams())


def test_first_token_top_k():
    out = CompletionOutput("c", [17], [{17: Logprob(-0.3, 1, "c"), 5: Logprob(-1.5, 2, " b"), 9: Logprob(-2.0, 3, "C")}])
    top = first_token_top(out)
    assert top.text == "c" and top.top == {"c": -0.3, " b": -1.5, "C": -2.0}
    with pytest.raises(EngineError, match="no log-probs"):
        first_token_top(CompletionOutput("c", [17], None))


def test_continuation_from_prompt_logprobs():
    ids = [1, 50, 51, 60, 61]  # BOS, context 50 51, continuation 60 61
    plp = [None, {50: Logprob(-1.0, 1)}, {51: Logprob(-2.0, 3)}, {60: Logprob(-0.5, 1), 7: Logprob(-0.1, 1)},
           {61: Logprob(-0.25, 2), 8: Logprob(-0.2, 1)}]
    total, n, greedy = continuation_from_prompt_logprobs(plp, ids, 3)
    assert total == pytest.approx(-0.75) and n == 2 and greedy is False
    with pytest.raises(EngineError):
        continuation_from_prompt_logprobs(plp[:-1], ids, 3)


def test_without_cuda_a_clear_message(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: bench/gpu_check.sh exercises the engine")
    from jmedllm.engines import load_engine

    with pytest.raises(EngineError, match="needs a CUDA GPU"):
        load_engine("vllm", model=str(tmp_path))


def test_request_plan_sends_text_to_generate_and_images_as_multimodal_chat(tmp_path):
    """A mixed batch: rendered text prompts stay text (no chat template forced on them), message
    lists go to LLM.chat with every image part a data URL of the file's bytes."""
    import base64

    from jmedllm.engines.messages import with_images
    from jmedllm.engines.vllm import request_plan

    png = tmp_path / "figure.png"
    png.write_bytes(bytes.fromhex("89504e470d0a1a0a0000000d494844520000000100000001080600000"
                                  "01f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"))
    jpg = tmp_path / "scan.JPG"
    jpg.write_bytes(b"\xff\xd8\xff\xe0fake-jpeg-bytes")
    prompts = ["問題1\n答え：", with_images("問題2\n答え：", [png, jpg]),
               [{"role": "system", "content": "医師として"}, {"role": "user", "content": "問題3"}], "問題4"]
    plan = request_plan(prompts)
    assert plan.text == [0, 3] and plan.chat == [1, 2]
    assert plan.images == 2 and plan.max_images == 2
    parts = plan.messages[0][0]["content"]
    assert parts[0] == {"type": "text", "text": "問題2\n答え："}
    assert parts[1]["type"] == "image_url" and parts[2]["type"] == "image_url"
    head, data = parts[1]["image_url"]["url"].split(",", 1)
    assert head == "data:image/png;base64" and base64.b64decode(data) == png.read_bytes()
    assert parts[2]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert plan.messages[1] == [{"role": "system", "content": "医師として"}, {"role": "user", "content": "問題3"}]


def test_request_plan_refuses_an_unreadable_image(tmp_path):
    from jmedllm.engines.messages import with_images
    from jmedllm.engines.vllm import request_plan

    with pytest.raises(ValueError, match="missing.png: cannot read image"):
        request_plan([with_images("q", [tmp_path / "missing.png"])])
