"""The trainer: retrains the served models and releases new versions into Triton.

Modules, one concept each:

- ``layout``: a model's folder in the Triton repository (numbered versions, staging,
  retired versions) and the on-disk rules that keep it consistent.
- ``validate``: what a version must pass before Triton may see it.
- ``triton``: Triton's model-control API (explicit mode), readiness and the canary.
- ``release``: deploy, promote and roll back, built from the three above.
"""
