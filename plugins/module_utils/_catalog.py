# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a site catalog (gitops/sites/<site>/site.yaml, kind SiteCatalog) means.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

The catalog is the one place a site's hosts, node hardware and models are declared. This
module is the only implementation of its meaning: loading and validating it, its defaults,
and every value derived from it —

* per host: its node class, k3s role (server or agent, join order), and the node labels and
  taints the k3s role applies and the validator's scheduling simulation assumes;
* per model: its format, the runtime rules deciding which node classes serve and stage it,
  its serving configuration (the one the memory estimate and the server's arguments share),
  and the model description the memory estimate reads.

The Ansible inventory plugin, the model_cache role, the k3s role's labels, scripts/new-site and
scripts/validate-gitops all call into here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.edgeslm.pi5.plugins.module_utils import _capacity, _serving
from ansible_collections.edgeslm.pi5.plugins.module_utils._fields import Field, check, json_schema
from ansible_collections.edgeslm.pi5.plugins.module_utils._memory import parse_description
from ansible_collections.edgeslm.pi5.plugins.module_utils._signature import SignatureError, TrustedKey, load_trusted_key
from ansible_collections.edgeslm.pi5.plugins.module_utils._targets import TARGETS, FitResult, check_fit

__all__ = [
    "API_VERSION",
    "KIND",
    "LABELS",
    "RUNTIMES",
    "CatalogError",
    "ModelEntry",
    "NodeClass",
    "NodeSpec",
    "Runtime",
    "SiteCatalog",
    "catalog_json_schema",
    "description_from_gguf",
    "load_catalog",
    "model_fit",
    "model_from_mapping",
    "node_labels_and_taints",
]

API_VERSION = "edgeslm.pi5/v1alpha1"
KIND = "SiteCatalog"
LOCAL_CONFIG = "config.kubernetes.io/local-config"

DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
# A host name as Ansible and k3s (node name) accept it: a DNS-1123 subdomain.
HOST_NAME = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*"
DOMAIN = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+"
QUANTITY = r"[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?"
TAINT = r"[a-z0-9.-]*/?[A-Za-z0-9._-]+(=[A-Za-z0-9._-]*)?:(NoSchedule|PreferNoSchedule|NoExecute)"

CPU_TARGETS = tuple(name for name, target in TARGETS.items() if target.kind == "cpu")
NPU_TARGETS = tuple(name for name, target in TARGETS.items() if target.kind != "cpu")
ARCHES = ("arm64", "amd64")
PAGE_SIZES: dict[str, int] = {"4k": 4096, "16k": 16384}

# Node label keys. Values are derived from the node class by node_labels_and_taints().
LABELS: dict[str, str] = {
    "node_class": "edgeslm.io/node-class",
    "target": "edgeslm.io/target",
    "ram": "edgeslm.io/ram-gb",
    "nvme": "edgeslm.io/nvme",
    "page_size": "edgeslm.io/page-size",
    "npu": "edgeslm.io/npu",
    "wasm": "edgeslm.io/wasm",
    "wasinn": "edgeslm.io/wasm-wasinn",
}
# The NPU label value per declared NPU: one Hailo driver family serves the 8 and the 8L.
NPU_LABEL_VALUES = {"hailo-10h": "hailo10h", "hailo-8": "hailo8", "hailo-8l": "hailo8"}
# The Wasm runtime a wasm node class gets (wasm_runtime role: WasmEdge + its shim).
WASM_LABEL_VALUE = "wasmedge"


class CatalogError(ValueError):
    """A catalog that cannot be used; `problems` lists every reason, each naming its field."""

    def __init__(self, problems: list[str], source: str = "site catalog") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Runtime:
    """How a catalog runtime serves models, and which node classes can run it."""

    name: str
    workload: str
    formats: tuple[str, ...]
    memory_runtime: str | None
    needs: str  # "cpu": a node class with the model's target; "wasm": and wasm: true; "npu": npu == target
    host: str  # the IngressRoute host prefix: <host>.<domain>
    scale_to_zero: bool  # its autoscaler can go to zero replicas (KEDA can, an HPA cannot)


RUNTIMES: dict[str, Runtime] = {
    runtime.name: runtime
    for runtime in (
        Runtime("llamacpp", "slm-llamacpp", ("gguf",), "llama.cpp", "cpu", "llm", True),
        Runtime("llamaedge", "slm-llamaedge", ("gguf",), "llamaedge", "wasm", "llamaedge", False),
        Runtime("hailo", "slm-hailo", ("hef",), None, "npu", "npu", False),
    )
}

# Catalog description keys (camelCase) -> the memory core's model description keys.
DESCRIPTION_KEYS: dict[str, tuple[str, str]] = {
    "architecture": ("architecture", "general.architecture of the GGUF"),
    "parameterCount": ("parameter_count", "number of parameters"),
    "blockCount": ("block_count", "transformer layers"),
    "embeddingLength": ("embedding_length", "embedding width"),
    "feedForwardLength": ("feed_forward_length", "FFN width"),
    "headCount": ("head_count", "attention (query) heads"),
    "headCountKv": ("head_count_kv", "KV heads (GQA)"),
    "keyLength": ("key_length", "width of one K head"),
    "valueLength": ("value_length", "width of one V head"),
    "trainedContextLength": ("context_length", "context the model was trained for"),
    "vocabSize": ("vocab_size", "vocabulary entries"),
    "slidingWindow": ("sliding_window", "sliding attention window (tokens)"),
    "slidingWindowPattern": ("sliding_window_pattern", "every Nth layer is global"),
    "expertCount": ("expert_count", "MoE experts"),
    "expertUsedCount": ("expert_used_count", "MoE experts used per token"),
    "weightsBytes": ("weights_bytes", "tensor bytes in the file"),
    "metadataBytes": ("metadata_bytes", "GGUF metadata bytes (tokenizer tables)"),
}
_DESCRIPTION_STRINGS = frozenset({"architecture", "tokenizerModel"})


def _description_fields() -> tuple[Field, ...]:
    fields: list[Field] = []
    for key, (_core_key, doc) in DESCRIPTION_KEYS.items():
        if key in _DESCRIPTION_STRINGS:
            fields.append(Field(key, "string", doc, required=key == "architecture", pattern=r"[a-z0-9_.-]+"))
        else:
            fields.append(Field(key, "integer", doc, minimum=0))
    return tuple(fields)


def _resources_field() -> Field:
    def pair(key: str) -> Field:
        return Field(
            key,
            "object",
            f"resources.{key} of the server container",
            required=True,
            fields=(
                Field("cpu", "string", "CPU quantity", required=True, pattern=QUANTITY),
                Field("memory", "string", "memory quantity", required=True, pattern=QUANTITY),
            ),
        )

    return Field(
        "resources",
        "object",
        "requests and limits of the model server container",
        required=True,
        fields=(pair("requests"), pair("limits")),
    )


def _model_field() -> Field:
    return Field(
        "model",
        "object",
        "one model the site serves",
        fields=(
            Field(
                "name",
                "string",
                "model name (DNS label): the server alias and the cache folder",
                True,
                pattern=DNS_LABEL,
            ),
            Field("file", "string", "file name in the node's cache", True, pattern=r"[A-Za-z0-9._-]+\.(gguf|hef)"),
            Field(
                "source",
                "string",
                "where nodes fetch the file: an https://, http:// or file:// URL, or oci://registry/repository:tag",
                True,
                pattern=r"(https?|file|oci)://\S+",
                fix="the URL or OCI reference the nodes can reach",
            ),
            Field("origin", "string", "provenance: where the file was made or downloaded from (informational)"),
            Field("sha256", "string", "SHA-256 of the file", True, pattern=r"[0-9a-f]{64}"),
            Field("example", "string", "marks an example value that must be replaced before use"),
            Field("sizeBytes", "integer", "file size in bytes", True, minimum=1),
            Field("quantization", "string", "quantization (Q4_K_M, Q8_0, A8W4, ...)", True, pattern=r"[A-Z0-9_]+"),
            Field("runtime", "string", "the server that runs it", True, enum=tuple(RUNTIMES)),
            Field(
                "target",
                "string",
                "hardware the model is sized for: a pi5-* board for GGUF, hailo-10h for HEF",
                True,
                enum=tuple(TARGETS),
            ),
            Field("promptTemplate", "string", "chat template name (LlamaEdge)", pattern=r"[a-z0-9-]+"),
            Field(
                "nodeClasses",
                "array",
                "only these node classes stage and serve it (default: every class its runtime and target allow)",
                unique=True,
                items=Field("nodeClass", "string", "", pattern=DNS_LABEL),
            ),
            _serving_field(),
            _resources_field(),
            Field(
                "description",
                "object",
                "the model's shape as read from its file (scripts/new-site writes it; never typed by hand)",
                True,
                fields=_description_fields(),
            ),
        ),
    )


def _serving_field() -> Field:
    """The `serving:` block, from the serving core's own key table (one definition)."""
    children = tuple(
        Field(
            key,
            spec.kind,
            spec.doc,
            enum=tuple(spec.enum),
            minimum=spec.minimum,
            maximum=spec.maximum,
        )
        for key, spec in _serving.CATALOG_FIELDS.items()
    )
    return Field(
        "serving",
        "object",
        "every server setting that changes memory; the estimate and the server's arguments both come from it",
        fields=children,
    )


MODEL_FIELD = _model_field()


def _node_class_field() -> Field:
    return Field(
        "nodeClass",
        "object",
        "one kind of node of the site and the hosts that are that kind",
        fields=(
            Field(
                "name",
                "string",
                "node class name (DNS label), node label edgeslm.io/node-class",
                True,
                pattern=DNS_LABEL,
            ),
            Field("target", "string", "the board: RAM decides what fits", True, enum=CPU_TARGETS),
            Field(
                "arch", "string", "CPU architecture (amd64 only for virtual lab nodes)", default="arm64", enum=ARCHES
            ),
            Field("npu", "string", "the Hailo accelerator every host of the class carries", enum=NPU_TARGETS),
            Field("nvme", "boolean", "the hosts boot from an NVMe drive", default=False),
            Field(
                "pcieSwitch",
                "boolean",
                "an NVMe drive and an AI HAT+ share the PCIe lane through a switch",
                default=False,
            ),
            Field("wasm", "boolean", "install the Wasm runtime (WasmEdge) for LlamaEdge", default=False),
            Field(
                "pageSize",
                "string",
                "kernel page size: 4k installs the 4K-page kernel; 16k keeps Raspberry Pi OS's default "
                "and taints the nodes",
                default="4k",
                enum=tuple(PAGE_SIZES),
            ),
            Field(
                "longhorn", "boolean", "install Longhorn's node prerequisites (open-iscsi, nfs-common)", default=False
            ),
            Field(
                "taints", "array", "extra taints, key=value:Effect", items=Field("taint", "string", "", pattern=TAINT)
            ),
            Field(
                "virtual", "boolean", "lab nodes: containers whose hardware facts come from a fixture", default=False
            ),
            Field(
                "hosts",
                "array",
                "inventory host names (also the k3s node names)",
                True,
                min_items=1,
                unique=True,
                items=Field("host", "string", "", pattern=HOST_NAME),
            ),
        ),
        key_of="name",
    )


PEM_PUBLIC_KEY = r"\s*-----BEGIN PUBLIC KEY-----[A-Za-z0-9+/=\s]+-----END PUBLIC KEY-----\s*"


def _model_signing_field() -> Field:
    """`spec.modelSigning`: the public keys whose model signatures the site's nodes accept (one place per site)."""
    key = Field(
        "trustedKey",
        "object",
        "one public key of a model signer",
        fields=(
            Field("name", "string", "label of the key (DNS label), reported by the nodes", True, pattern=DNS_LABEL),
            Field(
                "publicKey",
                "string",
                "the signer's EC public key (P-256, P-384 or P-521) as PEM",
                True,
                pattern=PEM_PUBLIC_KEY,
                fix="export it with `openssl pkey -in signing-key.pem -pubout`",
            ),
        ),
        key_of="name",
    )
    return Field(
        "modelSigning",
        "object",
        "OpenSSF model signing: nodes accept a model pulled from an OCI artifact only with a signature by a "
        "trusted key (scripts/model-release signs and checks it against these keys before it pushes)",
        fields=(
            Field(
                "trustedKeys",
                "array",
                "public keys whose model-signing signatures the nodes accept",
                True,
                min_items=1,
                items=key,
                key_of="name",
            ),
        ),
    )


def _catalog_field() -> Field:
    return Field(
        "SiteCatalog",
        "object",
        "One site's hosts, node hardware and models: the only place they are declared.",
        fields=(
            Field("apiVersion", "string", "", True, const=API_VERSION),
            Field("kind", "string", "", True, const=KIND),
            Field(
                "metadata",
                "object",
                "",
                True,
                fields=(
                    Field(
                        "name",
                        "string",
                        "the site name; equals the folder gitops/sites/<name>",
                        True,
                        pattern=DNS_LABEL,
                    ),
                    Field(
                        "annotations",
                        "object",
                        "kustomize keeps the catalog out of the rendered output",
                        True,
                        fields=(Field(LOCAL_CONFIG, "string", "", True, const="true"),),
                    ),
                    Field("labels", "map", "free labels"),
                ),
            ),
            Field(
                "spec",
                "object",
                "",
                True,
                fields=(
                    Field("description", "string", "what the site is"),
                    Field(
                        "domain",
                        "string",
                        "DNS domain of the site: models are served at llm.<domain>, llamaedge.<domain>, npu.<domain>",
                        True,
                        pattern=DOMAIN,
                    ),
                    Field(
                        "cluster",
                        "object",
                        "the k3s cluster of the site",
                        True,
                        fields=(
                            Field(
                                "servers",
                                "array",
                                "k3s servers in join order (the first initialises the cluster); "
                                "every other host is an agent",
                                True,
                                min_items=1,
                                unique=True,
                                items=Field("host", "string", "", pattern=HOST_NAME),
                            ),
                            Field(
                                "apiEndpoint",
                                "string",
                                "address servers and agents join through (DNS name or VIP); "
                                "required with several servers",
                                pattern=r"[A-Za-z0-9.:-]+",
                            ),
                            Field("allowEvenServers", "boolean", "accept an even number of servers", default=False),
                        ),
                    ),
                    Field(
                        "autoscaling",
                        "object",
                        "replica bounds of every model server",
                        True,
                        fields=(
                            Field("scaleToZero", "boolean", "scale idle servers to zero", True),
                            Field("maxReplicas", "integer", "most replicas of one server", True, minimum=1, maximum=64),
                        ),
                    ),
                    _model_signing_field(),
                    Field(
                        "nodeClasses",
                        "array",
                        "node classes and their hosts",
                        True,
                        min_items=1,
                        items=_node_class_field(),
                        key_of="name",
                    ),
                    Field(
                        "models", "array", "models the site serves", True, min_items=1, items=MODEL_FIELD, key_of="name"
                    ),
                ),
            ),
        ),
    )


CATALOG_FIELD = _catalog_field()


def catalog_json_schema() -> dict[str, Any]:
    """The JSON Schema of a SiteCatalog (gitops/schemas/site-catalog.schema.json is generated from it)."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://edgeslm.pi5/schemas/site-catalog.schema.json",
        "title": "edgeslm.pi5 SiteCatalog",
    }
    schema.update(json_schema(CATALOG_FIELD))
    return schema


# --- the typed view ----------------------------------------------------------------------


@dataclass(frozen=True)
class NodeClass:
    name: str
    target: str
    arch: str
    npu: str | None
    nvme: bool
    pcie_switch: bool
    wasm: bool
    page_size: str
    longhorn: bool
    extra_taints: tuple[str, ...]
    virtual: bool
    hosts: tuple[str, ...]

    @property
    def ram_gb(self) -> int:
        return TARGETS[self.target].memory_bytes >> 30

    @property
    def page_size_bytes(self) -> int:
        return PAGE_SIZES[self.page_size]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    format: str
    source: str
    origin: str | None
    sha256: str
    size_bytes: int
    quantization: str
    runtime: Runtime
    target: str
    prompt_template: str | None
    only_classes: tuple[str, ...]
    serving: _serving.ServingConfig
    resources: Mapping[str, Mapping[str, str]]
    description: Mapping[str, Any]
    example: str | None

    def core_description(self) -> dict[str, Any]:
        """The description the memory core (_memory.parse_description) reads."""
        out: dict[str, Any] = {"name": self.name, "format": self.format, "quantization": self.quantization}
        for key, value in self.description.items():
            out[DESCRIPTION_KEYS[key][0]] = value
        # The file size bounds the tensor bytes from above (it adds only the metadata).
        out.setdefault("weights_bytes", self.size_bytes)
        return out


@dataclass(frozen=True)
class NodeSpec:
    """One host of the site with everything derived for it."""

    host: str
    site: str
    node_class: NodeClass
    k3s_role: str  # "server" | "agent"
    server_index: int | None  # join order among servers; 0 initialises the cluster
    labels: Mapping[str, str]
    taints: tuple[str, ...]
    models: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for Ansible host variables and JSON output."""
        nc = self.node_class
        return {
            "host": self.host,
            "site": self.site,
            "node_class": nc.name,
            "k3s_role": self.k3s_role,
            "server_index": self.server_index,
            "target": nc.target,
            "ram_gb": nc.ram_gb,
            "arch": nc.arch,
            "npu": nc.npu or "none",
            "nvme": nc.nvme,
            "pcie_switch": nc.pcie_switch,
            "wasm": nc.wasm,
            "page_size": nc.page_size,
            "page_size_bytes": nc.page_size_bytes,
            "longhorn": nc.longhorn,
            "virtual": nc.virtual,
            "labels": dict(self.labels),
            "label_list": [f"{key}={value}" for key, value in self.labels.items()],
            "taints": list(self.taints),
            # What the kubelet reserves, exactly as the validator's capacity check assumes it.
            "kubelet_args": _capacity.kubelet_args(self.k3s_role),
            "models": list(self.models),
        }


@dataclass(frozen=True)
class SiteCatalog:
    name: str
    description: str
    domain: str
    servers: tuple[str, ...]
    api_endpoint: str | None
    allow_even_servers: bool
    scale_to_zero: bool
    max_replicas: int
    node_classes: tuple[NodeClass, ...]
    models: tuple[ModelEntry, ...]
    source: str = "site catalog"
    # spec.modelSigning.trustedKeys, labelled by their names (empty: the site declares no signers).
    trusted_keys: tuple[TrustedKey, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def hosts(self) -> list[str]:
        return [host for node_class in self.node_classes for host in node_class.hosts]

    def node_class_of(self, host: str) -> NodeClass:
        for node_class in self.node_classes:
            if host in node_class.hosts:
                return node_class
        raise CatalogError(
            [
                f"host {host!r} is not in spec.nodeClasses[].hosts: add it to its node class, "
                f"or remove it from the inventory (hosts: {', '.join(self.hosts())})"
            ],
            self.source,
        )

    def classes_for(self, model: ModelEntry) -> list[NodeClass]:
        """The node classes that can serve `model`, by its runtime's rules."""
        runtime = model.runtime
        if runtime.needs == "npu":
            found = [c for c in self.node_classes if c.npu == model.target]
        else:
            found = [c for c in self.node_classes if c.target == model.target]
        if runtime.needs == "wasm":
            found = [c for c in found if c.wasm]
        if model.only_classes:
            found = [c for c in found if c.name in model.only_classes]
        return found

    def models_for(self, host: str) -> list[ModelEntry]:
        node_class = self.node_class_of(host)
        return [m for m in self.models if node_class in self.classes_for(m)]

    def node(self, host: str) -> NodeSpec:
        node_class = self.node_class_of(host)
        labels, taints = node_labels_and_taints(node_class)
        index = self.servers.index(host) if host in self.servers else None
        return NodeSpec(
            host=host,
            site=self.name,
            node_class=node_class,
            k3s_role="server" if index is not None else "agent",
            server_index=index,
            labels=labels,
            taints=tuple(taints),
            models=tuple(m.name for m in self.models_for(host)),
        )

    def nodes(self) -> list[NodeSpec]:
        return [self.node(host) for host in self.hosts()]

    def model(self, name: str) -> ModelEntry:
        for model in self.models:
            if model.name == name:
                return model
        raise CatalogError(
            [f"no model {name!r} in spec.models ({', '.join(m.name for m in self.models)})"], self.source
        )

    def runtimes(self) -> list[str]:
        return sorted({m.runtime.name for m in self.models})

    def models_to_stage(self, host: str) -> list[dict[str, Any]]:
        """What the model_cache role stages and verifies on `host`, one plain dict per model.

        A GGUF model's fit is checked against the host's own board (its node class's
        target); a HEF model's against the NPU it targets.
        """
        node_class = self.node_class_of(host)
        out = []
        for model in self.models_for(host):
            serving = model.serving
            out.append(
                {
                    "name": model.name,
                    "file": model.file,
                    "format": model.format,
                    "url": model.source,
                    "sha256": model.sha256,
                    "size_bytes": model.size_bytes,
                    "runtime": model.runtime.name,
                    "memory_runtime": model.runtime.memory_runtime or "llama.cpp",
                    "fit_target": model.target if model.format == "hef" else node_class.target,
                    "context_length": serving.context_per_slot,
                    "parallel": serving.parallel,
                    "kv_cache_type": serving.cache_type_k,
                    "batch_size": serving.batch,
                    "flash_attention": serving.flash_attention,
                    "mmap": serving.mmap,
                    "description": model.core_description(),
                    "trusted_keys": [key.pem for key in self.trusted_keys],
                }
            )
        return out


def node_labels_and_taints(node_class: NodeClass) -> tuple[dict[str, str], list[str]]:
    """The node labels and taints of every host of `node_class`.

    The k3s role applies exactly these (config.yaml node-label / node-taint) and the
    validator's scheduling simulation builds its nodes from them: one function for both.
    """
    labels = {
        LABELS["node_class"]: node_class.name,
        LABELS["target"]: node_class.target,
        LABELS["ram"]: str(node_class.ram_gb),
        LABELS["nvme"]: "true" if node_class.nvme else "false",
        LABELS["page_size"]: node_class.page_size,
        LABELS["npu"]: NPU_LABEL_VALUES[node_class.npu] if node_class.npu else "none",
    }
    if node_class.wasm:
        labels[LABELS["wasm"]] = WASM_LABEL_VALUE
        labels[LABELS["wasinn"]] = "true"
    taints = list(node_class.extra_taints)
    if node_class.page_size != "4k":
        # Images built for 4K pages can crash on a 16K-page kernel: only pods that say they
        # cope (a toleration) land there.
        taints.append(f"{LABELS['page_size']}={node_class.page_size}:NoSchedule")
    return labels, taints


# --- loading ---------------------------------------------------------------------------------


def load_catalog(doc: Any, source: str = "site catalog") -> SiteCatalog:
    """Validate a parsed site.yaml and return its typed view; CatalogError lists every problem."""
    problems: list[str] = []
    check(CATALOG_FIELD, doc, "", problems)
    if problems:
        raise CatalogError(problems, source)
    spec = doc["spec"]
    node_classes = tuple(_node_class(item) for item in spec["nodeClasses"])
    models = []
    for item in spec["models"]:
        try:
            models.append(_model(item))
        except _serving.ServingError as exc:
            problems.append(f"spec.models[{item['name']}].{exc}")
    trusted_keys = _trusted_keys(spec.get("modelSigning"), problems)
    cluster = spec["cluster"]
    catalog = SiteCatalog(
        name=doc["metadata"]["name"],
        description=str(spec.get("description") or ""),
        domain=spec["domain"],
        servers=tuple(cluster["servers"]),
        api_endpoint=cluster.get("apiEndpoint"),
        allow_even_servers=bool(cluster.get("allowEvenServers", False)),
        scale_to_zero=spec["autoscaling"]["scaleToZero"],
        max_replicas=spec["autoscaling"]["maxReplicas"],
        node_classes=node_classes,
        models=tuple(models),
        source=source,
        raw=doc,
        trusted_keys=trusted_keys,
    )
    problems.extend(_semantic_problems(catalog))
    if problems:
        raise CatalogError(problems, source)
    return catalog


def _trusted_keys(signing: Mapping[str, Any] | None, problems: list[str]) -> tuple[TrustedKey, ...]:
    """spec.modelSigning.trustedKeys parsed by the signature core (EC P-256/384/521 only, as model-signing)."""
    items = list((signing or {}).get("trustedKeys") or ())
    problems.extend(
        _duplicate_problems("spec.modelSigning.trustedKeys", [str(i["name"]) for i in items], "trusted key")
    )
    keys: list[TrustedKey] = []
    names: dict[str, str] = {}  # key hint -> name
    for item in items:
        where = f"spec.modelSigning.trustedKeys[{item['name']}].publicKey"
        try:
            key = load_trusted_key(item["publicKey"], item["name"])
        except SignatureError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if key.hint in names:
            problems.append(f"{where}: the same key is already listed as {names[key.hint]}; list a key once")
            continue
        names[key.hint] = item["name"]
        keys.append(key)
    return tuple(keys)


def _node_class(item: Mapping[str, Any]) -> NodeClass:
    return NodeClass(
        name=item["name"],
        target=item["target"],
        arch=item.get("arch", "arm64"),
        npu=item.get("npu"),
        nvme=bool(item.get("nvme", False)),
        pcie_switch=bool(item.get("pcieSwitch", False)),
        wasm=bool(item.get("wasm", False)),
        page_size=item.get("pageSize", "4k"),
        longhorn=bool(item.get("longhorn", False)),
        extra_taints=tuple(item.get("taints") or ()),
        virtual=bool(item.get("virtual", False)),
        hosts=tuple(item["hosts"]),
    )


def model_from_mapping(item: Mapping[str, Any], where: str = "model") -> ModelEntry:
    """One catalog model entry on its own (scripts/new-site and scripts/model-release build them)."""
    problems: list[str] = []
    check(MODEL_FIELD, item, where, problems)
    if problems:
        raise CatalogError(problems)
    try:
        return _model(item)
    except _serving.ServingError as exc:
        raise CatalogError([f"{where}.{exc}"]) from exc


def _model(item: Mapping[str, Any]) -> ModelEntry:
    file = item["file"]
    fmt = "hef" if file.endswith(".hef") else "gguf"
    runtime = RUNTIMES[item["runtime"]]
    serving = _serving.serving_from_mapping(item.get("serving") or {}, "serving")
    return ModelEntry(
        name=item["name"],
        file=file,
        format=fmt,
        source=item["source"],
        origin=item.get("origin"),
        sha256=item["sha256"],
        size_bytes=item["sizeBytes"],
        quantization=item["quantization"],
        runtime=runtime,
        target=item["target"],
        prompt_template=item.get("promptTemplate"),
        only_classes=tuple(item.get("nodeClasses") or ()),
        serving=serving,
        resources=item["resources"],
        description=dict(item["description"]),
        example=item.get("example"),
    )


def _semantic_problems(catalog: SiteCatalog) -> list[str]:
    problems: list[str] = []
    problems.extend(_duplicate_problems("spec.nodeClasses", [c.name for c in catalog.node_classes], "node class"))
    problems.extend(_duplicate_problems("spec.models", [m.name for m in catalog.models], "model"))
    owners: dict[str, str] = {}
    for node_class in catalog.node_classes:
        for host in node_class.hosts:
            if host in owners:
                problems.append(
                    f"spec.nodeClasses[{node_class.name}].hosts: {host} is already in node class {owners[host]}; "
                    "a host belongs to one class"
                )
            owners.setdefault(host, node_class.name)
        if node_class.npu and node_class.nvme and not node_class.pcie_switch:
            problems.append(
                f"spec.nodeClasses[{node_class.name}]: an AI HAT+ ({node_class.npu}) and an NVMe drive share the "
                "Pi 5's single PCIe lane only through a switch board: set pcieSwitch: true or drop one"
            )
        if node_class.arch == "amd64" and not node_class.virtual:
            problems.append(
                f"spec.nodeClasses[{node_class.name}].arch: amd64 is for virtual lab nodes only (set virtual: true); "
                "a Raspberry Pi 5 is arm64"
            )
    for index, host in enumerate(catalog.servers):
        if host not in owners:
            problems.append(
                f"spec.cluster.servers[{index}]: {host} is not a host of any node class: add it to "
                "spec.nodeClasses[].hosts"
            )
    if len(catalog.servers) > 1 and not catalog.api_endpoint:
        problems.append(
            "spec.cluster.apiEndpoint: required with more than one server (a DNS name or VIP all servers answer)"
        )
    if len(catalog.servers) % 2 == 0 and not catalog.allow_even_servers:
        problems.append(
            f"spec.cluster.servers: {len(catalog.servers)} servers give embedded etcd no more fault tolerance than "
            f"{len(catalog.servers) - 1}; use an odd number or set allowEvenServers: true"
        )
    runtimes: dict[str, str] = {}
    for model in catalog.models:
        where = f"spec.models[{model.name}]"
        problems.extend(_model_problems(catalog, model, where))
        if model.runtime.name in runtimes:
            problems.append(
                f"{where}.runtime: {model.runtime.name} already serves {runtimes[model.runtime.name]}; "
                "one model per runtime and site"
            )
        runtimes.setdefault(model.runtime.name, model.name)
    return problems


def _duplicate_problems(path: str, names: Iterable[str], what: str) -> list[str]:
    seen: set[str] = set()
    problems = []
    for name in names:
        if name in seen:
            problems.append(f"{path}[{name}]: two {what}s are named {name}; names are unique")
        seen.add(name)
    return problems


def _model_problems(catalog: SiteCatalog, model: ModelEntry, where: str) -> list[str]:
    problems = []
    runtime = model.runtime
    if model.format not in runtime.formats:
        problems.append(
            f"{where}.file: runtime {runtime.name} serves {'/'.join(runtime.formats).upper()} files, "
            f"{model.file} is {model.format.upper()}"
        )
    target = TARGETS[model.target]
    if runtime.needs == "npu" and target.kind != "hailo-llm":
        problems.append(
            f"{where}.target: runtime {runtime.name} serves LLMs only on a Hailo-10H (hailo-10h); "
            f"{model.target} runs no LLMs"
        )
    if runtime.needs != "npu" and target.kind != "cpu":
        problems.append(f"{where}.target: runtime {runtime.name} runs on a Pi 5's CPU: use a pi5-* target")
    if runtime.name == "llamaedge" and not model.prompt_template:
        problems.append(f"{where}.promptTemplate: LlamaEdge needs the model's chat template name (e.g. chatml)")
    known = {c.name for c in catalog.node_classes}
    for name in model.only_classes:
        if name not in known:
            problems.append(f"{where}.nodeClasses: {name} is not a node class of the site ({', '.join(sorted(known))})")
    if not catalog.classes_for(model):
        need = {"npu": "a node class with npu: " + model.target, "wasm": "a node class with wasm: true and target "}
        wanted = need.get(runtime.needs, "a node class with target ")
        if runtime.needs != "npu":
            wanted += model.target
        problems.append(f"{where}.target: no node class can serve it: the site needs {wanted}")
    if "architecture" not in model.description and model.format == "gguf":
        problems.append(f"{where}.description.architecture: is required for a GGUF model")
    if model.format == "gguf":
        try:
            _serving.check_serving(
                model.serving, parse_description(model.core_description()), runtime=model.runtime.name
            )
        except ValueError as exc:
            problems.append(f"{where}.serving: {exc}")
    if catalog.scale_to_zero and not runtime.scale_to_zero:
        problems.append(
            f"{where}.runtime: {runtime.name} cannot scale to zero (its autoscaler is an HPA): "
            "set spec.autoscaling.scaleToZero: false"
        )
    return problems


def model_fit(model: ModelEntry, target: str | None = None, arch: str | None = None) -> FitResult:
    """Whether the model fits `target` (default: the catalog's target) at its serving configuration.

    The estimate sees the whole serving configuration the server's arguments are made from
    (micro-batch, V cache type, prompt cache, checkpoints, streams), and the CPU of `arch`
    (arm64 | amd64; default: the target's) decides which weights are repacked.
    """
    serving = model.serving
    return check_fit(
        model.core_description(),
        target or model.target,
        context_length=serving.context_per_slot,
        serving=serving,
        runtime=model.runtime.memory_runtime or "llama.cpp",
        arch=arch,
    )


def description_from_gguf(description: Mapping[str, Any]) -> dict[str, Any]:
    """A catalog `description:` block from _gguf's GGUFInfo.description() (snake_case keys)."""
    by_core = {core: key for key, (core, _doc) in DESCRIPTION_KEYS.items()}
    out: dict[str, Any] = {}
    for core_key, value in description.items():
        key = by_core.get(core_key)
        if key is not None and value is not None:
            out[key] = value
    return out
