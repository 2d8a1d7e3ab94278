"""OpenCLIP models (image + text towers in one space) as cbmkit encoders.

``pretrained`` is an open_clip tag (e.g. ``"laion2b_s34b_b79k"``; used from the Hugging Face
cache, downloaded only when online), a local checkpoint (.pt/.pth/.bin/.safetensors), or None
for random init. Offline with a tag whose weights are not cached, one error says so at once
(no minute of retries) and names both remedies. Architectures are open_clip's built-ins plus
the JSON configs in ``cbm/encoders/configs/`` (e.g. the tiny ``cbm-tiny-clip`` used in tests)::

    enc = create_encoder("openclip:ViT-B-32", pretrained="laion2b_s34b_b79k")
    X = enc.encode_images(images); T = enc.encode_text(["a photo of a cat"])
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import torch

from cbm._images import to_rgb
from cbm._io import atomic_path
from cbm.encoders._base import (
    Encoder,
    EncoderLoadError,
    describe_mismatch,
    file_sha256,
    state_dict_sha256,
    unreadable_checkpoint,
)
from cbm.encoders.record import EncoderRecord
from cbm.exceptions import unknown_name_message
from cbm.tensors import resolve_device

CONFIG_DIR = Path(__file__).with_name("configs")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
_registered = False


def _open_clip():
    """Import open_clip once and register cbmkit's extra architecture configs with it."""
    global _registered
    import open_clip

    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True
    return open_clip


def list_architectures() -> list[str]:
    """open_clip architecture names (built-in and cbmkit's configs), without importing open_clip."""
    if _registered:
        return list(_open_clip().list_models())
    spec = importlib.util.find_spec("open_clip")
    dirs = [Path(p) / "model_configs" for p in (spec.submodule_search_locations or [])] if spec else []
    return sorted({f.stem for d in [*dirs, CONFIG_DIR] for f in d.glob("*.json")}, key=str.lower)


def _is_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    try:
        socket.create_connection(("huggingface.co", 443), timeout=2).close()
        return False
    except OSError:
        return True


def _cached_weights(cfg: dict[str, Any], cache_dir: str | None) -> str | None:
    """Local path of a tag's weights when already in the Hugging Face / URL cache."""
    from open_clip.pretrained import HF_WEIGHTS_NAME, _get_safe_alternatives

    if cfg.get("file"):
        return cfg["file"]
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo, fname = os.path.split(cfg["hf_hub"])
        fname = fname or HF_WEIGHTS_NAME
        for cand in [*_get_safe_alternatives(fname), fname]:
            hit = try_to_load_from_cache(repo, cand, cache_dir=cache_dir)
            if isinstance(hit, str):
                return hit
    if cfg.get("url"):
        local = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(cfg["url"])
        if local.is_file():
            return str(local)
    return None


