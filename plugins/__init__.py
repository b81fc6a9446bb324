"""memad's built-in components, each family a plugin registered through the ``memad``
entry-point group exactly as a third-party package's would be (see ``memad.hookspecs``).

- ``mnad``: the paper's U-Net encoder/decoder, the prototype memory and its presets.
- ``update_rules``: how memory items move (``mnad``, ``mnad_code``, ``ema``, ``none``).
- ``scorers``: per-frame anomaly scores (PSNR, feature distance, their weighted mix, ...).
- ``baselines``: no-memory models (``ae``, ``unet_pred``).
"""
