"""The vLLM backend without a GPU: request building, serving plan, and a clear error where
vLLM is not installed (CPU machines). The GPU path runs in scripts/gpu_smoke.sh."""

import importlib.util

import pytest

from conftest import run_count, run_entrypoint
from ixmcts.errors import IxmctsError
from ixmcts.llm import check_backend, make_backends
from ixmcts.llm.backend import POLICY_SAMPLING, SIMULATOR_SAMPLING, request_seed
from ixmcts.llm.models import ModelSpec
from ixmcts.llm.vllm_backend import sampling_params, serving_plan

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_requests_carry_the_papers_sampling_settings_n_and_a_per_prompt_seed():
    seed = request_seed(3, "<prompt>", 0)
    kw = sampling_params(POLICY_SAMPLING, 3, seed, [2, 7])
    assert kw == {"n": 3, "temperature": 0.9, "top_p": 0.9, "top_k": 50, "frequency_penalty": 1.0, "max_tokens": 512,
                  "seed": seed % 2**31, "stop_token_ids": [2, 7], "skip_special_tokens": True}
    assert sampling_params(SIMULATOR_SAMPLING, 1, seed, [2])["temperature"] == 0.3
    assert 0 <= kw["seed"] < 2**31 and request_seed(3, "<other prompt>", 0) != seed


def test_one_adapter_is_a_lora_request_and_stacked_adapters_are_merged(tmp_path):
    sft, dpo = tmp_path / "sft", tmp_path / "dpo"
    for folder, content in ((sft, b"sft"), (dpo, b"dpo")):
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(content)
    assert serving_plan(ModelSpec("base")) == ("base", None)
    assert serving_plan(ModelSpec("base", (str(sft),))) == ("base", str(sft))  # policy and simulator share the engine
    served, lora = serving_plan(ModelSpec("base", (str(sft), str(dpo))))
    assert served.startswith("merged:") and lora is None
    (dpo / "adapter_model.safetensors").write_bytes(b"dpo, retrained")
    assert serving_plan(ModelSpec("base", (str(sft), str(dpo))))[0] != served  # new weights, new merged model


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_without_vllm_the_backend_fails_clearly_before_any_run(tracking_env, tmp_path):
    with pytest.raises(IxmctsError, match=r"needs vLLM on a CUDA machine: pip install '.\[vllm\]'"):
        check_backend("vllm")
    with pytest.raises(IxmctsError, match="unknown backend 'tgi'"):
        make_backends({"policy": ModelSpec("tiny")}, "tgi")
    proc = run_entrypoint("search", "--policy-model", "tiny", "--backend", "vllm", cwd=tmp_path)
    assert proc.returncode == 2 and "needs vLLM" in proc.stderr
    assert run_count(tracking_env) == 0  # no run was started


def test_equal_specs_share_one_backend(tiny_model):
    backends = make_backends({"policy": ModelSpec(tiny_model), "simulator": ModelSpec(tiny_model)}, threads=1)
    assert backends["policy"] is backends["simulator"]
