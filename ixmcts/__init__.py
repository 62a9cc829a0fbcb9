"""ixmcts: i×MCTS — aligning interactive LLMs for user engagement.

Rooms: ``scenarios`` (esc, p4g), ``data`` (corpora loaders + bundled samples),
``llm`` (generation backends + model registry), ``search`` (tree, engine,
pair extraction), ``tracking`` (the only module that talks to MLflow).
"""

__version__ = "0.1.0"
