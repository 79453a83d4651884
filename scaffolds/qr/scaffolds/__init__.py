"""Project templates rendered by ``qr init`` (see README.md in this folder)."""
