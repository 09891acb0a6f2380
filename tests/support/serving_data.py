"""A served twin on the real local stack: a labelled corpus in Weaviate, a dataset, a model.

The corpus is one author's short essays on distinct topics, each with a question whose
answer is in exactly one essay, plus a few essays of another author on the same topics in
the same words, so a missing author filter shows up as the other author's URL in the
results. One of the author's essays is also published a second time under another name
(the same text, so the same content hash) to exercise deduplication.

Everything goes through the platform's own steps: the feature steps load the folders, the
dataset step builds the offline instruction snapshot, the registry registers a version whose
merged weights are the tiny offline base model, and ``resolve_served_model`` resolves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.isolated import private_stores
from twin_lib.crawl import Source
from twin_lib.registry.models import ModelStatus, ModelVersion
from twin_lib.registry.store import ModelRegistry
from twin_lib.serving.contracts import ServedModel
from twin_lib.settings import DatasetSettings, TwinSettings
from twin_lib.steps.datasets import build_instruction_dataset
from twin_lib.steps.feature_run import run_feature_steps
from twin_lib.steps.serving import resolve_served_model
from twin_lib.training.transfer import Transfer

AUTHOR = "Ada"
OTHER_AUTHOR = "Bob"
MODEL_NAME = "twin-served"

ESSAYS: dict[str, str] = {
    "sourdough": (
        "# Keeping a sourdough starter alive\n\n"
        "My sourdough starter lives in a jar on the kitchen shelf. I feed it every morning "
        "with equal weights of rye flour and lukewarm water, and discard half before each "
        "feeding so the yeast never runs out of food. If it smells of nail varnish it is "
        "hungry; if a grey liquid floats on top, stir it back in and feed it twice that day."
    ),
    "herons": (
        "# Counting herons at dawn\n\n"
        "At dawn I walk the river bank and count grey herons instead of steps. They stand in "
        "the shallows like old umbrellas, perfectly still, until a fish comes close. Last "
        "spring I counted eleven herons between the mill and the footbridge, and one stole a "
        "trout from a fisherman's bucket while he poured his coffee."
    ),
    "bees": (
        "# My first year of keeping bees\n\n"
        "In my first year as a beekeeper I learned that a calm hive is worth more than a full "
        "one. I opened the hive too often, crushed a queen by accident and had to buy a new "
        "one from a neighbour. The bees forgave me: by August they had filled two supers with "
        "lime-blossom honey, and I had learned to move slowly and wear gloves."
    ),
    "lighthouse": (
        "# The lighthouse keeper's night\n\n"
        "My grandfather kept the lighthouse on the northern cape for thirty years. Every "
        "evening he wound the clockwork that turned the lens, trimmed the wick of the paraffin "
        "lamp and polished the brass. In storms he stayed awake all night in the lantern room, "
        "writing the ships he saw into a leather logbook."
    ),
    "chess": (
        "# Why I play the Sicilian Defence\n\n"
        "Against 1.e4 I always answer with the Sicilian Defence, 1...c5. It makes the position "
        "unbalanced from the first move, so Black plays for a win instead of a draw. I like "
        "the Najdorf variation best: the move a6 looks quiet but prepares b5 and a fight on "
        "the queenside while White attacks my king."
    ),
    "bicycle": (
        "# Fixing a broken bicycle chain by the road\n\n"
        "When my bicycle chain snapped on a mountain pass I fixed it with the chain tool in my "
        "saddle bag. Push the damaged link's pin out, remove the broken link, join the two "
        "ends with a quick link and pedal backwards to check that nothing skips. A chain that "
        "is one link shorter still shifts well enough to get home."
    ),
    "tomatoes": (
        "# Growing tomatoes on a windowsill\n\n"
        "Cherry tomatoes grow happily on a sunny windowsill if the pot is deep enough. I sow "
        "the seeds in March, pot the seedlings on when they have two true leaves and pinch "
        "out the side shoots every week. Tap the flowers gently to pollinate them, since no "
        "bees come indoors, and water little but often."
    ),
    "andromeda": (
        "# Finding the Andromeda galaxy with binoculars\n\n"
        "On a moonless autumn night the Andromeda galaxy is easy to find with ordinary "
        "binoculars. Start from the square of Pegasus, hop two stars along the chain of "
        "Andromeda, then turn north past a faint star: the galaxy is a soft oval smudge, light "
        "that left it two and a half million years ago."
    ),
    "letters": (
        "# Writing letters with a fountain pen\n\n"
        "I write my letters by hand with an old fountain pen filled with blue-black ink. The "
        "nib slows my thoughts down to the speed of good sentences, and the paper keeps every "
        "crossed-out word. A friend once told me she reads my letters twice: once for the "
        "news, and once for the handwriting."
    ),
    "knitting": (
        "# Turning the heel of a sock\n\n"
        "Turning the heel is the moment in knitting socks that feels like magic. After the "
        "heel flap, you work short rows: knit past the middle, decrease, turn, and repeat, "
        "each row one stitch longer, until the cup of the heel appears. My first heel had a "
        "hole in it, and I wore that sock until it fell apart."
    ),
    "kites": (
        "# Flying kites on the dunes\n\n"
        "The best kite weather is a steady sea breeze on the dunes in October. My box kite "
        "needs a strong wind, but the diamond kite my daughter painted climbs in almost any "
        "breeze. Let the line out slowly, keep your back to the wind and never fly near power "
        "lines."
    ),
}
REPOSTED = {"kites-again": ESSAYS["kites"]}
"""The kites essay published twice, on an old site crawled in a run of its own (copies found
in one crawl are merged into one document): two documents, identical chunk text and hash."""

QUESTIONS: dict[str, str] = {
    "sourdough": "How do you keep a sourdough starter alive?",
    "herons": "What do you see when you count herons by the river at dawn?",
    "bees": "What did you learn in your first year of keeping bees?",
    "lighthouse": "What did your grandfather do as a lighthouse keeper?",
    "chess": "Why do you play the Sicilian Defence in chess?",
    "bicycle": "How do I fix a broken bicycle chain?",
    "tomatoes": "How can I grow tomatoes on a windowsill?",
    "andromeda": "How do I find the Andromeda galaxy with binoculars?",
    "letters": "Why do you write letters with a fountain pen?",
    "knitting": "How do you turn the heel when knitting a sock?",
}

OTHER_ESSAYS: dict[str, str] = {
    "sourdough": (
        "# Keeping a sourdough starter alive is easy\n\n"
        "How do you keep a sourdough starter alive? Keep the sourdough starter in the fridge, "
        "feed the starter once a week and bake with it on Saturdays. Keeping a starter alive "
        "is not hard; people who feed it daily just like fussing."
    ),
    "bees": (
        "# Keeping bees in the city\n\n"
        "What did I learn in my first year of keeping bees? That bees on a city roof make "
        "more honey than bees in the country, because the parks flower all summer long. My "
        "first year of keeping bees taught me to register the hive with the council."
    ),
    "andromeda": (
        "# Andromeda through a telescope\n\n"
        "Finding the Andromeda galaxy with binoculars is fine, but a telescope shows its dust "
        "lanes and two companion galaxies. I find the Andromeda galaxy from Cassiopeia, not "
        "Pegasus, and binoculars stay in the drawer."
    ),
}


@dataclass(frozen=True)
class ServedSetup:
    """What serving tests share: settings of a private corner of the session stack, the
    resolved model, and the labelled questions (question, URL of the essay that answers it)."""

    settings: TwinSettings
    model: ServedModel
    questions: list[tuple[str, str]]
    author: str
    other_author: str
    other_urls: list[str]
    reposted_urls: list[str]
    base_model: Path


def private_settings(stack: TwinSettings, cache_dir: Path) -> TwinSettings:
    """Buckets, a collection and a model cache of its own on the shared session stack."""
    settings = private_stores(stack, collection_prefix="Served")
    return settings.model_copy(
        update={
            "serving": settings.serving.model_copy(update={"model_name": MODEL_NAME}),
            "stack": settings.stack.model_copy(update={"cache_dir": cache_dir}),
        }
    )


def write_essays(essays: dict[str, str], folder: Path) -> dict[str, str]:
    """Markdown files in ``folder``; returns name -> the source URL the crawler records."""
    folder.mkdir(parents=True, exist_ok=True)
    urls = {}
    for name, text in essays.items():
        path = folder / f"{name}.md"
        path.write_text(text + "\n", encoding="utf-8")
        urls[name] = path.as_uri()
    return urls


def load_corpus(settings: TwinSettings, workdir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Both authors' folders through the real feature steps; (author's URLs, other's URLs)."""
    urls = write_essays(ESSAYS, workdir / "ada") | write_essays(REPOSTED, workdir / "ada-old")
    other = write_essays(OTHER_ESSAYS, workdir / "bob")
    runs = ((AUTHOR, "ada"), (AUTHOR, "ada-old"), (OTHER_AUTHOR, "bob"))
    for author, folder in runs:
        run_feature_steps(
            [Source(url=str(workdir / folder))],
            author=author,
            workdir=workdir / f"features-{folder}",
            minio=settings.minio,
            weaviate=settings.weaviate,
            features=settings.features,
        )
    return urls, other


