# Copyright (c) edgeslm maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""llama.cpp's compute buffer, found the way llama.cpp finds it: by allocating the graph.

PRIVATE: internal to the edgeslm.pi5 collection; no compatibility promise.

llama.cpp sizes its CPU compute buffer by building the worst-case graph of one micro-batch
and running its graph allocator over it (src/llama-context.cpp sched_reserve -> graph_reserve
-> ggml_backend_sched_reserve -> ggml_gallocr_reserve_n). The buffer is the allocator's high
water mark: the tensors alive at the same time, after in-place reuse, with best-fit placement
and 32-byte alignment. No closed formula follows that across shapes (fused QKV, wide queries,
per-stream attention scores, sliding windows, MoE), so this module does the same thing on a
model of the graph: it builds the node list of each supported architecture in llama.cpp's
order, with each tensor's shape and type, and replays ggml-alloc's allocator on it.

Facts (llama.cpp vendored in llama-cpp-python 0.3.36):
* graph builders: src/models/{llama,qwen2,qwen3,qwen3moe,phi3,gemma2,gemma3}.cpp and
  src/llama-graph.cpp (build_inp_embd, build_qkv, build_attn, build_attn_mha, build_ffn,
  build_moe_ffn, build_attn_inp_kq_mask, build_inp_out_ids);
* KV views and stores: src/llama-kv-cache.cpp (get_k, get_v, cpy_k, cpy_v, build_input_*_idxs,
  build_input_k_rot: a Hadamard rotation for quantized caches with 64-multiple heads);
* op shapes and in-place rules: ggml/src/ggml.c, ggml/src/ggml-alloc.c (ggml_op_can_inplace,
  ggml_gallocr_allocate_node, ggml_gallocr_alloc_graph_impl, ggml_dyn_tallocr_alloc);
* what is reserved: src/llama-context.cpp sched_reserve: a prompt graph of
  min(n_ctx, n_ubatch) tokens over n_seq_max sequences with min(tokens, n_outputs_max)
  outputs, a generation graph of n_seq_max tokens, the largest wins. llama-server limits
  outputs to one per slot (tools/server/server-context.cpp server_output_limits).

The replay is checked against llama.cpp's own `CPU compute buffer size` line in
benchmarks/accuracy_llamacpp.py (benchmarks/README.md has the table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "ARCH_GRAPHS",
    "ArchGraph",
    "ComputeShape",
    "compute_buffer_bytes",
    "compute_sizes",
    "graph_peak",
    "work_size",
]

# ggml's CPU buffer alignment (ggml/src/ggml-cpu: TENSOR_ALIGNMENT).
ALIGNMENT = 32

_TYPE_SIZE = {"f32": 4, "f16": 2, "i32": 4, "i64": 8}
# Cache element types: (block size, bytes per block), ggml/src/ggml.c type_traits.
_CACHE_TYPES = {
    "f32": (1, 4),
    "f16": (1, 2),
    "bf16": (1, 2),
    "q8_0": (32, 34),
    "q4_0": (32, 18),
    "q4_1": (32, 20),
    "iq4_nl": (32, 18),
    "q5_0": (32, 22),
    "q5_1": (32, 24),
}

# Ops whose result may take over its source's memory (ggml-alloc.c ggml_op_can_inplace).
_INPLACE = frozenset({"SCALE", "ADD", "MUL", "DIV", "UNARY", "ROPE", "RMS_NORM", "CLAMP", "SOFT_MAX"})


@dataclass(eq=False)
class _T:
    """A ggml tensor as the allocator sees it."""

    ne: tuple[int, int, int, int]
    nb: tuple[int, int, int, int]
    type: str
    op: str = "NONE"
    src: tuple[_T | None, ...] = ()
    view_src: _T | None = None
    external: bool = False  # data owned elsewhere (weights, KV cache)
    kind: str = ""  # "weight" | "cache" for external tensors
    is_input: bool = False
    is_output: bool = False
    name: str = ""

    @property
    def nbytes(self) -> int:
        if self.type in _CACHE_TYPES:
            block, size = _CACHE_TYPES[self.type]
            return self.ne[0] // block * size * self.ne[1] * self.ne[2] * self.ne[3]
        return _TYPE_SIZE[self.type] * self.ne[0] * self.ne[1] * self.ne[2] * self.ne[3]

    def contiguous(self) -> bool:
        return self.nb == _strides(self.ne, self.type)


