#!/usr/bin/env python3
"""Build the sample catalog images and the recognition query set from their sources.

The textures come from three Debian 12 packages and one scikit-image wheel, listed with
their versions, checksums and licences in SOURCES.md next to this script. The script
downloads nothing. Fetch and unpack the sources first:

    apt-get download ufoai-textures=2.5-2 supertuxkart-data=1.4+dfsg-2 \\
        libreoffice-common=4:7.4.7-1+deb12u12
    dpkg-deb -x ufoai-textures_2.5-2_all.deb ufoai
    dpkg-deb -x supertuxkart-data_1.4+dfsg-2_all.deb stk
    dpkg-deb -x libreoffice-common_*_all.deb libreoffice
    python3 -m pip download --no-deps --only-binary=:all: scikit-image==0.26.0 -d wheels

Then, from the repository root:

    python examples/catalog/make_sample_catalog.py --ufoai ufoai --supertuxkart stk \\
        --libreoffice libreoffice --skimage wheels/scikit_image-0.26.0-*.whl

The script reads the UFO:AI textures from the `0textures.pk3` archive and the
LibreOffice pictures from the `standard.sob` archive inside the unpacked packages. It
checks each source file against its SHA-256 below, so a newer package revision with
changed files stops the script with an error. It rewrites, under examples/:

- catalog/images/<id>.jpg for every catalog texture,
- queries/heldout-<slug>.jpg for the textures kept out of the catalog,
- queries/altered-<id>.jpg, a cropped, rotated, re-toned and blurred or recompressed copy
  of a catalog texture,
- queries/expected.json, the material class of every query file.

Every output is scaled with Lanczos resampling so that its longer side is at most
MAX_SIDE pixels (smaller sources are not enlarged) and saved as RGB JPEG at quality 90.
The alterations draw from a random generator seeded per file, so a rerun with the same
Pillow version writes the same images. catalog.json is written by hand. The script only
checks that its records match the catalog textures listed here.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import random
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter

MAX_SIDE = 256
JPEG_QUALITY = 90
# Colour that transparent pixels are flattened onto. A few rug textures have transparent
# fringes around their outline.
BACKGROUND_RGB = (128, 128, 128)
# Base of the per-file seeds for the altered copies. Changing it changes every altered copy.
ALTER_SEED = 20240601

EXAMPLES_DIR = Path(__file__).resolve().parent.parent
CATALOG_DIR = EXAMPLES_DIR / "catalog"
QUERIES_DIR = EXAMPLES_DIR / "queries"

# Archive or folder of each source, relative to the folder given on the command line.
UFOAI_PK3 = "usr/share/games/ufoai/base/0textures.pk3"
STK_DATA = "usr/share/games/supertuxkart/data"
LIBREOFFICE_SOB = "usr/lib/libreoffice/share/palette/standard.sob"


@dataclass(frozen=True)
class Texture:
    """One source texture and where its output goes."""

    slug: str  # catalog id, or the slug of a held-out query
    material: str
    source: str  # "ufoai", "supertuxkart", "libreoffice" or "skimage"
    member: str  # path inside the source archive or data folder
    sha256: str
    role: str  # "catalog" or "heldout"
    crop: tuple[int, int, int, int] | None = None  # (left, top, right, bottom) in source pixels


def catalog(slug, material, source, member, sha256, crop=None):
    return Texture(slug, material, source, member, sha256, "catalog", crop)


def heldout(slug, material, source, member, sha256, crop=None):
    return Texture(slug, material, source, member, sha256, "heldout", crop)


TEXTURES = [
    # wood
    catalog("red-brown-plank-floor", "wood", "ufoai", "textures/tex_buildings/floor_wood01.png",
            "a11639abf30f037e15f45e9812544e978df599c04258d27c9b68093cac2cbc6b"),
    catalog("dark-knotty-boards", "wood", "ufoai", "textures/tex_material/wood003.png",
            "77590ec2d183dddf75990881059a62af9bfae7d1f02bbbbc7e302c351d1892ba"),
    catalog("olive-stained-planks", "wood", "supertuxkart", "textures/wood_planks1.jpg",
            "b9a613c139fb99cb1edf547fb115ec637842b060de6642f738163f48e58e777e"),
    catalog("rough-brown-planks", "wood", "supertuxkart", "textures/woodBridge.jpg",
            "f7a2ca891a7fee96b01febd4e4acbcaf513b1b9c55a6ca6f45a397ee70a1e892"),
    catalog("pale-pine-fence-boards", "wood", "libreoffice", "Pictures/fence.jpg",
            "c2e5a432adc430a243f553086d1fad61fa0333dc6cfbd42bd0ddf0256dfb82e0"),
    catalog("red-painted-boards", "wood", "supertuxkart", "textures/JapanwoodBridge.jpg",
            "0cd599745592ddff5c7e75ca6600fd2c06a5b376545165c82c9b333d87ba19c4"),
    heldout("weathered-plank", "wood", "supertuxkart", "textures/oldWood.png",
            "c587f21079aa0f062f6ec477a2b4de95c2d883ff725005b340415b93248fa2ea"),
    heldout("dark-brown-planks", "wood", "ufoai", "textures/tex_material/wood001.png",
            "dfe6654a0ec7fdd6c774beabc3766737b0ef75e4ffd86ab90186a8c10dd5246f"),
    # metal
    catalog("riveted-steel-panels", "metal", "ufoai", "textures/tex_buildings/metal01.png",
            "b2d61dca4117e00f91e78bbae24e7c389a55817306d8292f3106d91b347aa6d1"),
    catalog("perforated-steel-sheet", "metal", "ufoai", "textures/tex_buildings/metal02.png",
            "2c1903675788a6faf9c85cc0025414810fea94514b4fbde25abc4d4a5d812638"),
    catalog("rust-stained-steel-plate", "metal", "ufoai", "textures/tex_material/metall006.jpg",
            "b4821a91477c79705e8d60af015ac38a14c825d2a5d7c682375a65af0234750a"),
    catalog("grey-sheet-metal", "metal", "supertuxkart",
            "tracks/stk_enterprise/bomber_metal1b.jpg",
            "de2fb3999747516c3a60f25aba56f63b0bb3c4966892b9d596a72b39709d3bdb"),
    heldout("rusted-metal-sheet", "metal", "supertuxkart", "tracks/endcutscene/metal.jpg",
            "7ce07fdac41f5b87d4c4aa1a02ff6b979866832e6dec1d298d2c791c910bae8b"),
    # stone
    catalog("grey-speckled-granite", "stone", "supertuxkart", "textures/Tizeta_grey1.png",
            "9ceed5232d3ddc807d733d91476bbe269336630b2774e62f33a40d8fa075d155"),
    catalog("grey-fieldstone-wall", "stone", "supertuxkart", "textures/rockwall.jpg",
            "83451beb6cef0ddc79d0448da97796299224dfa1a2e35cc4476459fa19218c2a"),
    catalog("pale-layered-stone-wall", "stone", "supertuxkart", "textures/hacienda_ground.jpg",
            "7c6015fc0a0e699a60b4761596ca9e3cd9f5bb0ff376ba226320f131628c13e6"),
    catalog("dark-slate-drystone-wall", "stone", "libreoffice", "Pictures/rock-wall.jpg",
            "b2a38bd5e813eb4f80cb8cedac6e81d7cbbdd7160c5b62db391b300cf6f1b833"),
    catalog("rust-veined-rock-face", "stone", "ufoai", "textures/tex_nature/rock017.png",
            "0d719bb1e16581544c3c139fd1445c6ecc9103a640d3555ef27ffb1ee31e7d2e"),
    catalog("dark-layered-rock", "stone", "ufoai", "textures/tex_nature/stone001.png",
            "dbaffa4bb9679efa87407b03f89402eed56ba6cc3a2e22032904a3888883cf00"),
    heldout("cracked-grey-rock", "stone", "ufoai", "textures/tex_nature/rock018.png",
            "10a63f0bbd739d46a6a50fa9fd0d7be883b820b264402130694ccf5ed4b08872"),
    heldout("mottled-grey-rock", "stone", "supertuxkart", "textures/rock_mountain.jpg",
            "8ad7104e51258d037720be29ebf85d19e8487506e7f1e478ed95b72ceeba061d"),
    # tile
    catalog("veined-marble-mosaic-tiles", "tile", "ufoai", "textures/tex_buildings/tile01.png",
            "145d61ae68327d7e55aeab97e8dd8d1961f3ac70d1a1b8251ab98ad57280d44b"),
    catalog("grey-stone-square-tiles", "tile", "ufoai", "textures/tex_buildings/tile02.png",
            "2b4a3285088cb5f6456f837e3ef05bb607ab9aa3ee4e584bf2e76c656918e2a3"),
    catalog("lime-green-glazed-tiles", "tile", "ufoai", "textures/tex_buildings/tile03.png",
            "e27f9e8c5c1dab6bf76b7201acb03c99ce481874edca9b6f8e96c8a23880edb3"),
    catalog("beige-crazy-paving", "tile", "ufoai", "textures/tex_buildings/paving001.png",
            "c322a165536c58342b1fcf5a5d2084397d5a4bff5cbc3ad62ea41a6d3241b8cd"),
    # carpet
    catalog("red-prayer-rug", "carpet", "ufoai", "textures/tex_buildings/carpet009.png",
            "ea386ec912569003da8707e618391b425dc4e7601a35bf4b893592ab92632ba6"),
    catalog("dark-floral-tapestry-rug", "carpet", "ufoai", "textures/tex_buildings/carpet010.png",
            "5a8ffce5fc1cd26bf2003a7dbc873b56cad75339fd0cf5550bc1e8f9c5f5db91"),
    catalog("orange-medallion-rug", "carpet", "ufoai", "textures/tex_buildings/carpet012.png",
            "c4c73ee2048321f178c590a9a546aeea0cdf9a8199a48b488ed9b38e1f49364e"),
    catalog("red-persian-medallion-rug", "carpet", "ufoai", "textures/tex_buildings/carpet018.png",
            "18684c82c124c13a29cedb5c6c2d8f1cd932e1c5a75a83fa4c632d801d20e32e"),
    catalog("scrolling-leaf-carpet", "carpet", "ufoai", "textures/tex_buildings/carpet025.png",
            "9ffe5fef7158b4cbd79f57e8aaed19f17ef7df3d10c81daab923be2ece0b0839"),
    catalog("red-gold-runner-rug", "carpet", "supertuxkart", "tracks/endcutscene/carpet.jpg",
            "32096602269dd4b7ed9a8c3e7890b58e705a8b5da93c8a194c3b29e78a3c0375"),
    heldout("yellow-pictorial-rug", "carpet", "ufoai", "textures/tex_buildings/carpet011.png",
            "3dfbc4076981da3e24f1bfa2388f20f694c933f3abbefa48e31442c4d2c79702"),
    heldout("blue-field-rug", "carpet", "ufoai", "textures/tex_buildings/carpet021.png",
            "ea93648a9081945f7fc29f59627781c44b2243ca95e748e7882fcb8977172867"),
    # brick
    catalog("grey-mossy-brick", "brick", "ufoai", "textures/tex_trak/trak4_brick1.png",
            "1776e22dc1542142f597e638fa9f1ffd28d671c19a8b168fcd6b0b0e38569044"),
    catalog("dark-red-brick", "brick", "ufoai", "textures/tex_trak/trak4_brick2.png",
            "00ca7ab5fa9c81350380e6cec3110617d53eefbf36cf9d99eaf4b2be2c0e840b"),
    catalog("red-brick-white-mortar", "brick", "ufoai", "textures/tex_trak/trak4_brick2a.png",
            "d9fa3b2641c1c6ad403106a5c43cd8f3bf31412a5736779040ff96a4141d7702"),
    catalog("grey-washed-brick", "brick", "ufoai", "textures/tex_trak/trak4_brick2b.png",
            "ef69b6765abea7cec1d1f1536e5bedf2fbd3e79cd640b730cac32822958ccaae"),
    catalog("grey-rough-block-brick", "brick", "supertuxkart",
            "tracks/ancient_colosseum_labyrinth/3td_BrickOldRound_01.jpg",
            "69a9a087323fea4020712cfab9c818bcf01962b7e2d2476c9c557070873a280b"),
    # The test fixture kai-core/tests/fixtures/photos/brick.png is this whole file, so the
    # query uses only its lower-right part.
    heldout("grey-brick-wall", "brick", "skimage", "skimage/data/brick.png",
            "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf",
            crop=(160, 160, 512, 512)),
    # concrete
    catalog("grey-weathered-concrete", "concrete", "ufoai",
            "textures/tex_trak/trak4_concrete1a.png",
            "4942b1f328fc171809c62896e729d1af8c56a5e2315881ac838a4b8a92924feb"),
    catalog("mottled-grey-concrete", "concrete", "ufoai", "textures/tex_trak/trak4_concrete2a.png",
            "ec571d39182b1040221c585d4caa60a97e87e7542dcd763fc653dd490abcfaa8"),
    catalog("cracked-concrete-slabs", "concrete", "ufoai",
            "textures/tex_trak/trak4_concrete4a.png",
            "f9f7001de627b6b97247af09e1d36750b49aafdff76b80cc539cf40e3627343e"),
    catalog("light-grey-concrete", "concrete", "ufoai", "textures/tex_trak/trak4_concrete5a.png",
            "58ace9818d498003702c2510601e5c8fe2ee02b0deaee66a1be3964e8412ac83"),
    catalog("pale-smooth-concrete", "concrete", "libreoffice", "Pictures/concrete.jpg",
            "f445f7ddb769643d42c22907b8e21b7747d65b3e2f56025d496fe6a33f238fc7"),
    heldout("rust-stained-concrete", "concrete", "ufoai", "textures/tex_trak/trak4_concrete1b.png",
            "3f67cbade7354cd4116498f255991f90cdb103fd878260b02c987c490b73bf48"),
    heldout("streaked-concrete-wall", "concrete", "ufoai",
            "textures/tex_trak/trak4_concrete4b.png",
            "d5d5ce31d2ccad9a21f3038725b3ea0424e8b972da55e1046bf02fd394e2ef4a"),
    # plaster
    catalog("grey-plaster-green-dado", "plaster", "ufoai", "textures/tex_trak/trak4_plaster3b.png",
            "595204dd50dccbd84a2b7a1d6f520131c7c8cc39d89e94ed252743166dea5462"),
    catalog("stained-plaster-red-dado", "plaster", "ufoai",
            "textures/tex_trak/trak4_plaster3c-3.png",
            "3cf4564b41cb97ff36cc3ac8d096dd03c01c830b334d3ae7f6ba65453f24cddb"),
    catalog("white-textured-plaster", "plaster", "libreoffice", "Pictures/painted-white.jpg",
            "bf70c989499a1427fbd601f39bb0261e6298658c723facaed975c8c777d1e06e"),
    # The bottom of this texture is a stone plinth, so only the rendered wall above it is used.
    catalog("grey-cement-render", "plaster", "supertuxkart", "textures/cottage_wall3.jpg",
            "95ac0f0369288caa99905c699d1bea5661807e99e0e5dea46f3ae589b3a93a0e",
            crop=(0, 0, 256, 380)),
    # gravel
    catalog("fine-dark-grit", "gravel", "ufoai", "textures/tex_buildings/floor005.png",
            "dacfd5410d8b96dc2de559d4ecb88c8fe151d186ff8e429544faefedcb418c40"),
    catalog("grey-crushed-stone-ballast", "gravel", "ufoai", "textures/tex_nature/railway.png",
            "88eb90df0ecf7c9d5ecc460d84c97536e34e34cc3ca976b906f484781b312728"),
    catalog("beach-pebbles", "gravel", "libreoffice", "Pictures/stones.jpg",
            "4bb84b62dee94f014a2eb26673dd61eccbd0367b877105c2af4f0d9832cda3c1"),
    catalog("grey-gravel", "gravel", "skimage", "skimage/data/gravel.png",
            "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12"),
]

# Catalog ids that also get an altered copy among the queries, at least one per class.
ALTERED_IDS = [
    "red-brown-plank-floor",
    "olive-stained-planks",
    "perforated-steel-sheet",
    "grey-fieldstone-wall",
    "lime-green-glazed-tiles",
    "red-persian-medallion-rug",
    "red-brick-white-mortar",
    "pale-smooth-concrete",
    "grey-plaster-green-dado",
    "grey-crushed-stone-ballast",
]


class SourceReader:
    """Reads texture files from the unpacked packages and the wheel."""

    def __init__(self, ufoai: Path, supertuxkart: Path, libreoffice: Path, skimage: Path):
        self._ufoai = _open_zip(ufoai / UFOAI_PK3)
        self._stk_data = supertuxkart / STK_DATA
        if not self._stk_data.is_dir():
            sys.exit(f"error: folder not found: {self._stk_data}; check --supertuxkart")
        if not skimage.exists():
            sys.exit(f"error: {skimage} not found; check --skimage")
        self._libreoffice = _open_zip(libreoffice / LIBREOFFICE_SOB)
        # The wheel is a zip file. An unpacked wheel is a folder that contains skimage/.
        self._skimage_zip = _open_zip(skimage) if skimage.is_file() else None
        self._skimage_dir = skimage

    def read(self, texture: Texture) -> bytes:
        if texture.source == "ufoai":
            return self._ufoai.read(texture.member)
        if texture.source == "libreoffice":
            return self._libreoffice.read(texture.member)
        if texture.source == "supertuxkart":
            return (self._stk_data / texture.member).read_bytes()
        if texture.source == "skimage":
            if self._skimage_zip is not None:
                return self._skimage_zip.read(texture.member)
            return (self._skimage_dir / texture.member).read_bytes()
        raise ValueError(f"unknown source {texture.source!r} for texture {texture.slug!r}")


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        sys.exit(f"error: archive not found: {path}; check the folder given on the command line")
    return zipfile.ZipFile(path)


def load_texture(reader: SourceReader, texture: Texture) -> Image.Image:
    """Read, verify and decode one source texture as an RGB image, cropped if requested."""
    data = reader.read(texture)
    digest = hashlib.sha256(data).hexdigest()
    if digest != texture.sha256:
        sys.exit(
            f"error: {texture.source} file {texture.member} has SHA-256 {digest}, expected "
            f"{texture.sha256}; use the package versions named in SOURCES.md"
        )
    image = Image.open(io.BytesIO(data))
    image = flatten_to_rgb(image)
    if texture.crop is not None:
        image = image.crop(texture.crop)
    return image


def flatten_to_rgb(image: Image.Image) -> Image.Image:
    """Convert to RGB, compositing any transparent pixels onto BACKGROUND_RGB."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, BACKGROUND_RGB + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def downscale(image: Image.Image) -> Image.Image:
    """Scale so that the longer side is MAX_SIDE pixels. Smaller images are returned unchanged."""
    longer = max(image.size)
    if longer <= MAX_SIDE:
        return image
    scale = MAX_SIDE / longer
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def save_jpeg(image: Image.Image, path: Path) -> None:
    image.save(path, "JPEG", quality=JPEG_QUALITY)


