"""An article's own image files: real JPEG, PNG, WebP and GIF files made with Pillow, resized,
stripped, named by their bytes, and the errors and lint findings around them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from pipeline.content.build import build_campaign
from pipeline.content.images import MAX_WIDTH, STORE, is_local
from pipeline.content.readers import read_article
from pipeline.errors import ArticleError
from pipeline.settings.scaffold import new_campaign
from pipeline.settings.workspace import Workspace, load_workspace
from tests.conftest import Campaign, edit

ARTICLE = Path("campaigns/back-pain/article.md")
BASE = "https://willowcreek-acupuncture.example/newsletter"
GPS = 0x8825


def photo(path: Path, size: tuple[int, int], fmt: str = "JPEG", *, alpha: bool = False,
          orientation: int | None = None, **options: object) -> Path:
    """A real picture (a gradient with a shape on it, so it compresses like one) with EXIF that must
    not survive: the camera, the time and a GPS block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "RGBA" if alpha else "RGB"
    picture = Image.linear_gradient("L").resize(size).convert(mode)
    ImageDraw.Draw(picture).ellipse((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2),
                                    fill=(200, 80, 40, 128) if alpha else (200, 80, 40))
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"
    exif[0x0132] = "2026:01:02 03:04:05"
    exif[GPS] = {1: "N", 2: (45.0, 31.0, 12.0)}
    if orientation:
        exif[0x0112] = orientation
    picture.save(path, fmt, exif=exif.tobytes(), **options)
    return path


def add_image(root: Path, markdown: str) -> None:
    edit(root / ARTICLE, "Most patients feel a dull ache", f"{markdown}\n\nMost patients feel a dull ache")


def with_archive(root: Path, extra: str = "") -> Workspace:
    with (root / "campaign.toml").open("a", encoding="utf-8") as fh:
        fh.write(f'\n[archive]\nbase_url = "{BASE}"\n{extra}')
    return load_workspace(root)


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1) if needle in line)


def test_a_wide_jpeg_is_resized_upright_stripped_and_named_by_its_bytes(workspace_dir: Path) -> None:
    # Orientation 6: the camera was turned, so the upright picture is 2000 wide and 3000 high.
    photo(workspace_dir / "campaigns/back-pain/images/room.jpg", (3000, 2000), orientation=6)
    add_image(workspace_dir, "![Our quiet treatment room](images/room.jpg)")
    workspace = with_archive(workspace_dir)
    built = build_campaign(workspace, "back-pain")
    (asset,) = built.rendered.newsletter.assets
    assert asset.name.startswith("room-") and asset.name.endswith(".jpg")
    assert asset.src == f"{BASE}/assets/{asset.name}"
    assert (asset.original_width, asset.width, asset.height) == (2000, MAX_WIDTH, 1800)
    picture = Image.open(io.BytesIO(asset.data))
    assert (picture.format, picture.size) == ("JPEG", (1200, 1800))
    assert not picture.getexif()  # no camera, no time, no place
    assert f'src="{asset.src}"' in built.rendered.html
    assert (workspace_dir / STORE / asset.name).read_bytes() == asset.data
    # The same file gives the same bytes and name; another picture another name.
    assert build_campaign(workspace, "back-pain").rendered.newsletter.assets[0].data == asset.data
    findings = [f for f in built.findings if f.code == "image-width"]
    line = line_of(workspace_dir / ARTICLE, "images/room.jpg")
    assert [str(f) for f in findings] == [
        (f"warning: article.md:{line}: image 'images/room.jpg' is 2000 px wide; it is resized to 1200 px "
         "(twice the 600 px column) for email [image-width]")]
    assert not [f for f in built.findings if f.level == "error"]


