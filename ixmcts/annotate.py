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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .errors import IxmctsError
from .io import atomic_open, cache_dir, read_json, require_writable
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
    # Retries after the first attempt, by the openai client: rate limits (429, waiting as
    # Retry-After asks), 408/409, 5xx, dropped connections and cut-off replies, with
    # exponential backoff otherwise. A malformed state is never retried silently.
    max_retries: int = 8


def make_client(config: AnnotateConfig):
    """An OpenAI client for the endpoint. Redirects are not followed: a redirected request
    could carry the API key to another host; ``chat`` reports the redirect instead."""
    import openai

    # the client requires a key; local servers (vLLM, llama.cpp) take any, by convention "EMPTY"
    return openai.OpenAI(base_url=config.base_url, api_key=os.environ.get(config.api_key_env) or "EMPTY",
                         max_retries=config.max_retries, timeout=config.timeout,
                         http_client=openai.DefaultHttpxClient(follow_redirects=False))


RETRIED_STATUS = (408, 409, 429)  # and 5xx: what the openai client retries


def chat(client, config: AnnotateConfig, messages: list[dict]) -> str:
    """One chat completion from the endpoint."""
    import openai

    url = config.base_url.rstrip("/") + "/chat/completions"
    attempts = f"after {config.max_retries + 1} attempts"
    try:
        completion = client.chat.completions.create(model=config.model, messages=messages, temperature=config.temperature)
    except openai.APIStatusError as exc:
        code = exc.status_code
        if 300 <= code < 400:
            raise IxmctsError(f"{url}: the endpoint redirects (HTTP {code}) to {exc.response.headers.get('location', '?')}; "
                              "annotate does not follow redirects, which could carry the API key to another host: "
                              "give the final address as base_url") from None
        retried = code in RETRIED_STATUS or code >= 500
        raise IxmctsError(f"{url}: HTTP {code} {exc.response.reason_phrase}{' ' + attempts if retried else ''}") from None
    except openai.APIConnectionError as exc:
        raise IxmctsError(f"{url}: {exc.__cause__ or exc} ({attempts})") from None
    except openai.APIError as exc:
        raise IxmctsError(f"{url}: the reply is not an OpenAI chat completion ({exc})") from None
    try:
        content = completion.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise IxmctsError(f"{url}: the reply is not an OpenAI chat completion")
    return content


def annotate_dialogue(record: dict, config: AnnotateConfig, client=None) -> dict:
    """The record with a ``state`` on each help-seeker message."""
    sc = get_scenario("esc", language=config.language)
    system = INSTRUCTION[config.language].format(template=sc.state_template())
    messages, history = [], []
    for k, m in enumerate(record["messages"]):
        m = dict(m)
        if m.get("role") in ("user", "assistant") and str(m.get("content", "")).strip():
            history.append(f"{'Help-seeker' if m['role'] == 'user' else 'Counselor'}: {m['content']}")
        if m.get("role") == "user":
            state = chat(client or make_client(config), config,
                         [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(history)}]).strip()
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
    if config.max_retries < 0:
        raise IxmctsError(f"max_retries must be at least 0, got {config.max_retries}")
    require_writable(output, "annotated output")
    records = read_json(source)[: config.max_dialogues or None]
    key = hashlib.sha256(source.read_bytes() + json.dumps([config.base_url, config.model, config.language,
                                                            config.temperature]).encode()).hexdigest()[:16]
    checkpoint = cache_dir("annotate", key) / "done.jsonl"
    done = {str(r["id"]): r for r in read_checkpoint(checkpoint)}
    todo = [r for r in records if str(r["id"]) not in done]
    bar = tqdm(total=len(records), initial=len(records) - len(todo), desc="dialogues annotated", disable=not progress)
    client = make_client(config)
    pool = ThreadPoolExecutor(config.concurrency)
    try:
        with open(checkpoint, "a", encoding="utf-8") as ckpt:
            for annotated in pool.map(lambda r: annotate_dialogue(r, config, client), todo):
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


def read_checkpoint(path: Path) -> list[dict]:
    """The dialogues a previous job finished. A job killed while writing leaves a partial
    last line: it is dropped (the file cut back to its whole lines) and that dialogue is
    annotated again. A damaged line before the last is an error naming it."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    records, whole = [], 0
    for lineno, line in enumerate(lines, 1):
        last = lineno == len(lines)  # no newline after it: the line being written when the job stopped
        if not line.strip():
            whole += len(line) + 1
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "id" not in record:
                raise ValueError("not an annotated dialogue")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if last:
                break
            raise IxmctsError(f"{path}:{lineno}: damaged checkpoint line ({exc}); delete it to annotate "
                              "every dialogue again") from None
        records.append(record)
        whole += len(line) + 1
    if whole < len(data):  # cut the partial line off before appending after it
        with open(path, "r+b") as fh:
            fh.truncate(whole)
    elif data and not data.endswith(b"\n"):
        with open(path, "ab") as fh:
            fh.write(b"\n")
    return records