def _strides(ne: tuple[int, int, int, int], type_: str) -> tuple[int, int, int, int]:
    if type_ in _CACHE_TYPES:
        block, size = _CACHE_TYPES[type_]
        nb0 = size
        nb1 = ne[0] // block * size
    else:
        nb0 = _TYPE_SIZE[type_]
        nb1 = nb0 * ne[0]
    return (nb0, nb1, nb1 * ne[1], nb1 * ne[1] * ne[2])


def _ne(*dims: int) -> tuple[int, int, int, int]:
    full = [*dims, 1, 1, 1, 1][:4]
    return (full[0], full[1], full[2], full[3])


class _Graph:
    """The ggml calls llama.cpp's builders make, recording nodes in ggml_build_forward order."""

    def __init__(self) -> None:
        self.nodes: list[_T] = []
        self.leafs: list[_T] = []
        self._seen: set[int] = set()

    # -- tensors ---------------------------------------------------------------------------
    def new(self, type_: str, *dims: int, op: str = "NONE", src: Sequence[_T | None] = (), name: str = "") -> _T:
        ne = _ne(*dims)
        return _T(ne, _strides(ne, type_), type_, op, tuple(src), name=name)

    def input(self, type_: str, *dims: int, name: str = "") -> _T:
        tensor = self.new(type_, *dims, name=name)
        tensor.is_input = True
        return tensor

    def weight(self, *dims: int, name: str = "") -> _T:
        ne = _ne(*dims)
        return _T(ne, _strides(ne, "f32"), "f32", external=True, kind="weight", name=name)

    def cache(self, type_: str, *dims: int, name: str = "") -> _T:
        ne = _ne(*dims)
        return _T(ne, _strides(ne, type_), type_, external=True, kind="cache", name=name)

    def view(
        self,
        a: _T,
        ne: tuple[int, int, int, int],
        nb: tuple[int, int, int, int],
        op: str = "VIEW",
        src: Sequence[_T | None] | None = None,
    ) -> _T:
        root = a.view_src or a
        return _T(
            ne,
            nb,
            a.type,
            op,
            tuple(src) if src is not None else (a,),
            view_src=root,
            external=root.external,
            kind=root.kind,
        )

    # -- ops (ggml/src/ggml.c) ------------------------------------------------------------
    def dup(self, op: str, a: _T, *others: _T | None) -> _T:
        """ggml_dup_tensor(a) as the result of `op` (add, mul, scale, rms_norm, rope, soft_max, ...)."""
        return self.new(a.type, *a.ne, op=op, src=(a, *others))

    def get_rows(self, a: _T, b: _T) -> _T:
        return self.new(
            "i32" if a.type == "i32" else "f32", a.ne[0], b.ne[0], b.ne[1], b.ne[2], op="GET_ROWS", src=(a, b)
        )

    def mul_mat(self, a: _T, b: _T) -> _T:
        return self.new("f32", a.ne[1], b.ne[1], b.ne[2], b.ne[3], op="MUL_MAT", src=(a, b))

    def mul_mat_id(self, a: _T, b: _T, ids: _T) -> _T:
        return self.new("f32", a.ne[1], ids.ne[0], b.ne[2], 1, op="MUL_MAT_ID", src=(a, b, ids))

    def reshape(self, a: _T, *dims: int) -> _T:
        ne = _ne(*dims)
        return self.view(a, ne, _strides(ne, a.type), op="RESHAPE")

    def view_nd(self, a: _T, ne: tuple[int, ...], nb: tuple[int, ...]) -> _T:
        full_ne = _ne(*ne)
        strides = [a.nb[0], *nb]
        while len(strides) < 4:
            strides.append(strides[-1] * full_ne[len(strides) - 1])
        return self.view(a, full_ne, (strides[0], strides[1], strides[2], strides[3]))

    def permute(self, a: _T, *axes: int) -> _T:
        ne = [0, 0, 0, 0]
        nb = [0, 0, 0, 0]
        for i, axis in enumerate(axes):
            ne[axis] = a.ne[i]
            nb[axis] = a.nb[i]
        return self.view(a, _ne(*ne), (nb[0], nb[1], nb[2], nb[3]), op="PERMUTE")

    def cont(self, a: _T, *dims: int) -> _T:
        return self.new(a.type, *(dims or a.ne), op="CONT", src=(a,))

    def set_rows(self, a: _T, b: _T, c: _T) -> _T:
        return self.view(a, a.ne, a.nb, op="SET_ROWS", src=(b, c, a))

    def flash_attn_ext(self, q: _T, k: _T, v: _T, mask: _T) -> _T:
        return self.new("f32", v.ne[0], q.ne[2], q.ne[1], q.ne[3], op="FLASH_ATTN_EXT", src=(q, k, v, mask))

    def glu(self, a: _T, b: _T | None) -> _T:
        dims = a.ne if b is not None else (a.ne[0] // 2, a.ne[1], a.ne[2], a.ne[3])
        return self.new(a.type, *dims, op="GLU", src=(a, b))

    def argsort(self, a: _T) -> _T:
        return self.new("i32", *a.ne, op="ARGSORT", src=(a,))

    def sum_rows(self, a: _T) -> _T:
        return self.new(a.type, 1, a.ne[1], a.ne[2], a.ne[3], op="SUM_ROWS", src=(a,))

    # -- ggml_build_forward_expand ----------------------------------------------------------
    def expand(self, tensor: _T) -> None:
        self._visit(tensor)

    def _visit(self, tensor: _T) -> None:
        stack: list[tuple[_T, int]] = [(tensor, 0)]
        if id(tensor) in self._seen:
            return
        self._seen.add(id(tensor))
        while stack:
            node, index = stack.pop()
            if index < len(node.src):
                stack.append((node, index + 1))
                src = node.src[index]
                if src is not None and id(src) not in self._seen:
                    self._seen.add(id(src))
                    stack.append((src, 0))
                continue
            if node.op == "NONE":
                self.leafs.append(node)
            else:
                self.nodes.append(node)


# --- the graph allocator (ggml/src/ggml-alloc.c) ------------------------------------------


def _aligned(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


class _DynAllocator:
    """ggml_dyn_tallocr with one chunk (the CPU buffer type has no maximum size)."""

    def __init__(self) -> None:
        self.free: list[list[int]] = [[0, 1 << 62]]  # [offset, size], sorted by offset; last is the tail
        self.max_size = 0

    def alloc(self, size: int) -> int:
        size = _aligned(size)
        best = -1
        best_size = 1 << 63
        for index, (_offset, block_size) in enumerate(self.free[:-1]):
            if size <= block_size <= best_size:
                best, best_size = index, block_size
        if best == -1:
            best = len(self.free) - 1
        block = self.free[best]
        offset = block[0]
        block[0] += size
        block[1] -= size
        if block[1] == 0:
            del self.free[best]
        self.max_size = max(self.max_size, offset + size)
        return offset

    def release(self, offset: int, size: int) -> None:
        size = _aligned(size)
        free = self.free
        for index, block in enumerate(free):
            if block[0] + block[1] == offset:
                block[1] += size
                if index + 1 < len(free) and block[0] + block[1] == free[index + 1][0]:
                    block[1] += free[index + 1][1]
                    del free[index + 1]
                return
            if offset + size == block[0]:
                block[0] = offset
                block[1] += size
                if index > 0 and free[index - 1][0] + free[index - 1][1] == block[0]:
                    free[index - 1][1] += block[1]
                    del free[index]
                return
        position = 0
        while position < len(free) and free[position][0] < offset:
            position += 1
        free.insert(position, [offset, size])


@dataclass
class _State:
    children: int = 0
    views: int = 0
    allocated: bool = False
    offset: int = 0


def graph_peak(nodes: Sequence[_T], leafs: Sequence[_T]) -> int:
    """ggml_gallocr_alloc_graph_impl over (nodes, leafs): the buffer size it would reserve."""
    alloc = _DynAllocator()
    state: dict[int, _State] = {}

    def st(tensor: _T) -> _State:
        entry = state.get(id(tensor))
        if entry is None:
            entry = state[id(tensor)] = _State()
        return entry

    def is_allocated(tensor: _T) -> bool:
        return tensor.external or st(tensor).allocated

    def free_extra(node: _T, parent: _T) -> None:
        parent_size, node_size = _aligned(parent.nbytes), _aligned(node.nbytes)
        if parent_size > node_size:
            alloc.release(st(parent).offset + node_size, parent_size - node_size)

    def allocate(node: _T) -> None:
        hn = st(node)
        if is_allocated(node) or node.view_src is not None:
            return
        hn.allocated = True
        if node.op.split(":")[0] in _INPLACE:
            for parent in node.src:
                if parent is None or parent.external or not st(parent).allocated:
                    continue
                if parent.is_output or (parent.view_src is not None and parent.view_src.is_output):
                    continue
                if parent.ne != node.ne or parent.nb != node.nb or parent.type != node.type:
                    continue
                p_hn = st(parent)
                if p_hn.children != 1 or p_hn.views != 0:
                    continue
                if parent.view_src is not None:
                    v_hn = st(parent.view_src)
                    if v_hn.views == 1 and v_hn.children == 0:
                        hn.offset = v_hn.offset
                        p_hn.allocated = False
                        v_hn.allocated = False
                        free_extra(node, parent.view_src)
                        return
                    continue
                hn.offset = p_hn.offset
                p_hn.allocated = False
                free_extra(node, parent)
                return
        hn.offset = alloc.alloc(node.nbytes)

    def free(node: _T) -> None:
        if node.is_output:
            return
        hn = st(node)
        alloc.release(hn.offset, node.nbytes)
        hn.allocated = False

    for leaf in leafs:
        allocate(leaf)
    for node in nodes:
        if node.view_src is not None and node.op != "NONE":
            st(node.view_src).views += 1
        if node.is_input:
            allocate(node)
        for src in node.src:
            if src is None:
                continue
            st(src).children += 1
            if src.is_input:
                allocate(src)
    for node in nodes:
        for parent in node.src:
            if parent is not None:
                allocate(parent)
        allocate(node)
        for parent in node.src:
            if parent is None:
                continue
            p_hn = st(parent)
            p_hn.children -= 1
            if p_hn.children == 0 and p_hn.views == 0:
                if parent.view_src is not None:
                    v_hn = st(parent.view_src)
                    v_hn.views -= 1
                    if v_hn.views == 0 and v_hn.children == 0 and v_hn.allocated and not parent.view_src.external:
                        free(parent.view_src)
                elif p_hn.allocated:
                    free(parent)
    return alloc.max_size


# --- architectures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchGraph:
    """How one architecture's llama.cpp builder differs from the llama one (src/models/<arch>.cpp)."""

    source: str
    fused_qkv: bool = False  # one attn_qkv matmul, Q/K/V as strided views (phi3)
    qkv_bias: bool = False  # bias adds after the Q/K/V matmuls (qwen2)
    qk_norm: bool = False  # RMS norms on Q and K heads (qwen3, gemma3)
    q_scale: bool = False  # ggml_scale on Q before attention (phi3, gemma2, gemma3)
    embd_scale: bool = False  # ggml_scale on the input embeddings (gemma2, gemma3)
    post_norms: bool = False  # attention and FFN output norms (gemma2, gemma3)
    ffn: str = "swiglu_par"  # swiglu_par | geglu_par | swiglu_fused_up (phi3: one up matmul of 2 x ffn)
    attn_softcap: bool = False  # tanh soft-capping of attention scores (gemma2)
    final_softcap: bool = False  # tanh soft-capping of the logits (gemma2, gemma3 when set)
    swa_pattern: int = 0  # default sliding-window pattern when the model has a window
    moe_norm_w: bool = True  # renormalise the selected experts' weights


ARCH_GRAPHS: dict[str, ArchGraph] = {
    "llama": ArchGraph("src/models/llama.cpp"),
    "qwen2": ArchGraph("src/models/qwen2.cpp", qkv_bias=True),
    "qwen3": ArchGraph("src/models/qwen3.cpp", qk_norm=True),
    "qwen3moe": ArchGraph("src/models/qwen3moe.cpp", qk_norm=True),
    "phi3": ArchGraph("src/models/phi3.cpp", fused_qkv=True, q_scale=True, ffn="swiglu_fused_up"),
    "gemma2": ArchGraph(
        "src/models/gemma2.cpp",
        q_scale=True,
        embd_scale=True,
        post_norms=True,
        ffn="geglu_par",
        attn_softcap=True,
        final_softcap=True,
        swa_pattern=2,
    ),
    "gemma3": ArchGraph(
        "src/models/gemma3.cpp",
        qk_norm=True,
        q_scale=True,
        embd_scale=True,
        post_norms=True,
        ffn="geglu_par",
        swa_pattern=6,
    ),
}


@dataclass(frozen=True)
class ComputeShape:
    """Everything the compute graph's tensor sizes depend on."""

    architecture: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_k: int
    head_v: int
    n_vocab: int
    n_ff: int
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    swa_layers: tuple[bool, ...] = field(default_factory=tuple)  # per layer: keeps only the window
    kv_size: int = 256  # cells per stream (full-attention layers)
    kv_size_swa: int = 256  # cells per stream (sliding-window layers)
    n_stream: int = 1
    n_seq: int = 1
    n_outputs_max: int = 1
    n_ubatch: int = 512
    n_ctx: int = 512
    flash_attention: bool = False
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    rope_factors: bool = False
    # CPU backend work buffer (ggml-cpu.c ggml_graph_plan): bytes per element a weight matmul's
    # activations take once converted to the weights' vec_dot type (Q8_0: 34/32, Q8_K: 292/256,
    # F16: 2; 0 for F32 weights), threads, and the tiled K-quant scratch of x86 builds
    weight_vec_dot: float = 34 / 32
    n_threads: int = 4
    tiled_scratch: bool = False


def _rot_size(head: int, is_k: bool) -> int:
    """Hadamard rotation size for a quantized cache (src/llama-kv-cache.cpp build_input_{k,v}_rot)."""
    if not is_k:
        return 64
    nrot = 64
    while head % (nrot * 2) == 0:
        nrot *= 2
    return nrot


def _build(shape: ComputeShape, arch: ArchGraph, n_tokens: int, n_seqs: int, n_outputs: int) -> _Graph:
    """The node list of src/models/<arch>.cpp for one micro-batch, as graph_reserve builds it."""
    g = _Graph()
    s = shape
    if n_tokens % n_seqs:
        n_tokens = -(-n_tokens // n_seqs) * n_seqs
    n_stream = s.n_stream
    e, hd_k, hd_v = s.n_embd, s.head_k, s.head_v
    q_width = hd_k * s.n_head
    k_width = hd_k * s.n_head_kv
    v_width = hd_v * s.n_head_kv
    v_trans = not s.flash_attention

    # build_inp_embd: both inputs stay in the graph (ggml_build_forward_select)
    tok_embd = g.weight(e, s.n_vocab, name="token_embd")
    tokens = g.input("i32", n_tokens, name="inp_tokens")
    embd = g.input("f32", e, n_tokens, name="inp_embd")
    inp_l = g.get_rows(tok_embd, tokens)
    g.expand(inp_l)
    g.expand(embd)
    if arch.embd_scale:
        inp_l = g.dup("SCALE", inp_l)
    inp_pos = g.input("i32", n_tokens, name="inp_pos")

    # attention inputs (build_attn_inp_kv / _iswa)
    def attn_inputs(kv_cells: int) -> dict[str, _T | None]:
        k_idxs = g.input("i64", n_tokens, name="k_idxs")
        v_idxs = g.input("i64", n_tokens * (v_width if v_trans else 1), name="v_idxs")
        mask = g.input(
            "f16" if s.flash_attention else "f32", kv_cells, n_tokens // n_stream, 1, n_stream, name="kq_mask"
        )
        return {"k_idxs": k_idxs, "v_idxs": v_idxs, "mask": mask}

    has_swa = any(s.swa_layers)
    base_inp = attn_inputs(s.kv_size)
    swa_inp = attn_inputs(s.kv_size_swa) if has_swa else None

    def rotations() -> tuple[_T | None, _T | None]:
        k_rot = v_rot = None
        if _CACHE_TYPES[s.cache_type_k][0] > 1 and hd_k % 64 == 0:
            n = _rot_size(hd_k, True)
            k_rot = g.input("f32", n, n, name="k_rot")
        if _CACHE_TYPES[s.cache_type_v][0] > 1 and hd_v % 64 == 0:
            n = _rot_size(hd_v, False)
            v_rot = g.input("f32", n, n, name="v_rot")
        return k_rot, v_rot

    base_rot = rotations()
    swa_rot = rotations() if has_swa else base_rot
    out_ids = g.input("i32", n_outputs, name="out_ids")

    def hadamard(cur: _T, rot: _T) -> _T:
        n = rot.ne[0]
        count = cur.ne[0] * cur.ne[1] * cur.ne[2] * cur.ne[3]
        res = g.reshape(cur, n, count // n) if cur.contiguous() else g.cont(cur, n, count // n)
        res = g.mul_mat(rot, res)
        return g.reshape(res, *cur.ne)

    def norm(cur: _T, width: int) -> _T:
        cur = g.dup("RMS_NORM", cur)
        return g.dup("MUL", cur, g.weight(width))

    def attention(cur: _T, il: int) -> _T:
        is_swa = bool(s.swa_layers[il]) if s.swa_layers else False
        inp = swa_inp if (is_swa and swa_inp is not None) else base_inp
        kv_cells = s.kv_size_swa if is_swa else s.kv_size
        # build_qkv
        if arch.fused_qkv:
            qkv = g.mul_mat(g.weight(e, q_width + k_width + v_width), cur)
            row = qkv.nb[1]
            q = g.view_nd(qkv, (hd_k, s.n_head, n_tokens), (4 * hd_k, row))
            k = g.view_nd(qkv, (hd_k, s.n_head_kv, n_tokens), (4 * hd_k, row))
            v = g.view_nd(qkv, (hd_v, s.n_head_kv, n_tokens), (4 * hd_v, row))
        else:
            q = g.mul_mat(g.weight(e, q_width), cur)
            if arch.qkv_bias:
                q = g.dup("ADD", q, g.weight(q_width))
            k = g.mul_mat(g.weight(e, k_width), cur)
            if arch.qkv_bias:
                k = g.dup("ADD", k, g.weight(k_width))
            v = g.mul_mat(g.weight(e, v_width), cur)
            if arch.qkv_bias:
                v = g.dup("ADD", v, g.weight(v_width))
            q = g.reshape(q, hd_k, s.n_head, n_tokens)
            k = g.reshape(k, hd_k, s.n_head_kv, n_tokens)
            v = g.reshape(v, hd_v, s.n_head_kv, n_tokens)
        factors = g.weight(hd_k // 2) if s.rope_factors else None
        if arch.qk_norm:
            q = norm(q, hd_k)
        q = g.dup("ROPE", q, inp_pos, factors) if factors else g.dup("ROPE", q, inp_pos)
        if arch.qk_norm:
            k = norm(k, hd_k)
        k = g.dup("ROPE", k, inp_pos, factors) if factors else g.dup("ROPE", k, inp_pos)
        if arch.q_scale:
            q = g.dup("SCALE", q)
        # build_attn (llama-graph.cpp): rotations, then expand q, v, k (iswa: q, k, v)
        k_rot, v_rot = swa_rot if is_swa else base_rot
        if k_rot is not None:
            q = hadamard(q, k_rot)
            k = hadamard(k, k_rot)
        if v_rot is not None:
            v = hadamard(v, v_rot)
        order = (q, k, v) if has_swa else (q, v, k)
        for tensor in order:
            g.expand(tensor)
        k_cache = g.cache(s.cache_type_k, k_width, kv_cells, n_stream)
        v_cache = g.cache(s.cache_type_v, v_width, kv_cells, n_stream)
        # cpy_k / cpy_v
        k_cur = g.view_nd(k, (k_width, n_tokens), (k.nb[2],))
        k_dst = g.reshape(k_cache, k_width, kv_cells * n_stream) if n_stream > 1 else k_cache
        g.expand(g.set_rows(k_dst, k_cur, _req(inp["k_idxs"])))
        if not v_trans:
            v_cur = g.view_nd(v, (v_width, n_tokens), (v.nb[2],))
            v_dst = g.reshape(v_cache, v_width, kv_cells * n_stream) if n_stream > 1 else v_cache
            g.expand(g.set_rows(v_dst, v_cur, _req(inp["v_idxs"])))
        else:
            row = _strides((v_width, 1, 1, 1), v.type)[1]
            v_flat = (
                g.reshape(v, v_width, n_tokens) if v.nb[2] == row and v.contiguous() else g.cont(v, v_width, n_tokens)
            )
            v_flat = g.reshape(v_flat, 1, v_width * n_tokens)
            v_view = g.reshape(v_cache, 1, v_width * kv_cells * n_stream)
            g.expand(g.set_rows(v_view, v_flat, _req(inp["v_idxs"])))
        # get_k / get_v
        kb = _strides((hd_k, 1, 1, 1), s.cache_type_k)[1]
        k_view = g.view(
            k_cache, _ne(hd_k, s.n_head_kv, kv_cells, n_stream), (k_cache.nb[0], kb, kb * s.n_head_kv, k_cache.nb[2])
        )
        if not v_trans:
            vb = _strides((hd_v, 1, 1, 1), s.cache_type_v)[1]
            v_view2 = g.view(
                v_cache,
                _ne(hd_v, s.n_head_kv, kv_cells, n_stream),
                (v_cache.nb[0], vb, vb * s.n_head_kv, v_cache.nb[2]),
            )
        else:
            cell = _strides((kv_cells, 1, 1, 1), s.cache_type_v)[1]
            v_view2 = g.view(
                v_cache, _ne(kv_cells, s.n_head_kv, hd_v, n_stream), (v_cache.nb[0], cell * hd_v, cell, v_cache.nb[2])
            )
        # build_attn_mha
        qs = g.view(
            q,
            _ne(q.ne[0], q.ne[1], q.ne[2] // n_stream, n_stream),
            (q.nb[0], q.nb[1], q.nb[2], q.nb[2] * (q.ne[2] // n_stream)),
        )
        qp = g.permute(qs, 0, 2, 1, 3)
        kp = g.permute(k_view, 0, 2, 1, 3)
        vp = g.permute(v_view2, 0, 2, 1, 3)
        mask = _req(inp["mask"])
        if s.flash_attention:
            if kp.type == "f32":  # ggml_cast to f16 (build_attn_mha)
                kp = g.new("f16", *kp.ne, op="CPY", src=(kp,))
            if vp.type == "f32":
                vp = g.new("f16", *vp.ne, op="CPY", src=(vp,))
            out = g.flash_attn_ext(qp, kp, vp, mask)
            out = g.reshape(out, out.ne[0] * out.ne[1], out.ne[2] * out.ne[3])
        else:
            kq = g.mul_mat(kp, qp)
            if arch.attn_softcap:
                kq = g.dup("SCALE", kq)
                kq = g.dup("UNARY", kq)
                kq = g.dup("SCALE", kq)
            kq = g.dup("SOFT_MAX", kq, mask)
            kqv = g.mul_mat(vp, kq)
            out = g.permute(kqv, 0, 2, 1, 3)
            out = g.cont(out, out.ne[0] * out.ne[1], out.ne[2] * out.ne[3])
        g.expand(out)
        if v_rot is not None:
            out = hadamard(out, v_rot)
        return g.mul_mat(g.weight(hd_v * s.n_head, e), out)

    def ffn(cur: _T, il: int) -> _T:
        if s.n_expert and s.n_expert_used:
            return moe(cur)
        if arch.ffn == "swiglu_fused_up":
            up = g.mul_mat(g.weight(e, 2 * s.n_ff), cur)
            act = g.glu(up, None)
        else:
            up = g.mul_mat(g.weight(e, s.n_ff), cur)
            gate = g.mul_mat(g.weight(e, s.n_ff), cur)
            act = g.glu(gate, up)
        return g.mul_mat(g.weight(s.n_ff, e), act)

    def moe(cur: _T) -> _T:
        n_tok = cur.ne[1]
        ff = s.n_ff_exp or s.n_ff
        logits = g.mul_mat(g.weight(e, s.n_expert), cur)
        probs = g.dup("SOFT_MAX", logits)
        sorted_ = g.argsort(probs)
        selected = g.view(
            sorted_, _ne(s.n_expert_used, n_tok), (sorted_.nb[0], sorted_.nb[1], sorted_.nb[2], sorted_.nb[3])
        )
        probs3 = g.reshape(probs, 1, s.n_expert, n_tok)
        weights = g.get_rows(probs3, selected)
        if arch.moe_norm_w:
            w2 = g.reshape(weights, s.n_expert_used, n_tok)
            wsum = g.sum_rows(w2)
            wsum = g.dup("CLAMP", wsum)
            w2 = g.dup("DIV", w2, wsum)
            weights = g.reshape(w2, 1, s.n_expert_used, n_tok)
        g.expand(weights)
        cur3 = g.reshape(cur, e, 1, n_tok)
        up = g.mul_mat_id(g.weight(e, ff, s.n_expert), cur3, selected)
        gate = g.mul_mat_id(g.weight(e, ff, s.n_expert), cur3, selected)
        act = g.glu(gate, up)
        experts = g.mul_mat_id(g.weight(ff, e, s.n_expert), act, selected)
        experts = g.dup("MUL", experts, weights)
        g.expand(experts)
        views = [
            g.view(experts, _ne(e, n_tok), (experts.nb[0], experts.nb[2], experts.nb[2] * n_tok, experts.nb[2] * n_tok))
            for _expert in range(s.n_expert_used)
        ]
        for item in views:
            g.expand(item)
        out = views[0]
        for item in views[1:]:
            out = g.dup("ADD", out, item)
            g.expand(out)
        if s.n_expert_used == 1:
            out = g.cont(out)
        return out

    for il in range(s.n_layer):
        residual = inp_l
        cur = norm(inp_l, e)
        cur = attention(cur, il)
        if il == s.n_layer - 1:
            cur = g.get_rows(cur, out_ids)
            residual = g.get_rows(residual, out_ids)
        if arch.post_norms:
            cur = norm(cur, e)
        ffn_inp = g.dup("ADD", cur, residual)
        cur = norm(ffn_inp, e)
        cur = ffn(cur, il)
        if arch.post_norms:
            cur = norm(cur, e)
        inp_l = g.dup("ADD", cur, ffn_inp)

    result = norm(inp_l, e)
    result.is_output = True  # res->t_embd
    logits = g.mul_mat(g.weight(e, s.n_vocab), result)
    if arch.final_softcap:
        logits = g.dup("SCALE", logits)
        logits = g.dup("UNARY", logits)
        logits = g.dup("SCALE", logits)
    logits.is_output = True  # res->t_logits
    g.expand(logits)
    return g


def _req(tensor: _T | None) -> _T:
    if tensor is None:
        raise ValueError("graph model: an input the graph needs was not built")
    return tensor


# vec_dot types of the cache element types (ggml-cpu.c type_traits_cpu): bytes per element.
_CACHE_VEC_DOT = {"f32": 0.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 34 / 32, "iq4_nl": 34 / 32,
                  "q5_0": 34 / 32, "q4_1": 36 / 32, "q5_1": 36 / 32}  # fmt: skip
_CACHE_LINE = 64
_FA_TILE = 64  # GGML_FA_TILE_Q, GGML_FA_TILE_KV (ggml-cpu/common.h)
_TILED_SLOT = 512 * 1024  # ggml-cpu/tiled/tiled-kernel.h TILED_WS_SLOT


def _pad64(value: float) -> int:
    return -(-int(value) // 64) * 64


def work_size(nodes: Sequence[_T], shape: ComputeShape) -> int:
    """The CPU backend's work buffer for these nodes (ggml-cpu.c ggml_graph_plan): the largest need + cache lines."""
    threads = shape.n_threads
    largest = 0
    for node in nodes:
        cur = 0
        src0 = node.src[0] if node.src else None
        src1 = node.src[1] if len(node.src) > 1 else None
        if node.op in ("MUL_MAT", "MUL_MAT_ID") and src0 is not None and src1 is not None:
            if src0.kind == "weight":
                per = shape.weight_vec_dot
            elif src0.kind == "cache":
                per = _CACHE_VEC_DOT[src0.type]
            else:
                per = 0.0 if src0.type == "f32" else 2.0
            elements = src1.ne[0] * src1.ne[1] * src1.ne[2] * src1.ne[3]
            if node.op == "MUL_MAT":
                cur = _pad64(per * elements)
            else:
                n_as, ids = src0.ne[2], _req(node.src[2])
                cur = (int(per * elements) + 8 if per else 0) + n_as * 8 + 8 + n_as * ids.ne[0] * ids.ne[1] * 8 + 8
                cur = _pad64(cur + _CACHE_LINE * n_as + _CACHE_LINE)
            if shape.tiled_scratch and src0.kind == "weight":
                cur += 64 + threads * _TILED_SLOT
        elif node.op == "FLASH_ATTN_EXT" and src0 is not None and src1 is not None:
            v = _req(node.src[2])
            dk, dv, heads = src1.ne[0], v.ne[0], src0.ne[2]
            prefill = (
                4 * (_FA_TILE * dk + 2 * _FA_TILE * _FA_TILE + _FA_TILE * dv + _FA_TILE * dv + _FA_TILE * dk) * threads
            )
            decode = 4 * (heads * threads * (2 + dv) + threads * (dk + 2 * dv))
            cur = max(prefill, decode)
        elif node.op.split(":")[0] in ("SOFT_MAX", "ROPE"):
            cur = 4 * node.ne[0] * threads
        largest = max(largest, cur)
    return largest + _CACHE_LINE * threads if largest else 0


# A pure function of a frozen shape: a fleet's sites serve the same few models at the same few
# settings, and one simulation costs milliseconds per layer.
@lru_cache(maxsize=512)
def compute_sizes(shape: ComputeShape) -> tuple[int, int]:
    """(compute buffer, CPU work buffer) llama.cpp allocates for `shape`.

    The compute buffer is what sched_reserve reserves: the larger of a prompt graph and a
    generation graph. The work buffer is the CPU backend's scratch, grown to the largest graph
    it computed (not in llama.cpp's buffer report, but resident once a prompt ran).
    """
    arch = ARCH_GRAPHS.get(shape.architecture, ARCH_GRAPHS["llama"])
    n_tokens = min(shape.n_ctx, shape.n_ubatch)
    n_seqs = shape.n_seq
    prompt = _build(shape, arch, n_tokens, n_seqs, min(n_tokens, shape.n_outputs_max))
    generation = _build(shape, arch, n_seqs, n_seqs, n_seqs)
    buffer = max(graph_peak(prompt.nodes, prompt.leafs), graph_peak(generation.nodes, generation.leafs))
    return buffer, max(work_size(prompt.nodes, shape), work_size(generation.nodes, shape))


def compute_buffer_bytes(shape: ComputeShape) -> int:
    """The CPU compute buffer llama.cpp reserves for `shape` (sched_reserve: prompt graph, then generation)."""
    return compute_sizes(shape)[0]