@pytest.mark.parametrize(("fmt", "alpha", "made"), [
    ("PNG", False, "PNG"), ("PNG", True, "PNG"), ("WEBP", False, "JPEG"), ("WEBP", True, "PNG"), ("GIF", False, "PNG"),
])
def test_png_webp_and_gif_become_what_email_clients_show(workspace_dir: Path, fmt: str, alpha: bool,
                                                          made: str) -> None:
    source = workspace_dir / f"campaigns/back-pain/images/chart.{fmt.lower()}"
    photo(source, (1600, 400), fmt, alpha=alpha)
    add_image(workspace_dir, f"![A chart of visits per month](images/{source.name})")
    (asset,) = build_campaign(with_archive(workspace_dir), "back-pain").rendered.newsletter.assets
    picture = Image.open(io.BytesIO(asset.data))
    assert picture.format == made
    assert picture.size == (1200, 300)  # the aspect kept
    assert asset.name.endswith({"PNG": ".png", "JPEG": ".jpg"}[made])
    assert ("A" in picture.getbands()) == alpha
    assert not picture.getexif() and "exif" not in picture.info


def test_a_narrow_image_keeps_its_size_and_an_animation_its_bytes(workspace_dir: Path) -> None:
    photo(workspace_dir / "campaigns/back-pain/images/small.png", (400, 300), "PNG")
    frames = [Image.new("RGB", (1500, 100), colour) for colour in ((200, 40, 40), (40, 40, 200))]
    animation = workspace_dir / "campaigns/back-pain/images/moving.gif"
    frames[0].save(animation, save_all=True, append_images=frames[1:], duration=200)
    add_image(workspace_dir, "![A small room](images/small.png)\n\n![Moving waves](images/moving.gif)")
    built = build_campaign(with_archive(workspace_dir), "back-pain")
    small, moving = built.rendered.newsletter.assets
    assert Image.open(io.BytesIO(small.data)).size == (400, 300)
    assert moving.data == animation.read_bytes() and moving.name.endswith(".gif")
    assert [f.message for f in built.findings if f.code == "image-width"] == [
        "image 'images/moving.gif' is 1500 px wide, and an animation is sent as it is: make it at most 1200 px wide"]


def test_html_articles_keep_their_own_images_even_with_a_canonical_address(workspace: Workspace,
                                                                              tmp_path: Path) -> None:
    folder = workspace.root / "campaigns" / "html-room"
    photo(folder / "images" / "room.jpg", (800, 600))
    article = folder / "article.html"
    article.write_text('<!doctype html><html><head><title>Our room</title>'
                       '<link rel="canonical" href="https://clinic.example/blog/room"></head><body><article>'
                       "<h1>Our room</h1><p>A few words about the room where we treat you.</p>\n"
                       '<img src="images/room.jpg" alt="The treatment room">\n'
                       '<img src="elsewhere.jpg" alt="A picture on the website">\n'
                       "<p>More words, so that the article has a body worth reading for everyone.</p>"
                       "</article></body></html>", encoding="utf-8")
    read = read_article(article)
    sources = [b.src for b in read.blocks() if hasattr(b, "src")]
    assert sources == ["images/room.jpg", "https://clinic.example/blog/elsewhere.jpg"]
    assert next(b.line for b in read.blocks() if hasattr(b, "src")) == 2


def test_a_missing_or_broken_image_names_the_article_file_and_line(workspace_dir: Path) -> None:
    add_image(workspace_dir, "![Our room](images/missing.jpg)")
    article = workspace_dir / ARTICLE
    line = line_of(article, "images/missing.jpg")
    with pytest.raises(ArticleError) as missing:
        build_campaign(with_archive(workspace_dir), "back-pain")
    assert str(missing.value) == (f"{article}:{line}: image 'images/missing.jpg' not found: no file "
                                  f"{article.parent / 'images/missing.jpg'}")
    broken = article.parent / "images" / "missing.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG")
    with pytest.raises(ArticleError) as unreadable:
        build_campaign(load_workspace(workspace_dir), "back-pain")
    assert str(unreadable.value).startswith(f"{article}:{line}: image 'images/missing.jpg' cannot be read as an image")
    photo(broken, (800, 600))
    broken.write_bytes(broken.read_bytes()[:2000])
    with pytest.raises(ArticleError) as cut:
        build_campaign(load_workspace(workspace_dir), "back-pain")
    assert str(cut.value).startswith(f"{article}:{line}: image 'images/missing.jpg' cannot be read as an image")