class OpenCLIPEncoder(Encoder):
    """An open_clip model (multimodal: ``encode_images`` and ``encode_text``).

    Parameters
    ----------
    model_name : str
        open_clip architecture, e.g. "ViT-B-32", or "cbm-tiny-clip" (tests).
    pretrained : str or path, optional
        Tag, local checkpoint path, or None/"random" for random initialisation.
    image_size : int, optional
        Override the architecture's input resolution.
    device : str
    cache_dir : str, optional
        Where open_clip looks for / stores downloaded weights.
    **overrides
        Extra keyword arguments for ``open_clip.create_model`` (e.g. ``embed_dim``).
    """

    name = "openclip"
    supports_text = True

    def __init__(self, model_name: str = "ViT-B-32", pretrained: str | Path | None = None, *,
                 image_size: int | None = None, device: str | torch.device = "auto",
                 cache_dir: str | None = None, **overrides: Any) -> None:
        oc = _open_clip()
        archs = oc.list_models()
        if model_name not in archs:
            raise ValueError(unknown_name_message("open_clip architecture", model_name, archs))
        self.model_name = model_name
        self.device = resolve_device(device)
        kwargs: dict[str, Any] = dict(overrides)
        if image_size is not None:
            kwargs["force_image_size"] = image_size
        weights, tag = self._resolve(oc, model_name, pretrained, cache_dir, kwargs)
        self._spec: dict[str, Any] = {
            "name": f"openclip:{model_name}",
            "pretrained": str(Path(weights).resolve()) if tag and tag.startswith("sha256:")
            else None if pretrained is None else str(pretrained),
            **({"image_size": image_size} if image_size is not None else {}), **overrides}
        try:
            with warnings.catch_warnings():  # torch's note on a pickle protocol: the error below says it all
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                model, _, transform = oc.create_model_and_transforms(
                    model_name, pretrained=weights, cache_dir=cache_dir, **kwargs)
        except (RuntimeError, AssertionError, KeyError) as e:
            if not (weights and Path(weights).is_file()):
                raise
            from open_clip.factory import load_state_dict

            try:
                state = load_state_dict(weights)
            except Exception as unreadable:  # noqa: BLE001 - not a checkpoint at all (text, junk)
                raise unreadable_checkpoint(weights, unreadable) from None
            try:
                why = describe_mismatch(oc.create_model(model_name, pretrained=None, **kwargs), state)
            except Exception:  # noqa: BLE001 - report the original error
                why = f"{type(e).__name__}: {str(e)[:200]}"
            raise EncoderLoadError(
                f"Checkpoint {str(weights)!r} does not fit the open_clip architecture {model_name!r} "
                f"({why}). Pass the architecture the checkpoint was saved from "
                "(create_encoder('openclip:<arch>', pretrained=path)), or a checkpoint of this one."
            ) from None
        except Exception as e:  # noqa: BLE001 - torch's unpickler fails in many ways on a non-checkpoint
            if not (weights and Path(weights).is_file()):
                raise
            raise unreadable_checkpoint(weights, e) from None
        self.model = model.eval().to(self.device)
        self._transform = transform
        self._tokenizer = oc.get_tokenizer(model_name)
        self._weights_tag = tag or "random:" + state_dict_sha256(model)[:16]
        pp = dict(model.visual.preprocess_cfg)
        self.image_size = pp["size"] if isinstance(pp["size"], int) else pp["size"][0]
        self._pp = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in sorted(pp.items())},
                              separators=(",", ":"))
        self._overrides = json.dumps(overrides, sort_keys=True, default=str) if overrides else ""
        with torch.inference_mode():
            x = torch.zeros(1, 3, *((pp["size"],) * 2 if isinstance(pp["size"], int) else pp["size"]))
            self.dim = int(self.model.encode_image(x.to(self.device)).shape[-1])

    @staticmethod
    def _resolve(oc, arch: str, pretrained: Any, cache_dir: str | None,
                 kwargs: dict[str, Any]) -> tuple[str | None, str | None]:
        """-> (what to pass open_clip as ``pretrained``, fingerprint tag); fails fast offline."""
        if pretrained in (None, "random"):
            return None, None
        path = Path(str(pretrained)).expanduser()
        if path.suffix in CHECKPOINT_SUFFIXES or path.exists():
            if not path.is_file():
                raise FileNotFoundError(f"Checkpoint {str(path)!r} not found; pass an existing "
                                        f"{'/'.join(CHECKPOINT_SUFFIXES)} file or an open_clip tag.")
            return str(path), "sha256:" + file_sha256(path)[:16]
        cfg = oc.get_pretrained_cfg(arch, str(pretrained))
        if not cfg:
            tags = oc.list_pretrained_tags_by_model(arch)
            raise ValueError(unknown_name_message(f"pretrained tag for {arch}", str(pretrained), tags)
                             + " Or pass a local checkpoint path.")
        cached = _cached_weights(cfg, cache_dir)
        if cached:
            kwargs["force_preprocess_cfg"] = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode")
                                              if k in cfg}
            kwargs.setdefault("force_quick_gelu", bool(cfg.get("quick_gelu", False)))
            return cached, f"tag:{pretrained}"
        if _is_offline():
            raise EncoderLoadError(
                f"Weights for open_clip {arch!r} tag {pretrained!r} are not in the local cache and this "
                "machine is offline (HF_HUB_OFFLINE is set or huggingface.co is unreachable). Either go "
                "online once so they can be downloaded (unset HF_HUB_OFFLINE), or pass a local "
                f"checkpoint path: pretrained='/path/to/{arch}.safetensors' (.pt/.bin/.safetensors)."
            )
        return str(pretrained), f"tag:{pretrained}"

    @property
    def fingerprint(self) -> str:
        """Architecture, weights tag, preprocessing and overrides: what changes the embeddings."""
        extra = f"|overrides={self._overrides}" if self._overrides else ""
        return f"openclip:{self.model_name}|weights={self._weights_tag}|preprocess={self._pp}{extra}"

    @property
    def record(self) -> EncoderRecord:
        """How to rebuild this encoder: architecture, weights, options and the fingerprint to expect."""
        return EncoderRecord.read({**self._spec, "fingerprint": self.fingerprint})

    def preprocess(self, image: Any) -> torch.Tensor:
        """One image (PIL or uint8 array) as the model's preprocessed (3, S, S) tensor."""
        return self._transform(to_rgb(image))

    def _encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x)

    def _encode_tokens_batch(self, x: torch.Tensor) -> torch.Tensor:
        visual = self.model.visual
        if not hasattr(visual, "output_tokens"):
            raise NotImplementedError(
                f"open_clip {self.model_name!r} has a {type(visual).__name__} image tower without patch "
                "tokens; use a ViT architecture (e.g. 'openclip:ViT-B-32') or 'mobilenet_v2'.")
        before = visual.output_tokens
        visual.output_tokens = True
        try:
            _, tokens = visual(x)
        finally:
            visual.output_tokens = before
        return tokens

    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self._tokenizer(texts).to(self.device))

    def save_checkpoint(self, path: str | Path) -> Path:
        """Save the model's weights (``.safetensors`` or torch ``.pt``) for ``pretrained=path``."""
        path = Path(path)
        sd = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with atomic_path(path) as tmp:
            if path.suffix == ".safetensors":
                from safetensors.torch import save_file

                save_file(sd, str(tmp))
            else:
                torch.save(sd, tmp)
        return path
