"""Test fixture package: its plugin module cannot be imported (see ``plugin``)."""