def test_images_outside_the_workspace_are_refused(workspace_dir: Path, tmp_path: Path) -> None:
    outside = photo(tmp_path / "private" / "scan.jpg", (300, 200))
    (workspace_dir / "campaigns/back-pain/linked.jpg").symlink_to(outside)
    workspace = with_archive(workspace_dir)
    for path in ("../../../private/scan.jpg", "linked.jpg"):
        text = (workspace_dir / ARTICLE).read_text(encoding="utf-8")
        add_image(workspace_dir, f"![A scan]({path})")
        with pytest.raises(ArticleError, match="is outside the workspace"):
            build_campaign(workspace, "back-pain")
        (workspace_dir / ARTICLE).write_text(text, encoding="utf-8")


def test_front_matter_hero_image_is_local_too_and_its_line_is_known(workspace_dir: Path) -> None:
    edit(workspace_dir / ARTICLE, "image: https://willowcreek-acupuncture.example/images/blog/back-pain-hero.jpg",
         "image: images/missing-hero.jpg")
    with pytest.raises(ArticleError, match=r"article\.md:6: image 'images/missing-hero\.jpg' not found"):
        build_campaign(with_archive(workspace_dir), "back-pain")


def test_without_an_archive_or_embedding_a_local_image_cannot_be_sent(workspace_dir: Path) -> None:
    photo(workspace_dir / "campaigns/back-pain/images/room.jpg", (600, 400))
    add_image(workspace_dir, "![Our quiet treatment room](images/room.jpg)")
    built = build_campaign(load_workspace(workspace_dir), "back-pain")
    (asset,) = built.rendered.newsletter.assets
    assert asset.src == f"assets/{asset.name}"  # what `campaign render` writes beside email.html
    errors = [str(f) for f in built.findings if f.level == "error"]
    line = line_of(workspace_dir / ARTICLE, "images/room.jpg")
    assert errors == [(f"error: article.md:{line}: image 'images/room.jpg' is a file of the article's: set "
                       "[archive] base_url (where `campaign archive` publishes it) or [images] embed = true "
                       "(to attach it) [image-src]")]


def test_embedding_refers_to_images_by_content_id(workspace_dir: Path) -> None:
    photo(workspace_dir / "campaigns/back-pain/images/room.jpg", (600, 400))
    add_image(workspace_dir, "![Our quiet treatment room](images/room.jpg)")
    with (workspace_dir / "campaign.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n[images]\nembed = true\n")
    built = build_campaign(load_workspace(workspace_dir), "back-pain")
    (asset,) = built.rendered.newsletter.assets
    assert asset.src == f"cid:{asset.name}@willowcreek-acupuncture.example"
    assert f'src="{asset.src}"' in built.rendered.html
    assert not [f for f in built.findings if f.level == "error"]


@pytest.mark.parametrize(("embed", "carried"), [
    (False, "readers on phones wait for every one"),
    (True, "attached to every message ([images] embed), they make each one that much heavier"),
])
def test_lint_warns_when_the_images_add_up_to_more_than_a_megabyte(workspace_dir: Path, embed: bool,
                                                                   carried: str) -> None:
    # Noise does not compress: three of these are well over 1 MB even at 1200 px.
    for n in range(3):
        Image.effect_noise((1200, 900), 120).convert("RGB").save(
            workspace_dir / f"campaigns/back-pain/noise{n}.png")
    add_image(workspace_dir, "\n\n".join(f"![Static on a screen {n}](noise{n}.png)" for n in range(3)))
    built = build_campaign(with_archive(workspace_dir, "[images]\nembed = true\n" if embed else ""), "back-pain")
    assets = built.rendered.newsletter.assets
    assert len(assets) == 3 and all(a.src.startswith("cid:" if embed else BASE) for a in assets)
    total = sum(len(a.data) for a in assets) / 1024 / 1024
    assert total > 1
    assert [str(f) for f in built.findings if f.code == "image-size"] == [
        f"warning: email.html: the article's images add up to {total:.1f} MB, even resized; {carried}: "
        "use fewer or smaller pictures [image-size]"]
    # One smaller picture is under the limit.
    for n in (1, 2):
        edit(workspace_dir / ARTICLE, f"![Static on a screen {n}](noise{n}.png)", "")
    Image.effect_noise((600, 400), 120).convert("RGB").save(workspace_dir / "campaigns/back-pain/noise0.png")
    assert not [f for f in build_campaign(load_workspace(workspace_dir), "back-pain").findings if f.code == "image-size"]


