"""The tiny model is a real diffusers SD pipeline: it loads with the stock loader and tokenizes like CLIP."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTokenizer

from engine import tiny_model
from engine.tiny_model import build_tiny_model, ensure_tiny_model

WEIGHT_FILES = (
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)


@pytest.fixture(scope="module")
def pipe(tiny_model_dir) -> StableDiffusionPipeline:
    return StableDiffusionPipeline.from_pretrained(tiny_model_dir, local_files_only=True)


def test_directory_has_the_diffusers_layout(tiny_model_dir):
    for name in (
        "model_index.json",
        "README.md",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        *WEIGHT_FILES,
    ):
        assert (tiny_model_dir / name).is_file(), name
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["requires_safety_checker"] is False
    assert "random weights" in (tiny_model_dir / "README.md").read_text()


def test_loads_with_the_stock_pipeline(pipe):
    assert isinstance(pipe.unet, UNet2DConditionModel)
    assert isinstance(pipe.vae, AutoencoderKL)
    assert isinstance(pipe.text_encoder, CLIPTextModel)
    assert isinstance(pipe.tokenizer, CLIPTokenizer)
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    assert pipe.safety_checker is None
    # Shaped like SD 1.x where it matters to the engine.
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.in_channels == pipe.vae.config.latent_channels == 4
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert pipe.text_encoder.config.max_position_embeddings == 77


def test_scheduler_has_sd_1x_values(pipe):
    config = pipe.scheduler.config
    assert (config.beta_start, config.beta_end, config.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert (config.num_train_timesteps, config.steps_offset, config.prediction_type) == (1000, 1, "epsilon")


def test_tokenizer_is_openai_clip(pipe):
    tokenizer = pipe.tokenizer
    assert tokenizer.model_max_length == 77
    assert len(tokenizer) == 49408
    ids = tokenizer("a cat").input_ids
    # 320 and 2368 are "a" and "cat" in OpenAI CLIP's vocabulary: the real BPE, not a stand-in.
    assert ids == [49406, 320, 2368, 49407]
    assert tokenizer.convert_ids_to_tokens(ids) == ["<|startoftext|>", "a</w>", "cat</w>", "<|endoftext|>"]
    assert len(tokenizer("photograph").input_ids) == 3  # a merged word is one token
    padded = tokenizer("a cat " * 100, padding="max_length", max_length=77, truncation=True).input_ids
    assert len(padded) == 77 and padded[-1] == 49407


def test_vocab_files_match_the_tokenizer(tiny_model_dir, pipe):
    vocab = json.loads((tiny_model_dir / "tokenizer/vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407 and vocab["cat</w>"] == 2368
    merges = (tiny_model_dir / "tokenizer/merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0].startswith("#version") and len(merges) - 1 == 49152 - 256 - 2


def test_same_seed_same_weights_other_seed_other_weights(tiny_model_dir, tmp_path):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    again = build_tiny_model(tmp_path / "again", seed=0)
    assert torch.equal(torch.rand(3), expected_next), "building must not disturb the global torch RNG"
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in WEIGHT_FILES:
        first, second, third = (load_file(d / name) for d in (tiny_model_dir, again, other))
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), name
        assert not all(torch.equal(first[k], third[k]) for k in first), name


def test_cli_builds_a_loadable_model(tmp_path, capsys):
    from engine.cli import main

    assert main(["build-tiny", str(tmp_path / "tiny"), "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "tiny")
    assert (tmp_path / "tiny" / "model_index.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # built aside, then renamed into place


def test_ensure_tiny_model_accepts_a_rival_build(tmp_path, monkeypatch):
    target = tmp_path / "segue-tiny"
    real_build = tiny_model.build_tiny_model

    def build_while_a_rival_finishes_first(out_dir, seed):
        real_build(out_dir, seed)
        shutil.copytree(out_dir, target)  # another worker renamed its build into place meanwhile

    monkeypatch.setattr(tiny_model, "build_tiny_model", build_while_a_rival_finishes_first)
    assert ensure_tiny_model(target) == target
    assert (target / "model_index.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["segue-tiny"]  # our scratch build was cleaned up