def register_model(
    settings: TwinSettings,
    name: str,
    weights: Path,
    dataset_snapshots: dict[str, str],
    statuses: tuple[ModelStatus, ...] = (ModelStatus.APPROVED,),
) -> ModelVersion:
    """A version whose merged weights are ``weights``, moved through ``statuses`` in order."""
    registry = ModelRegistry(settings.minio, settings.registry)
    reservation = registry.reserve(name, by="tests")
    Transfer(settings.minio).upload_tree(weights, f"{reservation.output_uri.rstrip('/')}/merged")
    model = registry.register_candidate(
        name,
        reservation.output_uri,
        hyperparameters={},
        base_model=str(weights),
        dataset_snapshots=dataset_snapshots,
        metrics={},
        by="tests",
    )
    for status in statuses:
        model = registry.transition(
            name, model.version, status, by="tests", reason=f"set {status} by the test setup"
        )
    return model


def build_served_setup(stack: TwinSettings, workdir: Path, base_model: Path) -> ServedSetup:
    """The corpus, the author's instruction snapshot and an approved version, resolved."""
    settings = private_settings(stack, workdir / "cache")
    urls, other = load_corpus(settings, workdir / "corpus")
    dataset = build_instruction_dataset(
        AUTHOR,
        minio=settings.minio,
        weaviate=settings.weaviate,
        datasets=DatasetSettings(generator="offline"),
        base_model=base_model,
        output_dir=workdir / "dataset",
    )
    model = register_model(settings, MODEL_NAME, base_model, {"instruction": dataset.snapshot_id})
    settings = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"version": model.version})}
    )
    return ServedSetup(
        settings=settings,
        model=resolve_served_model(settings),
        questions=[(question, urls[name]) for name, question in QUESTIONS.items()],
        author=AUTHOR,
        other_author=OTHER_AUTHOR,
        other_urls=sorted(other.values()),
        reposted_urls=sorted(urls[name] for name in ("kites", *REPOSTED)),
        base_model=base_model,
    )
