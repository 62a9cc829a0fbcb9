"""The loadable MLflow model of a trained engagement reward model (MLflow models-from-code:
this file is copied into the logged model and run when the model is loaded)."""

import json

import mlflow


class RewardModel(mlflow.pyfunc.PythonModel):
    """Scores a response in its context: ``predict`` takes a DataFrame with ``context`` (chat
    messages as JSON text or a list) and ``response`` columns and returns one score per row."""

    def load_context(self, context):
        from ixmcts.llm.models import ModelSpec
        from ixmcts.train.reward import RewardScorer

        cfg = context.model_config
        base = context.artifacts.get("base", cfg["base"])
        self.scorer = RewardScorer(ModelSpec(base), context.artifacts["adapter_0"], max_length=int(cfg["max_length"]))

    def predict(self, context, model_input, params=None):
        contexts = [json.loads(c) if isinstance(c, str) else list(c) for c in model_input["context"]]
        return self.scorer.score(contexts, [str(r) for r in model_input["response"]])


mlflow.models.set_model(RewardModel())
