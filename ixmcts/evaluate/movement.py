"""How far alignment moved the policy from its SFT reference, on held-out contexts.

DPO optimises the policy against its reference, the SFT policy, with the KL anchor's weight
β; its reward margin says what DPO saw on its own pairs, not where the policy went. This
measures the movement where the policy is used: on the aligned policy's own turns of the
evaluation dialogues (held-out conditions), teacher-forced through both models, the exact
per-token KL

    KL_t = Σ_v π_aligned(v | x, y<t) · (log π_aligned(v | x, y<t) − log π_sft(v | x, y<t))

averaged over every response position (nats per token) and summed per response (nats per
response; a Monte Carlo estimate of the sequence-level KL when the responses were sampled at
temperature 1). A response's positions include the one where the policy chose to end its turn
(KL_t sums over the vocabulary, so it measures a changed choice between stopping and going
on), unless the response was cut at ``max_new_tokens`` and never reached that choice. 0 means
the policy did not move.
"""

from __future__ import annotations

from ..data.schema import MODEL, Condition, Turn
from ..llm.backend import render_chat
from ..scenarios.base import Scenario


def policy_turns(scenario: Scenario, conditions: list[Condition], records: list[dict],
                 max_dialogues: int = 0) -> list[tuple[list[dict], str]]:
    """(the policy's prompt, what it generated) for every policy turn of the first
    ``max_dialogues`` evaluation records (0: all), in the prompt the policy saw."""
    by_id = {c.id: c for c in conditions}
    out = []
    for record in records[:max_dialogues or None]:
        history: list[Turn] = []
        for turn in record["turns"]:
            if turn["role"] == MODEL:
                out.append((scenario.policy_messages(by_id[record["condition_id"]], history), turn.get("raw", turn["text"])))
            history.append(Turn(turn["role"], turn["text"], turn.get("state")))
    return out


def token_kl(aligned, reference, tokenizer, examples: list[tuple[list[dict], str]], batch_size: int = 4,
             progress=None, max_new_tokens: int = 0) -> dict:
    """KL(π_aligned ‖ π_reference) over the response positions of ``examples`` (prompt
    messages, response text): ``kl_per_token`` (nats, mean over all positions),
    ``kl_per_response`` (nats, mean over responses of their summed KL) and the counts. A
    response shorter than ``max_new_tokens`` tokens ended itself, so the position after its
    last token (the end-of-turn choice) counts too; 0: no cap, every response ended itself.
    Both models share the tokenizer (the reference is the aligned policy without its last
    adapter)."""
    import torch

    rows = []
    for messages, response in examples:
        prompt = tokenizer(render_chat(tokenizer, messages), add_special_tokens=False).input_ids
        target = tokenizer(response, add_special_tokens=False).input_ids
        if target:
            rows.append((prompt, target))
    per_response = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = getattr(aligned, "device", "cpu")
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(len(p) + len(t) for p, t in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (p, t) in enumerate(batch):  # right-padded: positions are the same as unbatched
            ids[i, : len(p) + len(t)] = torch.tensor(p + t)
            mask[i, : len(p) + len(t)] = 1
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode():
            logp_a = torch.log_softmax(aligned(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
            logp_r = torch.log_softmax(reference(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        kl = (logp_a.exp() * (logp_a - logp_r)).sum(-1)  # [batch, width]: position j predicts token j + 1
        for i, (p, t) in enumerate(batch):
            ended = not max_new_tokens or len(t) < max_new_tokens  # else cut before it chose to stop
            per_response.append(kl[i, len(p) - 1 : len(p) + len(t) - 1 + ended].clamp_min(0.0).tolist())
        if progress:
            progress(len(per_response), len(rows))
    tokens = sum(len(k) for k in per_response)
    return {"kl_per_token": sum(map(sum, per_response)) / tokens if tokens else float("nan"),
            "kl_per_response": sum(map(sum, per_response)) / len(per_response) if per_response else float("nan"),
            "kl_responses": len(per_response), "kl_tokens": tokens}
