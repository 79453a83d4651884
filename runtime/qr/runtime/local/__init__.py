"""Local adapters for the dev machine (``qr dev``, ``qr.runtime.testing``): never in a bundle."""
