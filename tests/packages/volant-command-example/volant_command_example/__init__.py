"""Test fixture package: its plugin adds ``volar hello`` (see ``plugin``)."""
