"""Prepares a Stable Diffusion UNet for NVIDIA GPUs: ONNX Runtime's transformer optimizer fuses the fp32 graph
(multi-head attention, GroupNorm, BiasSplitGelu, BiasAdd, NhwcConv ...) and the result is converted to fp16.
The fused graph uses contrib operators that only ONNX Runtime's CUDA provider runs.

    python scripts/prepare_unet.py MODEL_DIR/unet/model.onnx OUT_DIR/unet/model.onnx

Needs `pip install onnx onnxruntime` (any 1.2x; the optimizer is Python). Pigment itself runs the prepared model
without Python: copy the rest of the model folder beside OUT_DIR/unet.
"""

import os
import sys
from collections import Counter

import numpy as np
import onnx


def _patch_num_heads_detection():
    """onnxruntime <= 1.31's UNet attention fusion calls int() on a one-element array, which NumPy 2 refuses
    ("only 0-dimensional arrays can be converted"); read the element instead."""
    import importlib

    from onnxruntime.transformers import optimizer  # noqa: F401  (puts its folder on sys.path)

    def get_num_heads(self, reshape_q, is_torch2=False):
        num_heads = 0
        if is_torch2:
            parent = self.model.get_parent(reshape_q, 1)
            if parent and parent.op_type == "Concat" and len(parent.input) == 4:
                value = self.model.get_constant_value(parent.input[2])
                if isinstance(value, np.ndarray) and list(value.shape) == [1]:
                    num_heads = int(value[0])
        else:
            value = self.model.get_constant_value(reshape_q.input[1])
            if isinstance(value, np.ndarray) and list(value.shape) == [4]:
                num_heads = int(value[2])
        return num_heads if num_heads > 0 else 0

    # The optimizer's modules import each other both as `onnxruntime.transformers.x` and as top-level `x`.
    for name in ("fusion_attention_unet", "onnxruntime.transformers.fusion_attention_unet"):
        importlib.import_module(name).FusionAttentionUnet.get_num_heads = get_num_heads


def fuse_and_convert(source, target):
    _patch_num_heads_detection()
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("unet")
    # Fuse on the fp32 graph (the fusions recognise fp32 patterns), then convert: fusing an fp16 export misses some.
    optimized = optimize_model(source, model_type="unet", num_heads=0, hidden_size=0, opt_level=0, use_gpu=True,
                               optimization_options=options)
    print("fused graph:", dict(Counter(n.op_type for n in optimized.model.graph.node).most_common(12)), flush=True)
    optimized.convert_float_to_float16(keep_io_types=False, op_block_list=["RandomNormalLike"])
    optimized.model.ir_version = 8  # ONNX Runtime 1.31 reads IR 13 at most
    os.makedirs(os.path.dirname(target), exist_ok=True)
    optimized.save_model_to_file(target, use_external_data_format=True, all_tensors_to_one_file=True)
    # The optimizer names the weights file after the graph; Pigment finds any *.onnx_data or *.data beside it.


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    fuse_and_convert(sys.argv[1], sys.argv[2])
