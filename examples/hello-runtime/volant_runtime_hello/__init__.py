"""hello-runtime: an example Volant runtime shipped as a pip package (manifest and payload)."""
