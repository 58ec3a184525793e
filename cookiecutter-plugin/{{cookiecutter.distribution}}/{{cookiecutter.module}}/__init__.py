"""{{ cookiecutter.description }}: the Volant {{ cookiecutter.kind }} plugin ``{{ cookiecutter.plugin_name }}``."""
