"""PEFT adapters on the Hugging Face engine's base model: loaded without merging, several on
one base, switched with ``use_adapter`` (``None``: the bare base)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from jmedllm.engines.adapters import AdapterError, check_adapter_base, read_adapter_dir


class HFAdapterMixin:
    """The adapter half of :class:`jmedllm.engines.hf.HFEngine` (its ``_hf_model``, ``_peft``,
    ``_adapters``, ``active_adapter``, ``model_ref`` and ``check_adapter_base``)."""

    @property
    def model(self) -> Any:
        """The module that is called: the PEFT wrapper once an adapter is loaded, else the base."""
        return self._peft if self._peft is not None else self._hf_model

    @property
    def adapter_names(self) -> list[str]:
        return list(self._adapters)

    def load_adapter(self, path: str | Path, name: str | None = None, activate: bool = True) -> str:
        """Load a PEFT adapter on the base (not merged); returns its name (default: folder name)."""
        from peft import PeftConfig, PeftModel

        if name is None:
            base_name = Path(path).expanduser().name or "adapter"
            name, i = base_name, 2
            while name in self._adapters:
                name, i = f"{base_name}-{i}", i + 1
        elif name in self._adapters:
            raise ValueError(f"an adapter named {name!r} is already loaded")
        info = read_adapter_dir(path, name)
        if self.check_adapter_base:
            check_adapter_base(info, self.model_ref, self._hf_model.config.to_dict())
        peft_config = PeftConfig.from_pretrained(info.path)
        peft_config.inference_mode = True
        first = self._peft is None
        try:
            wrapper = PeftModel(self._hf_model, peft_config, adapter_name=name) if first else self._peft
        except (RuntimeError, ValueError) as exc:  # e.g. target modules the model lacks
            raise AdapterError(f"adapter {info.path} does not fit model {self.model_ref}: {exc}") from exc
        try:
            result = wrapper.load_adapter(info.path, adapter_name=name)
        except (RuntimeError, ValueError) as exc:  # e.g. size mismatch
            self._discard_adapter(wrapper, name, first)
            raise AdapterError(f"adapter {info.path} does not fit model {self.model_ref}: {exc}") from exc
        marker = f".{name}."
        missing = [k for k in result.missing_keys if marker in k]
        unexpected = list(result.unexpected_keys)
        if missing or unexpected:
            self._discard_adapter(wrapper, name, first)
            raise AdapterError(
                f"adapter {info.path} does not fit model {self.model_ref} "
                f"(trained on {info.base_model_name_or_path}): "
                f"{len(missing)} adapter weights of the model are not in the file, e.g. {missing[:2]}; "
                f"{len(unexpected)} weights in the file name modules the model lacks, e.g. {unexpected[:2]}"
            )
        wrapper.eval()
        self._peft = wrapper
        self._adapters[name] = info
        if activate:
            self.use_adapter(name)
        return name

    def _discard_adapter(self, wrapper: Any, name: str, first: bool) -> None:
        """Undo a failed load, leaving the engine as it was."""
        if first:
            self._hf_model = wrapper.unload()
        else:
            wrapper.delete_adapter(name)

    def use_adapter(self, name: str | None) -> None:
        """Switch the active adapter; ``None`` evaluates the bare base model."""
        if name is None:
            self.active_adapter = None
            return
        if name not in self._adapters:
            raise KeyError(f"no adapter named {name!r}; loaded: {self.adapter_names}")
        self._peft.set_adapter(name, inference_mode=True)
        self.active_adapter = name

    @contextlib.contextmanager
    def _adapter_scope(self) -> Iterator[None]:
        if self._peft is not None and self.active_adapter is None:
            with self._peft.disable_adapter():
                yield
        else:
            yield
