"""Triton Python-backend entry for the scorer: moves tensors, nothing else.

Request checking, merging and the ONNX session live in ``models.serving`` (unit-tested).
A malformed request gets its own error response; the others in the batch are served.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from models.serving import (
    RANK_INPUTS,
    RANK_OUTPUT,
    OnnxModel,
    RankRequest,
    RankRequestError,
    run_ranker,
)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        folder = Path(args["model_repository"]) / args["model_version"]
        self.model = OnnxModel(
            folder / params.get("onnx_file", "model.onnx"),
            RANK_INPUTS,
            (RANK_OUTPUT,),
            intra_op_threads=int(params.get("intra_op_threads", "1")),
        )

    def execute(self, requests):
        parsed, errors = [], []
        for request in requests:
            arrays = {}
            for name in RANK_INPUTS:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                arrays[name] = None if tensor is None else tensor.as_numpy()
            try:
                parsed.append(RankRequest.from_arrays(arrays, leading_one=True))
                errors.append(None)
            except RankRequestError as exc:
                parsed.append(None)
                errors.append(str(exc))
        scores = iter(run_ranker(self.model, [p for p in parsed if p is not None]))
        responses = []
        for error in errors:
            if error is not None:
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(error))
                )
            else:
                out = next(scores)[None]
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(RANK_OUTPUT, out)])
                )
        return responses
