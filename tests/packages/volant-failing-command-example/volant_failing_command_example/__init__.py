"""Test fixture package: its plugin fails while adding a volar command (see ``plugin``)."""
