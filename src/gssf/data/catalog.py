"""The registered datasets (names accepted by :func:`gssf.data.load`)."""
from __future__ import annotations

from gssf.data.registry import CROSS_MODAL, UNI_MODAL, DatasetInfo, register_dataset

_TVT = ("train", "val", "test")
_DML = ("train", "test")
_REID = ("train", "query", "gallery")

CATALOG = (
    # ---- embedded: installed by `gssf data prepare`
    DatasetInfo(
        "tux", CROSS_MODAL, "image-text", _TVT,
        "Tux Paint stamps: real image <-> English caption pairs (792 without letters)",
        "gssf.data.tux:load_tux", prepare="tux", licence="GPL-2.0 (Debian tuxpaint-stamps-default)",
    ),
    DatasetInfo(
        "emoji", CROSS_MODAL, "image-text", _TVT,
        "Google emoji image <-> 'CLDR name: keywords' caption, identity-disjoint",
        "gssf.data.emoji:load_emoji_captions", prepare="emoji", licence="Apache-2.0 (Noto images), CC-BY-SA-4.0 (OpenMoji annotations)",
    ),
    DatasetInfo(
        "emoji-reid", UNI_MODAL, "re-id",
        ("train", "val", "test", "query", "gallery", "val-query", "val-gallery"),
        "emoji identities x vendor cameras (Google query, Twitter + OpenMoji gallery)",
        "gssf.data.emoji:load_emoji_reid", prepare="emoji", licence="Apache-2.0, CC-BY-4.0, CC-BY-SA-4.0",
        split_aliases=(("test-query", "query"), ("test-gallery", "gallery")),
    ),
    DatasetInfo(
        "emoji-fine-grained", UNI_MODAL, "fine-grained", _TVT,
        "emoji as classes with three vendor views each, class-disjoint (SOP-like)",
        "gssf.data.emoji:load_emoji_fine_grained", prepare="emoji", licence="Apache-2.0, CC-BY-4.0, CC-BY-SA-4.0",
    ),
    DatasetInfo(
        "fashion-mnist", UNI_MODAL, "fine-grained", _TVT,
        "Fashion-MNIST, class-disjoint: classes 0-4 train/val, 5-9 test",
        "gssf.data.fashion_mnist:load_fashion_mnist", prepare="fashion-mnist", licence="MIT",
    ),
    DatasetInfo(
        "emoji-styles", UNI_MODAL, "re-id", ("train", "val", "test", "query", "gallery", "val-query", "val-gallery"),
        "emoji identities x 9 Iconify styles as cameras (query: one style, gallery: the others)",
        "gssf.data.iconify:load_emoji_styles", prepare="emoji-styles", licence="CC-BY-4.0, Apache-2.0, MIT",
        split_aliases=(("test-query", "query"), ("test-gallery", "gallery")),
    ),
    DatasetInfo(
        "emoji-styles-sa", UNI_MODAL, "re-id", ("train", "val", "test", "query", "gallery", "val-query", "val-gallery"),
        "emoji-styles with all 11 styles, adding the share-alike openmoji and emojione-v1",
        "gssf.data.iconify:load_emoji_styles_share_alike", prepare="emoji-styles-sa",
        licence="CC-BY-4.0, Apache-2.0, MIT, CC-BY-SA-4.0 (openmoji, emojione-v1)",
        split_aliases=(("test-query", "query"), ("test-gallery", "gallery")),
    ),
    DatasetInfo(
        "wesnoth", UNI_MODAL, "fine-grained", _TVT,
        "Battle for Wesnoth unit sprites, class = unit type (>= 5 frames), class-disjoint; English descriptions",
        "gssf.data.wesnoth:load_wesnoth", prepare="wesnoth", licence="GPL-2+ (Debian wesnoth-1.16-data)",
    ),
    DatasetInfo(
        "wesnoth-descriptions", CROSS_MODAL, "image-text", _TVT,
        "Wesnoth unit descriptions <-> sprite frames (one description, ~12 frames per unit), class-disjoint",
        "gssf.data.wesnoth:load_wesnoth_descriptions", prepare="wesnoth", licence="GPL-2+ (Debian wesnoth-1.16-data)",
    ),
    DatasetInfo(
        "wesnoth-descriptions-multilingual", CROSS_MODAL, "image-text", _TVT,
        "wesnoth-descriptions with each description's translations (English + up to 34 languages per unit)",
        "gssf.data.wesnoth:load_wesnoth_descriptions_multilingual", prepare="wesnoth",
        licence="GPL-2+ (Debian wesnoth-1.16-data)",
    ),
    DatasetInfo(
        "emoji-captions", CROSS_MODAL, "image-text", _TVT,
        "emoji-styles images <-> emojibase 'label: tags' captions (one caption, up to 9 styles per emoji; 28 locales)",
        "gssf.data.emoji_captions:load_emoji_captions", prepare="emoji-captions",
        licence="MIT (emojibase-data captions); images as emoji-styles",
    ),
    DatasetInfo(
        "emoji-captions-multilingual", CROSS_MODAL, "image-text", _TVT,
        "emoji-captions with the captions of all 28 locales (up to 28 captions, 9 styles per emoji)",
        "gssf.data.emoji_captions:load_emoji_captions_multilingual", prepare="emoji-captions",
        licence="MIT (emojibase-data captions); images as emoji-styles",
    ),
    # ---- standard benchmarks the user brings (root=...)
    DatasetInfo(
        "flickr30k", CROSS_MODAL, "image-text", _TVT, "Flickr30K, Karpathy split JSON",
        "gssf.data.karpathy:load_flickr30k",
        layout="ROOT/dataset_flickr30k.json, ROOT/flickr30k-images/<filename>", licence="Flickr terms; research use",
        split_aliases=(("dev", "val"),),
    ),
    DatasetInfo(
        "coco", CROSS_MODAL, "image-text", _TVT, "MS-COCO, Karpathy split JSON (restval joins train)",
        "gssf.data.karpathy:load_coco",
        layout="ROOT/dataset_coco.json, ROOT/train2014/, ROOT/val2014/", licence="CC-BY-4.0 annotations; Flickr terms",
        split_aliases=(("dev", "val"),),
    ),
    DatasetInfo(
        "precomp", CROSS_MODAL, "image-text", ("train", "dev", "test", "testall"),
        "SCAN/VSE precomputed image features + captions (used as they are)",
        "gssf.data.precomputed:load_precomp",
        layout="ROOT/{split}_ims.npy ([N,D] or [N,regions,D]), ROOT/{split}_caps.txt, optional ROOT/{split}_ids.txt",
        split_aliases=(("val", "dev"),),
    ),
    DatasetInfo(
        "captions-jsonl", CROSS_MODAL, "image-text", _TVT,
        "generic captions.jsonl: one {image, caption, split} per line",
        "gssf.data.karpathy:load_captions_jsonl",
        layout='ROOT/captions.jsonl ({"image": "rel/path", "caption": "...", "split": "..."} per line), images under ROOT',
    ),
    DatasetInfo(
        "market1501", UNI_MODAL, "re-id", _REID, "Market-1501 person re-ID (junk dropped, distractors in gallery)",
        "gssf.data.reid:load_market1501",
        layout="ROOT/bounding_box_train/, ROOT/query/, ROOT/bounding_box_test/ (PPPP_cCsS_FFFFFF_BB.jpg)",
        split_aliases=(("test", "gallery"),),
    ),
    DatasetInfo(
        "dukemtmc", UNI_MODAL, "re-id", _REID, "DukeMTMC-reID person re-ID",
        "gssf.data.reid:load_dukemtmc",
        layout="ROOT/bounding_box_train/, ROOT/query/, ROOT/bounding_box_test/ (PPPP_cC_fFFFFFFF.jpg)",
        split_aliases=(("test", "gallery"),),
    ),
    DatasetInfo(
        "cub", UNI_MODAL, "fine-grained", _DML, "CUB-200-2011 birds, classes 1-100 / 101-200",
        "gssf.data.fine_grained:load_cub",
        layout="ROOT/images.txt, ROOT/image_class_labels.txt, ROOT/images/",
    ),
    DatasetInfo(
        "cars196", UNI_MODAL, "fine-grained", _DML, "Cars196, classes 1-98 / 99-196",
        "gssf.data.fine_grained:load_cars196",
        layout="ROOT/cars_annos.mat, ROOT/car_ims/",
    ),
    DatasetInfo(
        "sop", UNI_MODAL, "fine-grained", _DML, "Stanford Online Products, Ebay_train.txt / Ebay_test.txt",
        "gssf.data.fine_grained:load_sop",
        layout="ROOT/Ebay_train.txt, ROOT/Ebay_test.txt, ROOT/<class folder>/<file>.JPG",
    ),
    DatasetInfo(
        "features", CROSS_MODAL, "features", _TVT,
        "your own features.npz (image, text, txt2img or image, labels, cams), used as they are",
        "gssf.data.precomputed:load_user_features",
        layout="ROOT/{split}/features.npz or ROOT/features_{split}.npz (ROOT/features.npz: test)",
    ),
)  # fmt: skip

for _info in CATALOG:
    register_dataset(_info)
