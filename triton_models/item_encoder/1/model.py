"""Triton Python-backend entry for the item encoder: moves tensors, nothing else.

Tokenisation and the ONNX session live in ``models.tokenization`` (unit-tested
against the torch encoder in ``models.text_encoder``).
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from models.tokenization import OnnxTextEncoder, decode_texts

INPUT, OUTPUT = "TEXT", "EMBEDDING"


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        folder = Path(args["model_repository"]) / args["model_version"]
        self.batch_size = max(1, int(config.get("max_batch_size", 64)))
        self.encoder = OnnxTextEncoder(
            folder / params.get("onnx_file", "model.onnx"),
            folder / params.get("tokenizer_file", "tokenizer.json"),
            max_length=int(params.get("max_length", "128")),
            intra_op_threads=int(params.get("intra_op_threads", "1")),
        )

    def execute(self, requests):
        groups, errors = [], []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, INPUT).as_numpy()
            try:
                groups.append(decode_texts(values.reshape(-1)))
                errors.append(None)
            except ValueError as exc:
                groups.append([])
                errors.append(str(exc))
        outputs = self.encoder.encode_groups(groups, batch_size=self.batch_size)
        responses = []
        for out, error in zip(outputs, errors, strict=True):
            if error is not None:
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(error))
                )
            else:
                tensor = pb_utils.Tensor(OUTPUT, np.ascontiguousarray(out, dtype=np.float32))
                responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses
