"""Test fixture package: its plugin implements a misspelled hook (see ``plugin``)."""
