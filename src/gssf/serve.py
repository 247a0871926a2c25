"""A local search page over an index (``gssf serve IDX``): Starlette + uvicorn on 127.0.0.1.

``GET /`` shows a form: a caption box (text -> image indexes) or an image upload (image ->
text, or image -> image for a uni-modal index), ``k``, and a switch that ranks the same
items by cosine of the embeddings instead of the learned similarity. ``POST /`` runs the
query and shows the ranked items with their scores: images through ``GET /item/<n>``
(only indexed items, by position: no path ever comes from the request), captions as text.

Bad input gets a message on the page and a 4xx status, never a crash: an empty query, a
query over :data:`gssf.index.MAX_QUERY_CHARS`, an upload that is not an image, an upload
over :data:`MAX_UPLOAD_BYTES` (refused while it is read, not after), a bad ``k``.
"""
from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any, List, Union

from gssf.errors import GssfError

__all__ = ["MAX_UPLOAD_BYTES", "create_app", "serve"]

MAX_UPLOAD_BYTES = 10 << 20
MAX_DRAIN_BYTES = 64 << 20
MAX_K = 100
PathLike = Union[str, Path]

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
form{display:flex;gap:.6em;flex-wrap:wrap;align-items:center;margin:1em 0}
input[type=text]{flex:1;min-width:18em;padding:.4em;font-size:1.05em}
.hits{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.8em}
.hit{border:1px solid #ddd;border-radius:6px;padding:.4em;text-align:center;font-size:.85em}
.hit img{max-width:100%;height:128px;object-fit:contain;background:#f7f7f7}
.error{background:#fdecea;border:1px solid #f5c2c0;padding:.6em;border-radius:6px}
.note{color:#555;font-size:.9em}
"""


def _page(index: Any, body: str, query: str = "", k: int = 10, cosine: bool = False) -> str:
    m = index.manifest
    text_box = m["query_side"] == "text"
    field = (f"<input type=text name=q id=q placeholder='a caption, e.g. a red mushroom' value='{html.escape(query, quote=True)}'>"
             if text_box else "<input type=file name=image id=image accept='image/*'>")  # fmt: skip
    checked = " checked" if cosine else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>gssf search</title>"
        f"<style>{_STYLE}</style></head><body><h1>gssf search</h1>"
        f"<p class=note>{m['count']} {html.escape(m['side'])} items, ranked by the learned "
        f"<code>{html.escape(m['similarity'])}</code> ({html.escape(m['kind'])} index) for "
        f"{html.escape(m['query_side'])} queries.</p>"
        "<form method=post enctype='multipart/form-data' action='/'>"
        f"{field}<label>k <input type=number name=k id=k min=1 max={MAX_K} value={int(k)}></label>"
        f"<label><input type=checkbox name=cosine id=cosine value=1{checked}> cosine instead</label>"
        "<button type=submit id=go>Search</button></form>"
        f"{body}</body></html>"
    )


def _hits_html(hits: List[Any], how: str) -> str:
    cells = []
    for h in hits:
        if h.path:
            what = f"<img src='/item/{h.index}' alt='{html.escape(Path(h.path).name, quote=True)}'>"
            label = html.escape(Path(h.path).stem)
        else:
            what, label = "", html.escape(h.caption or h.id)
        cells.append(f"<div class=hit data-rank={h.rank} data-index={h.index}>{what}<div>#{h.rank} "
                     f"<b class=score>{h.score:.4f}</b></div><div class=label>{label}</div></div>")  # fmt: skip
    return f"<h2 id=results>Top {len(hits)} ({html.escape(how)})</h2><div class=hits>{''.join(cells)}</div>"


def _error(message: str) -> str:
    return f"<p class=error id=error>{html.escape(message)}</p>"


def create_app(folder: PathLike) -> Any:
    """The Starlette application serving the index in ``folder``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, Response
    from starlette.routing import Route

    from gssf.index import SearchIndex

    index = SearchIndex(folder)

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(_page(index, ""))

    async def query(request: Request) -> HTMLResponse:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_UPLOAD_BYTES + 65536:
            # Read (and drop) the body so that the browser gets the page, not a reset connection;
            # past MAX_DRAIN_BYTES the connection is given up.
            drained = 0
            async for chunk in request.stream():
                drained += len(chunk)
                if drained > MAX_DRAIN_BYTES:
                    break
            return HTMLResponse(_page(index, _error(f"the upload is larger than {MAX_UPLOAD_BYTES >> 20} MB")), 413)
        try:
            form = await request.form(max_files=1, max_fields=8, max_part_size=MAX_UPLOAD_BYTES)
        except Exception as exc:  # multipart errors: a malformed or oversized body
            return HTMLResponse(_page(index, _error(f"the form could not be read: {exc}")), 400)
        text = str(form.get("q") or "")
        cosine = form.get("cosine") == "1"
        try:
            k = int(str(form.get("k") or 10))
            if not 1 <= k <= MAX_K:
                raise ValueError
        except ValueError:
            return HTMLResponse(_page(index, _error(f"k must be a whole number from 1 to {MAX_K}"), text), 400)
        try:
            if index.manifest["query_side"] == "text":
                hits = index.search_text(text, k, cosine=cosine)
            else:
                upload = form.get("image")
                data = await upload.read(MAX_UPLOAD_BYTES + 1) if hasattr(upload, "read") else b""
                if not data:
                    raise GssfError("choose an image to upload")
                if len(data) > MAX_UPLOAD_BYTES:
                    raise GssfError(f"the upload is larger than {MAX_UPLOAD_BYTES >> 20} MB")
                hits = index.search_image(_decode(data), k, cosine=cosine)
        except (GssfError, ValueError) as exc:
            return HTMLResponse(_page(index, _error(str(exc)), text, k, cosine), 400)
        how = "cosine" if cosine else index.manifest["similarity"]
        return HTMLResponse(_page(index, _hits_html(hits, how), text, k, cosine))

    async def item(request: Request) -> Response:
        try:
            n = int(request.path_params["n"])
            path = index.items[n].get("path") if 0 <= n < len(index.items) else None
        except ValueError:
            path = None
        if not path or not Path(path).is_file():
            return Response("no such item", status_code=404)
        return FileResponse(path)

    return Starlette(routes=[Route("/", home, methods=["GET"]), Route("/", query, methods=["POST"]),
                             Route("/item/{n}", item, methods=["GET"])])  # fmt: skip


def _decode(data: bytes) -> Any:
    """An uploaded image as RGB, within the limits of :mod:`gssf.data.images`; a clear error otherwise."""
    from PIL import Image, UnidentifiedImageError

    from gssf.data.images import MAX_IMAGE_PIXELS, to_rgb

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise GssfError(f"the image has {img.width} x {img.height} pixels; at most {MAX_IMAGE_PIXELS}")
            img.load()
            return to_rgb(img)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise GssfError("the upload is not an image this page can read (PNG, JPEG, GIF, WebP, ...)") from None


def serve(folder: PathLike, port: int = 8000, host: str = "127.0.0.1", log_level: str = "warning") -> None:
    """Run the page until interrupted (``host`` stays local unless you say otherwise)."""
    import uvicorn

    uvicorn.run(create_app(folder), host=host, port=int(port), log_level=log_level)
