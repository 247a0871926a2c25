"""Device names from configs and command lines, checked against this machine."""
from __future__ import annotations

from typing import Union

import torch

from gssf.errors import DeviceUnavailableError

__all__ = ["resolve_device"]


def resolve_device(
    device: Union[str, torch.device], local_rank: int = 0, where: str = "--device", allow_auto: bool = True
) -> torch.device:
    """The torch device for ``cpu``, ``cuda``, ``cuda:N`` (or ``auto`` when ``allow_auto``).

    A device this machine does not have is a :class:`DeviceUnavailableError` naming ``where``
    (the flag or config key), raised before any work rather than deep inside torch. A bare
    ``cuda`` picks the GPU of ``local_rank`` (one process per GPU under torchrun).
    """
    name = str(device)
    if name == "auto" and allow_auto:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        choices = "auto, cpu, cuda or cuda:N" if allow_auto else "cpu, cuda or cuda:N"
        raise DeviceUnavailableError(f"{where}={device} is not a device name ({choices}): {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(f"{where}={device}: CUDA is not available on this machine; use cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceUnavailableError(f"{where}={device}: this machine has {count} CUDA device(s)")
        return dev if dev.index is not None else torch.device("cuda", local_rank % count)
    if dev.type != "cpu":
        raise DeviceUnavailableError(f"{where}={device}: gssf runs on cpu or cuda")
    return dev