def test_lint_warns_on_a_picture_on_the_web_that_says_it_is_wider_than_email_needs(workspace_dir: Path) -> None:
    add_image(workspace_dir, '<img src="https://willowcreek-acupuncture.example/images/hall.jpg" width="2400" '
                             'height="1600" alt="Our waiting hall">\n\n'
                             '<img src="https://willowcreek-acupuncture.example/images/desk.jpg" width="1200" '
                             'alt="The front desk">\n\n'
                             '<img src="https://willowcreek-acupuncture.example/images/tea.jpg" width="100%" '
                             'alt="A cup of tea">')
    built = build_campaign(load_workspace(workspace_dir), "back-pain")
    line = line_of(workspace_dir / ARTICLE, "hall.jpg")
    warned = [f for f in built.findings if f.code == "image-width"]
    assert [str(f) for f in warned] == [
        f"warning: article.md:{line}: image https://willowcreek-acupuncture.example/images/hall.jpg is 2400 px wide "
        "(its width attribute); email shows it at most 600 px wide and readers download all of it: link a copy at "
        "most 1200 px wide, or keep the file beside the article, where it is resized [image-width]"]
    assert warned[0].target == 'img[src^="https://willowcreek-acupuncture.example/images/hall.jpg"]'
    assert not [f for f in built.findings if f.level == "error"]


def test_html_readers_keep_the_width_an_image_declares() -> None:
    # A saved WordPress page, read through trafilatura: its <img width="496"> pictures.
    read = read_article(Path(__file__).parents[1] / "fixtures" / "pages" / "fashion-linen.html")
    widths = {b.src.rsplit("/", 1)[1]: b.width for b in read.blocks() if hasattr(b, "src")}
    assert widths["linen-denim-front.jpg"] == 496 and widths["linen-denim-back.jpg"] == 496


def test_render_writes_the_images_beside_the_email_and_a_copy_that_shows_them(campaign: Campaign) -> None:
    photo(campaign.root / "campaigns/back-pain/images/room.jpg", (1600, 1000))
    add_image(campaign.root, "![Our quiet treatment room](images/room.jpg)")
    with_archive(campaign.root)
    result = campaign("render", "back-pain")
    assert result.exit_code == 0, result.stderr
    out = campaign.root / "out/back-pain"
    (written,) = (out / "assets").iterdir()
    assert Image.open(written).size == (1200, 750)
    assert result.stdout.splitlines() == [str(out / name) for name in (
        "email.mjml", "email.html", "email.txt", "email.local.html", f"assets/{written.name}")]
    assert written.read_bytes() == (campaign.root / STORE / written.name).read_bytes()
    # email.html as readers get it; email.local.html the same email, its picture from assets/ beside it.
    html = (out / "email.html").read_text(encoding="utf-8")
    local = (out / "email.local.html").read_text(encoding="utf-8")
    assert f'src="{BASE}/assets/{written.name}"' in html
    assert local == html.replace(f"{BASE}/assets/{written.name}", f"assets/{written.name}")
    # Without the picture in the article, there is nothing to show locally: no stale copy is left.
    edit(campaign.root / ARTICLE, "![Our quiet treatment room](images/room.jpg)", "")
    assert campaign("render", "back-pain").exit_code == 0
    assert not (out / "email.local.html").exists()


