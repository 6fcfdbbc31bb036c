"""Model sizes and the settings of a SatMAE group-channel model, validated before anything is built.

Setting names are SatMAE's constructor arguments (``embed_dim``, ``channel_embed``, ``decoder_depth`` ...), so
people coming from SatMAE find theirs; geodiv's additions are ``mask_mode``, ``reference_loss_order``,
``num_classes``, ``global_pool`` and ``drop_path_rate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from geodiv.bands import S2_BANDS, SATMAE_BANDS, SATMAE_GROUPS
from geodiv.errors import ConfigError

#: Widths, depths and heads per size. ``base`` is what pretrain-where and SatMAE used; ``large`` is ViT-L.
#: ``tiny`` and ``small`` are geodiv's CPU-sized models (group encoding a third of the width, as in base).
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=192, depth=4, num_heads=3, channel_embed=64,
                 decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4, decoder_channel_embed=32),
    "small": dict(embed_dim=384, depth=12, num_heads=6, channel_embed=128,
                  decoder_embed_dim=256, decoder_depth=4, decoder_num_heads=8, decoder_channel_embed=64),
    "base": dict(embed_dim=768, depth=12, num_heads=12, channel_embed=256,
                 decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, decoder_channel_embed=128),
    "large": dict(embed_dim=1024, depth=24, num_heads=16, channel_embed=256,
                  decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, decoder_channel_embed=128),
}

COMMON_KEYS = ("img_size", "patch_size", "in_chans", "channel_groups", "embed_dim", "depth", "num_heads",
               "channel_embed", "mlp_ratio", "seed")
MAE_KEYS = ("decoder_embed_dim", "decoder_depth", "decoder_num_heads", "decoder_channel_embed", "mask_mode",
            "norm_pix_loss", "reference_loss_order")
ENCODER_KEYS = ("num_classes", "global_pool", "drop_path_rate")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Every setting of a SatMAE MAE or encoder (decoder fields are unused by the encoder and vice versa)."""

    img_size: int = 96
    patch_size: int = 8
    in_chans: int = 10
    channel_groups: tuple[tuple[int, ...], ...] = SATMAE_GROUPS
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    channel_embed: int = 256
    mlp_ratio: float = 4.0
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    decoder_channel_embed: int = 128
    mask_mode: Literal["independent", "spatial"] = "independent"
    norm_pix_loss: bool = False
    reference_loss_order: bool = False
    num_classes: int = 0
    global_pool: bool = True
    drop_path_rate: float = 0.0
    seed: int = 0

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_groups(self) -> int:
        return len(self.channel_groups)

    @property
    def noise_length(self) -> int:
        """Values per sample of the masking noise: one per location shared by all groups (spatial masking), or
        one per token (independent masking)."""
        return self.grid**2 if self.mask_mode == "spatial" else self.num_groups * self.grid**2

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channel_groups"] = [list(g) for g in self.channel_groups]
        return d


def _band_label(index: int, in_chans: int) -> str:
    names = SATMAE_BANDS if in_chans == len(SATMAE_BANDS) else S2_BANDS if in_chans == len(S2_BANDS) else None
    return f"{index} ({names[index]})" if names is not None else str(index)


def validate_groups(channel_groups: Sequence[Sequence[int]], in_chans: int) -> tuple[tuple[int, ...], ...]:
    """Check that every input band is in exactly one group; return the groups as tuples.

    SatMAE itself silently ignores bands outside the groups (and its loss then crashes); geodiv refuses.
    """
    groups = tuple(tuple(int(b) for b in g) for g in channel_groups)
    problems = []
    if not groups or any(len(g) == 0 for g in groups):
        problems.append("every group needs at least one band")
    seen: dict[int, int] = {}
    for gi, g in enumerate(groups):
        for b in g:
            if not 0 <= b < in_chans:
                problems.append(f"group {gi} names band index {b}, outside 0..{in_chans - 1}")
            elif b in seen:
                problems.append(f"band {_band_label(b, in_chans)} is in group {seen[b]} and again in group {gi}")
            else:
                seen[b] = gi
    missing = [b for b in range(in_chans) if b not in seen]
    if missing:
        problems.append(
            f"band(s) {', '.join(_band_label(b, in_chans) for b in missing)} are in no group"
        )
    if problems:
        hint = ""
        if in_chans == len(S2_BANDS) and groups == SATMAE_GROUPS:
            hint = (
                " The default groups are for SatMAE's 10 bands (B1, B9, B10 dropped): select those bands, "
                "or give channel_groups that cover all 13."
            )
        raise ConfigError(
            f"channel_groups {[list(g) for g in groups]} do not fit in_chans={in_chans}: "
            + "; ".join(problems)
            + ". Every input band must be in exactly one group." + hint
        )
    return groups


def resolve_model_config(preset: str, overrides: Mapping[str, Any], kind: Literal["mae", "encoder"]) -> ModelConfig:
    """Preset + overrides -> a validated ``ModelConfig``; unknown names are a ``ConfigError``."""
    if preset not in MODEL_SIZES:
        raise ConfigError(f"unknown model preset {preset!r}; choose one of {', '.join(MODEL_SIZES)}")
    allowed = COMMON_KEYS + (MAE_KEYS if kind == "mae" else ENCODER_KEYS)
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        other = "build_encoder" if kind == "mae" else "build_mae"
        raise ConfigError(
            f"unknown {kind} setting(s) {', '.join(unknown)}; allowed: {', '.join(allowed)} "
            f"(settings of the other model are accepted by {other})"
        )
    values = {**MODEL_SIZES[preset], **overrides}
    cfg = ModelConfig(**{**values, "channel_groups": tuple(tuple(g) for g in values.get("channel_groups", SATMAE_GROUPS))})
    validate_groups(cfg.channel_groups, cfg.in_chans)
    if cfg.img_size % cfg.patch_size:
        raise ConfigError(f"img_size {cfg.img_size} is not a multiple of patch_size {cfg.patch_size}")
    if cfg.mask_mode not in ("independent", "spatial"):
        raise ConfigError(f"mask_mode must be 'independent' or 'spatial', got {cfg.mask_mode!r}")
    for width, heads, name in ((cfg.embed_dim, cfg.num_heads, "embed_dim"),
                               (cfg.decoder_embed_dim, cfg.decoder_num_heads, "decoder_embed_dim")):
        if width % heads:
            raise ConfigError(f"{name}={width} is not divisible by its {heads} heads")
    for width, ch, name in ((cfg.embed_dim, cfg.channel_embed, "channel_embed"),
                            (cfg.decoder_embed_dim, cfg.decoder_channel_embed, "decoder_channel_embed")):
        if not 0 < ch < width or ch % 2 or (width - ch) % 4:
            raise ConfigError(
                f"{name}={ch} must be even, smaller than the width {width}, and leave a position part "
                f"(width - {name}) divisible by 4"
            )
    return cfg
