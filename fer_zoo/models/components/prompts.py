"""Learnable prompts on a frozen CLIP: CoOp text context and VPT-deep visual prompts."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from fer_zoo.models.components.clip import CLIPEncoder

DESCRIPTIONS = Path(__file__).resolve().parents[2] / "configs" / "prompts" / "descriptions.yaml"


def load_descriptions(path: str | Path | None, class_names: list[str], option: str = "model.descriptions") -> list[str]:
    """Per-class descriptions from a YAML mapping class name -> text (default: the packaged file)."""
    path = Path(path) if path else DESCRIPTIONS
    if not path.is_file():
        raise FileNotFoundError(f"{option}={path}: no such file")
    table = yaml.safe_load(path.read_text()) or {}
    missing = [n for n in class_names if n not in table]
    if missing:
        raise ValueError(f"{option}={path}: no description for class(es) {missing}")
    return [str(table[n]).strip() for n in class_names]


def content_mask(token_ids: Tensor) -> Tensor:
    """True at the non-special tokens: after start-of-text and before end-of-text (the argmax id)."""
    positions = torch.arange(token_ids.shape[1], device=token_ids.device).unsqueeze(0)
    eot = token_ids.argmax(dim=-1, keepdim=True)
    return (positions > 0) & (positions < eot)


def masked_mean(embeddings: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``embeddings`` ``(N, L, W)`` over the positions where ``mask`` ``(N, L)`` holds."""
    weights = mask.to(embeddings.dtype).unsqueeze(-1)
    return (embeddings * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class TextPromptLearner(nn.Module):
    """CoOp: ``[SOS][ctx_1..ctx_M][CLASS].[EOS]`` with M shared learnable context vectors.

    The start, class-name and end token embeddings come from the frozen token embedding and
    are stored as buffers; only ``ctx`` trains.
    """

    def __init__(self, clip: CLIPEncoder, class_names: list[str], n_ctx: int = 10, init_std: float = 0.02) -> None:
        """Build the context and the frozen token pieces.

        Args:
        clip: the frozen CLIP.
        class_names: class names in label order.
        n_ctx: number of context vectors M.
        init_std: std of their normal initialisation.
        """
        super().__init__()
        self.n_ctx = n_ctx
        self.ctx = nn.Parameter(torch.randn(n_ctx, clip.text_width) * init_std)
        placeholder = " ".join(["X"] * n_ctx)
        ids = clip.tokenize([f"{placeholder} {name}." for name in class_names])
        with torch.no_grad():
            embedded = clip.token_embeddings(ids)
        self.register_buffer("token_ids", ids, persistent=False)
        self.register_buffer("prefix", embedded[:, :1].clone(), persistent=False)
        self.register_buffer("suffix", embedded[:, 1 + n_ctx :].clone(), persistent=False)
        self.register_buffer("mask", content_mask(ids), persistent=False)

    def forward(self) -> Tensor:
        """Prompt embeddings ``(C, L, width)``."""
        ctx = self.ctx.unsqueeze(0).expand(self.prefix.shape[0], -1, -1)
        return torch.cat([self.prefix, ctx.to(self.prefix.dtype), self.suffix], dim=1)

    def pooled(self, embeddings: Tensor) -> Tensor:
        """Mean of the non-special token embeddings (context, class name, full stop) ``(C, width)``."""
        return masked_mean(embeddings, self.mask)


class DeepVisualPrompts(nn.Module):
    """VPT-deep: ``N_p`` learnable tokens per transformer block (outputs discarded each block)."""

    def __init__(self, depth: int, n_prompts: int, width: int, init_std: float = 0.02) -> None:
        """Create the prompt tokens.

        Args:
        depth: number of prompted blocks (from the first).
        n_prompts: tokens per block N_p.
        width: token width of the image transformer.
        init_std: std of their normal initialisation.
        """
        super().__init__()
        self.prompts = nn.Parameter(torch.randn(depth, n_prompts, width) * init_std)

    def forward(self) -> list[Tensor]:
        """Per-block prompt tokens."""
        return list(self.prompts.unbind(0))
