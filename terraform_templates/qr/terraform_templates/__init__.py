"""Jinja2 templates of the Terraform that ``qr build`` renders from the manifest."""