def rotate_and_trim(image: Image.Image, degrees: float) -> Image.Image:
    """Rotate by a small angle and crop to the largest centred rectangle of the same aspect
    ratio that contains no pixels from outside the original."""
    rotated = image.rotate(degrees, resample=Image.Resampling.BICUBIC)
    radians = math.radians(abs(degrees))
    cos, sin = math.cos(radians), math.sin(radians)
    width, height = image.size
    scale = min(width / (width * cos + height * sin), height / (width * sin + height * cos))
    new_width, new_height = int(width * scale), int(height * scale)
    left = (width - new_width) // 2
    top = (height - new_height) // 2
    return rotated.crop((left, top, left + new_width, top + new_height))


def alter(image: Image.Image, seed: int) -> tuple[Image.Image, str]:
    """Make a query copy of a catalog texture and describe the changes made.

    The copy is a random crop of 60-80 % of each side, rotated by 90, 180 or 270 degrees
    or by 3-10 degrees either way, and downscaled. Its brightness and contrast then change
    by up to 25 %, and it gets either a Gaussian blur or a JPEG round trip at quality 35-55.
    """
    rng = random.Random(seed)
    steps = []

    fraction = rng.uniform(0.6, 0.8)
    crop_width, crop_height = int(image.width * fraction), int(image.height * fraction)
    left = rng.randint(0, image.width - crop_width)
    top = rng.randint(0, image.height - crop_height)
    image = image.crop((left, top, left + crop_width, top + crop_height))
    steps.append(f"crop {crop_width}x{crop_height} at ({left}, {top})")

    rotation = rng.choice(["90", "180", "270", "small"])
    if rotation == "small":
        degrees = rng.uniform(3.0, 10.0) * rng.choice([-1, 1])
        image = rotate_and_trim(image, degrees)
        steps.append(f"rotate {degrees:.1f} degrees and trim the corners")
    else:
        transpose = {
            "90": Image.Transpose.ROTATE_90,
            "180": Image.Transpose.ROTATE_180,
            "270": Image.Transpose.ROTATE_270,
        }[rotation]
        image = image.transpose(transpose)
        steps.append(f"rotate {rotation} degrees")

    image = downscale(image)

    brightness = rng.uniform(0.75, 1.25)
    contrast = rng.uniform(0.75, 1.25)
    image = ImageEnhance.Brightness(image).enhance(brightness)
    image = ImageEnhance.Contrast(image).enhance(contrast)
    steps.append(f"brightness x{brightness:.2f}, contrast x{contrast:.2f}")

    if rng.random() < 0.5:
        radius = rng.uniform(0.6, 1.2)
        image = image.filter(ImageFilter.GaussianBlur(radius))
        steps.append(f"Gaussian blur radius {radius:.2f}")
    else:
        quality = rng.randint(35, 55)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        steps.append(f"JPEG round trip at quality {quality}")

    return image, "; ".join(steps)


