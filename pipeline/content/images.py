"""An article's own image files, made ready for email: turned upright, scaled, stripped and named
by their content.

An image an article names by a relative path (Markdown ``![alt](images/room.jpg)``, HTML
``<img src="images/room.jpg">``) is a file beside the article, and must lie inside the workspace.
Each is read with Pillow, turned the way the camera was held, scaled to at most 1200 px wide
(twice the 600 px column, so it is sharp on phones), stripped of its metadata (camera, place,
time) and saved as JPEG or PNG. WebP, which Outlook and older clients do not show, becomes JPEG,
or PNG when it has transparency; a GIF becomes PNG unless it moves. The file's name carries a
hash of its bytes: a changed picture gets a new address, and a published address never changes.

The email refers to it as `[archive] base_url`/assets/NAME, where `campaign archive` publishes
it, or with `[images] embed = true` as cid:NAME@DOMAIN, a part of each message. Every image made
is kept in the workspace's .campaign-assets folder by name, so what a send went out with can be
published or attached later, even after the article's picture has changed.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote

from pipeline.content.merge import TAG
from pipeline.content.models import Article, Image
from pipeline.errors import ArticleError, MessageError
from pipeline.files import within, write_atomic
from pipeline.settings.workspace import Workspace

MAX_WIDTH = 1200  # px: twice the 600 px column
TOTAL_WARNING = 1024 * 1024  # bytes of images in one email before lint warns
STORE = ".campaign-assets"
JPEG_QUALITY = 82
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif"}
NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*-[0-9a-f]{12}\.(?:jpg|png|gif)$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_READABLE = {"JPEG", "PNG", "WEBP", "GIF"}
PICTURES = (".jpg", ".jpeg", ".png", ".webp", ".gif")  # the file endings of pictures an article may show


@dataclass(frozen=True)
class Asset:
    """One image file of an article, as the email carries it."""

    name: str  # "room-3f2a9c1b7d4e.jpg"
    src: str  # the address the email gives it
    data: bytes = field(repr=False)
    width: int
    height: int
    original: str  # the path as the article wrote it
    source: str  # the article file
    line: int | None
    original_width: int
    file: Path | None = None  # the picture it was made from, which the preview watches

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.name.rsplit(".", 1)[1]]

    @property
    def where(self) -> str:
        """The article file's name and the line of the image, as lint names places."""
        name = Path(self.source).name
        return f"{name}:{self.line}" if self.line else name


def is_local(src: str) -> bool:
    """Whether an image address is a path relative to the article: no scheme, not "/..." or "//...",
    no merge tag."""
    src = src.strip()
    return bool(src) and not src.startswith(("/", "#", "\\")) and not _SCHEME.match(src) and not TAG.search(src)


def store_dir(workspace: Workspace) -> Path:
    return workspace.root / STORE


def stored(workspace: Workspace, name: str) -> bytes | None:
    """A processed image by name, from the workspace's store; None if it is not there."""
    if not NAME.match(name):
        return None
    try:
        return (store_dir(workspace) / name).read_bytes()
    except FileNotFoundError:
        return None


def email_src(workspace: Workspace, name: str) -> str:
    """The address the email gives an image: a part of the message, the archive's copy, or (with
    neither set up, which lint reports) the copy `campaign render` writes beside email.html."""
    if workspace.images.embed:
        return f"cid:{name}@{workspace.sender.from_address.rsplit('@', 1)[1]}"
    if workspace.archive.base_url:
        return f"{workspace.archive.base_url}/assets/{name}"
    return f"assets/{name}"


_CID = re.compile(r'src="cid:(([^"@]+)@[^"]*)"')


def embedded(workspace: Workspace, html: Iterable[str]) -> list[tuple[str, str, str, bytes]]:
    """The images HTML shows by cid: (content id, name, media type, bytes), in the order it first
    shows them, from the workspace's store: what a message with `[images] embed` carries."""
    found: dict[str, tuple[str, str, str, bytes]] = {}
    for piece in html:
        for match in _CID.finditer(piece):
            cid, name = match.group(1), match.group(2)
            if cid in found:
                continue
            data = stored(workspace, name)
            if data is None:
                raise MessageError(f"the image {name} that this email shows is not among the processed images; "
                                   "render the campaign on this machine ('campaign render SLUG') to make it again",
                                   where=store_dir(workspace))
            found[cid] = (cid, name, MEDIA_TYPES[name.rsplit(".", 1)[1]], data)
    return list(found.values())


def shown_locally(html: str, assets: Iterable[Asset], prefix: str = "assets/") -> str:
    """The HTML with each image's email address swapped for prefix + its name, for a browser on
    this machine (the preview), where the archive may not be published yet and cid: means nothing."""
    for asset in assets:
        html = html.replace(asset.src, prefix + asset.name)
    return html


@dataclass(frozen=True)
class _Made:
    name: str
    data: bytes
    width: int
    height: int
    original_width: int


# Processed images by (file, modification time, size): the preview rebuilds on every save.
_MADE: dict[tuple[str, int, int], _Made] = {}