@pytest.mark.parametrize(("src", "local"), [
    ("images/room.jpg", True), ("room%20one.jpg", True), ("../shared/room.jpg", True),
    ("https://x.example/a.jpg", False), ("//x.example/a.jpg", False), ("/images/a.jpg", False),
    ("cid:a@b", False), ("data:image/png;base64,AAAA", False), ("*|photo_url|*", False), ("", False),
])
def test_which_addresses_are_the_articles_own_files(src: str, local: bool) -> None:
    assert is_local(src) is local


def test_a_broken_image_stops_render_and_send_with_one_line_and_nothing_written(campaign: Campaign) -> None:
    room = photo(campaign.root / "campaigns/back-pain/images/room.jpg", (900, 600))
    add_image(campaign.root, "![Our quiet treatment room](images/room.jpg)")
    with_archive(campaign.root)
    assert campaign("render", "back-pain").exit_code == 0
    out = campaign.root / "out" / "back-pain"
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    room.write_bytes(b"GIF89a, or so it says")
    article = campaign.root / ARTICLE
    expected = (f"campaign: error: {article}:{line_of(article, 'images/room.jpg')}: image 'images/room.jpg' cannot be "
                f"read as an image (cannot identify image file '{room}')\n")
    for command in (("render", "back-pain"), ("lint", "back-pain"), ("send", "back-pain", "--yes")):
        result = campaign(*command)
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", expected), command
    assert {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    assert not (campaign.root / "outbox").exists()


def test_a_digest_is_linted_for_the_pictures_it_shows_not_every_one_of_its_articles(workspace_dir: Path) -> None:
    # A digest shows each article's first picture; the second one here is made but never shown.
    folder = workspace_dir / "drafts"
    for name in ("water", "tea"):
        photo(folder / f"{name}-shown.jpg", (2000, 1000))
        photo(folder / f"{name}-hidden.jpg", (3000, 1000))
        (folder / f"{name}.md").write_text(
            f"# All about {name}\n\nA lead paragraph about {name}, long enough to say something.\n\n"
            f"![A picture of {name}]({name}-shown.jpg)\n\nMore words about {name}.\n\n"
            f"![Another picture of {name}]({name}-hidden.jpg)\n", encoding="utf-8")
    workspace = with_archive(workspace_dir)
    new_campaign(workspace, "digest", [folder / "water.md", folder / "tea.md"], "Water and tea this season")
    built = build_campaign(workspace, "digest")
    assert built.settings.template == "digest"
    assert [f.message for f in built.findings if f.code == "image-width"] == [
        f"image '{name}-shown.jpg' is 2000 px wide; it is resized to 1200 px (twice the 600 px column) for email"
        for name in ("water", "tea")]


def test_new_copies_the_pictures_an_article_shows_with_it(campaign: Campaign, tmp_path: Path) -> None:
    blog = tmp_path / "blog"
    room = photo(blog / "images" / "room.jpg", (1600, 1000))
    photo(blog / "unrelated.jpg", (300, 200))
    photo(tmp_path / "elsewhere.jpg", (300, 200))
    (blog / "room.md").write_text("# Our new treatment room\n\nWe moved, and the new room is quieter than ever.\n\n"
                                  "![Our quiet treatment room](images/room.jpg)\n\n"
                                  "![A picture from elsewhere](../elsewhere.jpg)\n", encoding="utf-8")
    with_archive(campaign.root)
    result = campaign("new", "room", "--article", str(blog / "room.md"))
    assert result.exit_code == 0, result.stderr
    folder = campaign.root / "campaigns" / "room"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "images/room.jpg", "room.md", "settings.toml"]
    assert (folder / "images" / "room.jpg").read_bytes() == room.read_bytes()
    # The one named out of the article's folder stays where it is; building says so, with its line.
    rendered = campaign("render", "room")
    assert (rendered.exit_code, rendered.stderr) == (1, f"campaign: error: {folder / 'room.md'}:7: image "
                                                        f"'../elsewhere.jpg' not found: no file {folder}/../"
                                                        "elsewhere.jpg\n")
    edit(folder / "room.md", "![A picture from elsewhere](../elsewhere.jpg)\n", "")
    assert campaign("render", "room").exit_code == 0
