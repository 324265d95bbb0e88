"""The MiniLM architecture (BERT 6×384, 12 heads, mean pooling) with random weights and
random token data: the MiniLM task's shapes, losses and scores where its weights package
(90 MB) cannot travel, as on a GPU machine without network."""

from dataclasses import dataclass

import numpy as np
import torch

from slimsweep.sweeps.task import Batch, Inputs, TaskData
from slimsweep.sweeps.tasks.minilm import MiniLMTask, SentenceEncoder

VOCABULARY = 30522


@dataclass
class RandomBertTask(MiniLMTask):
    name: str = "random_bert"
    train_size: int = 256
    calibration_size: int = 64
    eval_size: int = 128

    def build_model(self) -> torch.nn.Module:
        from transformers import BertConfig, BertModel

        config = BertConfig(
            vocab_size=VOCABULARY,
            hidden_size=384,
            num_hidden_layers=6,
            num_attention_heads=12,
            intermediate_size=1536,
            max_position_embeddings=512,
        )
        config._attn_implementation = "eager"  # as the MiniLM task loads it
        torch.manual_seed(self.seed)
        return SentenceEncoder(BertModel(config)).eval()

    def _random_inputs(self, rows: int, rng: np.random.Generator, padded: bool) -> Inputs:
        lengths = rng.integers(8, self.max_length + 1, size=rows)
        width = self.max_length if padded else int(lengths.max())
        ids = rng.integers(1000, VOCABULARY, size=(rows, width))
        mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
        return {"input_ids": torch.from_numpy(ids * mask), "attention_mask": torch.from_numpy(mask)}

    def load_data(self) -> TaskData:
        rng = np.random.default_rng(self.seed)
        teacher = self.build_model()

        def batches(rows: int, padded: bool) -> list[Batch]:
            out = []
            for start in range(0, rows, self.batch_size):
                inputs = self._random_inputs(min(self.batch_size, rows - start), rng, padded)
                with torch.no_grad():
                    out.append((inputs, teacher(**inputs)))
            return out

        return TaskData(
            train=batches(self.train_size, padded=False),
            calibration=batches(self.calibration_size, padded=True),
            eval=batches(self.eval_size, padded=True),
        )

    def data_cache_key(self) -> str:
        return "random"

    def latency_inputs(self) -> Inputs:
        """One full-length sentence (the anchor, 1×128), every token real."""
        rng = np.random.default_rng(self.seed + 1)
        ids = rng.integers(1000, VOCABULARY, size=(self.latency_batch_size, self.max_length))
        return {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.ones_like(torch.from_numpy(ids)),
        }