def _stem(original: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", Path(original).stem.lower()).strip("-")[:40].strip("-") or "image"


def make(path: Path, original: str, where: str) -> _Made:
    """The email's version of one image file; an ArticleError naming `where` if it cannot be one."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise ArticleError(f"image {original!r} cannot be read ({exc.strerror})", where=where) from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    made = _MADE.get(key)
    if made is None:
        made = _convert(path, original, where)
        if len(_MADE) > 128:
            _MADE.clear()
        _MADE[key] = made
    return made


def _convert(path: Path, original: str, where: str) -> _Made:
    # Pillow is imported here: only a build with local images needs it.
    from PIL import Image as Pillow
    from PIL import ImageOps, UnidentifiedImageError

    try:
        with Pillow.open(path) as opened:
            kind = opened.format or ""
            if kind not in _READABLE:
                raise ArticleError(f"image {original!r} is {kind or 'not an image'}, not JPEG, PNG, WebP or GIF",
                                   where=where)
            if kind == "GIF" and getattr(opened, "n_frames", 1) > 1:
                # An animation is kept as it is: each frame would need scaling, and a GIF's palette with it.
                data = path.read_bytes()
                return _Made(f"{_stem(original)}-{hashlib.sha256(data).hexdigest()[:12]}.gif", data,
                             opened.width, opened.height, opened.width)
            opened.load()
            icc = opened.info.get("icc_profile")
            picture = ImageOps.exif_transpose(opened)
    except ArticleError:
        raise
    except FileNotFoundError:
        raise ArticleError(f"image {original!r} not found: no file {path}", where=where) from None
    except (UnidentifiedImageError, Pillow.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise ArticleError(f"image {original!r} cannot be read as an image ({exc})", where=where) from None
    return _encode(picture, kind, icc, original)


def _encode(picture: object, kind: str, icc: bytes | None, original: str) -> _Made:
    from PIL import Image as Pillow

    assert isinstance(picture, Pillow.Image)
    original_width = picture.width
    alpha = picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in picture.info
    as_png = alpha or kind in ("PNG", "GIF")
    if alpha:
        picture = picture.convert("RGBA")
    elif not as_png and picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGB")  # CMYK and the like: JPEG in email is RGB or grey
    elif as_png and picture.mode not in ("1", "L", "P", "RGB", "RGBA"):
        picture = picture.convert("RGB")
    if picture.width > MAX_WIDTH:
        if picture.mode in ("1", "P"):
            picture = picture.convert("RGB")
        height = max(1, round(picture.height * MAX_WIDTH / picture.width))
        picture = picture.resize((MAX_WIDTH, height), Pillow.Resampling.LANCZOS, reducing_gap=3.0)
    picture.info = {}  # EXIF, XMP, comments and text chunks stay behind; the colour profile is kept
    options: dict[str, object] = {"icc_profile": icc} if icc else {}
    out = io.BytesIO()
    if as_png:
        picture.save(out, "PNG", optimize=True, **options)
        ext = "png"
    else:
        picture.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True, **options)
        ext = "jpg"
    data = out.getvalue()
    name = f"{_stem(original)}-{hashlib.sha256(data).hexdigest()[:12]}.{ext}"
    return _Made(name, data, picture.width, picture.height, original_width)


def _relative(src: str) -> str:
    """The file path an article's own image address names, relative to the article."""
    return unquote(src.strip().split("#", 1)[0].split("?", 1)[0])


def own_pictures(article: Article) -> list[str]:
    """The paths, relative to the article, of the picture files it shows, as it names them."""
    images = [article.hero_image, *(b for b in article.blocks() if isinstance(b, Image))]
    return list(dict.fromkeys(_relative(i.src) for i in images if i is not None and is_local(i.src)))


def _asset(workspace: Workspace, folder: Path, image: Image, source: str) -> Asset:
    where = f"{source}:{image.line}" if image.line else source
    path = folder / _relative(image.src)
    if within(workspace.root, path) is None:
        raise ArticleError(f"image {image.src!r} is outside the workspace {workspace.root}; copy it into the "
                           "campaign's folder", where=where)
    if not path.is_file():
        raise ArticleError(f"image {image.src!r} not found: no file {path}", where=where)
    made = make(path.resolve(), image.src, where)
    return Asset(made.name, email_src(workspace, made.name), made.data, made.width, made.height, image.src, source,
                 image.line, made.original_width, path.resolve())


def keep(workspace: Workspace, assets: Iterable[Asset]) -> None:
    """Put processed images in the workspace's store, unless there already: names are content
    hashes, so a file there never changes."""
    for asset in assets:
        path = store_dir(workspace) / asset.name
        if not path.is_file():
            write_atomic(path, asset.data)


def localise(workspace: Workspace, article: Article) -> tuple[Article, tuple[Asset, ...]]:
    """The article with each of its own image files replaced by the email's address for it, and
    those images. An article that is not a file (a feed entry) is returned as it is."""
    folder = Path(article.source).parent if article.source else None
    if folder is None or not folder.is_dir():
        return article, ()
    found: dict[str, Asset] = {}

    def swap(image: Image) -> Image:
        if not is_local(image.src):
            return image
        asset = _asset(workspace, folder, image, article.source)
        found.setdefault(asset.name, asset)
        return replace(image, src=asset.src)

    if not any(is_local(b.src) for b in article.blocks() if isinstance(b, Image)) and not (
            article.hero_image and is_local(article.hero_image.src)):
        return article, ()
    hero = swap(article.hero_image) if article.hero_image else None
    sections = tuple(replace(s, blocks=tuple(swap(b) if isinstance(b, Image) else b for b in s.blocks))
                     for s in article.sections)
    assets = tuple(found.values())
    keep(workspace, assets)
    return replace(article, hero_image=hero, sections=sections), assets
