"""Triton Python-backend entry for the scorer: moves tensors, nothing else.

The ONNX session and request grouping live in ``models.serving`` (unit-tested).
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from models.serving import OnnxModel, run_grouped

INPUT, OUTPUT = "FEATURES", "SCORES"


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        onnx_file = config.get("parameters", {}).get("onnx_file", {}).get("string_value")
        path = Path(args["model_repository"]) / args["model_version"] / (onnx_file or "model.onnx")
        self.model = OnnxModel(path, (INPUT,), (OUTPUT,))

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, INPUT).as_numpy() for r in requests]
        outputs = run_grouped(self.model, INPUT, arrays, OUTPUT)
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT, out)])
            for out in outputs
        ]
