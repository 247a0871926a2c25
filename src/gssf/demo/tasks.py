"""The demo's tasks: each a preset, the members compared on it and the setting it measures.

:mod:`gssf.demo.run` trains and reports them; :mod:`gssf.demo.publish` reads their settings.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

__all__ = ["DemoTask", "DEMO_TASKS", "DEFAULT_MEMBERS", "DEFAULT_TASKS", "DEFAULT_SEEDS", "register_demo_task"]


@dataclass(frozen=True)
class DemoTask:
    """A task of the demo: a preset and the similarities compared on it.

    ``setting`` names what learns besides the similarity (``summary.json``'s field): ``head``
    (trainable heads), ``frozen`` (nothing: the similarity learns on fixed features). With
    ``heads_from``, every seed's run first loads the towers of that demo task's cosine run of
    the same seed (trained first when missing), and its preset keeps them fixed. With
    ``teacher`` (a preset), every seed's run distils from that preset's run of the same seed
    (``distill.teacher``; trained first when missing, under ``<task>/teacher/seed<k>``).
    ``member_key`` is the config key a member's name is written to: ``similarity.name`` (the
    similarity that scores the pair) unless the task compares members elsewhere, e.g. the
    attention kernel (``model.attention_similarity``, ``similarity.kwargs.kernel``).
    """

    name: str
    preset: str
    datasets: Sequence[str]
    similarities: Sequence[str]
    description: str
    main_metric: str
    overrides: Sequence[str] = field(default_factory=tuple)
    setting: str = "head"
    heads_from: Optional[str] = None
    teacher: Optional[str] = None
    member_key: str = "similarity.name"


DEMO_TASKS: Dict[str, DemoTask] = {
    "tux": DemoTask(
        name="tux",
        preset="tux",
        datasets=("tux",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic"),
        description="Tux Paint stamps: image <-> English caption retrieval (EfficientNet-Lite0 224 px and "
        "all-MiniLM-L6-v2 features, linear heads to 256-d, InfoNCE)",
        main_metric="rsum",
        # One thread: the heads are small, and on a shared 2-core machine two threads spin against other
        # processes. Measured at load ~5 (30 runs): 7.2 min with one thread, 17.0 min with two, and the
        # same metrics in every run.
        overrides=("train.num_threads=1",),
    ),
    # gssf_dynamic scores with 2h + 1 = 33 bilinear forms (benchmarks/similarity.py). Identity
    # cross-entropy scores its proxies with the gate-free static part (IdentityCrossEntropyLoss's
    # proxy_scores="static"), so its training step is about 2.3x cosine's on tux and emoji-reid
    # (benchmarks/train_step.py) and it runs in the re-ID and fine-grained tasks too. In
    # fashion-mnist its 5,000-image leave-one-out evaluations made one run last over 8 minutes on
    # the shared machine, and emoji-captions-multilingual has about 25,000 training pairs an epoch:
    # both leave it out. gssf_dynamic_mlp (an MLP per scored pair) fits none of them.
    "emoji-reid": DemoTask(
        name="emoji-reid",
        preset="emoji-reid",
        datasets=("emoji",),
        similarities=("cosine", "euclidean", "diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic"),
        description="Emoji re-identification: identity = emoji, camera = vendor; Google queries against "
        "Twitter + OpenMoji gallery of unseen identities (EfficientNet-Lite0 224 px features, linear head to "
        "256-d, batch-hard triplet + identity cross-entropy, P x K sampler; mAP, mINP, CMC, re-ranked)",
        main_metric="mAP",
    ),
    "fashion-mnist": DemoTask(
        name="fashion-mnist",
        preset="fashion-mnist",
        datasets=("fashion-mnist",),
        similarities=("cosine", "euclidean", "diagonal", "block_diagonal", "gssf", "bilinear"),
        description="Fashion-MNIST class-disjoint retrieval: train on classes 0-4 (10,000-image subset), "
        "leave-one-out test on the 5,000 test images of classes 5-9 (EfficientNet-Lite0 64 px features, "
        "linear head to 256-d, triplet + proxy cross-entropy; R@K, MAP@R, R-Precision)",
        main_metric="R@1",
    ),
    "emoji-fine-grained": DemoTask(
        name="emoji-fine-grained",
        preset="emoji-fine-grained",
        datasets=("emoji",),
        similarities=("cosine", "euclidean", "diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic"),
        description="Emoji as SOP-like fine-grained retrieval: 1,906 classes x 3 vendor views, class-disjoint, "
        "leave-one-out over the test classes (EfficientNet-Lite0 224 px features, linear head to 256-d, "
        "triplet + proxy cross-entropy, P x K sampler; R@1/10/100, MAP@R, R-Precision)",
        main_metric="R@1",
    ),
    "emoji-styles": DemoTask(
        name="emoji-styles",
        preset="emoji-styles",
        datasets=("emoji-styles",),
        similarities=("cosine", "euclidean", "diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic"),
        description="Emoji re-identification across nine drawing styles (Iconify sets): one style's image of "
        "each of 488 unseen identities queries its images in the other styles (EfficientNet-Lite0 128 px "
        "features, linear head to 256-d, batch-hard triplet + identity cross-entropy, P x K sampler; mAP, mINP, "
        "CMC, re-ranked)",
        main_metric="mAP",
        overrides=("train.num_threads=1",),
    ),
    "wesnoth": DemoTask(
        name="wesnoth",
        preset="wesnoth",
        datasets=("wesnoth",),
        similarities=("cosine", "euclidean", "diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic"),
        description="Battle for Wesnoth unit sprites as CUB-like fine-grained retrieval: class = unit type, "
        "class-disjoint, leave-one-out over the test units' frames (EfficientNet-Lite0 128 px features, linear "
        "head to 256-d, triplet + proxy cross-entropy, P x K sampler; R@1/2/4/8, MAP@R, R-Precision)",
        main_metric="R@1",
        overrides=("train.num_threads=1",),
    ),
    "emoji-captions": DemoTask(
        name="emoji-captions",
        preset="emoji-captions",
        datasets=("emoji-captions",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic"),
        description="Emoji image <-> emojibase caption retrieval, many images per caption: 3,607 test images of "
        "488 unseen emoji in up to nine styles, one English 'label: tags' caption each; relevant = same emoji "
        "(EfficientNet-Lite0 128 px and all-MiniLM-L6-v2 features, linear heads to 256-d, InfoNCE)",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
    ),
    "wesnoth-descriptions": DemoTask(
        name="wesnoth-descriptions",
        preset="wesnoth-descriptions",
        datasets=("wesnoth",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic"),
        description="Wesnoth unit description <-> sprite frame retrieval: 1,443 test frames of 62 unseen unit "
        "types, one English description each; relevant = same unit (EfficientNet-Lite0 128 px and "
        "all-MiniLM-L6-v2 features, linear heads to 256-d, InfoNCE)",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
    ),
    "emoji-captions-multilingual": DemoTask(
        name="emoji-captions-multilingual",
        preset="emoji-captions-multilingual",
        datasets=("emoji-captions",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear"),
        description="Emoji image <-> caption retrieval in 28 languages: 3,607 test images of 488 unseen emoji "
        "against 12,884 emojibase captions (up to 28 per emoji); relevant = same emoji, resampled by emoji "
        "(EfficientNet-Lite0 128 px and multilingual-e5-small features, linear heads to 256-d, InfoNCE)",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
    ),
    "wesnoth-descriptions-multilingual": DemoTask(
        name="wesnoth-descriptions-multilingual",
        preset="wesnoth-descriptions-multilingual",
        datasets=("wesnoth",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic"),
        description="Wesnoth unit description <-> sprite frame retrieval in 35 languages: 1,443 test frames of 62 "
        "unseen unit types against 1,451 descriptions (English and the game's translations); relevant = same "
        "unit, resampled by unit (EfficientNet-Lite0 128 px and multilingual-e5-small features, linear heads to "
        "256-d, InfoNCE)",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
    ),
    # Setting "frozen": the similarity is the only thing that learns (issue: "when does GSSF pay?").
    "emoji-reid-frozen": DemoTask(
        name="emoji-reid-frozen",
        preset="emoji-reid-frozen",
        datasets=("emoji",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Emoji re-identification on frozen 1280-d EfficientNet-Lite0 features: no head, only the "
        "similarity learns (batch-hard triplet + identity cross-entropy); cosine = the untrained features",
        main_metric="mAP",
        overrides=("train.num_threads=1",),
        setting="frozen",
    ),
    "wesnoth-frozen": DemoTask(
        name="wesnoth-frozen",
        preset="wesnoth-frozen",
        datasets=("wesnoth",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Wesnoth fine-grained retrieval on frozen 1280-d EfficientNet-Lite0 features (128 px): no "
        "head, only the similarity learns; cosine = the untrained features",
        main_metric="R@1",
        overrides=("train.num_threads=1",),
        setting="frozen",
    ),
    "tux-frozen": DemoTask(
        name="tux-frozen",
        preset="tux-frozen",
        datasets=("tux",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Tux Paint image <-> caption retrieval in a frozen joint space: the heads of the tux task's "
        "cosine run (same seed) are loaded and kept fixed, only the similarity learns",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
        setting="frozen",
        heads_from="tux",
    ),
    # Setting "pooled": sets of region / token features, per-element projection, generalized pooling.
    "tux-pooled": DemoTask(
        name="tux-pooled",
        preset="tux-pooled",
        datasets=("tux",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Tux Paint image <-> caption retrieval on pooled sets (VSE-infinity style): 49 EfficientNet-Lite0 "
        "regions and up to 32 MiniLM token states, per-element linear + residual MLP to 256-d, generalized pooling, "
        "InfoNCE",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
        setting="pooled",
    ),
    "tux-pooled-mean": DemoTask(
        name="tux-pooled-mean",
        preset="tux-pooled",
        datasets=("tux",),
        similarities=("cosine", "gssf"),
        description="tux-pooled with mean pooling instead of the generalized pooling operator (the pooling baseline)",
        main_metric="rsum",
        overrides=("train.num_threads=1", "model.pool=mean"),
        setting="pooled",
    ),
    "tux-pooled-max": DemoTask(
        name="tux-pooled-max",
        preset="tux-pooled",
        datasets=("tux",),
        similarities=("cosine", "gssf"),
        description="tux-pooled with max pooling instead of the generalized pooling operator (the other pooling "
        "baseline)",
        main_metric="rsum",
        overrides=("train.num_threads=1", "model.pool=max"),
        setting="pooled",
    ),
    "wesnoth-descriptions-pooled": DemoTask(
        name="wesnoth-descriptions-pooled",
        preset="wesnoth-descriptions-pooled",
        datasets=("wesnoth",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Wesnoth description <-> sprite retrieval on pooled sets: 16 EfficientNet-Lite0 regions (128 px) "
        "and up to 32 MiniLM token states, per-element linear + residual MLP, generalized pooling, InfoNCE",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
        setting="pooled",
    ),
    # Setting "distillation": a 64-d student learns from a 1024-d teacher over stronger encoders
    # (EfficientNet-Lite2, all-mpnet-base-v2; cosine), one teacher run per seed. The "-student" tasks
    # are the same students without a teacher (no KD), for the KD-against-no-KD reading.
    "tux-student": DemoTask(
        name="tux-student",
        preset="tux-distill",
        datasets=("tux",),
        similarities=("cosine", "gssf"),
        description="Tux Paint image <-> caption retrieval with a small student and no teacher: 64-d linear heads "
        "over EfficientNet-Lite0 and MiniLM features, InfoNCE (the no-KD reference of tux-distill)",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
    ),
    "tux-distill": DemoTask(
        name="tux-distill",
        preset="tux-distill",
        datasets=("tux",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Tux Paint image <-> caption retrieval, knowledge distillation: the 64-d student of tux-student "
        "plus relational KD of a 1024-d EfficientNet-Lite2 / mpnet cosine teacher's in-batch score distributions, "
        "through the student's similarity",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
        setting="distillation",
        teacher="tux-teacher",
    ),
    "wesnoth-descriptions-student": DemoTask(
        name="wesnoth-descriptions-student",
        preset="wesnoth-descriptions-distill",
        datasets=("wesnoth",),
        similarities=("cosine", "gssf"),
        description="Wesnoth description <-> sprite retrieval with a small student and no teacher: 64-d linear "
        "heads, InfoNCE (the no-KD reference of wesnoth-descriptions-distill)",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
    ),
    "wesnoth-descriptions-distill": DemoTask(
        name="wesnoth-descriptions-distill",
        preset="wesnoth-descriptions-distill",
        datasets=("wesnoth",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Wesnoth description <-> sprite retrieval, knowledge distillation: 64-d student plus relational "
        "KD of a 1024-d EfficientNet-Lite2 / mpnet cosine teacher",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
        setting="distillation",
        teacher="wesnoth-descriptions-teacher",
    ),
    # Setting "attention": the member is the attention kernel, everything else equal. Attention
    # pooling (the pooled sets of the "pooled" setting, four heads with similarity logits, the
    # pooled embeddings scored by cosine) and SCAN-style cross-attention (every word attends over
    # the regions, similarity "cross_attention" with the member as its kernel).
    "tux-attention": DemoTask(
        name="tux-attention",
        preset="tux-attention",
        datasets=("tux",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Tux Paint image <-> caption retrieval, attention pooling over the pooled sets of tux-pooled: "
        "four heads whose logits come from the member (the attention kernel), pooled embeddings scored by cosine",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
        setting="attention",
        member_key="model.attention_similarity",
    ),
    "wesnoth-descriptions-attention": DemoTask(
        name="wesnoth-descriptions-attention",
        preset="wesnoth-descriptions-attention",
        datasets=("wesnoth",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Wesnoth description <-> sprite retrieval, attention pooling over 16 regions and up to 32 "
        "token states: four heads whose logits come from the member, pooled embeddings scored by cosine",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
        setting="attention",
        member_key="model.attention_similarity",
    ),
    "tux-cross-attention": DemoTask(
        name="tux-cross-attention",
        preset="tux-cross-attention",
        datasets=("tux",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Tux Paint image <-> caption retrieval by cross-attention (SCAN style): every word attends over "
        "the 49 regions with the member as the attention kernel, cosine of word and attended regions, mean over words",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
        setting="attention",
        member_key="similarity.kwargs.kernel",
    ),
    "wesnoth-descriptions-cross-attention": DemoTask(
        name="wesnoth-descriptions-cross-attention",
        preset="wesnoth-descriptions-cross-attention",
        datasets=("wesnoth",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"),
        description="Wesnoth description <-> sprite retrieval by cross-attention: every word attends over the 16 "
        "regions with the member as the attention kernel, cosine of word and attended regions, mean over words",
        main_metric="rsum",
        overrides=("train.num_threads=1",),
        setting="attention",
        member_key="similarity.kwargs.kernel",
    ),
}
#: What a plain ``gssf demo`` runs: the setting with the clearest measured result first
#: (frozen features, emoji re-ID: gssf +13.0 mAP [+11.3, +14.9] over cosine, 5 seeds; see
#: docs/results.md), then the Tux Paint image-text task with trainable heads, where no member
#: is resolved above cosine. ``DEFAULT_MEMBERS`` keeps the default within 10 minutes on 2 cores:
#: ``gssf demo --tasks emoji-reid-frozen`` runs all seven members.
DEFAULT_TASKS = ("emoji-reid-frozen", "tux")
DEFAULT_MEMBERS: Dict[str, Tuple[str, ...]] = {"emoji-reid-frozen": ("cosine", "gssf", "mahalanobis")}
#: Five seeds: the fewest the statistics of issue 10 accept (30 Tux runs fit in the 10-minute budget).
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def register_demo_task(task: DemoTask) -> DemoTask:
    """Add a task to the demo (used by the uni-modal benchmarks)."""
    DEMO_TASKS[task.name] = task
    return task
