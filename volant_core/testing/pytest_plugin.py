"""pytest plugin for plugin authors."""