def check_catalog_json(catalog_textures: list[Texture]) -> list[str]:
    """Compare the hand-written catalog.json with the catalog textures and list mismatches."""
    path = CATALOG_DIR / "catalog.json"
    if not path.is_file():
        return [f"{path} is missing"]
    records = {record["id"]: record for record in json.loads(path.read_text(encoding="utf-8"))}
    problems = []
    for texture in catalog_textures:
        record = records.pop(texture.slug, None)
        if record is None:
            problems.append(f"catalog.json has no record with id {texture.slug!r}")
            continue
        if record.get("materialType") != texture.material:
            problems.append(
                f"record {texture.slug!r} has materialType {record.get('materialType')!r}, "
                f"expected {texture.material!r}"
            )
        if record.get("images") != [f"images/{texture.slug}.jpg"]:
            problems.append(f"record {texture.slug!r} has images {record.get('images')!r}")
    for extra in records:
        problems.append(f"catalog.json record {extra!r} has no texture in this script")
    return problems


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ufoai", type=Path, required=True,
                        help="folder that ufoai-textures_2.5-2_all.deb was unpacked into")
    parser.add_argument("--supertuxkart", type=Path, required=True,
                        help="folder that supertuxkart-data_1.4+dfsg-2_all.deb was unpacked into")
    parser.add_argument(
        "--libreoffice",
        type=Path,
        required=True,
        help="folder that libreoffice-common_4%%3a7.4.7-1+deb12u12_all.deb was unpacked into",
    )
    parser.add_argument(
        "--skimage",
        type=Path,
        required=True,
        help="the scikit-image 0.26.0 wheel file, or the folder it was unpacked into",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    reader = SourceReader(args.ufoai, args.supertuxkart, args.libreoffice, args.skimage)

    slugs = [texture.slug for texture in TEXTURES]
    duplicates = {slug for slug in slugs if slugs.count(slug) > 1}
    if duplicates:
        sys.exit(f"error: duplicate texture slugs: {sorted(duplicates)}")

    catalog_slugs = {texture.slug for texture in TEXTURES if texture.role == "catalog"}
    for slug in ALTERED_IDS:
        if slug not in catalog_slugs:
            sys.exit(f"error: altered id {slug!r} is not a catalog texture")

    # Read and verify every source before touching the outputs, so that a missing or
    # changed source file leaves the committed images as they were.
    images = {texture.slug: load_texture(reader, texture) for texture in TEXTURES}

    images_dir = CATALOG_DIR / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    QUERIES_DIR.mkdir(parents=True, exist_ok=True)
    # Remove earlier outputs so that a texture dropped from the table leaves no file behind.
    for old in list(images_dir.glob("*.jpg")) + list(QUERIES_DIR.glob("*.jpg")):
        old.unlink()

    expected = []
    for texture in TEXTURES:
        image = images[texture.slug]
        if texture.role == "catalog":
            save_jpeg(downscale(image), images_dir / f"{texture.slug}.jpg")
        else:
            name = f"heldout-{texture.slug}.jpg"
            save_jpeg(downscale(image), QUERIES_DIR / name)
            expected.append({"file": name, "materialType": texture.material, "sourceId": None})

    materials = {texture.slug: texture.material for texture in TEXTURES}
    for slug in ALTERED_IDS:
        seed = ALTER_SEED + zlib.crc32(slug.encode("utf-8"))
        image, steps = alter(images[slug], seed)
        name = f"altered-{slug}.jpg"
        save_jpeg(image, QUERIES_DIR / name)
        expected.append({"file": name, "materialType": materials[slug], "sourceId": slug})
        print(f"{name}: {steps}")

    expected.sort(key=lambda entry: entry["file"])
    expected_path = QUERIES_DIR / "expected.json"
    expected_path.write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")

    catalog_textures = [texture for texture in TEXTURES if texture.role == "catalog"]
    print(f"wrote {len(catalog_textures)} catalog images and {len(expected)} query images")
    problems = check_catalog_json(catalog_textures)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
