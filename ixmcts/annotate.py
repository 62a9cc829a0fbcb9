"""Help-seeker states for PsyDTCorpus, written by an LLM behind any OpenAI-compatible
endpoint (the paper used GPT-4o): after every help-seeker message, the state in the
appendix A.1 format (shown / possibly unexpressed observations, feelings, needs, requests).

The output is the corpus in its own format with a ``state`` field on each user message,
which ``load_psydt`` reads. A reply that is not an A.1 state stops the whole job with the
dialogue and message named; the output file is written only when every state is good.
Finished dialogues are kept in a checkpoint, so an interrupted job resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .errors import IxmctsError
from .io import atomic_open, cache_dir, read_json, read_jsonl
from .scenarios import get_scenario

INSTRUCTION = {
    "en": ("You annotate counseling dialogues. Given the conversation so far, write the help-seeker's state right "
           "after their last message, in exactly this format and nothing else:\n{template}\nUnder [Shown] put what "
           "they have expressed so far; under [Possibly unexpressed] what they may feel or think but have not said "
           "yet, or none."),
    "zh": ("你负责标注心理咨询对话。根据目前的对话，写出来访者在其最后一条消息之后的状态，严格使用以下格式，不要输出其他内容：\n{template}\n"
           "【已表达】写其已经表达的内容；【可能未表达】写其可能有但尚未说出的想法与感受，没有则写“无”。"),
}


@dataclass
class AnnotateConfig:
    base_url: str  # an OpenAI-compatible API root, e.g. https://api.openai.com/v1 or http://localhost:8000/v1
    model: str = "gpt-4o"
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable, never a parameter
    language: str = "zh"
    temperature: float = 0.0
    max_dialogues: int = 0  # 0 → all
    concurrency: int = 4
    timeout: float = 120.0
    retries: int = 2  # for network errors and 5xx only; a malformed state is never retried silently


def chat(config: AnnotateConfig, messages: list[dict]) -> str:
    """One chat completion from the endpoint."""
    body = json.dumps({"model": config.model, "messages": messages, "temperature": config.temperature}).encode()
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(config.api_key_env, "")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = config.base_url.rstrip("/") + "/chat/completions"
    for attempt in range(config.retries + 1):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=config.timeout) as resp:
                data = json.loads(resp.read())
            return data["choices"][0]["message"]["content"]
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == config.retries:
                raise IxmctsError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError) as exc:
            if attempt == config.retries:
                raise IxmctsError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        except (KeyError, IndexError, TypeError, json.JSONDecodeError):
            raise IxmctsError(f"{url}: the reply is not an OpenAI chat completion") from None
    raise AssertionError("unreachable")


def annotate_dialogue(record: dict, config: AnnotateConfig) -> dict:
    """The record with a ``state`` on each help-seeker message."""
    sc = get_scenario("esc", language=config.language)
    system = INSTRUCTION[config.language].format(template=sc.state_template())
    messages, history = [], []
    for k, m in enumerate(record["messages"]):
        m = dict(m)
        if m.get("role") in ("user", "assistant") and str(m.get("content", "")).strip():
            history.append(f"{'Help-seeker' if m['role'] == 'user' else 'Counselor'}: {m['content']}")
        if m.get("role") == "user":
            state = chat(config, [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(history)}]).strip()
            if not sc.is_state(state):
                raise IxmctsError(f"dialogue {record.get('id')!r}, message {k}: the endpoint's state is not in the A.1 "
                                  f"format ({sc.words.shown} … {sc.words.possible} … with their fields): {state[:120]!r}")
            m["state"] = state
        messages.append(m)
    return {**record, "messages": messages}


def annotate_corpus(source: str | Path, output: str | Path, config: AnnotateConfig, progress: bool = True) -> dict:
    """Annotate a PsyDTCorpus JSON file into ``output`` (same format, states added)."""
    from .data.esc import load_psydt

    source = Path(source)
    load_psydt(source)  # a malformed corpus fails here, before any request
    if config.language not in INSTRUCTION:
        raise IxmctsError(f"unknown annotation language {config.language!r}; choose one of: {', '.join(INSTRUCTION)}")
    if config.concurrency < 1:
        raise IxmctsError(f"concurrency must be at least 1, got {config.concurrency}")
    records = read_json(source)[: config.max_dialogues or None]
    key = hashlib.sha256(source.read_bytes() + json.dumps([config.base_url, config.model, config.language,
                                                            config.temperature]).encode()).hexdigest()[:16]
    checkpoint = cache_dir("annotate", key) / "done.jsonl"
    done = {str(r["id"]): r for r in read_jsonl(checkpoint)} if checkpoint.exists() else {}
    todo = [r for r in records if str(r["id"]) not in done]
    bar = tqdm(total=len(records), initial=len(records) - len(todo), desc="dialogues annotated", disable=not progress)
    pool = ThreadPoolExecutor(config.concurrency)
    try:
        with open(checkpoint, "a", encoding="utf-8") as ckpt:
            for annotated in pool.map(lambda r: annotate_dialogue(r, config), todo):
                done[str(annotated["id"])] = annotated
                ckpt.write(json.dumps(annotated, ensure_ascii=False) + "\n")
                ckpt.flush()
                bar.update()
    finally:
        pool.shutdown(cancel_futures=True)  # after a bad state, send no more requests
        bar.close()
    out = [done[str(r["id"])] for r in records]
    with atomic_open(Path(output)) as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    states = sum(1 for r in out for m in r["messages"] if "state" in m)
    return {"dialogues": len(out), "states": states, "resumed": len(records) - len(todo), "checkpoint": str(checkpoint)}
