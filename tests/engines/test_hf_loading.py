"""HF engine placement options on CPU: what from_pretrained is asked for, and the clear errors for
GPU-only options (4/8-bit bitsandbytes, device_map=auto). GPU runs: bench/gpu_check.sh."""

import pytest

torch = pytest.importorskip("torch")

from jmedllm.engines.hf_loading import PlacementError, parse_max_memory, placement_kwargs  # noqa: E402

CPU = torch.device("cpu")


def test_cpu_default_is_plain():
    assert placement_kwargs(CPU, torch.float32) == {"dtype": torch.float32}


def test_max_memory_parsing():
    assert parse_max_memory("0=38GiB, 1=38GiB,cpu=64GiB") == {0: "38GiB", 1: "38GiB", "cpu": "64GiB"}
    assert parse_max_memory(None) is None
    with pytest.raises(PlacementError, match="DEVICE=SIZE"):
        parse_max_memory("38GiB")


@pytest.mark.parametrize("quantize", ["4bit", "8bit"])
def test_quantize_on_cpu_is_a_clear_error(quantize):
    if torch.cuda.is_available():
        pytest.skip("GPU present")
    with pytest.raises(PlacementError, match="needs a CUDA GPU"):
        placement_kwargs(CPU, torch.float32, quantize=quantize)


def test_device_map_auto_needs_gpus_and_max_memory_needs_device_map():
    if not torch.cuda.is_available():
        with pytest.raises(PlacementError, match="no CUDA device"):
            placement_kwargs(CPU, torch.float32, device_map="auto")
    with pytest.raises(PlacementError, match="device_map=auto"):
        placement_kwargs(CPU, torch.float32, max_memory="0=1GiB")


def test_engine_refuses_quantize_on_cpu(tiny_model_dir):
    if torch.cuda.is_available():
        pytest.skip("GPU present")
    from jmedllm.engines.hf import HFEngine

    with pytest.raises(PlacementError, match="bitsandbytes"):
        HFEngine(tiny_model_dir, device="cpu", quantize="4bit")
