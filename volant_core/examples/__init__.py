"""Runtimes shipped inside volant-core: ``hello-http``, the example ``volar quickstart`` boots."""
