"""llamacpp engine on a tiny SentencePiece Llama exported to GGUF (f32) by `jmedllm export gguf`
(llama.cpp's own converter): the same log-likelihoods as the HF engine on the same weights."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("llama_cpp")

from jmedllm.engines.hf import HFEngine  # noqa: E402
from jmedllm.engines.llamacpp import LlamaCppEngine  # noqa: E402
from jmedllm.evaluate import EvalConfig, run_eval  # noqa: E402
from jmedllm.schema import GenerationParams, LoglikRequest  # noqa: E402

pytestmark = pytest.mark.slow  # real servers / GGUF export: seconds each (still run in CI)

REQUESTS = [
    LoglikRequest("45歳の男性。発熱と咳嗽を主訴に来院した。最も考えられる診断はどれか。\n答え：",
                  ("肺炎", "気管支喘息", "急性上気道炎")),
    LoglikRequest("正しいのはどれか。答え：", ("a", "b", "ｃ", "Ｄ")),
    LoglikRequest("Which is the most likely diagnosis? Answer: ", ("Iron deficiency anemia", "B12 deficiency")),
]


@pytest.fixture(scope="module")
def llama(tiny_sp_gguf):
    engine = LlamaCppEngine(tiny_sp_gguf, n_ctx=2048, n_threads=1)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def hf(tiny_sp_dir):
    return HFEngine(tiny_sp_dir, device="cpu", dtype="float32")


def test_loglik_equals_hf_engine(llama, hf):
    ours, theirs = llama.loglikelihoods(REQUESTS), hf.loglikelihoods(REQUESTS)
    for a_req, b_req in zip(ours, theirs):
        for a, b in zip(a_req, b_req):
            assert a.n_tokens == b.n_tokens
            assert a.logprob == pytest.approx(b.logprob, abs=1e-3)


def test_same_decisions_as_hf_on_60_igakuqa_questions(llama, hf, tmp_path, data_root):
    def run(engine, name):
        cfg = EvalConfig(model=name, benchmarks=["igakuqa:2022:A"], out=str(tmp_path / name), data_root=str(data_root),
                         limit=60, mode="loglik", bootstrap=50, chunk_size=60)
        out = run_eval(cfg, engine=engine)
        return [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]

    a, b = run(llama, "llamacpp"), run(hf, "hf")
    assert len(a) == len(b) == 60
    worst = max(abs(x["logprob"] - y["logprob"]) for ra, rb in zip(a, b)
                for ga, gb in zip(ra["scores"], rb["scores"]) for x, y in zip(ga, gb))
    assert worst < 1e-3
    assert [r["verdict"]["predicted"] for r in a] == [r["verdict"]["predicted"] for r in b]


def test_generate_stop_and_letter_grammar(llama, hf):
    prompt = "正しいのはどれか。\na. 肺炎\nb. 心不全\n答え："
    params = GenerationParams(max_new_tokens=8)
    free = llama.generate([prompt], params)[0]
    assert free.text == hf.generate([prompt], params)[0].text  # greedy: same tokens as transformers
    stopped = llama.generate([prompt], GenerationParams(max_new_tokens=8, stop=(free.text[1:2] or "x",)))[0]
    assert len(stopped.text) <= len(free.text)
    constrained = llama.generate([prompt], params, grammar="letters")[0]
    assert re.fullmatch(r"[a-zA-Z](,[a-zA-Z])*", constrained.text)


def test_not_a_gguf_is_a_clear_error(tmp_path):
    from jmedllm.engines.base import EngineError

    with pytest.raises(EngineError, match="jmedllm export gguf"):
        LlamaCppEngine(tmp_path / "model.safetensors")


def test_export_base_plus_adapter(tiny_sp_dir, tmp_path):
    """`jmedllm export gguf --model BASE --adapter A`: the GGUF scores as the HF engine with A applied."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from jmedllm.cli import main

    torch.manual_seed(3)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_sp_dir),
                                LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    out = tmp_path / "merged.gguf"
    assert main(["export", "gguf", "--model", str(tiny_sp_dir), "--adapter", str(tmp_path / "adapter"),
                 "--outtype", "f32", "--out", str(out)]) == 0
    hf = HFEngine(tiny_sp_dir, device="cpu", dtype="float32", adapter=tmp_path / "adapter", check_adapter_base=False)
    with LlamaCppEngine(out, n_threads=1) as merged:
        for a, b in zip(merged.loglikelihoods(REQUESTS[:2]), hf.loglikelihoods(REQUESTS[:2])):
            assert [x.logprob for x in a] == pytest.approx([y.logprob for y in b], abs=1e-3)


def test_runner_letter_grammar_constrains_each_item_to_its_labels(llama, tiny_sp_dir, tmp_path, data_root):
    """--letter-grammar through the runner: every answer is one of its own item's labels, as many
    as the item asks for (IgakuQA 2022 A holds five-choice and pick-two items); the same run
    unconstrained answers in free text. A text-only HF engine gets a clear error."""
    from jmedllm.engines.base import LetterChoice
    from jmedllm.evaluate import EvalError
    from jmedllm.evaluate.records import letter_choice
    from jmedllm.benchmarks import load_benchmark

    questions = {q.id: q for q in load_benchmark("igakuqa:2022:A", data_root).questions[:40]}
    assert {letter_choice(q).max_count for q in questions.values()} >= {1, 2}  # both kinds are in the slice

    def run(name, grammar):
        cfg = EvalConfig(model="tiny-sp.gguf", benchmarks=["igakuqa:2022:A"], out=str(tmp_path / name),
                         data_root=str(data_root), limit=40, mode="generate", prompt="terse", max_new_tokens=8,
                         letter_grammar=grammar, bootstrap=50)
        return [json.loads(x) for x in (run_eval(cfg, engine=llama) / "items.jsonl").read_text().splitlines()]

    constrained, free = run("grammar", True), run("free", False)
    for r in constrained:
        choice = letter_choice(questions[r["id"]])
        assert re.fullmatch(choice.regex(), r["output"]), (r["id"], r["output"], choice)
        assert r["verdict"]["parsed"]
    assert sum(re.fullmatch(LetterChoice("abcde", 1, None).regex(), r["output"]) is not None for r in free) < 40
    two = [r for r in constrained if letter_choice(questions[r["id"]]).max_count == 2]
    assert two and all(len(r["verdict"]["predicted"]) == 2 for r in two)
    with pytest.raises(EvalError, match="cannot constrain answers to choice labels"):
        run_eval(EvalConfig(model="x", benchmarks=["igakuqa:2022:A"], out=str(tmp_path / "hf"), limit=2,
                            data_root=str(data_root), letter_grammar=True), engine=HFEngine(tiny_sp_dir))
