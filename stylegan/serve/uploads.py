"""The upload of `POST /api/project`: the size limit (413), the image check (415, through the projection's own
target reader, Pillow's decompression-bomb limit on) and the form's fields (400), parsed with `stylegan project`'s
defaults and limits."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from ..cli.project import project as project_command
from ..projection.config import LOSSES, SPACES
from ..projection.targets import load_target
from .params import MAX_PROJECT_STEPS, ParamError, Query, cli_default

MAX_UPLOAD_BYTES = 20 << 20          # the image file
FORM_OVERHEAD_BYTES = 64 << 10       # the other fields and the multipart boundaries
PROJECT_FIELDS = ("net", "image", "space", "steps", "noise_steps", "seed", "loss", "class")


class UploadTooLarge(Exception):
    """The request body is over the limit: 413."""


async def read_upload_form(request: Any) -> Any:
    """The multipart form of `request`, read with a bound: a body over MAX_UPLOAD_BYTES (+ the form's overhead)
    is refused as soon as its announced length or its bytes exceed it, before anything is parsed."""
    limit = MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES
    message = f"the upload is over the limit of {MAX_UPLOAD_BYTES >> 20} MB"
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise UploadTooLarge(message)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UploadTooLarge(message)
    request._body = bytes(body)  # Starlette's Request.form() parses a body already read (Request.stream)
    return await request.form(max_files=1, max_fields=len(PROJECT_FIELDS))


def parse_project_fields(query: Query, served, vgg16: Optional[Path] = None) -> Dict[str, Any]:
    """The job's options from the form fields, with `stylegan project`'s defaults (vgg16: the server's
    --vgg16 file, if any)."""
    from ..projection.losses import vgg16_available

    loss = query.choice("loss", LOSSES, cli_default(project_command, "loss_kind"))
    if loss == "lpips" and not vgg16_available(vgg16):
        raise ParamError("loss", "loss='lpips' needs NVIDIA's vgg16.pt, which the server was not given and has "
                                 "not cached: start it with `stylegan serve --vgg16 PATH|URL`, or use loss=pixel")
    return dict(space=query.choice("space", SPACES, cli_default(project_command, "space")),
                steps=query.integer("steps", cli_default(project_command, "steps"), 1, MAX_PROJECT_STEPS),
                noise_steps=query.integer("noise_steps", cli_default(project_command, "noise_steps"), 0,
                                          MAX_PROJECT_STEPS),
                seed=query.integer("seed", cli_default(project_command, "seed"), 0, 2 ** 32 - 1),
                loss_kind=loss, class_idx=query.class_idx(served.G))


def prepare_target(data: bytes, name: str, G: torch.nn.Module) -> Tuple[torch.Tensor, bytes]:
    """(uint8 [C, R, R] target, target.png bytes) of an uploaded file, prepared as `stylegan project --target`
    prepares a file; TargetImageError (415, naming the upload, not the server's temporary file) when it is not a
    readable image."""
    from ..images import png_bytes
    from ..projection.projector import targets_as_saved
    from ..projection.targets import TargetImageError

    with tempfile.TemporaryDirectory(prefix="stylegan-upload-") as folder:
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        try:
            target = load_target(path, int(G.config.resolution), int(G.config.num_channels))
        except TargetImageError as exc:
            raise TargetImageError(str(exc).replace(path, f"the upload {name!r}")) from None
    return target, png_bytes(targets_as_saved(target[None])[0])


def upload_name(filename: Any) -> str:
    """The upload's file name as the projection's meta records it (`target`): its last part, safe characters only."""
    name = os.path.basename(str(filename or "").replace("\\", "/"))
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:128].lstrip(".")
    return name or "upload"


__all__ = ["MAX_UPLOAD_BYTES", "PROJECT_FIELDS", "UploadTooLarge", "read_upload_form", "parse_project_fields",
           "prepare_target", "upload_name"]
