"""A scripted generation backend: deterministic per request (prompt, seed, sample index),
so results never depend on how requests are batched."""

from __future__ import annotations

import hashlib
import json
import random

from ixmcts.llm.backend import GenerationStats, seed_of

P4G_PERSUADEE = ["Tell me more about it.", "I am not sure yet.", "Hmm, why should I trust them?",
                 "I'll donate $1. [END]", "I won't donate today. [END]", "Okay, I'll give 50 cents. [END]",
                 "I'll donate all of it, $2. [END]"]
P4G_PERSUADER = ["Children are starving and suffering terribly.", "Your kind help would be wonderful and save lives!",
                 "Save the Children is a great, trusted charity.", "Please donate, it is a terrible crisis.",
                 "Would you like to donate?", "Every cent helps a happy child."]
ESC_DONE = "[Shown]\nFeelings: sad\n[Possibly unexpressed]\nObservations: none\nFeelings: none\nReply: Thank you. EOC"
ESC_NOT_DONE = "[Shown]\nFeelings: sad\n[Possibly unexpressed]\nObservations: none\nFeelings: still ashamed\nReply: Bye. EOC"
ESC_LEAVES = "Reply: I have to go now. EOC"  # an ending with no state: never engaged
ESC_SEEKER = ["[Shown]\nFeelings: anxious\n[Possibly unexpressed]\nFeelings: afraid of failing\nReply: I keep worrying.",
              "Reply: I cannot sleep.", ESC_DONE, ESC_NOT_DONE, ESC_LEAVES]
ESC_SUPPORTER = ["Let me think step by step. The visitor's current state:\n[Shown]\nFeelings: anxious\nReply: That sounds hard.",
                 "Let me think step by step. The visitor's current state:\n[Shown]\nFeelings: tired\nReply: Tell me more.",
                 "You will be fine."]


# What each scripted ending is worth by the paper's engagement (§3.1): P4G donation / $2;
# ESC 1 only for an ending whose final state leaves nothing unexpressed.
EXPECTED_REWARD = {"I'll donate $1. [END]": 0.5, "I won't donate today. [END]": 0.0, "Okay, I'll give 50 cents. [END]": 0.25,
                   "I'll donate all of it, $2. [END]": 1.0, ESC_DONE: 1.0, ESC_NOT_DONE: 0.0, ESC_LEAVES: 0.0,
                   "I will donate $0": 0.0, "I will donate $0.50": 0.25, "I will donate $1": 0.5, "I will donate $2": 1.0,
                   "I will donate $a lot": 0.0,
                   "[Possibly unexpressed]\nFeelings: none\nReply: Thank you. EOC": 1.0,
                   "[Possibly unexpressed]\nFeelings: still afraid\nReply: Bye. EOC": 0.0}

CLOSING_ANSWERS = {"I will donate $": ["0", "0.50", "1", "2", "a lot"],
                   "[Possibly unexpressed]\nFeelings:": [" none\nReply: Thank you. EOC", " still afraid\nReply: Bye. EOC"]}


def default_script(messages: list[dict], rng: random.Random) -> str:
    if messages[-1]["role"] == "assistant":  # a prefilled answer: continue it, like a real backend
        prefix = messages[-1]["content"]
        return prefix + rng.choice(CLOSING_ANSWERS[prefix])
    system = messages[0]["content"]
    if "persuadee, chatting" in system:
        return rng.choice(P4G_PERSUADEE)
    if "You are a persuader" in system:
        return rng.choice(P4G_PERSUADER)
    if "You are a visitor" in system:
        return rng.choice(ESC_SEEKER)
    return rng.choice(ESC_SUPPORTER)


class ScriptedBackend:
    def __init__(self, script=default_script):
        self.script = script
        self.stats = GenerationStats()
        self.batches: list[int] = []  # prompts per generate() call

    def generate(self, prompts, n, sampling, seed=0):
        self.stats.calls += 1
        self.batches.append(len(prompts))
        out = []
        for i, prompt in enumerate(prompts):
            samples = []
            for k in range(n):
                key = hashlib.sha256(json.dumps([prompt, seed_of(seed, i), k, sampling.temperature]).encode()).digest()
                text = self.script(prompt, random.Random(key))
                self.stats.sequences += 1
                self.stats.generated_tokens += len(text.split())
                samples.append(text)
            out.append(samples)
        return out
