"""Every limit of the atlas: one module per limit, grouped by family (`limits/<family>/<id>.py`).
Each module defines `PROBE`; the registry finds it. Import heavy extras inside functions."""
